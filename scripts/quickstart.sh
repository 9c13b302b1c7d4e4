#!/usr/bin/env bash
# The main job on a fresh machine: make .venv on Python 3.12+, install georisk, check the
# shipped workspace, score every open scenario (fitting the model the first time, ~1 min),
# and write the memo figures to out/figures (PNG 300 dpi + SVG).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/find_python.sh
if [ ! -x .venv/bin/georisk ]; then
  echo "== creating .venv with $($PY --version)" >&2
  "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e .
fi
export MPLBACKEND=Agg
.venv/bin/georisk validate .
.venv/bin/georisk score .
.venv/bin/georisk figures . --out out/figures
echo "== figures written to out/figures" >&2
