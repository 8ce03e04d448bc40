"""RadCliQ-v0 / -v1 composite parity against CXR-Report-Metric's own pickles (reference venv).

    bash benchmarks/peers/build_cxr_report_metric.sh
    PYTHONPATH=. python benchmarks/parity_radcliq_composite.py --cxr-dir PATH/TO/CXR-Report-Metric [--n 5000]

Feature rows: ``--n`` seeded rows spanning each feature's range (RadGraph and BLEU-2 in [0, 1],
BERTScore and SembScore in [-0.5, 1]) plus the corners; radeval's ``RadCliQV0.combine`` /
``RadCliQ.combine`` against the reference's ``normalizer.transform`` + ``LinearRegression.predict``
and ``CompositeMetric.predict`` on the same rows. Prints the largest differences. (The features
themselves have their own parity tests: BLEU-2 vs fast_bleu, BERTScore vs bert-score, RadGraph
vs the radgraph package, SembScore vs the [CLS] state of transformers' BertModel.)
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from radeval.metrics.radcliq import RadCliQ, RadCliQV0  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cxr-dir", required=True)
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--venv", default=os.path.expanduser("~/.cache/radeval-peers/cxr-report-metric"))
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    lo, hi = np.array([0, -0.5, -0.5, 0]), np.array([1, 1, 1, 1])
    rows = lo + (hi - lo) * rng.random((a.n, 4))
    corners = np.array(list(itertools.product(*zip(lo, hi))), dtype=np.float64)
    x = np.concatenate([rows, corners])
    with tempfile.TemporaryDirectory() as d:
        feats, out = Path(d) / "f.json", Path(d) / "o.json"
        feats.write_text(json.dumps({"features": x.tolist()}))
        subprocess.run(
            [
                f"{a.venv}/bin/python",
                str(ROOT / "benchmarks/peers/cxr_report_metric_composite.py"),
                a.cxr_dir,
                str(feats),
                str(out),
            ],
            check=True,
        )
        ref = json.loads(out.read_text())
    d0 = np.abs(RadCliQV0.combine(x) - np.array(ref["radcliq_v0"])).max()
    d1 = np.abs(RadCliQ.combine(x) - np.array(ref["radcliq_v1"])).max()
    print(f"rows {len(x)}: max |RadCliQ-v0 - reference| = {d0:.3e}; max |RadCliQ-v1 - reference| = {d1:.3e}")
    print(
        f"range v0 [{min(ref['radcliq_v0']):.3f}, {max(ref['radcliq_v0']):.3f}], v1 [{min(ref['radcliq_v1']):.3f}, {max(ref['radcliq_v1']):.3f}]"
    )
    return 0 if d0 <= 1e-9 else 1


if __name__ == "__main__":
    sys.exit(main())
