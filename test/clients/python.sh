#!/usr/bin/env bash
# Generates a Python client from the committed contract with openapi-python-client and runs
# test/clients/python_journey.py through it against an API of its own (own database, port and
# Redis prefix, so it runs beside the tests, as .ci/run does). Needs the test services
# (test/services.sh) and `pip install openapi-python-client==0.29.1`.
set -euo pipefail
cd "$(dirname "$0")/../.."
PORT=${PYTHON_CLIENT_PORT:-57320}
DB=python_client_$$
OUT=$(mktemp -d)
psql_admin() { psql -h 127.0.0.1 -p 55432 -U postgres -d postgres -qtAc "$1"; }

openapi-python-client generate --path openapi/openapi.json --meta none --output-path "$OUT/shop_api_client" >"$OUT/generate.log" 2>&1 ||
  { cat "$OUT/generate.log"; exit 1; }

psql_admin "create database $DB"
export NODE_ENV=test LOG_LEVEL=warn PORT HOST=127.0.0.1 JOBS=off
export DATABASE_URL="postgres://postgres@127.0.0.1:55432/$DB" MONGODB_URL="mongodb://127.0.0.1:57017/$DB"
export REDIS_URL=redis://127.0.0.1:56379 REDIS_KEY_PREFIX="$DB:" UPLOAD_DIR="$OUT/uploads"
node --import tsx src/server.ts >"$OUT/api.log" 2>&1 &
API=$!
cleanup() { kill "$API" 2>/dev/null || true; psql_admin "drop database if exists $DB with (force)" >/dev/null || true; rm -rf "$OUT"; }
trap cleanup EXIT
for _ in $(seq 1 200); do curl -fs "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.3; done
curl -fs "http://127.0.0.1:$PORT/health" >/dev/null || { echo "the API did not start:"; tail -20 "$OUT/api.log"; exit 1; }
node --import tsx db/seed.ts --categories 2 --products 30 --variants 2 >/dev/null
EXPECTED_PRODUCTS=$(psql "$DATABASE_URL" -qtAc "select count(*) from products where status = 'active'")

SHOP_URL="http://127.0.0.1:$PORT" EXPECTED_PRODUCTS=$EXPECTED_PRODUCTS PYTHONPATH="$OUT" python3 test/clients/python_journey.py
