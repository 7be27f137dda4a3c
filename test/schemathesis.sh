#!/usr/bin/env bash
# Runs schemathesis against the running API as an admin, over every operation: no server errors
# and no response that breaks its schema. Needs the test services (test/services.sh) and
# schemathesis (pip install schemathesis==4.32.5). Checks left out, with their reasons, are in
# docs/contract.md ("Contract checks").
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${SCHEMATHESIS_PORT:-57300}
MAIL_PORT=$((PORT + 1)) FIXTURES_PORT=$((PORT + 2)) OIDC_PORT=$((PORT + 3))
MAX_EXAMPLES=${SCHEMATHESIS_MAX_EXAMPLES:-25}
DB=schemathesis_$$
ADMIN_EMAIL=fuzz-admin@example.com
ADMIN_PASSWORD=fuzz-admin-password-1
psql_admin() { psql -h 127.0.0.1 -p 55432 -U postgres -d postgres -qtAc "$1"; }
# An empty database the API migrates at start: no dependency on the test template, which the
# suite rebuilds, so this can run while the tests do (as .ci/run does).
psql_admin "create database $DB"

export NODE_ENV=test LOG_LEVEL=warn PORT HOST=127.0.0.1 JOBS=off
export DATABASE_URL="postgres://postgres@127.0.0.1:55432/$DB" MONGODB_URL="mongodb://127.0.0.1:57017/$DB"
export REDIS_URL=redis://127.0.0.1:56379 REDIS_KEY_PREFIX="$DB:" UPLOAD_DIR="$(mktemp -d)"
# The fuzzer sends thousands of requests from one address; the limits are tested elsewhere.
export RATE_LIMIT_MAX=1000000 AUTH_RATE_LIMIT_MAX=1000000 AUTH_ACCOUNT_RATE_LIMIT_MAX=1000000
# Every guest order the hooks make comes from this one address and most stay unpaid.
export GUEST_MAX_UNPAID_ORDERS_PER_CLIENT=10000
# Mail goes to the fixture service's SMTP server, which reads reset and verification tokens from it;
# the hooks sign webhook bodies with this run's secret.
export SMTP_URL="smtp://127.0.0.1:$MAIL_PORT" PAYMENT_WEBHOOK_SECRET="fuzz-webhook-secret-$$-$RANDOM"
# Sign-in with a real OpenID Connect provider, started by the fixture service.
export OIDC_PROVIDERS=local OIDC_LOCAL_ISSUER="http://127.0.0.1:$OIDC_PORT" OIDC_LOCAL_CLIENT_ID=shop-api \
  OIDC_LOCAL_CLIENT_SECRET=shop-api-test-secret-0123456789 OIDC_LOCAL_REDIRECT_URI=http://127.0.0.1:3000/sign-in/local/callback

MAIL_PORT=$MAIL_PORT FIXTURES_PORT=$FIXTURES_PORT OIDC_PORT=$OIDC_PORT node --import tsx test/schemathesis-fixtures.ts > /tmp/schemathesis-fixtures.log 2>&1 &
FIXTURES=$!
node --import tsx src/server.ts > /tmp/schemathesis-api.log 2>&1 &
API=$!
# The API only enqueues (JOBS=off); a worker makes the exports and runs the imports, so their
# downloads and reports are there to fetch.
JOBS=on node --import tsx src/worker.ts > /tmp/schemathesis-worker.log 2>&1 &
WORKER=$!
cleanup() { kill "$API" "$WORKER" "$FIXTURES" 2>/dev/null || true; psql_admin "drop database if exists $DB with (force)" || true; }
trap cleanup EXIT
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.3; done

ADMIN_PASSWORD=$ADMIN_PASSWORD node --import tsx db/create-admin.ts --email "$ADMIN_EMAIL" >/dev/null
# A little catalog, so operations that read products find some.
DATABASE_URL=$DATABASE_URL node --import tsx db/seed.ts --categories 3 --products 10 --variants 2 >/dev/null

# Ids of real objects for every operation with ids in its path, and the hooks that renew what a
# request consumes (no "missing test data", no "schema validation mismatch" from random ids).
CONFIG=$(mktemp --suffix=.toml)
for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$FIXTURES_PORT/" && break; sleep 0.3; done
curl -fsS -X POST "http://127.0.0.1:$FIXTURES_PORT/setup" -d "{\"baseUrl\":\"http://127.0.0.1:$PORT\",\"email\":\"$ADMIN_EMAIL\",\"password\":\"$ADMIN_PASSWORD\"}" >"$CONFIG"
export SCHEMATHESIS_FIXTURES_URL="http://127.0.0.1:$FIXTURES_PORT" SCHEMATHESIS_HOOKS=schemathesis_hooks PYTHONPATH="$PWD/test"

st --config-file "$CONFIG" run "http://127.0.0.1:$PORT/docs/json" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --max-examples "$MAX_EXAMPLES" --seed 1 --workers 2 --phases examples,fuzzing,stateful \
  --exclude-path /auth/logout --exclude-path /auth/logout-all \
  --suppress-health-check all
