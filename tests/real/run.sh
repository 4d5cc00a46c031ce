#!/bin/sh
# Runs the real-client tests of Relay with the real assistants (opt-in, offline, loopback only):
#   tests/real/run.sh                       # every client: claude codex opencode copilot gemini
#   tests/real/run.sh codex gemini          # only these
#   tests/real/run.sh claude -- socket_idle # one client, some of its tests (names as relay_<client>.py takes them)
# For each client it
# 1. installs the pinned client once from the npm registry (tests/real/install-<client>.sh,
#    into target/real-clients/; RELAY_TEST_CLIENTS_DIR moves it),
# 2. runs tests/real/relay_<client>.py with RELAY_TEST_REAL_CLIENTS=1: the client in tmux against a
#    scripted fake model API on 127.0.0.1, set up by `relay install <client>` in a scratch HOME.
# relay is built once (cargo build --release; CARGO_TARGET_DIR is honoured) and copied to a private
# temp dir, so a rebuild during the run changes nothing; RELAY_TEST_SKIP_BUILD=1 uses the binary
# already built. Needs tmux, node, python3, and the npm registry the first time (~1.5 GB in all).
# Exits non-zero when any client's tests fail; prints a summary line per client.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

clients=""
while [ $# -gt 0 ]; do
  case "$1" in
    --) shift; break ;;
    claude|codex|opencode|copilot|gemini) clients="$clients $1"; shift ;;
    *) echo "run.sh: unknown client '$1' (claude, codex, opencode, copilot, gemini)" >&2; exit 2 ;;
  esac
done
[ -n "$clients" ] || clients="claude codex opencode copilot gemini"

target=${CARGO_TARGET_DIR:-$repo/target}
if [ "${RELAY_TEST_SKIP_BUILD:-0}" != 1 ]; then
  (cd "$repo" && CARGO_TARGET_DIR=$target cargo build --release >&2)
fi
[ -x "$target/release/relay" ] || { echo "run.sh: $target/release/relay is missing" >&2; exit 1; }

bindir=$(mktemp -d "${TMPDIR:-/tmp}/relay-real-bin.XXXXXX")
trap 'rm -rf "$bindir"' EXIT INT TERM
cp "$target/release/relay" "$bindir/relay"

status=0
summary=""
for client in $clients; do
  binary=$("$here/install-$client.sh") || { summary="$summary\n$client: install failed"; status=1; continue; }
  echo "$client: $binary" >&2
  variable=RELAY_TEST_$(echo "$client" | tr '[:lower:]' '[:upper:]')
  if env "$variable=$binary" RELAY_TEST_REAL_CLIENTS=1 RELAY_TEST_RELAY_BIN="$bindir/relay" \
      PYTHONDONTWRITEBYTECODE=1 python3 "$here/relay_$client.py" "$@"; then
    summary="$summary\n$client: passed"
  else
    summary="$summary\n$client: FAILED"
    status=1
  fi
done
printf "real-client suite:%b\n" "$summary" >&2
exit $status
