"""Attention maps from a report's finding words to the image tokens, and the pointing game.

For each checkpoint, each held-out image and each finding present in it, the complete reference
report is teacher-forced after the prompt and the attention of the finding's word tokens (e.g.
"pneumothorax", "endotracheal tube") to the 16 image tokens (a 4x4 grid of 14-px cells) is
averaged over layers and heads. Pointing game: a hit when the cell with the highest attention
overlaps the finding's box. With a 4x4 grid and boxes that cover several cells, chance is far
from zero, so the expected hit rate of a uniformly random cell is reported beside it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from experiments.synthetic_cxr import generator
from experiments.synthetic_cxr.vlm import GRID, PROMPT

KEYWORDS = {
    "cardiomegaly": ["cardiomegaly"],
    "effusion": ["pleural effusion"],
    "consolidation": ["consolidation"],
    "pneumothorax": ["pneumothorax"],
    "device": ["endotracheal tube", "central venous catheter"],
}
CELL = 1.0 / GRID


def _cells_hit(box: list[float]) -> np.ndarray:
    """(GRID, GRID) bool: cells that overlap a normalised box."""
    x1, y1, x2, y2 = box
    hit = np.zeros((GRID, GRID), bool)
    for r in range(GRID):
        for c in range(GRID):
            hit[r, c] = (c * CELL < x2) and ((c + 1) * CELL > x1) and (r * CELL < y2) and ((r + 1) * CELL > y1)
    return hit


def _load(ckpt: str):
    from trainers.models import load_model

    model, processor = load_model(ckpt, dtype="float32", attn_implementation="eager", use_cpu=True)
    model.eval()
    return model, processor


def finding_maps(model, processor, image, report: str, findings: list[str]) -> dict[str, np.ndarray]:
    """{finding: (GRID, GRID) attention map} for the findings whose keyword occurs in ``report``."""
    import torch

    from trainers.data import user_message

    tok = processor.tokenizer
    prompt = processor.apply_chat_template([user_message(PROMPT, 1)], add_generation_prompt=True, tokenize=False)
    enc = processor(text=[prompt], images=[[image]], return_tensors="pt")
    completion = f"<report>{report}</report>"
    comp = tok(completion, return_offsets_mapping=True, add_special_tokens=False)
    ids = torch.cat([enc["input_ids"], torch.tensor([comp["input_ids"]])], 1)
    with torch.inference_mode():
        out = model(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            pixel_values=enc["pixel_values"],
            image_grid_thw=enc["image_grid_thw"],
            output_attentions=True,
        )
    att = torch.stack([a[0] for a in out.attentions]).mean(dim=(0, 1))  # (q, k) averaged over layers, heads
    img_pos = (ids[0] == model.config.image_token_id).nonzero().flatten()
    start = enc["input_ids"].shape[1]
    lower = completion.lower()
    maps = {}
    for f in findings:
        for kw in KEYWORDS[f]:
            i = lower.find(kw)
            if i < 0:
                continue
            toks = [start + j for j, (a, b) in enumerate(comp["offset_mapping"]) if a < i + len(kw) and b > i]
            if toks:
                m = att[toks][:, img_pos].mean(0).numpy()
                maps[f] = (m / max(m.sum(), 1e-12)).reshape(GRID, GRID)
            break
    return maps


def analyse(checkpoints: dict[str, str], cases_path: Path, plot_dir: Path, regime: str, n: int = 200) -> dict[str, Any]:
    """Pointing-game score per checkpoint on the first ``n`` held-out images with findings; plots."""
    from PIL import Image

    from experiments.synthetic_cxr import data

    rows = [r for r in data.read(cases_path, "test") if r["boxes"]][:n]
    root = Path(cases_path).parent
    images = [Image.open(root / r["image"]).convert("RGB") for r in rows]
    res: dict[str, Any] = {}
    examples: dict[str, list] = {}
    chance = []
    for r in rows:
        for box in r["boxes"].values():
            chance.append(_cells_hit(box).mean())
    for name in ("sft", "text", "visual"):
        if name not in checkpoints:
            continue
        model, processor = _load(checkpoints[name])
        hits: dict[str, list[int]] = {f: [] for f in KEYWORDS}
        examples[name] = []
        for r, img in zip(rows, images):
            maps = finding_maps(model, processor, img, r["report"], list(r["boxes"]))
            for f, m in maps.items():
                peak = np.unravel_index(int(np.argmax(m)), m.shape)
                hits[f].append(int(_cells_hit(r["boxes"][f])[peak]))
            if len(examples[name]) < 6 and maps:
                f0 = sorted(maps)[0]
                examples[name].append((img, maps[f0], r["boxes"][f0], f0))
        allh = [h for v in hits.values() for h in v]
        res[name] = {
            "pointing_game": float(np.mean(allh)) if allh else None,
            "n": len(allh),
            "per_finding": {f: (float(np.mean(v)) if v else None) for f, v in hits.items()},
        }
        del model
    res["chance"] = float(np.mean(chance)) if chance else None
    _plot(examples, plot_dir / f"attention_{regime}.png", regime)
    (plot_dir / f"pointing_{regime}.json").write_text(json.dumps(res, indent=2) + "\n")
    return res


def _plot(examples: dict[str, list], path: Path, regime: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    names = [k for k in examples if examples[k]]
    if not names:
        return
    cols = max(len(examples[k]) for k in names)
    fig, axes = plt.subplots(len(names), cols, figsize=(1.9 * cols, 2.0 * len(names)), squeeze=False)
    s = generator.SIDE
    for i, name in enumerate(names):
        for j in range(cols):
            ax = axes[i][j]
            ax.axis("off")
            if j >= len(examples[name]):
                continue
            img, m, box, f = examples[name][j]
            ax.imshow(np.asarray(img)[:, :, 0], cmap="gray", extent=(0, s, s, 0))
            ax.imshow(m, cmap="jet", alpha=0.45, extent=(0, s, s, 0), interpolation="bilinear")
            x1, y1, x2, y2 = (v * s for v in box)
            ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, ec="lime", lw=1.2))
            ax.set_title(f"{name}: {f}", fontsize=7)
    fig.suptitle(f"Attention of finding words to image tokens ({regime} regime); green = finding box", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
