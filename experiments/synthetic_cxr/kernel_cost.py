"""What the study's CPU-kernel pins cost: the study's own training steps, timed under each kernel setting.

    python -m experiments.synthetic_cxr.kernel_cost [--sft-steps 40] [--grpo-steps 4] [--expert-steps 20]

For each setting a fresh process (the variables must be set before torch loads) takes, on one thread
as in the study: ``--expert-steps`` steps of the expert's training (``expert.train_expert``, batch 128),
``--sft-steps`` steps of SFT (``configs/sft.yaml`` on the study's policy, batch 32, no validation) and
``--grpo-steps`` steps of stage text (``configs/text.yaml``, 8 prompts x G 8) from that SFT model. It
prints the CPU seconds of each part and their ratio to the study's pins. Settings:

* ``pinned`` — the study's default (``numerics.PINNED``: MKL's COMPATIBLE branch, strict);
* ``mkl-avx2`` — the same with ``MKL_CBWR=AVX2,STRICT`` (the earlier pin: repeats on Intel only);
* ``native`` — ``RADEVAL_CPU_KERNELS=native``: every library picks its kernels for this processor.

The data are the study's generator at small sizes (256 training cases, 256 expert images), so the
matrices have the study's shapes. CPU time is the process's own (user + system), counted around each
part only, so start-up and model building are left out.
Each child also fingerprints the weight files it wrote, so the table says which settings train the very
same weights as the pinned one on this machine.
``--out`` writes the table as JSON with the command, git commit and package versions.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from experiments.synthetic_cxr import numerics

numerics.pin_cpu_kernels()  # before torch loads, as in the study (a child's variables decide)

SETTINGS = {
    "pinned": {},
    "mkl-avx2": {"MKL_CBWR": "AVX2,STRICT"},
    "native": {"RADEVAL_CPU_KERNELS": "native"},
}
SIZES = {"n_train": 256, "n_val": 8, "n_test": 8, "n_expert": 256, "omit": 0.6}


def child(work: Path, setting: str, sft_steps: int, grpo_steps: int, expert_steps: int) -> dict:
    """Time the three parts in this process (its kernel variables were set by the parent)."""
    from experiments.synthetic_cxr import data, expert, study
    from experiments.synthetic_cxr.vlm import build_policy
    from trainers.api import train

    study._threads(1)
    cases, exp_path = work / "data" / "cases.jsonl", work / "data" / "expert.jsonl"
    run = work / "runs" / setting  # inside the parent's temporary folder: removed with it
    out: dict = {"kernels": numerics.describe()}
    cpu = study._cpu_self  # this process's user + system seconds, as the study counts them
    c0 = cpu()
    expert.train_expert(data.read(exp_path, "train"), exp_path.parent, run / "expert", steps=expert_steps)
    out["expert_cpu_s"] = cpu() - c0
    base = build_policy(run / "base", seed=0)
    ov = [*study._common(cases, "report_under", 0, run / "sft"), f"model.name_or_path={base}"]
    c0 = cpu()
    res = train("sft", study.CONFIGS / "sft.yaml", [*ov, f"train.max_steps={sft_steps}"])
    out["sft_cpu_s"] = cpu() - c0
    spec = {"config": "text.yaml", "steps": grpo_steps}
    c0 = cpu()
    study.train_arm("text", spec, cases, "report_under", 0, run, base, res.final_dir, run / "expert")
    out["grpo_cpu_s"] = cpu() - c0
    out["weights_sha256"] = weights_fingerprint(run)
    return out


def weights_fingerprint(run: Path) -> str:
    """One SHA-256 over every weight file the child wrote (expert, SFT, stage text), names included."""
    h = hashlib.sha256()
    for f in sorted(run.rglob("*.safetensors")):
        h.update(str(f.relative_to(run)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sft-steps", type=int, default=40)
    ap.add_argument("--grpo-steps", type=int, default=4)
    ap.add_argument("--expert-steps", type=int, default=20)
    ap.add_argument("--settings", default=",".join(SETTINGS), help=f"comma list of {', '.join(SETTINGS)}")
    ap.add_argument("--out", type=Path, help="also write the table as JSON")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        res = child(args.work, args.child, args.sft_steps, args.grpo_steps, args.expert_steps)
        (args.work / f"{args.child}.json").write_text(json.dumps(res, default=str))
        return 0
    names = args.settings.split(",")
    unknown = [n for n in names if n not in SETTINGS]
    if unknown:
        ap.error(f"--settings: unknown {unknown}; choose from {list(SETTINGS)}")
    from experiments.synthetic_cxr import study

    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        study.prepare_data(work, {"data": SIZES})
        # each child starts from this environment without the kernel variables, plus its setting's
        base_env = {k: v for k, v in os.environ.items() if k not in (*numerics.PINNED, "RADEVAL_CPU_KERNELS")}
        for name in names:
            env = {**base_env, **SETTINGS[name]}
            t0 = time.time()
            cmd = [sys.executable, "-m", "experiments.synthetic_cxr.kernel_cost", "--child", name, "--work", str(work)]
            cmd += [f"--sft-steps={args.sft_steps}", f"--grpo-steps={args.grpo_steps}"]
            cmd += [f"--expert-steps={args.expert_steps}"]
            subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
            rows[name] = json.loads((work / f"{name}.json").read_text())
            rows[name]["wall_s"] = time.time() - t0
    ref = rows.get("pinned")
    print(f"processor: {numerics.cpu_model()}; one thread")
    print(
        f"{'setting':>9} | expert {args.expert_steps} steps | SFT {args.sft_steps} steps | "
        f"stage text {args.grpo_steps} steps  (CPU-s; ratio to pinned)"
    )
    for name, r in rows.items():
        cells = []
        for part in ("expert", "sft", "grpo"):
            v = r[f"{part}_cpu_s"]
            cells.append(f"{v:7.1f}" + (f" ({v / ref[f'{part}_cpu_s']:.2f})" if ref else ""))
        same = "" if not ref else f"; weights {'=' if r['weights_sha256'] == ref['weights_sha256'] else '!='} pinned"
        print(f"{name:>9} | " + " | ".join(cells) + f"   MKL_CBWR={r['kernels']['env'].get('MKL_CBWR')}{same}")
    if args.out:
        from experiments.synthetic_cxr import study_report

        record = {
            "argv": argv if argv is not None else sys.argv[1:],
            "git_commit": study_report.git_output("rev-parse", "HEAD"),
            "packages": study_report.package_versions(),
            "rows": rows,
        }
        args.out.write_text(json.dumps(record, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
