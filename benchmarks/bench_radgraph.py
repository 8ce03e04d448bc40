"""RadGraph extraction throughput: radeval vs the radgraph package, same weights, same run.

    PYTHONPATH=. python benchmarks/bench_radgraph.py [--n 64] [--group 8] [--size base]
        [--peer-python PY] [--threads 2]      # peer: python benchmarks/peers.py setup radgraph

Both sides load the *same* synthetic archive (tests/radgraph_fixture.py: random weights in the
real layout; ``--size base`` = a BERT-base-sized encoder, 12 layers x 768, like the real
models). The radgraph package (0.1.18) runs in its own venv (it cannot import on
transformers 5) in a subprocess that times itself after loading; radeval runs here. Two
workloads:

* ``eval``: N distinct reports (hypotheses + references of N/2 pairs), each annotated once;
* ``grpo``: F1 rewards for N/G references x G completions each (the package's F1RadGraph
  annotates every reference G times; radeval's reference cache annotates it once).

Prints seconds, reports/second and the ratio, and checks that both sides found the same
entities. Not a test; numbers depend on the machine (say which when you quote them).
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REF_SCRIPT = r"""
import json, os, sys, time
os.environ["HF_HUB_OFFLINE"] = "1"
import torch
torch.set_num_threads(int(sys.argv[3]))
from radgraph import RadGraph, F1RadGraph
job = json.load(open(sys.argv[1]))
res = {}
rg = RadGraph(model_type=job["model_type"], model_cache_dir=job["cache_dir"])
rg(job["texts"][:2])  # warm-up
t = time.perf_counter(); anns = rg(job["texts"]); res["eval_s"] = time.perf_counter() - t
res["eval_entities"] = [len(anns[str(i)]["entities"]) for i in range(len(job["texts"]))]
f1 = F1RadGraph(reward_level="all", model_type=job["model_type"], model_cache_dir=job["cache_dir"])
t = time.perf_counter(); out = f1(refs=job["refs"], hyps=job["hyps"]); res["grpo_s"] = time.perf_counter() - t
res["grpo_rewards"] = [list(x) for x in out[1]]
json.dump(res, open(sys.argv[2], "w"))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=64, help="reports per workload")
    ap.add_argument("--group", type=int, default=8, help="GRPO completions per reference")
    ap.add_argument("--size", choices=("base", "small"), default="base")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--peer-python", "--ref-python", dest="peer_python", default=None, help="the radgraph peer's Python (default: python benchmarks/peers.py setup radgraph)")
    args = ap.parse_args()

    import torch

    from radeval.metrics.radgraph import RadGraphExtractor, RadGraphF1
    from radeval.models import safe_extract_tar
    from tests.radgraph_fixture import build_archive
    from tests.report_corpus import report_pairs

    torch.set_num_threads(args.threads)
    size = (
        dict(hidden=768, layers=12, heads=12, intermediate=3072)
        if args.size == "base"
        else dict(hidden=128, layers=2, heads=2, intermediate=256)
    )
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["RADEVAL_MODELS_DIR"] = str(Path(tmp) / "models")
        t0 = time.perf_counter()
        archive = build_archive(Path(tmp) / "a", seed=0, model_type="radgraph-xl", **size)
        print(f"built {args.size} archive ({archive.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t0:.0f} s")
        cache = Path(tmp) / "cache"
        safe_extract_tar(archive, cache / "radgraph-xl")
        usable = [(h, r) for h, r in report_pairs(4 * args.n, seed=123) if h.strip() and r.strip()]
        texts = list(dict.fromkeys(t for p in usable for t in p))[: args.n]
        n_refs = max(1, args.n // args.group)
        refs_u = [r for _, r in usable][:n_refs]
        hyps = [h for h, _ in usable][: n_refs * args.group]
        refs = [r for r in refs_u for _ in range(args.group)][: len(hyps)]
        job = {"model_type": "radgraph-xl", "cache_dir": str(cache), "texts": texts, "hyps": hyps, "refs": refs}
        jf, rf = Path(tmp) / "job.json", Path(tmp) / "res.json"
        jf.write_text(json.dumps(job))
        sf = Path(tmp) / "ref.py"
        sf.write_text(REF_SCRIPT)
        print(f"radgraph package: {len(texts)} reports (eval), {len(hyps)} pairs (grpo) ...", flush=True)
        subprocess.run(
            [str(peer_python("radgraph", args.peer_python)), str(sf), str(jf), str(rf), str(args.threads)],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        ref = json.loads(rf.read_text())

        ex = RadGraphExtractor("radgraph-xl", archive, device="cpu")
        ex(texts[:2])
        ex.clear_cache()
        t = time.perf_counter()
        anns = ex(texts)
        ours_eval = time.perf_counter() - t
        ex.clear_cache()
        metric = RadGraphF1(extractor=ex)
        t = time.perf_counter()
        rewards = metric.rewards(hyps, refs)
        ours_grpo = time.perf_counter() - t

    same_eval = [len(a["entities"]) for a in anns] == ref["eval_entities"]
    # the package returns the "all" rewards as (simple list, partial list, complete list)
    same_grpo = rewards.T.tolist() == ref["grpo_rewards"]
    print(f"machine: {os.cpu_count()} CPUs visible, torch threads {args.threads}, device cpu, encoder {args.size}")
    for name, n, a, b, same in (
        ("eval", len(texts), ref["eval_s"], ours_eval, same_eval),
        ("grpo", len(hyps), ref["grpo_s"], ours_grpo, same_grpo),
    ):
        print(
            f"{name:5s} n={n:4d}  radgraph {a:7.2f} s ({n / a:6.1f}/s)   radeval {b:7.2f} s "
            f"({n / b:6.1f}/s)   speed-up x{a / b:5.2f}   same output: {same}"
        )


if __name__ == "__main__":
    run_and_record(main, "bench_radgraph", ("radgraph",))
