#!/usr/bin/env bash
# Starts the local test services on loopback: a throwaway PostgreSQL cluster, redis-server,
# FerretDB (PostgreSQL backend), stripe-mock and Toxiproxy. Installs what is missing. Safe to run twice; `stop` stops them.
set -euo pipefail
cd "$(dirname "$0")/.."

PG_PORT=${TEST_PG_PORT:-55432}
REDIS_PORT=${TEST_REDIS_PORT:-56379}
MONGO_PORT=${TEST_MONGO_PORT:-57017}
STRIPE_MOCK_PORT=${TEST_STRIPE_MOCK_PORT:-57111}
STRIPE_MOCK_VERSION=v0.203.0
TOXIPROXY_PORT=${TEST_TOXIPROXY_PORT:-58474}
TOXIPROXY_VERSION=v2.5.0
# Outside the checkout: the postgres user must be able to reach it, and a clone may live in a private dir.
DIR=${TEST_SERVICES_DIR:-/tmp/shop-api-services}
PG_DATA="$DIR/pg"
log() { echo "services: $*" >&2; }
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() {
  for _ in $(seq 1 100); do port_open "$1" && return 0; sleep 0.2; done
  log "$2 did not open port $1; see $DIR/*.log"; exit 1
}
pg_bin() {
  for d in "$(pg_config --bindir 2>/dev/null || true)" /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && { echo "$d"; return; }
  done
  log "PostgreSQL server binaries not found: apt-get install postgresql"; exit 1
}

if [ "${1:-start}" = stop ]; then
  [ -f "$DIR/ferretdb.pid" ] && kill "$(cat "$DIR/ferretdb.pid")" 2>/dev/null || true
  [ -f "$DIR/stripe-mock.pid" ] && kill "$(cat "$DIR/stripe-mock.pid")" 2>/dev/null || true
  [ -f "$DIR/toxiproxy.pid" ] && kill "$(cat "$DIR/toxiproxy.pid")" 2>/dev/null || true
  [ -f "$DIR/redis.pid" ] && kill "$(cat "$DIR/redis.pid")" 2>/dev/null || true
  [ -d "$PG_DATA" ] && as_pg "$(pg_bin)/pg_ctl" -D "$PG_DATA" -m fast stop >/dev/null 2>&1 || true
  log "stopped"; exit 0
fi

mkdir -p "$DIR"
chmod 755 "$DIR"

# PostgreSQL: a throwaway cluster tuned for tests (durability off), never the system one.
if ! port_open "$PG_PORT"; then
  BIN=$(pg_bin)
  if [ ! -f "$PG_DATA/PG_VERSION" ]; then
    mkdir -p "$PG_DATA"
    [ "$(id -u)" = 0 ] && chown postgres: "$PG_DATA"
    as_pg "$BIN/initdb" -D "$PG_DATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$DIR/initdb.log"
  fi
  [ "$(id -u)" = 0 ] && chown postgres: "$DIR" 2>/dev/null || true
  as_pg "$BIN/pg_ctl" -D "$PG_DATA" -l "$DIR/postgres.log" -w start -o \
    "-h 127.0.0.1 -p $PG_PORT -k $PG_DATA -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" >/dev/null
fi
wait_port "$PG_PORT" postgres
psql_q() { psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -tAc "$1"; }
[ "$(psql_q "select 1 from pg_database where datname='ferretdb'")" = 1 ] || psql_q "create database ferretdb" >/dev/null

# Redis
if ! command -v redis-server >/dev/null; then
  [ "$(id -u)" = 0 ] || { log "redis-server missing: sudo apt-get install redis-server"; exit 1; }
  log "installing redis-server"
  (apt-get install -y redis-server || (apt-get update && apt-get install -y redis-server)) >"$DIR/apt.log" 2>&1
fi
if ! port_open "$REDIS_PORT"; then
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --daemonize yes --save '' --appendonly no \
    --dir "$DIR" --pidfile "$DIR/redis.pid" --logfile "$DIR/redis.log"
fi
wait_port "$REDIS_PORT" redis-server

# FerretDB (MongoDB wire protocol) on the PostgreSQL backend.
if ! port_open "$MONGO_PORT"; then
  FERRETDB=${FERRETDB_BIN:-$(command -v ferretdb || true)}
  if [ -z "$FERRETDB" ] || ! "$FERRETDB" --version >/dev/null 2>&1; then
    log "building FerretDB v1.24.2"
    FERRETDB=$(bash test/install-ferretdb.sh)
  fi
  mkdir -p "$DIR/ferretdb"
  nohup "$FERRETDB" --handler=postgresql \
    --postgresql-url="postgres://postgres@127.0.0.1:$PG_PORT/ferretdb" \
    --listen-addr="127.0.0.1:$MONGO_PORT" --debug-addr=127.0.0.1:0 --telemetry=disable \
    --state-dir="$DIR/ferretdb" --log-level=WARN >"$DIR/ferretdb.log" 2>&1 &
  echo $! >"$DIR/ferretdb.pid"
fi
wait_port "$MONGO_PORT" ferretdb

# stripe-mock: Stripe's official API mock, for the stripe provider's API calls.
if ! port_open "$STRIPE_MOCK_PORT"; then
  STRIPE_MOCK="$(go env GOPATH)/bin/stripe-mock"
  if ! [ -x "$STRIPE_MOCK" ]; then
    log "installing stripe-mock $STRIPE_MOCK_VERSION"
    go install "github.com/stripe/stripe-mock@$STRIPE_MOCK_VERSION" >"$DIR/stripe-mock-install.log" 2>&1
  fi
  nohup "$STRIPE_MOCK" -http-addr "127.0.0.1:$STRIPE_MOCK_PORT" >"$DIR/stripe-mock.log" 2>&1 &
  echo $! >"$DIR/stripe-mock.pid"
fi
wait_port "$STRIPE_MOCK_PORT" stripe-mock

# Toxiproxy (Shopify's fault-injection proxy): test/store-faults.test.ts puts its own proxies
# between the API and each store and adds latency, stalls and cuts. Its binary is named `server`.
if ! port_open "$TOXIPROXY_PORT"; then
  TOXIPROXY="$(go env GOPATH)/bin/toxiproxy-server-$TOXIPROXY_VERSION"
  if ! [ -x "$TOXIPROXY" ]; then
    log "installing toxiproxy $TOXIPROXY_VERSION"
    GOBIN_DIR=$(mktemp -d)
    GOBIN="$GOBIN_DIR" go install "github.com/Shopify/toxiproxy/v2/cmd/server@$TOXIPROXY_VERSION" >"$DIR/toxiproxy-install.log" 2>&1
    mv "$GOBIN_DIR/server" "$TOXIPROXY" && rmdir "$GOBIN_DIR"
  fi
  nohup "$TOXIPROXY" -host 127.0.0.1 -port "$TOXIPROXY_PORT" >"$DIR/toxiproxy.log" 2>&1 &
  echo $! >"$DIR/toxiproxy.pid"
fi
wait_port "$TOXIPROXY_PORT" toxiproxy

cat <<URLS
TEST_DATABASE_URL=postgres://postgres@127.0.0.1:$PG_PORT/postgres
TEST_REDIS_URL=redis://127.0.0.1:$REDIS_PORT
TEST_MONGODB_URL=mongodb://127.0.0.1:$MONGO_PORT/
TEST_STRIPE_API_URL=http://127.0.0.1:$STRIPE_MOCK_PORT
TEST_TOXIPROXY_URL=http://127.0.0.1:$TOXIPROXY_PORT
URLS
