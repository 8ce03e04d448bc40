"""Rewards for RL trainers: every metric key as a TRL reward, VALOR's composites, RadVLM-GRPO's.

``radeval.rewards.<key>`` is the default-options reward for any registered metric key
(``bleu_4``, ``rouge_l``, ``chexpert_rules_f1_sample``, ``bertscore_f1``...), so TRL's CLI can load it by
dotted path: ``trl grpo --reward_funcs radeval.rewards.bleu_4``. They are built on first access
from the registry, so ``import radeval.rewards`` imports no model code (no torch).

Every reward is an instance of a module-level class (:class:`Reward`: :class:`MetricReward`,
:class:`AsyncMetricReward`, :class:`ValorReward`, :class:`FormatReward`, :class:`BoxReward`, the
service client :class:`radeval.rewards.client.RemoteReward`), holding settings only, so it
pickles (TRL's ``AsyncGRPOTrainer``, multiprocessing, Ray) and a copy scores the same. A pair
that cannot be scored is ``None``; an empty completion scores the key's worst value
(``empty="worst"``, :mod:`radeval.rewards.empty`).

* :func:`make_reward` — a reward for any metric/key with options (``radeval.rewards.trl``).
* :func:`format_reward`, :func:`extract_report` — the ``<report>…</report>`` rule.
* VALOR (``radeval.rewards.valor``): :class:`ValorConfig`, ``valor_text_reward`` (R_text, Eq. 5),
  ``valor_ver_reward`` (Eq. 3), ``valor_clin_reward`` (Eq. 4), ``valor_format_reward``, and the
  group functions ``visual_rank_reward`` (Eq. 7), ``visual_reward`` (Eq. 8), ``rank_norm`` (Eq. 9),
  ``valor_advantages`` for trainers.
* RadVLM-GRPO (``radeval.rewards.boxes``): ``box_ap50_reward``, and ``radvlm_radcliq_reward`` /
  :func:`make_radcliq_reward` (−RadCliQ-v1, −3 for empty/failed; needs a registered ``radcliq``).
  Rewards for lower-is-better keys return the value as is and warn once: negate with
  ``make_reward(..., transform=lambda v: -v)``.
* Other trainers: ``radeval.rewards.verl`` (verl's ``compute_score``, and
  ``compute_score_remote`` for its async reward loop) and the reward service
  (``radeval serve rewards start``, :mod:`radeval.rewards.service`: OpenRLHF's ``/get_reward``,
  verl and the async TRL client :class:`radeval.rewards.client.RemoteReward`).
"""

from __future__ import annotations

from radeval.rewards.base import AsyncReward, Reward
from radeval.rewards.boxes import BoxReward, box_ap50_reward, make_box_reward, make_radcliq_reward
from radeval.rewards.extract import FormatReward, extract_report, format_reward, is_well_formed
from radeval.rewards.trl import AsyncMetricReward, MetricReward, make_reward
from radeval.rewards.valor import (
    ValorConfig,
    ValorReward,
    make_clin_reward,
    make_text_reward,
    make_valor_rewards,
    make_ver_reward,
    rank_norm,
    valor_advantages,
    valor_format_reward,
    visual_rank_reward,
    visual_reward,
)

__all__ = [
    "AsyncMetricReward",
    "AsyncReward",
    "BoxReward",
    "FormatReward",
    "MetricReward",
    "Reward",
    "ValorConfig",
    "ValorReward",
    "box_ap50_reward",
    "extract_report",
    "format_reward",
    "is_well_formed",
    "make_box_reward",
    "make_clin_reward",
    "make_radcliq_reward",
    "make_reward",
    "make_text_reward",
    "make_valor_rewards",
    "make_ver_reward",
    "rank_norm",
    "valor_advantages",
    "valor_format_reward",
    "visual_rank_reward",
    "visual_reward",
]


def __getattr__(name: str):
    if name.startswith("_"):
        raise AttributeError(name)
    from radeval.rewards import valor
    from radeval.rewards.trl import default_reward

    if name in ("valor_text_reward", "valor_ver_reward", "valor_clin_reward"):
        return getattr(valor, name)
    if name == "radvlm_radcliq_reward":  # needs a registered "radcliq" metric
        return make_radcliq_reward()  # settings only: building one is cheap, and equal each time
    try:
        return default_reward(name)
    except AttributeError:
        raise AttributeError(f"module 'radeval.rewards' has no attribute {name!r}") from None


def __dir__() -> list[str]:
    from radeval.rewards.trl import reward_keys

    return sorted(
        set(globals())
        | set(reward_keys())
        | {"valor_text_reward", "valor_ver_reward", "valor_clin_reward", "radvlm_radcliq_reward"}
    )
