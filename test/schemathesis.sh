#!/usr/bin/env bash
# Runs schemathesis against the running API as an admin, over every operation: no server errors
# and no response that breaks its schema. Needs the test services (test/services.sh) and
# schemathesis (pip install schemathesis==4.32.5). Checks left out, with their reasons, are in
# the README ("Contract checks").
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${SCHEMATHESIS_PORT:-57300}
MAX_EXAMPLES=${SCHEMATHESIS_MAX_EXAMPLES:-25}
DB=schemathesis_$$
ADMIN_EMAIL=fuzz-admin@example.com
ADMIN_PASSWORD=fuzz-admin-password-1
psql_admin() { psql -h 127.0.0.1 -p 55432 -U postgres -d postgres -qtAc "$1"; }
psql_admin "create database $DB template shop_test_template" 2>/dev/null || psql_admin "create database $DB"

export NODE_ENV=test LOG_LEVEL=warn PORT HOST=127.0.0.1 JOBS=off
export DATABASE_URL="postgres://postgres@127.0.0.1:55432/$DB" MONGODB_URL="mongodb://127.0.0.1:57017/$DB"
export REDIS_URL=redis://127.0.0.1:56379 REDIS_KEY_PREFIX="$DB:" UPLOAD_DIR="$(mktemp -d)"
# The fuzzer sends thousands of requests from one address; the limits are tested elsewhere.
export RATE_LIMIT_MAX=1000000 AUTH_RATE_LIMIT_MAX=1000000 AUTH_ACCOUNT_RATE_LIMIT_MAX=1000000

node --import tsx src/server.ts > /tmp/schemathesis-api.log 2>&1 &
API=$!
cleanup() { kill "$API" 2>/dev/null || true; psql_admin "drop database if exists $DB with (force)" || true; }
trap cleanup EXIT
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.3; done

ADMIN_PASSWORD=$ADMIN_PASSWORD node --import tsx db/create-admin.ts --email "$ADMIN_EMAIL" >/dev/null
TOKEN=$(curl -fs -X POST "http://127.0.0.1:$PORT/auth/login" -H 'content-type: application/json' \
  -d "{\"email\":\"$ADMIN_EMAIL\",\"password\":\"$ADMIN_PASSWORD\"}" | node -pe 'JSON.parse(require("fs").readFileSync(0)).tokens.accessToken')
# A little catalog, so operations that read products find some.
DATABASE_URL=$DATABASE_URL node --import tsx db/seed.ts --categories 3 --products 10 --variants 2 >/dev/null

# Ids of real objects for every operation with ids in its path (no more "missing test data").
CONFIG=$(mktemp --suffix=.toml)
BASE_URL="http://127.0.0.1:$PORT" TOKEN=$TOKEN node --import tsx test/schemathesis-fixtures.ts >"$CONFIG"

st --config-file "$CONFIG" run "http://127.0.0.1:$PORT/docs/json" \
  --header "Authorization: Bearer $TOKEN" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --max-examples "$MAX_EXAMPLES" --seed 1 --workers 2 --phases examples,fuzzing,stateful \
  --exclude-path /auth/logout --exclude-path /auth/logout-all \
  --suppress-health-check all
