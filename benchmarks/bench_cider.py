"""Speed of radeval's CIDEr-D against pycocoevalcap's Cider on the same pairs, numbers checked equal.

    PYTHONPATH=. python benchmarks/bench_cider.py [--n 10000] [--seed 0] [--modes r2gen-mimic,whitespace]

Per mode: radeval ``Cider(tokenize=mode).score()`` on the raw texts (normalisation, the DF first
pass and scoring, tokeniser caches emptied first) against pycocoevalcap ``Cider().compute_score``
on the texts radeval normalised (its side gets normalisation for free: a conservative ratio).
Prints wall and process CPU seconds of each side, the ratio, and the largest per-sample and
corpus differences (must be <= 1e-9).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from radeval import tokenize  # noqa: E402
from radeval.metrics.cider import Cider  # noqa: E402
from radeval.tokenize import normalize  # noqa: E402
from tests.report_corpus import report_pairs  # noqa: E402


def _timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def main() -> int:
    from pycocoevalcap.cider.cider import Cider as CocoCider

    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--modes", default="r2gen-mimic,whitespace")
    a = ap.parse_args()
    pairs = report_pairs(a.n, seed=a.seed)
    hyps, refs = [h for h, _ in pairs], [r for _, r in pairs]
    worst = 0.0
    for mode in a.modes.split(","):
        tokenize.clear_caches()
        ours, w1, c1 = _timed(lambda m=mode: Cider(tokenize=m).score(hyps, refs))
        hn, rn = normalize(hyps, mode), normalize(refs, mode)
        gts = {i: [r] for i, r in enumerate(rn)}
        res = {i: [h] for i, h in enumerate(hn)}
        (corpus, sample), w2, c2 = _timed(lambda g=gts, r=res: CocoCider().compute_score(g, r))
        d_sample = float(np.abs(ours.sample["cider"] - sample).max())
        d_corpus = abs(ours.corpus["cider"] - corpus)
        worst = max(worst, d_sample, d_corpus)
        print(
            f"{mode:12s} n={a.n} radeval {w1:6.2f}s wall {c1:6.2f}s cpu | pycocoevalcap {w2:6.2f}s wall "
            f"{c2:6.2f}s cpu | x{w2 / w1:4.2f} wall, x{c2 / c1:4.2f} cpu | corpus {ours.corpus['cider']:.6f} "
            f"max|diff| sample {d_sample:.1e} corpus {d_corpus:.1e}"
        )
    return 0 if worst <= 1e-9 else 1


if __name__ == "__main__":
    sys.exit(main())
