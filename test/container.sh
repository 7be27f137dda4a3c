#!/usr/bin/env bash
# Builds the Dockerfile's image with podman and runs it for real, as CI does: as a non-root user,
# on the test services (test/services.sh), with the compose file's app environment plus what
# production requires, its files in the test MinIO (STORAGE=s3); then checks /health, /ready, that
# it migrated an empty database, a checkout paid through HTTP and an upload kept in the bucket.
# CONTAINER_PORT and CONTAINER_NAME run it beside another run. Needs root (apt, podman). No image registry is reachable here, so
# the base is a Debian bookworm made with debootstrap, with this machine's Node.js copied in; the
# Dockerfile's own default base stays the official Node image.
# `container.sh base` makes the base image, `build` also builds the app's image, `run` runs and
# checks an image already built; no argument does all three (CI starts base and build early, in
# the background, and runs the check after the tests).
set -euo pipefail
PHASE=${1:-all}
cd "$(dirname "$0")/.."
log() { printf 'container: %s\n' "$*" >&2; }
BASE=localhost/shop-base-bookworm-node:$(node -p process.versions.node)-$(cat /etc/ssl/certs/ca-certificates.crt "$0" | sha256sum | cut -c1-8)
IMAGE=localhost/shop-api:ci
PORT=${CONTAINER_PORT:-57400}
NAME=${CONTAINER_NAME:-shop-api-ci}
DB=container_$$

missing=()
for tool in podman runc debootstrap; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Debian's podman on this kind of machine: runc, cgroupfs, no default ulimits.
conf=/etc/containers/containers.conf
if ! grep -q 'cgroup_manager = "cgroupfs"' "$conf" 2>/dev/null; then
  mkdir -p /etc/containers
  cat >"$conf" <<'EOF'
[containers]
default_ulimits = []

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
EOF
fi

if ! podman image exists "$BASE"; then
  log "making the base image $BASE (debootstrap, once per machine)"
  root=$(mktemp -d)
  mirror=$(sed -nE 's/^URIs: (.*)$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)
  debootstrap --variant=minbase bookworm "$root" "${mirror:-http://deb.debian.org/debian}" >/dev/null
  node_bin=$(command -v node)
  npm_dir=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
  mkdir -p "$root/usr/local/lib/node_modules" "$root/home/node"
  cp "$node_bin" "$root/usr/local/bin/node"
  cp -r "$npm_dir" "$root/usr/local/lib/node_modules/npm"
  # Node's headers, for node-gyp (argon2 compiles); it would download them from nodejs.org.
  mkdir -p "$root/usr/local/include"
  cp -r "$(dirname "$(dirname "$node_bin")")/include/node" "$root/usr/local/include/node"
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
  # The official image's unprivileged user, which the Dockerfile switches to.
  echo 'node:x:1000:1000::/home/node:/bin/sh' >>"$root/etc/passwd"
  echo 'node:x:1000:' >>"$root/etc/group"
  chown 1000:1000 "$root/home/node"
  # This machine's trust store, so npm inside the build reaches the registry the way the host
  # does (here through an egress proxy with its own certificate authority).
  mkdir -p "$root/etc/ssl/certs"
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
  tar -C "$root" -c . | podman import --change 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt' --change 'ENV npm_config_nodedir=/usr/local' - "$BASE" >/dev/null
  rm -rf "$root"
fi

[ "$PHASE" = base ] && exit 0

if [ "$PHASE" != run ]; then
log "building $IMAGE"
podman build --network host --build-arg "BASE_IMAGE=$BASE" -t "$IMAGE" . >/tmp/container-build.log 2>&1 || { tail -30 /tmp/container-build.log; exit 1; }
fi
[ "$PHASE" = build ] && exit 0

psql_admin() { psql -h 127.0.0.1 -p 55432 -U postgres -d postgres -qtAc "$1"; }
psql_admin "create database $DB"
cleanup() { podman rm -f "$NAME" >/dev/null 2>&1 || true; psql_admin "drop database if exists $DB with (force)" >/dev/null || true; }
trap cleanup EXIT

# The compose file's app environment, with its ${VAR:?} secrets given and the stores pointed at
# the test services (compose names them postgres, mongo, redis; here they are on loopback).
# Files go to the test MinIO in place of compose's minio service (.ci/run starts it, once built,
# before the tests and so before this step), under a prefix of this run's own, which the check
# empties at its end.
S3_ENDPOINT=${TEST_S3_ENDPOINT:-http://127.0.0.1:57600}
S3_KEY=${TEST_S3_ACCESS_KEY_ID:-shoptest}
S3_SECRET=${TEST_S3_SECRET_ACCESS_KEY:-shoptest-secret-key}
curl -s -o /dev/null "$S3_ENDPOINT/minio/health/live" || { log "no MinIO at $S3_ENDPOINT (bash test/services.sh starts it)"; exit 1; }
env_file=$(mktemp)
node --import tsx test/compose-env.ts \
  DATABASE_URL="postgres://postgres@127.0.0.1:55432/$DB" MONGODB_URL="mongodb://127.0.0.1:57017/$DB" \
  REDIS_URL=redis://127.0.0.1:56379 REDIS_KEY_PREFIX="$DB:" PORT="$PORT" \
  STORAGE=s3 S3_ENDPOINT="$S3_ENDPOINT" S3_REGION=us-east-1 S3_FORCE_PATH_STYLE=true S3_BUCKET=shop-test S3_PREFIX="$DB/" \
  S3_ACCESS_KEY_ID="$S3_KEY" S3_SECRET_ACCESS_KEY="$S3_SECRET" >"$env_file"
podman rm -f "$NAME" >/dev/null 2>&1 || true
podman run -d --name "$NAME" --network host --env-file "$env_file" "$IMAGE" >/dev/null
for _ in $(seq 1 120); do curl -fs "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.5; done
curl -fs "http://127.0.0.1:$PORT/health" >/dev/null || { podman logs "$NAME" | tail -30; exit 1; }
BASE_URL="http://127.0.0.1:$PORT" CONTAINER_DB="$DB" CONTAINER_S3_BUCKET=shop-test CONTAINER_S3_PREFIX="$DB/" CONTAINER_USER="$(podman exec "$NAME" id -u)" node --import tsx test/container-check.ts
