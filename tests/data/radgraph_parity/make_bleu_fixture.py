"""Regenerate radcliq_bleu2.json: fast_bleu's BLEU-2 as CXR-Report-Metric computes RadCliQ's BLEU.

Run in a venv with fast-bleu 0.0.90 (e.g. the radgraph reference venv):
    PYTHONPATH=. /work/refvenvs/radgraph/bin/python tests/data/radgraph_parity/make_bleu_fixture.py
"""

import importlib.metadata as md
import importlib.util
import json
import sys
from pathlib import Path

from fast_bleu import BLEU

# by path: a dependency of the reference venv installs its own top-level "tests" package
_spec = importlib.util.spec_from_file_location(
    "report_corpus", Path(__file__).resolve().parents[2] / "report_corpus.py"
)
_mod = importlib.util.module_from_spec(_spec)
sys.modules["report_corpus"] = _mod
_spec.loader.exec_module(_mod)
report_pairs = _mod.report_pairs

EDGE = [
    ("a b c d", "a x b y"),
    ("a b", "a"),
    ("x y", "a b c"),
    ("", "a b"),
    ("a b c", ""),
    ("a a a a", "a"),
    ("Effusion.\nNo pneumothorax.", "effusion. no  pneumothorax."),
    ("the cat sat on the mat", "the cat is on the mat"),
]


def prep(text: str) -> list[str]:
    # CXR-Report-Metric's prep_reports
    return [t for t in str(text).lower().replace(".", " .").split(" ") if t != ""]


pairs = [(r, h) for h, r in report_pairs(300, seed=5)] + EDGE
scores = []
for ref, hyp in pairs:
    scores.append(BLEU([prep(ref)], {"bigram": (0.5, 0.5)}).get_score([prep(hyp)])["bigram"][0])
out = {"fast_bleu": md.version("fast-bleu"), "n_corpus": 300, "seed": 5, "edge": EDGE, "bleu2": scores}
Path(__file__).with_name("radcliq_bleu2.json").write_text(json.dumps(out, separators=(",", ":")))
print(len(scores), sum(s > 0 for s in scores))
