#!/usr/bin/env bash
# The contract's versioning rule, checked with oasdiff: a breaking change to openapi/openapi.json
# (an operation or a response field removed, a request field newly required, a type narrowed, ...)
# relative to the released baseline sdk/contract-baseline.json fails unless the contract's
# info.version, which sdk/package.json's version must equal, moved its major (semver: the minor
# while below 1.0). After a release, `npm run contract:baseline` makes the contract the new
# baseline. Installs oasdiff (Go module proxy) when it is missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
OASDIFF=github.com/oasdiff/oasdiff@v1.39.0
GOBIN_DIR=$(go env GOBIN); BIN="${GOBIN_DIR:-$(go env GOPATH)/bin}/oasdiff"
"$BIN" --version 2>/dev/null | grep -q '1.39.0' || go install "$OASDIFF"

contract=$(node -p 'JSON.parse(require("fs").readFileSync("openapi/openapi.json", "utf8")).info.version')
sdk=$(node -p 'JSON.parse(require("fs").readFileSync("sdk/package.json", "utf8")).version')
if [ "$contract" != "$sdk" ]; then
  echo "contract: FAILED: sdk/package.json is $sdk but the contract's info.version is $contract; they move together"
  exit 1
fi

# The rule must be able to fail: the baseline less one operation, at the same version, is refused.
probe=$(mktemp --suffix=.json)
trap 'rm -f "$probe"' EXIT
node -e 'const d = JSON.parse(require("fs").readFileSync("sdk/contract-baseline.json", "utf8")); delete d.paths[Object.keys(d.paths)[0]]; process.stdout.write(JSON.stringify(d))' >"$probe"
if "$BIN" breaking sdk/contract-baseline.json "$probe" --fail-on MISSING-VERSION-BUMP --color never >/dev/null 2>&1; then
  echo "contract: FAILED: oasdiff let a removed operation through; the check is not working"
  exit 1
fi

if "$BIN" breaking sdk/contract-baseline.json openapi/openapi.json --fail-on MISSING-VERSION-BUMP --color never; then
  echo "contract: no breaking change without a version bump (baseline $(node -p 'JSON.parse(require("fs").readFileSync("sdk/contract-baseline.json", "utf8")).info.version'), now $contract)"
else
  echo "contract: FAILED: breaking changes above; move the major version (info.version in plugins/openapi.ts and sdk/package.json, the minor while below 1.0) or keep the change compatible"
  exit 1
fi
