#!/bin/sh
# Installs (once) the pinned Gemini CLI npm package into target/real-clients/gemini and prints
# the path of its `gemini` launcher on stdout.
#   GEMINI=$(tests/real/install-gemini.sh)
# Override the version with RELAY_TEST_GEMINI_VERSION, the directory with RELAY_TEST_CLIENTS_DIR.
# When RELAY_TEST_GEMINI_FROM names a directory holding node_modules/@google/gemini-cli of that
# version (default /work/real-clients/gemini), it is copied instead of asking the registry.
# npm output goes to stderr. Needs Node 20+ at run time (the package is JavaScript, ~100 MB).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
version=${RELAY_TEST_GEMINI_VERSION:-0.61.0}
package=@google/gemini-cli
root=${RELAY_TEST_CLIENTS_DIR:-$here/../../target/real-clients}
prefix=$root/gemini
from=${RELAY_TEST_GEMINI_FROM:-/work/real-clients/gemini}
launcher=$prefix/node_modules/.bin/gemini

version_of() {
  # `gemini --version` prints "0.61.0"; a private HOME so no user config is read or written.
  scratch=$(mktemp -d)
  HOME=$scratch GEMINI_CLI_HOME=$scratch "$1" --version 2>/dev/null | tail -n 1
  rm -rf "$scratch"
}

installed() {
  [ -x "$launcher" ] && [ "$(version_of "$launcher")" = "$version" ]
}

if ! installed; then
  command -v node >/dev/null 2>&1 || { echo "install-gemini.sh: node is not on PATH" >&2; exit 2; }
  mkdir -p "$prefix"
  if [ -x "$from/node_modules/.bin/gemini" ] && [ "$(version_of "$from/node_modules/.bin/gemini")" = "$version" ]; then
    echo "install-gemini.sh: copying $from" >&2
    rm -rf "$prefix/node_modules"
    cp -a "$from/node_modules" "$prefix/"
  else
    npm install --prefix "$prefix" --no-audit --no-fund --no-save "$package@$version" >&2
  fi
  installed || { echo "install-gemini.sh: $launcher is not version $version after install" >&2; exit 1; }
fi
cd "$(dirname "$launcher")" && printf '%s\n' "$(pwd)/gemini"
