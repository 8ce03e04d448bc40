#!/usr/bin/env bash
# Build the CRIMSON reference environment (crimson-score 0.2.2, the reference implementation)
# in its own venv, outside the repository: ${RADEVAL_PEERS:-~/.cache/radeval-peers}/crimson.
#
# crimson-score 0.2.2 declares Requires-Python >= 3.12 and pulls torch/transformers/openai for
# its model back-ends. The parity check only runs the package's prompt builder, JSON parser and
# score formula (CRIMSON/prompt_parts.py, utils.py, generate_score.py: standard library only),
# so where no Python 3.12 is available the package is installed without its dependencies and
# without the Python check; numpy is added because radeval's metric side needs it.
set -euo pipefail
ROOT="${RADEVAL_PEERS:-$HOME/.cache/radeval-peers}/crimson"
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  # the first interpreter that actually runs (a pyenv shim may exist for a version not selected)
  for cand in python3.13 python3.12 "$(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.1[23]*/bin/python3 2>/dev/null | tail -1)" python3; do
    [ -n "$cand" ] || continue
    if "$cand" -c 'pass' >/dev/null 2>&1; then PY="$cand"; break; fi
  done
fi
"$PY" -m venv "$ROOT"
"$ROOT/bin/pip" install -q --upgrade pip
if "$ROOT/bin/python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)'; then
  "$ROOT/bin/pip" install -q --no-deps "crimson-score==0.2.2"
else
  "$ROOT/bin/pip" install -q --no-deps --ignore-requires-python "crimson-score==0.2.2"
fi
"$ROOT/bin/pip" install -q "numpy>=1.26,<3"
"$ROOT/bin/python" -c 'import importlib.metadata as m, sys; print("crimson-score", m.version("crimson-score"), "python", sys.version.split()[0])'
echo "$ROOT"
