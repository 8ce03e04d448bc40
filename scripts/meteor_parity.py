"""Native METEOR vs the METEOR 1.5 jar, statistic by statistic, on the seeded report corpus.

    PYTHONPATH=. python scripts/meteor_parity.py --pairs 10000 [--modes whitespace,r2gen-mimic,...]

For each tokenisation mode: the same protocol lines go to the jar (the process pycocoevalcap
runs) and to the native aligner; we compare the 23 raw statistics, the per-segment scores the
jar computes from them (its EVAL answer) and the corpus score. Prints one summary line per mode
(and the first differing lines) and exits 1 if anything differs by more than --tol.
Needs Java and pycocoevalcap; slow (the jar: ~2.5 ms per segment).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def adversarial_pairs() -> list[tuple[str, str]]:
    """Inputs chosen to stress the aligner and the normaliser (see tests/test_meteor_native.py)."""
    from tests.test_meteor_native import ADVERSARIAL

    return list(ADVERSARIAL)


def compare(lines: list[str], jars: int) -> dict:
    from radeval.coco import meteor_jar, meteor_score_lines
    from radeval.metrics.meteor import _parse_stats, aggregation_rows, meteor_from_totals, native_aligner

    t0 = time.perf_counter()
    answers = meteor_score_lines(lines, jars)
    jar_raw = np.array([_parse_stats(line, a) for line, a in zip(lines, answers)])
    t_jar = time.perf_counter() - t0
    aligner = native_aligner()
    t0 = time.perf_counter()
    nat_raw = np.array(aligner.score_lines(lines), dtype=np.float64)
    t_nat = time.perf_counter() - t0
    # the jar's own per-segment and corpus scores from its statistics (EVAL), vs ours
    seg_jar, corpus_jar = meteor_jar().evaluate([" ".join(repr(x) for x in row) for row in jar_raw.tolist()])
    seg_nat = meteor_from_totals(nat_raw)
    corpus_nat = float(meteor_from_totals(aggregation_rows(nat_raw).sum(axis=0)))
    stat_diff = np.any(jar_raw != nat_raw, axis=1)
    seg_delta = np.abs(np.asarray(seg_jar) - seg_nat)
    return {
        "segments": len(lines),
        "stats_differ": int(stat_diff.sum()),
        "scores_differ_1e-9": int((seg_delta > 1e-9).sum()),
        "max_abs_diff": float(seg_delta.max()) if len(lines) else 0.0,
        "corpus_jar": corpus_jar,
        "corpus_native": corpus_nat,
        "corpus_abs_diff": abs(corpus_jar - corpus_nat),
        "jar_s": round(t_jar, 2),
        "native_s": round(t_nat, 2),
        "examples": [
            {"line": lines[i][:300], "jar": jar_raw[i].tolist(), "native": nat_raw[i].tolist()}
            for i in np.nonzero(stat_diff)[0][:3]
        ],
    }


def main() -> int:
    from radeval.metrics.meteor import score_line
    from radeval.tokenize import TOKENIZE_MODES, normalize
    from tests.report_corpus import report_pairs

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--modes", default=",".join(TOKENIZE_MODES))
    ap.add_argument("--jars", type=int, default=1)
    ap.add_argument("--tol", type=float, default=1e-9)
    ap.add_argument("--json", help="write the summary here")
    a = ap.parse_args()
    pairs = report_pairs(a.pairs, seed=a.seed)
    hyps, refs = [h for h, _ in pairs], [r for _, r in pairs]
    summary = {}
    bad = False
    for mode in [m for m in a.modes.split(",") if m]:
        lines = [score_line(h, r) for h, r in zip(normalize(hyps, mode), normalize(refs, mode))]
        res = compare(lines, a.jars)
        summary[mode] = res
        bad |= res["max_abs_diff"] > a.tol or res["corpus_abs_diff"] > a.tol
        print(mode, json.dumps({k: v for k, v in res.items() if k != "examples"}), flush=True)
        for ex in res["examples"]:
            print("  differs:", json.dumps(ex), flush=True)
    adv = adversarial_pairs()
    res = compare([score_line(h, r) for h, r in adv], a.jars)
    summary["adversarial"] = res
    bad |= res["max_abs_diff"] > a.tol or res["corpus_abs_diff"] > a.tol
    print("adversarial", json.dumps({k: v for k, v in res.items() if k != "examples"}), flush=True)
    for ex in res["examples"]:
        print("  differs:", json.dumps(ex), flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(summary, indent=1))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
