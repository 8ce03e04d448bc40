"""Pilot runs that choose the study's settings, on one seed of an existing study work folder.

    python -m experiments.synthetic_cxr.pilot sft --src WORK --out PILOTS --seed 0 --steps 1000 [--hold-lr 1.5e-4]
    python -m experiments.synthetic_cxr.pilot arm --src WORK --out PILOTS --seed 0 --arm visual_l0 \
        --steps 80 --set train.learning_rate=1e-3 --set train.warmup=5 --probe 200

``--src`` is a study's ``--work`` folder (its data, frozen expert and per-seed checkpoints are
reused, so a pilot costs one SFT or one arm); ``--out`` receives the pilot's checkpoints and
curves. Each prints one line: the SFT's validation history and plateau verdict, or the arm's own
training reward rise (mean of the last 20% of logged steps minus the first 20%, as the study
computes it) with its final KL, and with ``--probe N`` the own-reward change on N fixed training
images between the start and end checkpoints (``probe.py``; mean and 95% half-width over images). The README's "Settings" table cites these lines.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from experiments.synthetic_cxr import study as S


def _field(study: dict) -> str:
    return "report" if study["regime"] == "clean" else "report_under"


def pilot_sft(args, study: dict) -> dict:
    from experiments.synthetic_cxr.vlm import build_policy

    study["sft"]["max_steps"] = args.steps
    if args.hold_lr is not None:  # the hold phase's constant lr (0: no hold)
        if args.hold_lr > 0:
            study["sft"]["hold"] = {**study["sft"].get("hold", {"fraction": 0.25}), "learning_rate": args.hold_lr}
        else:
            study["sft"].pop("hold", None)
    run = args.out / f"sft{args.steps}" / f"s{args.seed}"
    run.mkdir(parents=True, exist_ok=True)
    base = build_policy(run / "base", seed=args.seed)
    t0, c0 = time.time(), S._cpu_self()
    _, log = S.train_sft(args.src / "data" / "cases.jsonl", _field(study), args.seed, run, base, study["sft"])
    return {
        "pilot": "sft",
        "seed": args.seed,
        "cap": args.steps,
        "hold_steps": log["hold_steps"],
        "hold_learning_rate": log["hold_learning_rate"],
        "val_f1": [round(f, 1) for _, f in log["val_f1"]],
        "plateau_reached": log["plateau_reached"],
        "f1_plateau_reached": log["f1_plateau_reached"],
        "f1_span_last_20pct": log["plateau_span"],
        "nll_plateau_reached": log["nll_plateau_reached"],
        "nll_rel_span_last_20pct": log["nll_rel_span"],
        "wall_s": round(time.time() - t0),
        "cpu_s": round(S._cpu_self() - c0),
    }


def pilot_arm(args, study: dict) -> dict:
    from experiments.synthetic_cxr import pipeline, study_report

    pipeline.ensure_grounding_registered()
    spec = dict(S.with_diagnostics(study, True)["arms"][args.arm])
    spec["steps"] = args.steps
    spec["overrides"] = [*spec.get("overrides", []), *args.set]
    if args.start:
        spec["from"] = args.start
    src_run = args.src / "runs" / f"s{args.seed}"
    init = S.checkpoint_dir(src_run, spec.get("from", "sft"))
    run = args.out / f"s{args.seed}"
    run.mkdir(parents=True, exist_ok=True)
    name = args.name or args.arm
    t0, c0 = time.time(), S._cpu_self()
    final, _ = S.train_arm(
        name,
        spec,
        args.src / "data" / "cases.jsonl",
        _field(study),
        args.seed,
        run,
        src_run / "base",
        init,
        args.src / "expert",
    )
    probe_res = None
    if args.probe:
        from experiments.synthetic_cxr import probe

        p = probe.run_probe(
            {"start": init, "end": Path(final)},
            args.src / "data" / "cases.jsonl",
            args.src / "expert",
            run / name / "probe",
            seed=args.seed,
            field_=_field(study),
            n_images=args.probe,
            G=8,
        )
        probe_res = p
    lam = next((float(o.split("=", 1)[1]) for o in spec["overrides"][::-1] if o.startswith("rewards.lambda_vis=")), 0.5)
    curve = study_report.own_reward_curve(run / name / "metrics.jsonl", args.arm, lam)
    own = np.array([c["own_reward"] for c in curve])
    k = max(1, round(0.2 * len(own)))
    if probe_res is not None:
        cols = {k: {c: np.asarray(v, float) for c, v in probe_res["checkpoints"][k].items()} for k in ("start", "end")}
        d = probe.own_reward(args.arm, cols["end"], lam) - probe.own_reward(args.arm, cols["start"], lam)
        probe_res = {
            "own_change": round(float(d.mean()), 4),
            "ci95_halfwidth": round(float(1.96 * d.std(ddof=1) / np.sqrt(d.size)), 4),
            "component_change": {c: round(float((cols["end"][c] - cols["start"][c]).mean()), 4) for c in probe.COLUMNS},
        }
    return {
        "probe": probe_res,
        "pilot": "arm",
        "arm": args.arm,
        "name": name,
        "seed": args.seed,
        "steps": args.steps,
        "set": args.set,
        "from": spec.get("from", "sft"),
        "rise": round(float(own[-k:].mean() - own[:k].mean()), 4),
        "kl_last_20pct": round(float(np.mean([c["kl"] for c in curve][-k:])), 4),
        "wall_s": round(time.time() - t0),
        "cpu_s": round(S._cpu_self() - c0),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("what", choices=["sft", "arm"])
    ap.add_argument("--src", type=Path, required=True, help="a study's --work folder (data, expert, checkpoints)")
    ap.add_argument("--out", type=Path, required=True, help="where the pilot's checkpoints and curves go")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, required=True, help="SFT cap or GRPO steps")
    ap.add_argument("--arm", help="an arm of configs/study.yaml (for `arm`)")
    ap.add_argument("--from", dest="start", help="start checkpoint: sft or an arm (default: the arm's `from`)")
    ap.add_argument("--name", help="folder name of the pilot arm (default: the arm's)")
    ap.add_argument("--set", action="append", default=[], help="a stage-config override, e.g. train.warmup=5")
    ap.add_argument("--hold-lr", type=float, help="sft: the hold phase's constant lr (0: anneal only)")
    ap.add_argument("--probe", type=int, default=0, help="also the own-reward probe on this many images (G 8)")
    ap.add_argument("--config", type=Path, default=S.CONFIGS / "study.yaml")
    args = ap.parse_args(argv)
    if args.what == "arm" and not args.arm:
        ap.error("`arm` needs --arm")
    study = S.load_study(args.config)
    S._threads(study.get("threads", 1))
    res = pilot_sft(args, study) if args.what == "sft" else pilot_arm(args, study)
    print(json.dumps(res), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
