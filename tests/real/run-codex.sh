#!/bin/sh
# Runs the real-client tests of Relay with the real Codex CLI (opt-in, offline, loopback only):
#   tests/real/run-codex.sh [test ...]  # tests of relay_codex.py; default all
# 1. installs the pinned Codex (tests/real/install-codex.sh; once),
# 2. builds relay (cargo build --release; CARGO_TARGET_DIR is honoured, default <repo>/target),
# 3. copies the binary to a private temp dir (so a rebuild during the run changes nothing),
# 4. runs tests/real/relay_codex.py with RELAY_TEST_REAL_CLIENTS=1.
# RELAY_TEST_SKIP_BUILD=1 skips step 2 (uses the binary already built). Needs tmux, node, python3.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

codex=$("$here/install-codex.sh")
echo "codex: $codex" >&2

target=${CARGO_TARGET_DIR:-$repo/target}
if [ "${RELAY_TEST_SKIP_BUILD:-0}" != 1 ]; then
  (cd "$repo" && CARGO_TARGET_DIR=$target cargo build --release >&2)
fi
[ -x "$target/release/relay" ] || { echo "run-codex.sh: $target/release/relay is missing" >&2; exit 1; }

bindir=$(mktemp -d "${TMPDIR:-/tmp}/relay-real-bin.XXXXXX")
trap 'rm -rf "$bindir"' EXIT INT TERM
cp "$target/release/relay" "$bindir/relay"

status=0
RELAY_TEST_REAL_CLIENTS=1 RELAY_TEST_CODEX=$codex RELAY_TEST_RELAY_BIN=$bindir/relay \
  PYTHONDONTWRITEBYTECODE=1 python3 "$here/relay_codex.py" "$@" || status=$?
exit $status
