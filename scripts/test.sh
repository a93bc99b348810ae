#!/usr/bin/env bash
# Set up, then run the whole test suite (unit, doctests and integration tests on a real broker that
# the suite starts itself). Extra arguments go to pytest, e.g. -m "not integration".
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
