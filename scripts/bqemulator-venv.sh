#!/usr/bin/env bash
# Create the BigQuery emulator's own venv (.test-env/bqemulator) unless it is already there, pinned
# as tests/support/bigquery.py says. The tests do the same on first use; CI may call this first so
# that no test waits for it. Prints the path of the `bqemulator` command.
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-.venv/bin/python}" -c '
import sys
sys.path[:0] = ["tests", "."]
from support.bigquery import ensure_emulator_venv
print(ensure_emulator_venv())
'
