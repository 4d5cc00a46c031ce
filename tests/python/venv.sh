#!/bin/sh
# Creates (once) the Python venv the MCP end-to-end test uses, and prints its python path on
# stdout, so a test run reads:  RELAY_TEST_PYTHON=$(tests/python/venv.sh) cargo test
# The venv lives in target/relay-test-venv (override with RELAY_TEST_VENV); pip output goes to
# stderr. Needs python3 with the venv module and access to PyPI the first time.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
venv=${RELAY_TEST_VENV:-$here/../../target/relay-test-venv}
if ! "$venv/bin/python" -c 'import mcp.client.extension' >/dev/null 2>&1; then
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt" >&2
fi
cd "$venv" && printf '%s\n' "$(pwd)/bin/python"
