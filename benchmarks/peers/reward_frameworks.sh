#!/usr/bin/env bash
# Build the venvs in which RL frameworks' own code calls radeval rewards, then run those tests.
#
#   benchmarks/peers/reward_frameworks.sh build   # ~/.cache/radeval-peers/{verl,openrlhf}
#   benchmarks/peers/reward_frameworks.sh test    # tests/test_frameworks_*.py in each venv
#
# Each framework gets its own venv (their pins clash: verl wants transformers < 5.11, OpenRLHF
# == 5.15). radeval itself is not installed there: the tests import it
# from this checkout (PYTHONPATH), with its core dependencies installed beside the framework.
#   verl 0.9.1       full install, torch 2.13.0 (the CPU wheel; verl needs no torchvision).
#   openrlhf 0.11.2  --no-deps: its pins need flash-attn 2.8.3 and deepspeed (CUDA builds, no CPU
#                    wheel). Installed: what its remote-reward client path imports
#                    (openrlhf.utils.agent -> openrlhf.utils: torch, transformers, sympy,
#                    pylatexenc; aiohttp).
#   verifiers 0.4.0  not built: 0.4 (the `verifiers.v1` stack) has no Rubric of reward functions
#                    any more — rewards are `@vf.reward` methods of a Task that read a Trace — so
#                    the old Rubric contract cannot be tested against it.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
PEERS="${RADEVAL_PEERS:-$HOME/.cache/radeval-peers}"
PY="${PYTHON:-python3}"
CORE=(numpy "rapidfuzz>=3" "rouge-score>=0.1.2" "typer>=0.12" "rich>=13" "pyyaml>=6" "pytest>=8" "litserve==0.2.19")

build_one() {  # name, pip args...
  local name="$1"; shift
  local venv="$PEERS/$name"
  if [ -x "$venv/bin/python" ] && [ -f "$venv/.built" ]; then echo "$name: $venv (exists)"; return; fi
  rm -rf "$venv"; "$PY" -m venv "$venv"
  local t0=$SECONDS
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q "$@"
  "$venv/bin/pip" install -q "${CORE[@]}"
  touch "$venv/.built"
  echo "$name: built in $((SECONDS - t0)) s, $(du -sh "$venv" | cut -f1)"
}

case "${1:-}" in
  build)
    build_one verl "torch==2.13.0" "verl==0.9.1"
    build_one openrlhf "torch==2.13.0" "transformers==5.15.0" sympy pylatexenc "aiohttp>=3.9" "tokenizers>=0.15"
    "$PEERS/openrlhf/bin/pip" install -q --no-deps "openrlhf==0.11.2"

    ;;
  test)
    rc=0
    for name in verl openrlhf; do
      venv="$PEERS/$name"
      [ -x "$venv/bin/python" ] || { echo "$name: no venv at $venv (run: $0 build)"; rc=1; continue; }
      echo "== $name ($("$venv/bin/python" -c "import importlib.metadata as m; print(m.version('$name'))"))"
      (cd "$ROOT" && PYTHONPATH="$ROOT" HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 \
        "$venv/bin/python" -m pytest -q -p no:cacheprovider "tests/test_frameworks_$name.py") || rc=1
    done
    exit $rc
    ;;
  *) echo "usage: $0 build|test" >&2; exit 2 ;;
esac
