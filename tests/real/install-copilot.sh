#!/bin/sh
# Installs (once) the pinned GitHub Copilot CLI into target/real-clients/copilot and prints the
# path of its native `copilot` binary on stdout.
#   COPILOT=$(tests/real/install-copilot.sh)
# Override the version with RELAY_TEST_COPILOT_VERSION, the directory with RELAY_TEST_CLIENTS_DIR.
# npm output goes to stderr. Needs npm and the npm registry (@github/copilot and its
# @github/copilot-linux-x64 package, about 200 MB); when /work/real-clients/copilot (or
# $RELAY_TEST_COPILOT_FROM) already holds that version it is copied from there instead.
# The native binary needs no Node at run time. On first run it unpacks its JavaScript (about
# 235 MB) into $XDG_CACHE_HOME/copilot/pkg; this script does that once into
# target/real-clients/copilot-cache, the XDG_CACHE_HOME relay_copilot.py gives every scratch run.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
version=${RELAY_TEST_COPILOT_VERSION:-1.0.102}
root=${RELAY_TEST_CLIENTS_DIR:-$here/../../target/real-clients}
prefix=$root/copilot
cache=$root/copilot-cache
native=node_modules/@github/copilot-linux-x64/copilot
binary=$prefix/$native
from=${RELAY_TEST_COPILOT_FROM:-/work/real-clients/copilot}

version_of() {
  # `copilot --version` prints "GitHub Copilot CLI 1.0.102." (and unpacks into the cache)
  scratch=$(mktemp -d)
  env -i PATH="$PATH" HOME="$scratch" XDG_CACHE_HOME="$cache" COPILOT_HOME="$scratch/.copilot" \
    COPILOT_OFFLINE=true COPILOT_AUTO_UPDATE=false "$1" --version 2>/dev/null \
    | sed -n 's/^GitHub Copilot CLI \([0-9][0-9.]*[0-9]\)\.*$/\1/p'
  rm -rf "$scratch"
}

installed() {
  [ -x "$binary" ] && [ "$(version_of "$binary")" = "$version" ]
}

if ! installed; then
  case "$(uname -s)-$(uname -m)" in
    Linux-x86_64) ;;
    *) echo "install-copilot.sh: only linux x86_64 is supported (got $(uname -s)-$(uname -m))" >&2; exit 2 ;;
  esac
  mkdir -p "$prefix" "$cache"
  if [ -x "$from/$native" ] && [ "$(version_of "$from/$native")" = "$version" ]; then
    echo "install-copilot.sh: copying $version from $from" >&2
    rm -rf "$prefix/node_modules"
    cp -R "$from/node_modules" "$prefix/"
  else
    npm install --prefix "$prefix" --no-audit --no-fund --no-save "@github/copilot@$version" >&2
  fi
  installed || { echo "install-copilot.sh: $binary is not version $version after install" >&2; exit 1; }
fi
cd "$(dirname "$binary")" && printf '%s\n' "$(pwd)/copilot"
