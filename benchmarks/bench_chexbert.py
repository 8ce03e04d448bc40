"""CheXbert labelling speed: radeval vs f1chexbert 0.0.2 on the same checkpoint, same run.

* 1,000 reports labelled once (cold cache);
* a GRPO-shaped call repeated 3 times: 64 completions (fresh each step) against 8 distinct
  references (each repeated 8 times, the same 8 every step, as across epochs);
* radeval's throughput as a fraction of the CPU FLOP bound: work = 2 x encoder parameters x
  unpadded tokens (embeddings excluded: they are lookups), bound = the best fp32 matrix-multiply
  rate measured in this run with the same number of threads, on BERT-base's own GEMM shapes.
  Note: radeval's last layer carries only [CLS] forward, so it does ~7% less arithmetic than
  this "work" counts; the fraction is of the work the model defines, not of what was executed.
  On a shared machine both wall-clock and CPU-time figures are printed: the CPU-time ones
  (process time, both sides) are the ones other load does not distort.

The checkpoint is a full-size BERT-base CheXbert with random weights (tests/chexbert_fixture.py,
FULL_CONFIG): same FLOPs as the real one. f1chexbert runs in its own venv (transformers 4.57.6,
scikit-learn 1.7.2) through a subprocess that re-enters this file with ``--ref-worker``; the
labels of both are compared too.

    python benchmarks/peers.py setup f1chexbert     # once: the peer's venv in ~/.cache/radeval-peers
    HF_HUB_OFFLINE=1 PYTHONPATH=. python benchmarks/bench_chexbert.py [--peer-python PY] [--n 1000] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from peers import peer_python, run_and_record

ROOT = Path(__file__).resolve().parent.parent
F1_TO_VALUE = {"": None, 1: 1.0, 0: 0.0, -1: -1.0}


# ----- f1chexbert side (runs in the reference venv) ---------------------------------------------
def ref_worker(inp: Path, out: Path) -> None:
    import torch

    job = json.loads(inp.read_text())
    torch.set_num_threads(job["threads"])
    from f1chexbert import F1CheXbert

    scorer = F1CheXbert(device="cpu")
    res: dict = {"threads": torch.get_num_threads(), "torch": torch.__version__}
    with torch.no_grad():
        t0, c0 = time.perf_counter(), time.process_time()
        # what F1CheXbert.forward does per report, in "classification" mode (4-valued labels)
        labels = []
        for i, t in enumerate(job["texts"]):
            labels.append(scorer.get_label(t.strip(), mode="classification"))
            if (i + 1) % 100 == 0:  # progress, so a run cut short still tells the rate
                print(f"  f1chexbert: {i + 1} reports in {time.perf_counter() - t0:.1f} s", flush=True)
        res["labels"] = labels
        res["label_seconds"] = time.perf_counter() - t0
        res["label_cpu_seconds"] = time.process_time() - c0
        res["target_names"] = list(scorer.target_names)
        steps, cpu = [], []
        for hyps, refs in job["grpo"]:
            t0, c0 = time.perf_counter(), time.process_time()
            scorer(hyps, refs)  # the call a reward function makes: labels both sides, then F1
            steps.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        res["grpo_seconds"], res["grpo_cpu_seconds"] = steps, cpu
    out.write_text(json.dumps(res))


# ----- radeval side ------------------------------------------------------------------------------
def matmul_bound(threads: int, reps: int = 3) -> tuple[float, float]:
    """Best fp32 GEMM rate (FLOP/s) over BERT-base's GEMM shapes (4,096 tokens each), per
    wall-clock second and per process CPU second."""
    import torch

    torch.set_num_threads(threads)
    best_wall = best_cpu = 0.0
    for k, n in ((768, 768), (768, 3072), (3072, 768), (768, 2304)):
        a, b = torch.randn(4096, k), torch.randn(n, k)
        torch.nn.functional.linear(a, b)
        for _ in range(reps):
            t0, c0 = time.perf_counter(), time.process_time()
            torch.nn.functional.linear(a, b)
            t1, c1 = time.perf_counter(), time.process_time()
            best_wall = max(best_wall, 2 * 4096 * k * n / (t1 - t0))
            best_cpu = max(best_cpu, 2 * 4096 * k * n / max(c1 - c0, 1e-9))
    return best_wall, best_cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peer-python", "--ref-python", dest="peer_python", default=None, help="the f1chexbert peer's Python (default: python benchmarks/peers.py setup f1chexbert)")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=0, help="torch threads for both (default: torch's)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--tiny", action="store_true", help="tiny encoder: a smoke test of this script, not a benchmark")
    ap.add_argument("--ref-worker", nargs=2, metavar=("IN", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.ref_worker:
        ref_worker(Path(args.ref_worker[0]), Path(args.ref_worker[1]))
        return

    import numpy as np
    import torch

    sys.path.insert(0, str(ROOT / "tests"))
    from chexbert_fixture import FULL_CONFIG, TINY_CONFIG, make_caches
    from report_corpus import report_pairs

    from radeval.labels import CHEXPERT_OBSERVATIONS
    from radeval.metrics.chexbert import CheXbertLabeler

    threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    pairs = report_pairs(args.n + 8 + 3 * 64, seed=args.seed)
    texts = [r for _, r in pairs[: args.n]]
    extra = pairs[args.n :]
    refs8 = [r for _, r in extra[:8]]
    grpo = []
    for step in range(3):
        hyps = [p for p, _ in extra[8 + 64 * step : 8 + 64 * (step + 1)]]
        grpo.append((hyps, [r for r in refs8 for _ in range(8)]))

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        info = make_caches(Path(tmp) / "cache", seed=1, config=TINY_CONFIG if args.tiny else FULL_CONFIG)
        print(
            f"built {'TINY' if args.tiny else 'full-size'} random-weight CheXbert checkpoint in {time.perf_counter() - t0:.1f} s",
            flush=True,
        )

        # radeval
        lab = CheXbertLabeler(
            model_path=info["checkpoint"], tokenizer_path=info["tokenizer_dir"], batch_size=args.batch_size
        )
        lab.label(texts[:4], cache=False)  # warm-up (allocator, kernels)
        bound_before = matmul_bound(threads)
        t0, c0 = time.perf_counter(), time.process_time()
        ours = lab.label(texts)
        rad_label, rad_cpu = time.perf_counter() - t0, time.process_time() - c0
        bound_after = matmul_bound(threads)
        rad_grpo, rad_grpo_cpu = [], []
        for hyps, refs in grpo:
            t0, c0 = time.perf_counter(), time.process_time()
            lab.label(refs)
            lab.label(hyps, cache=False)
            rad_grpo.append(time.perf_counter() - t0)
            rad_grpo_cpu.append(time.process_time() - c0)
        tokens = sum(len(x) for x in lab.encode(texts))
        work = 2.0 * lab.n_encoder_params * tokens
        bound = max(bound_before[0], bound_after[0])
        bound_cpu = max(bound_before[1], bound_after[1])
        print(
            f"\nthreads: {threads} (torch {torch.__version__}); load average {os.getloadavg()[0]:.1f} "
            f"on {os.cpu_count()} CPUs (shared machine)"
        )
        print(f"reports: {len(texts)}, unpadded tokens: {tokens} (mean {tokens / len(texts):.1f})")
        print(
            f"radeval: {rad_label:.1f} s for {len(texts)} reports ({len(texts) / rad_label:.1f} reports/s, "
            f"batch {args.batch_size}); GRPO steps " + ", ".join(f"{x:.2f}" for x in rad_grpo) + " s"
        )
        print("\nFLOP bound (fp32 GEMM on BERT-base shapes, same threads, best of the runs before/after)")
        print(
            f"  GEMM rate before/after: {bound_before[0] / 1e9:.1f} / {bound_after[0] / 1e9:.1f} GFLOP/s wall-clock; "
            f"{bound_before[1] / 1e9:.1f} / {bound_after[1] / 1e9:.1f} GFLOP/s per CPU-second"
        )
        print(
            f"  work: 2 x {lab.n_encoder_params / 1e6:.2f} M encoder params x {tokens} tokens = {work / 1e12:.3f} TFLOP"
        )
        print(
            f"  radeval: {work / rad_label / 1e9:.1f} GFLOP/s = {100 * work / rad_label / bound:.0f}% of the bound "
            f"(wall-clock); {work / rad_cpu / 1e9:.1f} GFLOP per CPU-second = "
            f"{100 * work / rad_cpu / bound_cpu:.0f}% of the bound (CPU time, robust to other load)",
            flush=True,
        )

        # f1chexbert, in its venv
        job = Path(tmp) / "job.json"
        job.write_text(json.dumps({"texts": texts, "grpo": grpo, "threads": threads}))
        env = dict(os.environ, **info["env"])
        env.pop("PYTHONPATH", None)
        t0 = time.perf_counter()
        subprocess.run(
            [str(peer_python("f1chexbert", args.peer_python)), str(Path(__file__).resolve()), "--ref-worker", str(job), str(Path(tmp) / "ref.json")],
            env=env,
            check=True,
        )
        ref = json.loads((Path(tmp) / "ref.json").read_text())
        print(
            f"\nf1chexbert run: {time.perf_counter() - t0:.1f} s wall (incl. start-up); "
            f"load average {os.getloadavg()[0]:.1f}"
        )

    # labels agree?
    theirs = np.full_like(ours, np.nan)
    for i, row in enumerate(ref["labels"]):
        for j, name in enumerate(ref["target_names"]):
            v = F1_TO_VALUE[row[j]]
            theirs[i, CHEXPERT_OBSERVATIONS.index(name)] = np.nan if v is None else v
    agree = (ours == theirs) | (np.isnan(ours) & np.isnan(theirs))

    print(
        f"labels identical to f1chexbert: {agree.all(axis=1).sum()}/{len(texts)} reports, "
        f"{agree.sum()}/{agree.size} cells (f1chexbert side torch {ref['torch']}, {ref['threads']} threads)"
    )
    print(f"\n{len(texts):,}-report labelling (cold cache)")
    print(f"  f1chexbert: {ref['label_seconds']:.1f} s  ({len(texts) / ref['label_seconds']:.1f} reports/s)")
    print(f"  radeval:    {rad_label:.1f} s  ({len(texts) / rad_label:.1f} reports/s, batch {args.batch_size})")
    print(
        f"  speed-up:   {ref['label_seconds'] / rad_label:.2f}x wall-clock; "
        f"{ref['label_cpu_seconds'] / rad_cpu:.2f}x in CPU time ({ref['label_cpu_seconds']:.1f} vs {rad_cpu:.1f} CPU-s)"
    )
    print("\nGRPO-shaped call (64 completions, 8 distinct references x 8), 3 steps")
    print(
        "  f1chexbert: "
        + ", ".join(f"{s:.2f}" for s in ref["grpo_seconds"])
        + f" s  (total {sum(ref['grpo_seconds']):.2f})"
    )
    print("  radeval:    " + ", ".join(f"{s:.2f}" for s in rad_grpo) + f" s  (total {sum(rad_grpo):.2f})")
    print(
        f"  speed-up:   {sum(ref['grpo_seconds']) / sum(rad_grpo):.2f}x wall-clock; "
        f"{sum(ref['grpo_cpu_seconds']) / sum(rad_grpo_cpu):.2f}x in CPU time"
    )


if __name__ == "__main__":
    run_and_record(main, "bench_chexbert", ("f1chexbert",))
