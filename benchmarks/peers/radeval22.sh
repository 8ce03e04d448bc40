#!/usr/bin/env bash
# Build the reference venv for RadEval 2.2 (PyPI `radeval`, jbdel/RadEval), used by the parity
# checks of radeval_bertscore / srr_bert / temporal_f1 (tests/parity/radeval22_*.py).
#
# PyPI's `radeval` shares our import name, so it lives in its own venv, outside the repo:
#   ${RADEVAL_PEERS:-~/.cache/radeval-peers}/radeval22
# torch is the 2.13.0 CPU wheel; torchvision is left out on purpose (RadEval declares it but never
# imports it, and a torchvision that does not match torch breaks transformers' model imports).
# Usage: bash benchmarks/peers/radeval22.sh   (prints the venv's python on the last line)
set -euo pipefail
PEERS="${RADEVAL_PEERS:-$HOME/.cache/radeval-peers}"
VENV="$PEERS/radeval22"
PY="${PYTHON:-python3}"
mkdir -p "$PEERS"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP=("$VENV/bin/pip" install --quiet)
"${PIP[@]}" torch==2.13.0
# RadEval itself without its declared deps (that list names torchvision), then the deps it imports
"${PIP[@]}" --no-deps radeval==2.2.1
"${PIP[@]}" transformers==5.25.0 tokenizers huggingface_hub rouge_score "scikit-learn>=1.8.0" "numpy<3" \
    medspacy stanza==1.15.0 pillow sentencepiece "datasets>=2.19" "accelerate>=1.1" pandas rich pyyaml \
    appdirs filelock dotmap h5py jsonpickle nltk==3.10.4 matplotlib safetensors
"$VENV/bin/python" - <<'PY'
import importlib.metadata as md
for d in ("radeval", "torch", "transformers", "tokenizers", "stanza", "nltk", "scikit-learn", "numpy"):
    print(f"{d}=={md.version(d)}")
PY
echo "$VENV/bin/python"
