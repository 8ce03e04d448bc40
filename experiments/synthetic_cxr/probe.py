"""Each arm's own reward on a fixed probe set: start checkpoint vs end checkpoint, paired.

The training-curve rise (last 20% of logged steps minus the first 20%) compares different
prompts: every step draws 8 new ones, and with k_clin 2 the clinical term (per-report F1, by far
the noisiest part) enters every second step. Its per-seed noise (sd ≈ 0.05 for stage visual's
R_text over 80 steps, measured on the pilots) is larger than the rise a projector-only arm can make, so a flat curve
cannot tell "does not optimise its reward" from "moves it by less than the noise". The probe
removes the prompt noise: the same N training images, G samples each, drawn from the arm's start
and end checkpoints with the same sampling seed, scored with every reward component; the
difference per image is paired. The own reward here is the arm's reward on a clinical step:

* oracle:           oracle F1 + format
* text, visual_l0:  R_ver + λ_clin·R_clin + format   (R_text + format)
* visual:           (1−λ)(R_text + format) + λ·S     (S = the expert's raw similarity)
* grpo:             R_ver + format
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from experiments.synthetic_cxr import preflight

#: the per-image columns saved for each checkpoint (group means over the G samples)
COLUMNS = ("R_ver", "R_clin", "R_text", "format", "S", "oracle")


def own_reward(arm: str, cols: dict[str, np.ndarray], lambda_vis: float) -> np.ndarray:
    """The arm's own reward per image from the probe columns (see the module docstring)."""
    text = cols["R_text"] + cols["format"]
    if arm == "oracle":
        return cols["oracle"] + cols["format"]
    if arm == "grpo":
        return cols["R_ver"] + cols["format"]
    if arm == "visual":
        return (1 - lambda_vis) * text + lambda_vis * cols["S"]
    return text


def run_probe(
    checkpoints: dict[str, Path],
    cases: Path,
    expert_dir: Path,
    out: Path,
    *,
    seed: int,
    field_: str,
    n_images: int,
    G: int,
) -> dict[str, Any]:
    """Sample and score every checkpoint on the same images; writes ``out/probe.json``."""
    out.mkdir(parents=True, exist_ok=True)
    records, cfg = preflight.training_draw(cases, field_, seed, out, n_images)
    res: dict[str, Any] = {"seed": seed, "n_images": len(records), "G": G, "ids": [r["id"] for r in records]}
    res["checkpoints"] = {}
    for name, ck in checkpoints.items():
        # the same sampling seed for every checkpoint: start and end share their random numbers
        groups = preflight.sample_groups(ck, records, G, seed, cfg)
        comps = preflight.score_components(groups, records, cases, expert_dir, cfg)
        res["checkpoints"][name] = {k: np.nanmean(comps[k], axis=1).round(6).tolist() for k in COLUMNS}
    (out / "probe.json").write_text(json.dumps(res) + "\n", encoding="utf-8")
    return res


def arm_rows(probes: list[dict], arm: str, start: str, lambda_vis: float) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per seed: (n_images, 1) own-reward rows at the end checkpoint and at the start checkpoint."""
    ends, starts = [], []
    for p in probes:
        ck = p["checkpoints"]
        cols_end = {k: np.asarray(v, float) for k, v in ck[arm].items()}
        cols_start = {k: np.asarray(v, float) for k, v in ck[start].items()}
        ends.append(own_reward(arm, cols_end, lambda_vis)[:, None])
        starts.append(own_reward(arm, cols_start, lambda_vis)[:, None])
    return ends, starts
