"""Run the synthetic chest X-ray benchmark end to end.

    python -m experiments.synthetic_cxr.run --out DIR            # full experiment
    python -m experiments.synthetic_cxr.run --out DIR --smoke    # pipeline check, tiny sizes

Writes under DIR: ``data/`` (images + JSONL), ``expert/`` (the frozen open_clip expert),
``runs/<regime>-s<seed>/`` (every stage's checkpoint, metrics.jsonl, predictions),
``tables/`` (leaderboard Markdown/LaTeX/HTML/CSV + per-label plots), ``plots/`` (curves, sweep,
attention maps), ``results.json`` and ``SUMMARY.md``. Seeded: the same command gives the same
data, expert and (on the same machine and library versions) the same checkpoints.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _cpu_all() -> float:
    s = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def sizes(smoke: bool, seeds: int) -> dict[str, Any]:
    if smoke:
        return dict(
            n_train=64,
            n_test=16,
            n_expert=128,
            expert_steps=20,
            seeds=list(range(1)),
            budget=dict(sft_steps=3, text_steps=2, visual_steps=2, n_test=16, sampled=True, sweep_lambda0=True),
            attention_n=8,
            box_task=(3, 2, 8),
        )
    return dict(
        n_train=2000,
        n_test=500,
        n_expert=3000,
        expert_steps=300,
        seeds=list(range(seeds)),
        budget=dict(sft_steps=120, text_steps=15, visual_steps=15, n_test=500, sampled=True, sweep_lambda0=True),
        attention_n=200,
        box_task=(150, 20, 200),
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: checks the pipeline, not the numbers")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2, help="chains run in parallel processes (2 cores: 2)")
    ap.add_argument("--regimes", default="clean,under")
    ap.add_argument("--sft-steps", type=int)
    ap.add_argument("--text-steps", type=int)
    ap.add_argument("--visual-steps", type=int)
    ap.add_argument("--reuse", action="store_true", help="keep DIR's data and trained expert if present")
    ap.add_argument("--full-sweeps", action="store_true", help="also λ_vis = 1.0 and k_clin ∈ {1, 20} (cut by default)")
    ap.add_argument("--no-box-task", action="store_true", help="skip the box-grounding task (the issue's 2nd cut)")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from experiments.synthetic_cxr import data, expert, pipeline

    t0, c0 = time.time(), _cpu_all()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    cfg = sizes(args.smoke, args.seeds)
    for k, attr in (
        ("sft_steps", args.sft_steps),
        ("text_steps", args.text_steps),
        ("visual_steps", args.visual_steps),
    ):
        if attr is not None:
            cfg["budget"][k] = attr
    cfg["budget"]["full_sweeps"] = args.full_sweeps
    regimes = [r for r in args.regimes.split(",") if r]
    timings: dict[str, Any] = {}

    # 1. data: policy train/test from one seed family, the expert's images from another
    t = time.time()
    droot = out / "data"
    cases, exp_path = droot / "cases.jsonl", droot / "expert.jsonl"
    if not (args.reuse and cases.is_file() and exp_path.is_file()):
        cases = data.write_split(droot, "cases", {"train": (cfg["n_train"], 1), "test": (cfg["n_test"], 2)}, omit=0.6)
        exp_path = data.write_split(
            droot, "expert", {"train": (cfg["n_expert"], 3), "test": (min(300, cfg["n_test"]), 4)}, omit=0.6
        )
    timings["data_s"] = round(time.time() - t, 1)

    # 2. the frozen expert (complete reports, separate images), checked through the grounding metric
    t = time.time()
    pipeline.ensure_grounding_registered()
    exp_dir = out / "expert"
    if args.reuse and (exp_dir / "training.json").is_file() and (exp_dir / "open_clip_model.safetensors").is_file():
        info = json.loads((exp_dir / "training.json").read_text())
    else:
        info = expert.train_expert(data.read(exp_path, "train"), droot, exp_dir, steps=cfg["expert_steps"])
    checks = expert.expert_checks(exp_dir, data.read(exp_path, "test"), droot)
    timings["expert_s"] = round(time.time() - t, 1)
    print(f"expert: {info} {checks}", flush=True)

    # 3. the chains (regime x seed), in parallel processes
    budget = pipeline.Budget(**cfg["budget"])
    jobs = [(str(out), r, s, budget, str(exp_dir)) for s in cfg["seeds"] for r in regimes]
    t = time.time()
    if args.workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=args.workers, mp_context=get_context("spawn")) as pool:
            chains = list(pool.map(pipeline.chain_worker, jobs))
    else:
        chains = [pipeline.chain_worker(j) for j in jobs]
    timings["chains_s"] = round(time.time() - t, 1)
    for c in chains:
        status = "ok" if c.get("ok") else f"FAILED: {c.get('error')}"
        print(
            f"chain {c['regime']}-s{c['seed']}: {status} ({c.get('wall_s')} s wall, {c.get('cpu_s')} s CPU)", flush=True
        )

    # 4. attention maps + pointing game on one seed's checkpoints per regime
    t = time.time()
    from experiments.synthetic_cxr import attention

    attn = {}
    for c in chains:
        if c.get("ok") and c["seed"] == cfg["seeds"][0]:
            attn[c["regime"]] = attention.analyse(
                c["checkpoints"], cases, out / "plots", c["regime"], n=cfg["attention_n"]
            )
    timings["attention_s"] = round(time.time() - t, 1)

    # 5. the visual-grounding (box) task: SFT on boxes, GRPO with the AP@0.5 box reward
    if not args.no_box_task:
        t = time.time()
        from experiments.synthetic_cxr.grounding_task import run_box_task

        try:
            run_box_task(out, cfg["seeds"][0], *cfg["box_task"])
        except Exception as exc:  # reported, not fatal: the stage chain's results stand without it
            print(f"box task FAILED: {type(exc).__name__}: {exc}", flush=True)
        timings["box_task_s"] = round(time.time() - t, 1)

    # 6. scoring, tables, plots, summary
    t = time.time()
    from experiments.synthetic_cxr import summarize

    results = summarize.build(out, chains, regimes, exp_dir, budget, attn, checks, info)
    timings["report_s"] = round(time.time() - t, 1)
    timings["total_wall_s"] = round(time.time() - t0, 1)
    timings["total_cpu_s"] = round(_cpu_all() - c0, 1)
    peak_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    peak_child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    timings["peak_rss_mb_main"] = round(peak_self, 1)
    timings["peak_rss_mb_largest_child"] = round(peak_child, 1)
    results["timings"] = timings
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    summarize.write_summary(out, results)
    print(json.dumps(timings), flush=True)
    return 0 if all(c.get("ok") for c in chains) else 1


if __name__ == "__main__":
    sys.exit(main())
