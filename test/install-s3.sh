#!/usr/bin/env bash
# Builds MinIO (an S3-compatible object store, for the tests of STORAGE=s3) from the Go module
# proxy into $(go env GOPATH)/bin/minio-<version> and prints its path. The proxy serves MinIO only
# as a pseudo-version (no release tags), pinned here. The build takes minutes (about 13 on two
# busy cores), so CI starts it in the background; the binary is kept and reused.
set -euo pipefail
VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
command -v go >/dev/null || { echo "install-s3: Go is required (https://go.dev/dl/)" >&2; exit 1; }
target="$(go env GOPATH)/bin/minio-$VERSION"
if [ -x "$target" ] && "$target" --version >/dev/null 2>&1; then
  echo "$target"; exit 0
fi
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
GOBIN="$bin" go install "github.com/minio/minio@$VERSION" >&2
mkdir -p "$(dirname "$target")"
mv "$bin/minio" "$target"
echo "$target"
