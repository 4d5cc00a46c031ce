#!/bin/sh
# Installs (once) the pinned Codex CLI from the npm registry into target/real-clients/codex and
# prints the path of its `codex` launcher on stdout.
#   CODEX=$(tests/real/install-codex.sh)
# Override the version with RELAY_TEST_CODEX_VERSION, the directory with RELAY_TEST_CLIENTS_DIR.
# RELAY_TEST_CODEX_FROM=<dir> copies an existing install (a directory holding
# node_modules/@openai/codex of that version, e.g. /work/real-clients/codex) instead of
# downloading it. npm output goes to stderr. `@openai/codex` pulls its native
# `@openai/codex-linux-x64` package (about 200 MB) and runs under Node.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
version=${RELAY_TEST_CODEX_VERSION:-0.171.0}
root=${RELAY_TEST_CLIENTS_DIR:-$here/../../target/real-clients}
prefix=$root/codex
binary=$prefix/node_modules/.bin/codex

installed() {
  [ -x "$binary" ] || return 1
  # `codex --version` prints "codex-cli 0.171.0"
  [ "$(HOME=${TMPDIR:-/tmp} "$binary" --version 2>/dev/null | cut -d' ' -f2)" = "$version" ]
}

if ! installed; then
  case "$(uname -s)-$(uname -m)" in
    Linux-x86_64) ;;
    *) echo "install-codex.sh: only linux x86_64 is supported (got $(uname -s)-$(uname -m))" >&2; exit 2 ;;
  esac
  mkdir -p "$prefix"
  from=${RELAY_TEST_CODEX_FROM:-}
  if [ -n "$from" ] && [ -d "$from/node_modules/@openai/codex" ]; then
    rm -rf "$prefix/node_modules"
    cp -a "$from/node_modules" "$prefix/node_modules" >&2
  else
    npm install --prefix "$prefix" --no-audit --no-fund --no-save "@openai/codex@$version" >&2
  fi
  installed || { echo "install-codex.sh: $binary is not version $version after install" >&2; exit 1; }
fi
cd "$(dirname "$binary")" && printf '%s\n' "$(pwd)/codex"
