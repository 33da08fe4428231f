#!/usr/bin/env bash
# The test command of tradecache (the README's second command, and CI's).
# It installs what the tests need when it is missing — redis-server from
# Debian's packages, staticcheck from the Go module proxy — then runs
# go vet, staticcheck and every test under the race detector. Tests start
# their own redis-server on free loopback ports; nothing else is required.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v redis-benchmark >/dev/null 2>&1 || need_apt+=(redis-tools)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "test.sh: installing ${need_apt[*]} from Debian's packages" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  # The package starts a system redis on 6379 on some machines; the tests
  # never use it (they start their own on free ports).
fi

export PATH="$(go env GOPATH)/bin:$PATH"
STATICCHECK_VERSION=2026.2.2
if ! staticcheck -version 2>/dev/null | grep -q "$STATICCHECK_VERSION"; then
  echo "test.sh: installing staticcheck $STATICCHECK_VERSION" >&2
  go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
fi

echo "== go vet" >&2
go vet ./...
echo "== staticcheck" >&2
staticcheck ./...
echo "== go test -race" >&2
go test -race -count=1 -timeout 15m ./...

# The dashboard in a real browser (Debian's chromium, installed when
# missing): the page of `serve --demo`, candles that move, the status, and
# the degraded banner when a node's Redis dies. Screenshots: artifacts/.
echo "== dashboard e2e (web/e2e/run.sh)" >&2
web/e2e/run.sh
