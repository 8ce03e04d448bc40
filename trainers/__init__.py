"""VALOR training plug-in for radeval (the ``[train]`` extra): SFT warm-up, GRPO stage text
(R_text + format, RankNorm advantages, LoRA) and stage visual (R_vis, projector only) on TRL,
plus the SFT / DPO / plain-GRPO baselines. See trainers/README.md.

Importing ``trainers`` is cheap; torch/transformers/trl load when a stage runs.
"""

from __future__ import annotations

from trainers.config import StageConfig, load_config

__all__ = ["StageConfig", "load_config", "train", "generate"]


def train(*args, **kwargs):
    """See :func:`trainers.api.train`."""
    from trainers.api import train as _train

    return _train(*args, **kwargs)


def generate(*args, **kwargs):
    """See :func:`trainers.api.generate`."""
    from trainers.api import generate as _generate

    return _generate(*args, **kwargs)
