#!/bin/sh
# Installs (once) the pinned native OpenCode package into target/real-clients/opencode and prints
# the path of its `opencode` binary on stdout.
#   OPENCODE=$(tests/real/install-opencode.sh)
# Override the version with RELAY_TEST_OPENCODE_VERSION, the directory with RELAY_TEST_CLIENTS_DIR.
# RELAY_TEST_OPENCODE_SOURCE=<an npm prefix that already holds node_modules/opencode-linux-x64>
# copies the package from there instead of downloading it (when its version matches).
# npm output goes to stderr. Needs npm and the npm registry otherwise (one package, ~185 MB).
# The `opencode-ai` wrapper package is not used: its postinstall script only links this same
# native binary into place; the native linux-x64 package is the real binary (Bun inside).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
version=${RELAY_TEST_OPENCODE_VERSION:-1.18.33}
package=opencode-linux-x64
root=${RELAY_TEST_CLIENTS_DIR:-$here/../../target/real-clients}
prefix=$root/opencode
binary=$prefix/node_modules/$package/bin/opencode

version_of() {
  # `opencode --version` prints "1.18.33"; a private HOME keeps it off the user's files.
  scratch=$(mktemp -d)
  HOME=$scratch XDG_CONFIG_HOME=$scratch XDG_DATA_HOME=$scratch XDG_STATE_HOME=$scratch \
    XDG_CACHE_HOME=$scratch OPENCODE_DISABLE_AUTOUPDATE=1 "$1" --version 2>/dev/null || true
  rm -rf "$scratch"
}

installed() {
  [ -x "$binary" ] && [ "$(version_of "$binary")" = "$version" ]
}

if ! installed; then
  case "$(uname -s)-$(uname -m)" in
    Linux-x86_64) ;;
    *) echo "install-opencode.sh: only linux x86_64 is supported (got $(uname -s)-$(uname -m))" >&2; exit 2 ;;
  esac
  mkdir -p "$prefix/node_modules"
  source_binary=${RELAY_TEST_OPENCODE_SOURCE:+$RELAY_TEST_OPENCODE_SOURCE/node_modules/$package/bin/opencode}
  if [ -n "$source_binary" ] && [ -x "$source_binary" ] && [ "$(version_of "$source_binary")" = "$version" ]; then
    rm -rf "$prefix/node_modules/$package"
    cp -R "$RELAY_TEST_OPENCODE_SOURCE/node_modules/$package" "$prefix/node_modules/$package"
  else
    npm install --prefix "$prefix" --no-audit --no-fund --no-save "$package@$version" >&2
  fi
  installed || { echo "install-opencode.sh: $binary is not version $version after install" >&2; exit 1; }
fi
cd "$(dirname "$binary")" && printf '%s\n' "$(pwd)/opencode"
