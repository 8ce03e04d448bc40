#!/usr/bin/env bash
# Build the RadFact reference environment in its own venv, outside the repository:
# ${RADEVAL_PEERS:-~/.cache/radeval-peers}/radfact, with RadFact's pinned stack (langchain 0.2.17,
# pydantic 1.10.17, PyYAML) and RadFact's source at the pinned commit (RadFact is not on PyPI).
#
# Source: $RADFACT_SRC (a checkout of microsoft/RadFact at the commit below), else the files are
# fetched from the raw-file host at that commit (${RADEVAL_GIT_RAW_BASE:-https://raw.githubusercontent.com}).
# Only the modules the parity check imports are needed; RadFact's Azure/Hydra/Redis engine is not
# installed (crimson_parity-style harness: benchmarks/peers/radfact_parity.py stubs the engine import).
set -euo pipefail
COMMIT=72463ac34442647886f13fad7d04958ab6c7c294
ROOT="${RADEVAL_PEERS:-$HOME/.cache/radeval-peers}/radfact"
PY="${PYTHON:-python3}"
"$PY" -m venv "$ROOT"
"$ROOT/bin/pip" install -q --upgrade pip
"$ROOT/bin/pip" install -q "langchain==0.2.17" "pydantic==1.10.17" "pyyaml>=6,<7" "numpy>=1.26,<3"
FILES="src/radfact/__init__.py src/radfact/paths.py src/radfact/data_utils/__init__.py
src/radfact/data_utils/grounded_phrase_list.py src/radfact/llm_utils/__init__.py src/radfact/llm_utils/text_utils.py
src/radfact/llm_utils/processor/__init__.py src/radfact/llm_utils/processor/base_processor.py
src/radfact/llm_utils/processor/structured_processor.py src/radfact/llm_utils/nli/__init__.py
src/radfact/llm_utils/nli/schema.py src/radfact/llm_utils/nli/processor.py
src/radfact/llm_utils/nli/prompts/system_message_ev_singlephrase.txt src/radfact/llm_utils/nli/prompts/few_shot_examples.json
src/radfact/llm_utils/report_to_phrases/__init__.py src/radfact/llm_utils/report_to_phrases/schema.py
src/radfact/llm_utils/report_to_phrases/processor.py
src/radfact/llm_utils/report_to_phrases/prompts/system_message.txt
src/radfact/llm_utils/report_to_phrases/prompts/few_shot_examples.json
src/radfact/metric/__init__.py src/radfact/metric/schema.py src/radfact/metric/box_metrics.py src/radfact/metric/radfact.py"
DEST="$ROOT"
mkdir -p "$DEST"
BASE="${RADEVAL_GIT_RAW_BASE:-https://raw.githubusercontent.com}"
for f in $FILES; do
  mkdir -p "$DEST/$(dirname "$f")"
  if [ -n "${RADFACT_SRC:-}" ]; then
    cp "$RADFACT_SRC/$f" "$DEST/$f"
  else
    "$ROOT/bin/python" -c 'import sys, urllib.request; open(sys.argv[2], "wb").write(urllib.request.urlopen(sys.argv[1]).read())' \
      "$BASE/microsoft/RadFact/$COMMIT/$f" "$DEST/$f"
  fi
done
echo "$COMMIT" > "$DEST/COMMIT"
"$ROOT/bin/python" -c 'import importlib.metadata as m; print("langchain", m.version("langchain"), "langchain-core", m.version("langchain-core"), "pydantic", m.version("pydantic"), "PyYAML", m.version("PyYAML"))'
echo "$ROOT (RadFact source: $ROOT/src)"
