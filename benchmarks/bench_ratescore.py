"""RaTEScore speed: radeval vs the RaTEScore 0.6.0 package, same weights, same machine, same run.

Both sides load the same synthetic model directories (tests/ratescore_fixture.py; ``--size
base`` builds real-size DeBERTa-base + BERT-base shapes with random weights, ``tiny`` the test
models). The package runs in its own venv (``--peer-python``, default: the one
``python benchmarks/peers.py setup ratescore`` creates) in a subprocess; radeval runs here. Model loading is not
timed on either side. Sentence splitting: the package splits with medspaCy/PyRuSH inside its
call; radeval is given the package's own sentences (so both score the same sentences), and
the package's splitting time is reported separately so the comparison is like for like.

    HF_HUB_OFFLINE=1 PYTHONPATH=. python benchmarks/bench_ratescore.py --n 60 --size base

Prints both timings, the ratio, and the largest score difference between the two.
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

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

PACKAGE_SIDE = r"""
import json, sys, time
from loguru import logger
logger.remove()
import torch
torch.set_num_threads(int(sys.argv[3]))
import RaTEScore
from RaTEScore import utils as U
args = json.loads(open(sys.argv[1]).read())
s = RaTEScore.RaTEScore(bert_model=args["ner"], eval_model=args["embed"], use_gpu=False)
s.compute_score(args["hyps"][:2], args["refs"][:2])  # warm-up
t0 = time.perf_counter()
texts = args["hyps"] + args["refs"]
sents = {t: U.sentence_split([t])[0] for t in texts}
t_split = time.perf_counter() - t0
t0 = time.perf_counter()
scores = s.compute_score(args["hyps"], args["refs"])
t_total = time.perf_counter() - t0
json.dump({"scores": scores, "seconds": t_total, "split_seconds": t_split, "sentences": sents},
          open(sys.argv[2], "w"))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=60, help="report pairs")
    ap.add_argument("--size", choices=("tiny", "base"), default="base")
    ap.add_argument("--peer-python", "--ref-python", dest="peer_python", default=None, help="the ratescore peer's Python (default: python benchmarks/peers.py setup ratescore)")
    ap.add_argument("--models", default=None, help="reuse a directory of built models")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import numpy as np
    import ratescore_fixture as RF
    import torch
    from report_corpus import report_pairs

    from radeval.metrics import ratescore as RS

    torch.set_num_threads(args.threads)
    root = Path(args.models or tempfile.mkdtemp(prefix=f"rate-{args.size}-"))
    if not (root / "rate-ner" / "model.safetensors").is_file():
        t0 = time.perf_counter()
        RF.build(root, size=args.size)
        print(f"built {args.size} models in {time.perf_counter() - t0:.1f}s at {root}")
    # the package mis-pairs a batch that holds a report with no sentence: keep pairs where
    # both sides have some text
    pairs = [(h, r) for h, r in report_pairs(args.n * 2, seed=5) if len(h.strip()) > 3 and len(r.strip()) > 3]
    pairs = pairs[: args.n]
    hyps, refs = [h for h, _ in pairs], [r for _, r in pairs]

    with tempfile.TemporaryDirectory() as tmp:
        inp, out = Path(tmp) / "in.json", Path(tmp) / "out.json"
        inp.write_text(json.dumps({"ner": str(root / "rate-ner"), "embed": str(root / "biolord"),
                                   "hyps": hyps, "refs": refs}))  # fmt: skip
        script = Path(tmp) / "pkg.py"
        script.write_text(PACKAGE_SIDE)
        env = dict(os.environ, HF_HUB_OFFLINE="1")
        subprocess.run([str(peer_python("ratescore", args.peer_python)), str(script), str(inp), str(out), str(args.threads)], check=True, env=env)
        pkg = json.loads(out.read_text())

    m = RS.RaTEScore(
        ner_path=root / "rate-ner", embed_path=root / "biolord", device="cpu",
        splitter=RS.GivenSplitter(pkg["sentences"]),
    )  # fmt: skip
    m.score(hyps[:2], refs[:2])  # warm-up (loads the models)
    m._ent_cache.clear()
    m._emb_cache.clear()
    t0 = time.perf_counter()
    res = m.score(hyps, refs)
    ours = res.sample["ratescore"]
    tied = res.stats[:, 3] > 0  # see RaTEScore.pair_scores: the package's pick there is float noise
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    m.score(hyps, refs)
    t_cached = time.perf_counter() - t0

    diff = float(np.max(np.abs(np.asarray(pkg["scores"]) - ours)))
    pkg_score = pkg["seconds"] - pkg["split_seconds"]
    print(f"pairs: {len(hyps)}  models: {args.size}  threads: {args.threads}  device: cpu")
    print(f"RaTEScore 0.6.0: {pkg['seconds']:.2f}s total, of which sentence splitting {pkg['split_seconds']:.2f}s")
    print(f"radeval:         {t_ours:.2f}s (same sentences, cold caches); {t_cached:.3f}s warm (cached)")
    print(f"ratio (package excluding splitting / radeval): {pkg_score / t_ours:.2f}x")
    print(f"ratio (package total / radeval):               {pkg['seconds'] / t_ours:.2f}x")
    untied = np.abs(np.asarray(pkg["scores"]) - ours)[~tied]
    print(
        f"max |score difference|: {diff:.2e} all pairs; {untied.max() if len(untied) else 0:.2e} on the "
        f"{int((~tied).sum())} pairs without a same-string type tie"
    )


if __name__ == "__main__":
    run_and_record(main, "bench_ratescore", ("ratescore",))
