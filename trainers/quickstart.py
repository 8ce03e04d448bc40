"""``radeval train --build-tiny DIR``: everything the offline quickstart trains on, built locally.

Writes into DIR: ``model/`` (a tiny random-weight VLM from :mod:`trainers.tiny`), ``data.jsonl``
+ ``images/`` (toy images and reports, train/test split), and ``sft.yaml``, ``text.yaml``,
``visual.yaml`` whose paths point at them (absolute) and chain the stages
(sft → text → visual, outputs under ``DIR/runs``). Nothing is downloaded. The rewards are the
lexical ones (no model needed) and stage visual's frozen expert is ``trainers.tiny.toy_similarity``.
The run shows the pipeline end to end; the model it trains is random and useless.
"""

from __future__ import annotations

from pathlib import Path

import yaml

_COMMON = {
    "model": {"dtype": "float32"},
    "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
    "data": {"format": "jsonl", "prompt": "Describe the X-ray. Use <report> tags."},
    "generate": {"max_new_tokens": 16, "batch_size": 4},
}
_GRPO = {
    "grpo": {"num_generations": 4, "beta": 0.04, "max_completion_length": 16, "max_prompt_length": 128},
    # lexical terms only: BERTScore off, BLEU-1 stands in for CheXbert (no clinical model offline)
    "rewards": {
        "lambda_lex": 1.0,
        "lambda_sem": 0.0,
        "chexbert": "bleu:bleu_1",
        "lambda_cx": 1.0,
        "lambda_rg": 0.0,
        "k_clin": 2,
    },
}


def _section(base: dict, **extra: dict) -> dict:
    out = {k: dict(v) for k, v in base.items()}
    for k, v in extra.items():
        out.setdefault(k, {}).update(v)
    return out


def build_quickstart(dest: str | Path, *, family: str = "qwen2_5_vl", n_records: int = 12) -> dict[str, Path]:
    """Build model, data and the three stage configs in ``dest``; returns their paths."""
    from trainers.tiny import build_tiny, write_tiny_dataset

    dest = Path(dest).resolve()
    dest.mkdir(parents=True, exist_ok=True)
    model = build_tiny(family, dest / "model")
    data = write_tiny_dataset(dest, n_records, n_test=4)
    runs = dest / "runs"
    base = _section(_COMMON, model={"name_or_path": str(model)}, data={"path": str(data)})
    train = {"batch_size": 4, "per_device_batch_size": 4, "save_steps": 0, "use_cpu": True, "seed": 0}
    stages = {
        "sft": _section(
            base,
            train={**train, "learning_rate": 1e-3, "max_steps": 4, "max_length": 256, "output_dir": str(runs / "sft")},
        ),
        "text": _section(
            {**base, **_GRPO},
            model={"init_from": str(runs / "sft" / "final")},
            train={**train, "batch_size": 2, "learning_rate": 1e-4, "max_steps": 2, "output_dir": str(runs / "text")},
        ),
        "visual": _section(
            {**base, **_GRPO},
            model={"init_from": str(runs / "text" / "final")},
            rewards={"lambda_vis": 0.5, "visual_reward": "trainers.tiny:toy_similarity"},
            train={**train, "batch_size": 2, "learning_rate": 1e-4, "max_steps": 2, "output_dir": str(runs / "visual")},
        ),
    }
    out = {"model": model, "data": data}
    for stage, cfg in stages.items():
        path = dest / f"{stage}.yaml"
        header = (
            f"# {stage}: built by `radeval train --build-tiny {dest}` (tiny random model: shows the pipeline only)\n"
        )
        path.write_text(header + yaml.safe_dump({"stage": stage, **cfg}, sort_keys=False), encoding="utf-8")
        out[stage] = path
    return out
