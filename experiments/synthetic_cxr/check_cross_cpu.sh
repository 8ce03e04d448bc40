#!/usr/bin/env bash
# Does the study give the same numbers on other x86 processors? Runs numerics_check (a few SFT steps,
# sampling and GRPO-loss steps of the study's real policy, fingerprinted bit for bit) on this machine and under qemu-user
# emulating other processors, once with the study's pinned CPU kernels (numerics.py) and once with
# each library's own choice (RADEVAL_CPU_KERNELS=native), and says which fingerprints agree.
#
#   apt-get install qemu-user        # Debian's package; QEMU >= 7.2 emulates AVX2
#   bash experiments/synthetic_cxr/check_cross_cpu.sh [CPU ...]    # default: Haswell-v4 EPYC-Rome
#
# Under emulation each run takes minutes. Prints one line per run and the verdict; exits 1 when the
# pinned runs disagree.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV_PY=${PYTHON:-.venv/bin/python}
# the environment's import path, then the real interpreter: qemu-user runs the binary, not a venv link
SITE=$("$VENV_PY" -c 'import sys; print(":".join(p for p in sys.path if p.startswith("/")))')
PY=$(readlink -f "$(command -v "$VENV_PY")")
OUT=${OUT:-$(mktemp -d)}
CPUS=("$@")
[ ${#CPUS[@]} -eq 0 ] && CPUS=(Haswell-v4 EPYC-Rome)
command -v qemu-x86_64 >/dev/null || { echo "qemu-x86_64 not found: apt-get install qemu-user" >&2; exit 2; }

run() {  # name, kernels (pinned|native), launcher...
    local name=$1 kernels=$2
    shift 2
    local env=(PYTHONPATH="$SITE:$PWD")
    [ "$kernels" = native ] && env+=(RADEVAL_CPU_KERNELS=native)
    env "${env[@]}" "$@" "$PY" -m experiments.synthetic_cxr.numerics_check --out "$OUT/$name-$kernels.json" >/dev/null
    "$PY" - "$OUT/$name-$kernels.json" "$name" "$kernels" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"{sys.argv[2]:>12} {sys.argv[3]:>6}: SFT weights {r['weights_sha256'][:16]}  samples {r['sampled_sha256'][:8]}  GRPO weights {r['grpo_weights_sha256'][:16]}  torch {r['torch_cpu_capability']:>6}  MKL_CBWR {r['env']['MKL_CBWR']}")
EOF
}

for kernels in pinned native; do
    run host "$kernels"
    for cpu in "${CPUS[@]}"; do
        run "$cpu" "$kernels" qemu-x86_64 -cpu "$cpu"
    done
done

"$PY" - "$OUT" <<'EOF'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
status = 0
for kernels in ("pinned", "native"):
    keys = ("weights_sha256", "sampled_sha256", "grpo_weights_sha256")
    shas = {p.stem.rsplit("-", 1)[0]: tuple(json.loads(p.read_text())[k] for k in keys) for p in out.glob(f"*-{kernels}.json")}
    same = len(set(shas.values())) == 1
    print(f"{kernels}: {'identical' if same else 'DIFFERENT'} across {', '.join(sorted(shas))}")
    if kernels == "pinned" and not same:
        status = 1
sys.exit(status)
EOF
