#!/usr/bin/env bash
# Set up everything the tests need, then lint and run the whole suite (what CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
.venv/bin/ruff check .
.venv/bin/python -m pytest -q -rs "$@"
