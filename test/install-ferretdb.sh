#!/usr/bin/env bash
# Builds FerretDB v1.24.2 from the Go module proxy into $(go env GOPATH)/bin, like `go install` would.
# A plain `go install ...@v1.24.2` produces a binary that panics at start-up: the module ships
# without build/version/version.txt, which upstream generates in its own build. We build from the
# downloaded module with that one file written, and nothing else changed.
set -euo pipefail
VERSION=v1.24.2
command -v go >/dev/null || { echo "install-ferretdb: Go is required (https://go.dev/dl/)" >&2; exit 1; }
target="$(go env GOPATH)/bin/ferretdb"
if [ -x "$target" ] && "$target" --version 2>/dev/null | grep -q "version: $VERSION"; then
  echo "$target"; exit 0
fi
moddir=$(go mod download -json "github.com/FerretDB/FerretDB@$VERSION" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
[ -d "$moddir" ] || { echo "install-ferretdb: module download failed" >&2; exit 1; }
src=$(mktemp -d)
trap 'rm -rf "$src"' EXIT
cp -r "$moddir/." "$src"
chmod -R u+w "$src"
echo "$VERSION" > "$src/build/version/version.txt"
mkdir -p "$(dirname "$target")"
(cd "$src" && go build -o "$target" ./cmd/ferretdb) >&2
echo "$target"
