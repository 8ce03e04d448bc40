"""Python API: ``trainers.train(...)`` runs one stage, ``trainers.generate(...)`` writes predictions.

from trainers import train, generate
sft = train("sft", "trainers/configs/sft.yaml", ["data.path=data/iu_xray/annotation.json"])
text = train("text", "trainers/configs/text.yaml", [f"model.init_from={sft.final_dir}"])
vis = train("visual", "trainers/configs/visual.yaml", [f"model.init_from={text.final_dir}"])
generate("trainers/configs/visual.yaml", checkpoint=vis.final_dir, split="test")
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from trainers.config import StageConfig, load_config
from trainers.stages import StageResult, run_stage


def _config(
    config: StageConfig | str | os.PathLike[str] | None, overrides: Sequence[str] | None, stage: str | None
) -> StageConfig:
    if isinstance(config, StageConfig):
        if overrides:
            raise TypeError("overrides apply to a config file; edit the StageConfig object directly")
        return config
    return load_config(config, list(overrides or []), stage=stage)


def train(
    stage: str | None = None,
    config: StageConfig | str | os.PathLike[str] | None = None,
    overrides: Sequence[str] | None = None,
    *,
    visual_reward: Callable[..., list[float]] | None = None,
    callbacks: list[Any] | None = None,
) -> StageResult:
    """Run one stage (sft, text, visual, dpo, grpo) from a config file (+ ``key=value`` overrides).

    ``visual_reward`` replaces ``rewards.visual_reward`` with a callable in TRL's reward contract
    returning the raw image–report similarity S_i of each completion (stage visual).
    """
    cfg = _config(config, overrides, stage)
    return run_stage(cfg, visual=visual_reward, callbacks=callbacks)


def generate(
    config: StageConfig | str | os.PathLike[str] | None = None,
    overrides: Sequence[str] | None = None,
    *,
    checkpoint: str | os.PathLike[str] | None = None,
    split: str | None = None,
    output: str | os.PathLike[str] | None = None,
) -> Path:
    """Write ``{"id", "prediction", "reference", ...}`` JSONL for a split; returns its path.

    ``checkpoint`` defaults to ``<train.output_dir>/final``.
    """
    from trainers.generation import generate_predictions

    cfg = _config(config, overrides, None)
    ckpt = checkpoint or Path(cfg.train.output_dir) / "final"
    return generate_predictions(cfg, ckpt, split=split, output=output)
