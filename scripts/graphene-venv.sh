#!/usr/bin/env bash
# Create the graphene-django stand-in's own venv (.test-env/graphene) unless it is already there,
# pinned as tests/support/graphene.py says. The tests do the same on first use; CI may call this
# first so that no test waits for it. Prints the path of the venv.
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-.venv/bin/python}" -c '
import sys
sys.path[:0] = ["tests", "."]
from support.graphene import ensure_graphene_venv
print(ensure_graphene_venv())
'
