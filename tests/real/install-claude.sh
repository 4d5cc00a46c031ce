#!/bin/sh
# Installs (once) the pinned native Claude Code package from the npm registry into
# target/real-clients/claude and prints the path of its `claude` binary on stdout.
#   CLAUDE=$(tests/real/install-claude.sh)
# Override the version with RELAY_TEST_CLAUDE_VERSION, the directory with RELAY_TEST_CLIENTS_DIR.
# npm output goes to stderr. Needs npm and the npm registry (about 400 MB unpacked, one package).
# The plain `@anthropic-ai/claude-code` package is not used: under Node 20 it resolves to an old
# version; the native linux-x64 package is the real binary and needs no Node at run time.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
version=${RELAY_TEST_CLAUDE_VERSION:-2.1.332}
package=@anthropic-ai/claude-code-linux-x64
root=${RELAY_TEST_CLIENTS_DIR:-$here/../../target/real-clients}
prefix=$root/claude
binary=$prefix/node_modules/$package/claude

installed() {
  [ -x "$binary" ] || return 1
  # `claude --version` prints "2.1.332 (Claude Code)"
  [ "$(HOME=${TMPDIR:-/tmp} DISABLE_AUTOUPDATER=1 "$binary" --version 2>/dev/null | cut -d' ' -f1)" = "$version" ]
}

if ! installed; then
  case "$(uname -s)-$(uname -m)" in
    Linux-x86_64) ;;
    *) echo "install-claude.sh: only linux x86_64 is supported (got $(uname -s)-$(uname -m))" >&2; exit 2 ;;
  esac
  mkdir -p "$prefix"
  npm install --prefix "$prefix" --no-audit --no-fund --no-save "$package@$version" >&2
  installed || { echo "install-claude.sh: $binary is not version $version after install" >&2; exit 1; }
fi
cd "$(dirname "$binary")" && printf '%s\n' "$(pwd)/claude"
