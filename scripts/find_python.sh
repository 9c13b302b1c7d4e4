# Sourced by .ci/run and scripts/quickstart.sh: set PY to a Python >= 3.12.
# PyMC 6 and ArviZ 1 need 3.12+; on 3.11 pip would silently install PyMC 5 / ArviZ 0.x.
PY=""
for cand in python3.12 python3.13 python3 python; do
  if command -v "$cand" >/dev/null 2>&1 && \
     "$cand" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; then
    PY="$(command -v "$cand")"; break
  fi
done
if [ -z "$PY" ]; then
  root="${PYENV_ROOT:-$HOME/.pyenv}"
  # 3.12 is the version georisk is developed and tested on; newer ones after it.
  for cand in $(ls -d "$root"/versions/3.12* 2>/dev/null | sort -V -r) \
              $(ls -d "$root"/versions/3.1[3-9]* 2>/dev/null | sort -V); do
    if [ -x "$cand/bin/python" ]; then PY="$cand/bin/python"; break; fi
  done
fi
if [ -z "$PY" ]; then
  echo "georisk needs Python 3.12 or newer (none found on PATH or under pyenv)." >&2
  exit 2
fi
export PY
