"""Pre-flight before any RL: can each reward teach the target at all?

From the converged SFT model, sample G completions (the GRPO sampling settings) for N training
images and score every completion with each reward component the arms use:

* ``R_ver``   BLEU-4 + ROUGE-L vs the training reference (the regime's report, under-reported here);
* ``R_clin``  the rule-based CheXpert per-report F1 vs that reference;
* ``R_text``  R_ver + λ_clin·R_clin (a clinical step of Eq. 5);
* ``format``  VALOR's format reward;
* ``S``       the frozen expert's image–report similarity (stage visual's raw S_i);
* ``oracle``  the target itself: true-label per-report F1 over the five findings.

Reported: (a) per component, the share of groups whose G values are all equal (zero variance:
RankNorm and TRL's advantages give such a group no gradient); (b) per component, the mean over
groups of the within-group Spearman correlation with the oracle F1 (groups where either side is
constant are undefined and counted apart), with a bootstrap interval over groups. A component
whose within-group correlation is not above 0 cannot teach the target inside a group, whatever
its mean.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

COMPONENTS = ("R_ver", "R_clin", "R_text", "format", "S", "oracle")


def sample_groups(checkpoint: Path, records: list[dict], G: int, seed: int, cfg) -> list[list[str]]:
    """G sampled completions per record (temperature/top_p of the GRPO configs)."""
    import torch

    from trainers.data import _images, _load_image, user_message
    from trainers.generation import _load_for_generation

    model, processor = _load_for_generation(cfg, checkpoint)
    model.eval()
    tok = getattr(processor, "tokenizer", processor)
    torch.manual_seed(seed)
    out: list[list[str]] = []
    per_call = max(1, 200 // G)
    with torch.inference_mode():
        for start in range(0, len(records), per_call):
            batch = records[start : start + per_call]
            texts, images = [], []
            for r in batch:
                imgs = [_load_image(i) for i in _images(r)]
                t = processor.apply_chat_template(
                    [user_message(cfg.data.prompt, len(imgs))], add_generation_prompt=True, tokenize=False
                )
                texts += [t] * G
                images += [imgs] * G
            inputs = processor(text=texts, images=images, return_tensors="pt", padding=True, padding_side="left")
            ids = model.generate(
                **inputs,
                max_new_tokens=cfg.grpo.max_completion_length,
                do_sample=True,
                temperature=cfg.grpo.temperature,
                top_p=cfg.grpo.top_p,
                pad_token_id=tok.pad_token_id,
            )
            comp = tok.batch_decode(ids[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
            out += [comp[i * G : (i + 1) * G] for i in range(len(batch))]
    return out


def score_components(
    completions: list[list[str]], records: list[dict], cases_path: Path, expert_dir: Path, cfg
) -> dict[str, np.ndarray]:
    """(n_groups, G) arrays of every component."""
    from experiments.synthetic_cxr.expert import make_similarity_reward
    from experiments.synthetic_cxr.oracle import OracleF1Reward
    from radeval.rewards.valor import make_clin_reward, make_ver_reward, valor_format_reward

    n, G = len(completions), len(completions[0])
    flat = [c for group in completions for c in group]
    kw = {
        "ground_truth": [r["report"] for r in records for _ in range(G)],
        "image": [str(r["image"]) for r in records for _ in range(G)],
        "id": [r["id"] for r in records for _ in range(G)],
    }
    vc = cfg.valor_config(0)
    ver = np.asarray(make_ver_reward(vc)(None, flat, **kw), float)
    clin = np.asarray(make_clin_reward(vc)(None, flat, **kw), float)
    fmt = np.asarray(valor_format_reward(None, flat, **kw), float)
    sim = np.asarray([np.nan if v is None else v for v in make_similarity_reward(expert_dir)(None, flat, **kw)], float)
    orc = np.asarray([np.nan if v is None else v for v in OracleF1Reward(cases_path)(None, flat, **kw)], float)
    comps = {
        "R_ver": ver,
        "R_clin": clin,
        "R_text": ver + vc.lambda_clin * clin,
        "format": fmt,
        "S": sim,
        "oracle": orc,
    }
    return {k: v.reshape(n, G) for k, v in comps.items()}


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import rankdata

    if np.ptp(a) == 0 or np.ptp(b) == 0 or not (np.isfinite(a).all() and np.isfinite(b).all()):
        return float("nan")
    ra, rb = rankdata(a), rankdata(b)
    return float(np.corrcoef(ra, rb)[0, 1])


def summarize(comps: dict[str, np.ndarray], *, bootstrap: int = 2000, seed: int = 0) -> dict[str, Any]:
    target = comps["oracle"]
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {"n_groups": int(target.shape[0]), "G": int(target.shape[1]), "components": {}}
    for name in COMPONENTS:
        v = comps[name]
        zero = np.array([np.ptp(g) < 1e-9 for g in v])
        row: dict[str, Any] = {
            "mean": float(np.nanmean(v)),
            "zero_variance_share": float(zero.mean()),
        }
        if name != "oracle":
            rho = np.array([_spearman(v[i], target[i]) for i in range(v.shape[0])])
            ok = rho[np.isfinite(rho)]
            row["spearman_defined_groups"] = int(ok.size)
            row["spearman_undefined_share"] = float(1 - ok.size / len(rho))
            if ok.size:
                boots = ok[rng.integers(0, ok.size, (bootstrap, ok.size))].mean(1)
                row["spearman_mean"] = float(ok.mean())
                row["spearman_ci"] = [float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))]
                # the expected share of the gradient that points toward the target: groups with any
                # signal where the reward ranks in the target's direction
                row["share_positive"] = float((ok > 0).mean())
                row["can_teach"] = bool(row["spearman_ci"][0] > 0)
            else:
                row["spearman_mean"] = None
                row["spearman_ci"] = None
                row["can_teach"] = False
        out["components"][name] = row
    return out


def training_draw(cases_path: Path, field_: str, seed: int, out: Path, n_images: int) -> tuple[list[dict], Any]:
    """The seed's fixed draw of training records (pre-flight and probe use the same images) and stage text's config."""
    from experiments.synthetic_cxr.study import CONFIGS, _common
    from trainers.config import load_config
    from trainers.data import load_records

    cfg = load_config(CONFIGS / "text.yaml", _common(cases_path, field_, seed, out), stage="text")
    records = load_records(cfg.data, "train")
    rng = np.random.default_rng(1000 + seed)
    pick = sorted(rng.choice(len(records), size=min(n_images, len(records)), replace=False).tolist())
    return [records[i] for i in pick], cfg


def run_preflight(
    sft_final: Path, cases_path: Path, expert_dir: Path, out: Path, *, seed: int, field_: str, n_images: int, G: int
) -> dict[str, Any]:
    """Sample, score, summarise; writes the raw per-completion scores to ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    records, cfg = training_draw(cases_path, field_, seed, out, n_images)
    comps_text = sample_groups(sft_final, records, G, seed, cfg)
    comps = score_components(comps_text, records, cases_path, expert_dir, cfg)
    with (out / "samples.jsonl").open("w", encoding="utf-8") as fh:
        for i, r in enumerate(records):
            fh.write(
                json.dumps(
                    {"id": r["id"], "completions": comps_text[i], **{k: comps[k][i].tolist() for k in COMPONENTS}}
                )
                + "\n"
            )
    res = summarize(comps)
    res.update(
        seed=seed,
        reference_field=field_,
        distinct_completions_per_group=float(np.mean([len(set(g)) for g in comps_text])),
    )
    return res
