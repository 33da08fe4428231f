#!/usr/bin/env bash
# Checks that the committed dashboard bundle (web/dist, embedded in the
# binary by package web) is what its sources build to: copies web/'s sources
# to a temporary directory, installs the locked dependencies there (npm ci),
# builds twice (npm run build) and fails when the two builds differ (the
# build is not reproducible) or when the build differs from web/dist, or
# when web/dist differs from the last commit. Leaves the working tree as it
# is. Needs node and npm. Run from anywhere.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

fix="run: cd web && npm ci && npm run build, and commit web/dist"
command -v npm >/dev/null || { echo "check-web: npm is missing (Node.js 18 or newer is needed to build web/)" >&2; exit 1; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# summary A B NAME_A NAME_B: one line per file that differs between
# directories A and B: sizes and the first differing byte, then the first
# lines of a diff, or for minified files the bytes around the first difference.
summary() {
  local a="$1" b="$2" na="$3" nb="$4" f at
  { (cd "$a" && find . -type f); (cd "$b" && find . -type f); } | sed 's|^\./||' | sort -u | while read -r f; do
    if [ ! -f "$a/$f" ]; then echo "  $f: only in $nb"
    elif [ ! -f "$b/$f" ]; then echo "  $f: only in $na"
    elif ! cmp -s "$a/$f" "$b/$f"; then
      echo "  $f: $(wc -c <"$a/$f") bytes in $na, $(wc -c <"$b/$f") in $nb; first difference at $(cmp "$a/$f" "$b/$f" 2>&1 | sed 's|^.*differ: ||; s|^cmp: EOF on .* after |the end of one, after |')"
      if [ "$(awk '{ if (length($0) > m) m = length($0) } END { print m + 0 }' "$a/$f" "$b/$f")" -le 200 ]; then
        diff -u --label "$na/$f" --label "$nb/$f" "$a/$f" "$b/$f" | sed -n '3,22p' | sed 's/^/    /' || true
      else # minified: the bytes around the first difference
        at="$(cmp "$a/$f" "$b/$f" 2>/dev/null | sed -n 's|.* byte \([0-9]*\).*|\1|p' || true)"
        at="${at:-1}"; at=$((at > 60 ? at - 60 : 1))
        echo "    -$(tail -c +"$at" "$a/$f" | head -c 120 | tr '\n' ' ')"
        echo "    +$(tail -c +"$at" "$b/$f" | head -c 120 | tr '\n' ' ')"
      fi
    fi
  done
}

mkdir "$tmp/web"
cp -R web/package.json web/package-lock.json web/build.mjs web/src "$tmp/web/"
echo "check-web: npm ci && npm run build in $tmp/web" >&2
(
  cd "$tmp/web"
  npm ci --no-audit --no-fund --loglevel=error >/dev/null
  npm run build --silent >/dev/null 2>&1 || npm run build # on failure, again with its output
  mv dist dist1
  npm run build --silent >/dev/null 2>&1 || npm run build
) || { echo "check-web: FAIL: npm ci or npm run build failed (output above)" >&2; exit 1; }

if ! diff -rq "$tmp/web/dist1" "$tmp/web/dist" >/dev/null; then
  echo "check-web: FAIL: two builds of the same sources differ, so web/dist cannot be checked (is the build reproducible?):" >&2
  summary "$tmp/web/dist1" "$tmp/web/dist" "build 1" "build 2" >&2
  exit 1
fi

if ! diff -rq web/dist "$tmp/web/dist" >/dev/null 2>&1; then
  echo "check-web: FAIL: web/dist is not what web/src builds to; $fix" >&2
  if [ -d web/dist ]; then summary web/dist "$tmp/web/dist" web/dist "fresh build" >&2; else echo "  web/dist is missing" >&2; fi
  exit 1
fi

if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  if [ -n "$(git status --porcelain --untracked-files=all -- web/dist)" ]; then
    echo "check-web: FAIL: web/dist matches the sources but is not committed as it is; commit web/dist:" >&2
    git status --short --untracked-files=all -- web/dist | sed 's/^/  /' >&2
    exit 1
  fi
  if [ -n "$(git status --porcelain -- web/src web/build.mjs web/package.json web/package-lock.json)" ]; then
    echo "check-web: note: web/'s sources have uncommitted changes (checked as they are in the working tree)" >&2
  fi
fi
echo "check-web: ok: web/dist is what a fresh npm ci && npm run build makes ($(cat web/dist/* | wc -c) bytes)" >&2
