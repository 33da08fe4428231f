#!/usr/bin/env bash
# Installs what the tests need when it is missing: redis-server,
# redis-benchmark and redis-py for Debian's python3 (the Python reader
# example's test) from Debian's packages, staticcheck from the Go module
# proxy into bin/ (gitignored). Every pinned version here must be one the
# Go module proxy serves: .ci/run runs this script once more with empty
# GOBIN and module cache directories, so a version the proxy refuses fails
# CI instead of the next newcomer's first run.
#
# Environment: GOBIN (default: bin/ of the repository) says where Go tools go.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v redis-benchmark >/dev/null 2>&1 || need_apt+=(redis-tools)
/usr/bin/python3 -c 'import redis' >/dev/null 2>&1 || need_apt+=(python3-redis)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "install-tools: installing ${need_apt[*]} from Debian's packages" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  # The package starts a system redis on 6379 on some machines; the tests
  # never use it (they start their own on free ports).
fi

# staticcheck's module version (v0.8.2) is what the proxy serves; the tool
# calls itself by its release name, "staticcheck 2026.2.2 (0.8.2)".
STATICCHECK_MODULE_VERSION=v0.8.2
gobin="${GOBIN:-$PWD/bin}"
mkdir -p "$gobin"
if ! "$gobin/staticcheck" -version 2>/dev/null | grep -qF "(${STATICCHECK_MODULE_VERSION#v})"; then
  echo "install-tools: installing staticcheck $STATICCHECK_MODULE_VERSION into $gobin" >&2
  GOBIN="$gobin" go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_MODULE_VERSION"
fi
