"""Write the benchmark's data sets to disk in the trainers' JSONL layout.

``cases.jsonl``: one line per case ``{"id", "image", "report", "report_under", "findings",
"reported", "boxes", "split"}`` with ``image`` a PNG path relative to the file. Splits:
``train`` (policy SFT/RL), ``test`` (held-out evaluation); the frozen expert gets its own file
``expert.jsonl`` drawn from a different seed, so it never sees a policy image.
"""

from __future__ import annotations

import json
from pathlib import Path

from experiments.synthetic_cxr import generator


def write_split(root: Path, name: str, splits: dict[str, tuple[int, int]], omit: float) -> Path:
    """``splits``: split -> (n, seed). Returns the JSONL path."""
    img_dir = root / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    path = root / f"{name}.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for split, (n, seed) in splits.items():
            for c in generator.make_cases(n, seed, omit=omit, prefix=f"{name}-{split}-"):
                rel = f"images/{c.id}.png"
                generator.save_png(c.image, root / rel)
                row = {
                    "id": c.id,
                    "image": rel,
                    "report": c.report,
                    "report_under": c.report_under,
                    "findings": sorted(c.findings),
                    "reported": sorted(c.reported),
                    "boxes": c.boxes(),
                    "split": split,
                }
                fh.write(json.dumps(row) + "\n")
    return path


def read(path: Path, split: str | None = None) -> list[dict]:
    rows = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in rows if split is None or r["split"] == split]
