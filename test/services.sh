#!/usr/bin/env bash
# Starts the local test services on loopback: a throwaway PostgreSQL cluster, a streaming read
# replica of it, redis-server, a Redis Cluster of three masters with a replica each, FerretDB (PostgreSQL backend),
# stripe-mock, Toxiproxy and MinIO (S3-compatible object storage). Installs what is missing. Safe to run twice; `stop` stops them.
set -euo pipefail
cd "$(dirname "$0")/.."
# start (the default), stop, or watchdog; kept here, as the Redis Cluster set-up reuses "$@".
MODE=${1:-start}

PG_PORT=${TEST_PG_PORT:-55432}
PG_REPLICA_PORT=${TEST_PG_REPLICA_PORT:-55433}
REDIS_PORT=${TEST_REDIS_PORT:-56379}
MONGO_PORT=${TEST_MONGO_PORT:-57017}
STRIPE_MOCK_PORT=${TEST_STRIPE_MOCK_PORT:-57111}
# Redis Cluster masters: a space- or comma-separated port list, or three ports from a base port;
# their replicas (one per master, in the same order) likewise, or the next three ports.
REDIS_CLUSTER_BASE=${TEST_REDIS_CLUSTER_BASE_PORT:-57001}
REDIS_CLUSTER_PORTS=$(echo "${TEST_REDIS_CLUSTER_PORTS:-$REDIS_CLUSTER_BASE $((REDIS_CLUSTER_BASE + 1)) $((REDIS_CLUSTER_BASE + 2))}" | tr ',' ' ')
REDIS_CLUSTER_REPLICA_PORTS=$(echo "${TEST_REDIS_CLUSTER_REPLICA_PORTS:-$((REDIS_CLUSTER_BASE + 3)) $((REDIS_CLUSTER_BASE + 4)) $((REDIS_CLUSTER_BASE + 5))}" | tr ',' ' ')
# Short, so a replica takes over within a few seconds of its master's death (Redis's default is 15 s).
REDIS_CLUSTER_NODE_TIMEOUT_MS=${TEST_REDIS_CLUSTER_NODE_TIMEOUT_MS:-2000}
# Each node's cluster bus port is its port plus this (Redis's default +10000 would pass 65535).
REDIS_CLUSTER_BUS_OFFSET=${TEST_REDIS_CLUSTER_BUS_OFFSET:-100}
STRIPE_MOCK_VERSION=v0.203.0
TOXIPROXY_PORT=${TEST_TOXIPROXY_PORT:-58474}
TOXIPROXY_VERSION=v2.5.0
# MinIO: the S3 API on this port, its web console (unused, but it must listen somewhere) on the next.
S3_PORT=${TEST_S3_PORT:-57600}
S3_ACCESS_KEY=shoptest
S3_SECRET_KEY=shoptest-secret-key
# Outside the checkout: the postgres user must be able to reach it, and a clone may live in a private dir.
DIR=${TEST_SERVICES_DIR:-/tmp/shop-api-services}
# The PostgreSQL clusters' files in memory (a tmpfs) where the machine has one: each test database
# is a clone of the template, about a thousand files made and removed again, on the primary and on
# the replica that replays it. On ext4 that churn made file creation search the inode bitmaps
# (ext4_create -> recently_deleted, seen with perf): 24% of the busy CPU of a test file, and the
# replica's replay used 127 CPU-s of a full run. Named by port, so two checkouts on other ports
# keep apart; a machine restart empties it, and the next start makes the clusters anew.
if [ -z "${TEST_PG_DIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ] && [ "$(stat -f -c %T /dev/shm 2>/dev/null)" = tmpfs ]; then
  TEST_PG_DIR=/dev/shm/shop-api-pg-$PG_PORT
fi
PG_DIR=${TEST_PG_DIR:-$DIR}
PG_DATA="$PG_DIR/pg"
PG_REPLICA_DATA="$PG_DIR/pg-replica"
log() { echo "services: $*" >&2; }
# Starts a long-lived server in a session of its own, its pid in $1 and its output in $2: in the
# caller's process group it would die with whatever started it (a shell tool that ends its job's
# group, a test runner killing a child's group) while the ports stay taken by nothing.
daemon() {
  local pidfile=$1 logfile=$2; shift 2
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pidfile" "$@" >"$logfile" 2>&1 </dev/null &
}
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() {
  for _ in $(seq 1 100); do port_open "$1" && return 0; sleep 0.2; done
  log "$2 did not open port $1; see $DIR/*.log"; exit 1
}
# Whether the pid in file $1 is a live process with $2 as one of its arguments or as the file name
# of one (its program's). Pid files outlive their processes: after a machine restart or a restored
# snapshot, a stale pid can name an unrelated process, which must be neither killed nor taken for
# a running service.
ours() {
  local pid
  pid=$(head -1 "$1" 2>/dev/null) && [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  # A program that retitles itself (redis-server) has one argument: its name, a space, an address.
  tr '\0' '\n' <"/proc/$pid/cmdline" \
    | awk -v want="$2" '{ name = $1; sub(/.*\//, "", name) } $0 == want || name == want { found = 1 } END { exit !found }'
}
pg_bin() {
  for d in "$(pg_config --bindir 2>/dev/null || true)" /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && { echo "$d"; return; }
  done
  log "PostgreSQL server binaries not found: apt-get install postgresql"; exit 1
}

if [ "$MODE" = stop ]; then
  stop_ours() { ours "$1" "$2" && kill "$(head -1 "$1")" 2>/dev/null || true; }
  stop_ours "$DIR/watchdog.pid" services.sh
  stop_ours "$DIR/ferretdb.pid" "--listen-addr=127.0.0.1:$MONGO_PORT"
  stop_ours "$DIR/stripe-mock.pid" stripe-mock
  stop_ours "$DIR/toxiproxy.pid" "toxiproxy-server-$TOXIPROXY_VERSION"
  stop_ours "$DIR/minio.pid" "$DIR/minio/data"
  stop_ours "$DIR/redis.pid" redis-server
  for port in $REDIS_CLUSTER_PORTS $REDIS_CLUSTER_REPLICA_PORTS; do
    stop_ours "$DIR/redis-cluster/$port/redis.pid" redis-server
  done
  # The replica first; then also clusters still running from $DIR, where they were kept before.
  for data in "$PG_REPLICA_DATA" "$PG_DATA" "$DIR/pg-replica" "$DIR/pg"; do
    [ -f "$data/postmaster.pid" ] && as_pg "$(pg_bin)/pg_ctl" -D "$data" -m fast stop >/dev/null 2>&1 || true
  done
  log "stopped"; exit 0
fi

mkdir -p "$DIR" "$PG_DIR"
chmod 755 "$DIR" "$PG_DIR"

# PostgreSQL: a throwaway cluster tuned for tests (durability off), never the system one.
# wal_keep_size: test databases are cloned with FILE_COPY, a checkpoint each, so WAL segments were
# recycled within seconds and a replica a moment behind lost its stream for good (seen: "requested
# WAL segment ... has already been removed"); 1 GB of WAL is kept for it.
# A cluster that was not shut down (its postmaster.pid names no live postmaster of its directory:
# killed with the machine, or a snapshot of a running machine restored) ran without fsync, so its
# files cannot be trusted; seen: the replica PANICs replaying WAL ("failed to add tuple") and the
# services never start. Such a cluster, or one that fails to start, is made anew with its replica:
# both hold test data only.
stopped_uncleanly() { [ -f "$1/postmaster.pid" ] && ! ours "$1/postmaster.pid" "$1"; }
if ! port_open "$PG_PORT"; then
  BIN=$(pg_bin)
  init_primary() {
    [ -f "$PG_DATA/PG_VERSION" ] && return 0
    mkdir -p "$PG_DATA"
    [ "$(id -u)" = 0 ] && chown postgres: "$PG_DATA"
    as_pg "$BIN/initdb" -D "$PG_DATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$DIR/initdb.log"
  }
  start_primary() {
    as_pg "$BIN/pg_ctl" -D "$PG_DATA" -l "$DIR/postgres.log" -w start -o \
      "-h 127.0.0.1 -p $PG_PORT -k $PG_DATA -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 -c wal_keep_size=1GB" >/dev/null 2>&1
  }
  anew() { log "$1: making the cluster and its replica anew"; rm -rf "$PG_DATA" "$PG_REPLICA_DATA"; }
  stopped_uncleanly "$PG_DATA" && anew "PostgreSQL in $PG_DATA was not shut down (durability is off)"
  init_primary
  [ "$(id -u)" = 0 ] && chown postgres: "$DIR" 2>/dev/null || true
  if ! start_primary; then
    anew "PostgreSQL did not start (see $DIR/postgres.log)"
    init_primary
    start_primary || { log "PostgreSQL did not start; see $DIR/postgres.log"; exit 1; }
  fi
fi
wait_port "$PG_PORT" postgres
psql_q() { psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -tAc "$1"; }
[ "$(psql_q "select 1 from pg_database where datname='ferretdb'")" = 1 ] || psql_q "create database ferretdb" >/dev/null

# PostgreSQL read replica: a hot standby streaming from the cluster above (pg_basebackup -R), for
# the read-replica tests. initdb --auth=trust lets loopback replicate; wal_level=replica is the default.
if ! port_open "$PG_REPLICA_PORT"; then
  BIN=$(pg_bin)
  system_id() { as_pg "$BIN/pg_controldata" -D "$1" 2>/dev/null | sed -n 's/^Database system identifier: *//p'; }
  copy_primary() {
    rm -rf "$PG_REPLICA_DATA" && mkdir -m 700 -p "$PG_REPLICA_DATA"
    [ "$(id -u)" = 0 ] && chown postgres: "$PG_REPLICA_DATA"
    log "copying the primary for the replica (pg_basebackup)"
    as_pg "$BIN/pg_basebackup" -h 127.0.0.1 -p "$PG_PORT" -U postgres -D "$PG_REPLICA_DATA" -R -X stream -c fast >"$DIR/pg-basebackup.log" 2>&1
  }
  # A hot standby needs max_connections at least the primary's.
  start_replica() {
    as_pg "$BIN/pg_ctl" -D "$PG_REPLICA_DATA" -l "$DIR/postgres-replica.log" -w start -o \
      "-h 127.0.0.1 -p $PG_REPLICA_PORT -k $PG_REPLICA_DATA -c fsync=off -c max_connections=300 -c hot_standby_feedback=on" >/dev/null 2>&1
  }
  streaming() {
    for _ in $(seq 1 50); do
      [ "$(psql -h 127.0.0.1 -p "$PG_REPLICA_PORT" -U postgres -d postgres -tAc "select status from pg_stat_wal_receiver" 2>/dev/null)" = streaming ] && return 0
      sleep 0.2
    done
    return 1
  }
  # standby.signal is written last: without it the copy is incomplete. A copy of an earlier
  # primary (its data dir was removed) cannot follow this one.
  if [ ! -f "$PG_REPLICA_DATA/standby.signal" ] || [ "$(system_id "$PG_REPLICA_DATA")" != "$(system_id "$PG_DATA")" ] \
    || stopped_uncleanly "$PG_REPLICA_DATA"; then
    copy_primary
  fi
  # A replica that was down while the primary recycled the WAL it needs never streams again; one
  # whose files a crash left inconsistent does not start.
  if ! { start_replica && streaming; }; then
    log "replica did not start or does not stream (see $DIR/postgres-replica.log); copying again"
    as_pg "$BIN/pg_ctl" -D "$PG_REPLICA_DATA" -m fast stop >/dev/null 2>&1 || true
    copy_primary
    { start_replica && streaming; } || { log "replica does not start or stream; see $DIR/postgres-replica.log"; exit 1; }
  fi
fi
wait_port "$PG_REPLICA_PORT" "postgres replica"

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

# Redis Cluster: three masters with a replica each, each node with its own dir (its nodes.conf
# remembers the cluster). Created only when none of the masters' ports is open; a node that alone
# is down (killed by a test) is started again from its dir and rejoins (a master whose replica
# took over comes back as a replica; nothing is saved). A replica missing from a cluster made
# before replicas were added (or whose dir is gone) is started and added to its master.
redis_cluster_node() {
  local d="$DIR/redis-cluster/$1"
  mkdir -p "$d"
  redis-server --port "$1" --bind 127.0.0.1 --daemonize yes --save '' --appendonly no \
    --cluster-enabled yes --cluster-port $(($1 + REDIS_CLUSTER_BUS_OFFSET)) \
    --cluster-config-file nodes.conf --cluster-node-timeout "$REDIS_CLUSTER_NODE_TIMEOUT_MS" \
    --repl-diskless-sync-delay 0 \
    --dir "$d" --pidfile "$d/redis.pid" --logfile "$d/redis.log"
}
cluster_ok() { redis-cli -p "$1" cluster info 2>/dev/null | grep -q '^cluster_state:ok'; }
wait_cluster_ok() {
  for _ in $(seq 1 100); do cluster_ok "$1" && return 0; sleep 0.2; done
  cluster_ok "$1" || { log "redis cluster not ok; see $DIR/redis-cluster/"; exit 1; }
}
first_port=${REDIS_CLUSTER_PORTS%% *}
cluster_open=0
for port in $REDIS_CLUSTER_PORTS; do port_open "$port" && cluster_open=$((cluster_open + 1)); done
if [ "$cluster_open" = 0 ]; then
  nodes=()
  for port in $REDIS_CLUSTER_PORTS $REDIS_CLUSTER_REPLICA_PORTS; do
    port_open "$port" && { log "redis cluster port $port is taken by something else"; exit 1; }
    rm -rf "$DIR/redis-cluster/$port"
    redis_cluster_node "$port"
    nodes+=("127.0.0.1:$port")
  done
  for port in $REDIS_CLUSTER_PORTS $REDIS_CLUSTER_REPLICA_PORTS; do wait_port "$port" redis-cluster; done
  # Masters first: on one host redis-cli makes the first three masters and the rest their replicas.
  redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes >"$DIR/redis-cluster/create.log" 2>&1 \
    || { log "redis cluster create failed; see $DIR/redis-cluster/create.log"; exit 1; }
else
  for port in $REDIS_CLUSTER_PORTS; do port_open "$port" || redis_cluster_node "$port"; done
  for port in $REDIS_CLUSTER_PORTS; do wait_port "$port" redis-cluster; done
  wait_cluster_ok "$first_port"
  set -- $REDIS_CLUSTER_PORTS
  for replica in $REDIS_CLUSTER_REPLICA_PORTS; do
    master=$1; shift
    port_open "$replica" || { redis_cluster_node "$replica"; wait_port "$replica" redis-cluster; }
    # A replica its master does not know joins: a new one, or one that remembers a cluster made
    # anew since (it forgets that first).
    if ! redis-cli -p "$master" cluster nodes 2>/dev/null | grep -q "^$(redis-cli -p "$replica" cluster myid) "; then
      redis-cli -p "$replica" cluster reset hard >/dev/null
      master_id=$(redis-cli -p "$master" cluster myid)
      redis-cli --cluster add-node "127.0.0.1:$replica" "127.0.0.1:$master" --cluster-slave --cluster-master-id "$master_id" \
        >"$DIR/redis-cluster/add-$replica.log" 2>&1 || { log "adding replica $replica failed; see $DIR/redis-cluster/add-$replica.log"; exit 1; }
    fi
  done
fi
for port in $REDIS_CLUSTER_PORTS $REDIS_CLUSTER_REPLICA_PORTS; do wait_port "$port" redis-cluster; done
# Every slot served before anyone uses it (gossip takes a moment after create), and every
# replica in sync (one that never synced cannot take over).
wait_cluster_ok "$first_port"
for _ in $(seq 1 100); do
  [ "$(redis-cli -p "$first_port" cluster nodes 2>/dev/null | awk '$3 ~ /slave/ && $3 !~ /fail/ && $8 == "connected"' | wc -l)" -ge "$(echo $REDIS_CLUSTER_REPLICA_PORTS | wc -w)" ] && break
  sleep 0.2
done
for replica in $REDIS_CLUSTER_REPLICA_PORTS; do
  for _ in $(seq 1 100); do
    redis-cli -p "$replica" info replication 2>/dev/null | grep -Eq '^(role:master|master_link_status:up)' && break
    sleep 0.2
  done
done
REDIS_CLUSTER_NODES=$(printf '127.0.0.1:%s,' $REDIS_CLUSTER_PORTS); REDIS_CLUSTER_NODES=${REDIS_CLUSTER_NODES%,}

# FerretDB (MongoDB wire protocol) on the PostgreSQL backend. FerretDB 1.24 has been seen wedged
# after a burst of connections: the port accepts, but no command is answered, not even ping (its
# own PostgreSQL pool stuck in Acquire). Such a server is restarted, not reused: here, and every
# 15 s by the watchdog that TEST_SERVICES_WATCHDOG=1 starts (CI does, for the test run).
mongo_answers() {
  [ -d node_modules/mongodb ] || return 0 # without the driver nothing can ask: the open port must do
  timeout 25 node -e '
    const { MongoClient } = require("mongodb")
    const client = new MongoClient(process.argv[1], { serverSelectionTimeoutMS: 10000, socketTimeoutMS: 10000, connectTimeoutMS: 10000 })
    client.db("admin").command({ ping: 1 }).then(() => process.exit(0), () => process.exit(1))' "mongodb://127.0.0.1:$MONGO_PORT/" 2>/dev/null
}
restart_wedged_ferretdb() {
  log "FerretDB on $MONGO_PORT accepts connections but does not answer ping: restarting it"
  [ -f "$DIR/ferretdb.pid" ] && kill -9 "$(cat "$DIR/ferretdb.pid")" 2>/dev/null || true
  for _ in $(seq 1 50); do port_open "$MONGO_PORT" || break; sleep 0.2; done
}
if [ "$MODE" = watchdog ]; then
  misses=0
  while sleep 15; do
    if mongo_answers; then misses=0; continue; fi
    misses=$((misses + 1))
    # Twice in a row: one slow ping under a loaded machine is not a wedge.
    if [ "$misses" -ge 2 ]; then restart_wedged_ferretdb; bash "$0" >/dev/null; misses=0; fi
  done
fi
if port_open "$MONGO_PORT" && ! mongo_answers; then restart_wedged_ferretdb; fi
if ! port_open "$MONGO_PORT"; then
  FERRETDB=${FERRETDB_BIN:-$(command -v ferretdb || true)}
  if [ -z "$FERRETDB" ] || ! "$FERRETDB" --version >/dev/null 2>&1; then
    log "building FerretDB v1.24.2"
    FERRETDB=$(bash test/install-ferretdb.sh)
  fi
  mkdir -p "$DIR/ferretdb"
  daemon "$DIR/ferretdb.pid" "$DIR/ferretdb.log" "$FERRETDB" --handler=postgresql \
    --postgresql-url="postgres://postgres@127.0.0.1:$PG_PORT/ferretdb" \
    --listen-addr="127.0.0.1:$MONGO_PORT" --debug-addr=127.0.0.1:0 --telemetry=disable \
    --state-dir="$DIR/ferretdb" --log-level=WARN
fi
wait_port "$MONGO_PORT" ferretdb

# stripe-mock: Stripe's official API mock, for the stripe provider's API calls.
if ! port_open "$STRIPE_MOCK_PORT"; then
  STRIPE_MOCK="$(go env GOPATH)/bin/stripe-mock"
  if ! [ -x "$STRIPE_MOCK" ]; then
    log "installing stripe-mock $STRIPE_MOCK_VERSION"
    go install "github.com/stripe/stripe-mock@$STRIPE_MOCK_VERSION" >"$DIR/stripe-mock-install.log" 2>&1
  fi
  # Its HTTPS listener gets the next port: the default (12112) would collide with a second set of services.
  daemon "$DIR/stripe-mock.pid" "$DIR/stripe-mock.log" "$STRIPE_MOCK" -http-addr "127.0.0.1:$STRIPE_MOCK_PORT" -https-addr "127.0.0.1:$((STRIPE_MOCK_PORT + 1))"
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
  daemon "$DIR/toxiproxy.pid" "$DIR/toxiproxy.log" "$TOXIPROXY" -host 127.0.0.1 -port "$TOXIPROXY_PORT"
fi
wait_port "$TOXIPROXY_PORT" toxiproxy

# MinIO: an S3-compatible server for STORAGE=s3 (built from source by test/install-s3.sh, which
# CI runs in a job of its own, starting MinIO with a second run of this script once it is built:
# TEST_SERVICES_S3=later skips it here). Tests make the buckets they use.
if [ "${TEST_SERVICES_S3:-}" = later ]; then
  echo "services: MinIO left for later (TEST_SERVICES_S3=later)" >&2
elif ! port_open "$S3_PORT"; then
  MINIO=$(bash test/install-s3.sh)
  mkdir -p "$DIR/minio"
  MINIO_ROOT_USER=$S3_ACCESS_KEY MINIO_ROOT_PASSWORD=$S3_SECRET_KEY MINIO_BROWSER=off MINIO_UPDATE=off \
    daemon "$DIR/minio.pid" "$DIR/minio.log" "$MINIO" server "$DIR/minio/data" --quiet \
    --address "127.0.0.1:$S3_PORT" --console-address "127.0.0.1:$((S3_PORT + 1))"
  wait_port "$S3_PORT" minio
fi

if [ "${TEST_SERVICES_WATCHDOG:-}" = 1 ] && ! ours "$DIR/watchdog.pid" services.sh; then
  daemon "$DIR/watchdog.pid" "$DIR/watchdog.log" bash "$0" watchdog
fi

cat <<URLS
TEST_DATABASE_URL=postgres://postgres@127.0.0.1:$PG_PORT/postgres
TEST_DATABASE_REPLICA_URL=postgres://postgres@127.0.0.1:$PG_REPLICA_PORT/postgres
TEST_REDIS_URL=redis://127.0.0.1:$REDIS_PORT
TEST_REDIS_CLUSTER_NODES=$REDIS_CLUSTER_NODES
TEST_MONGODB_URL=mongodb://127.0.0.1:$MONGO_PORT/
TEST_STRIPE_API_URL=http://127.0.0.1:$STRIPE_MOCK_PORT
TEST_TOXIPROXY_URL=http://127.0.0.1:$TOXIPROXY_PORT
TEST_S3_ENDPOINT=http://127.0.0.1:$S3_PORT
TEST_S3_ACCESS_KEY_ID=$S3_ACCESS_KEY
TEST_S3_SECRET_ACCESS_KEY=$S3_SECRET_KEY
URLS
