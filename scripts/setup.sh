#!/usr/bin/env bash
# Create .venv (Python 3.11) and install riskmon with its test dependencies. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  PY="${PYTHON:-}"
  if [ -z "$PY" ]; then
    for candidate in python3.11 python3; do
      if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
        PY="$candidate"; break
      fi
    done
  fi
  [ -n "$PY" ] || { echo "riskmon needs Python 3.11 (set PYTHON=/path/to/python3.11)" >&2; exit 1; }
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
