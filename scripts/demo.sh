#!/usr/bin/env bash
# Set up, then run the end-to-end demo on the embedded broker. Extra arguments go to `riskmon demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/riskmon demo "$@"
