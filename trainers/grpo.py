"""GRPOTrainer with VALOR's rank-normalised advantages (Eq. 7–9 of arXiv 2512.16201).

TRL 1.16 computes advantages inline in the private ``_generate_and_score_completions``: it calls
``_calculate_rewards`` (which gathers every process's ``rewards_per_func`` so whole groups are
present), normalises by group mean/std, slices this process's rows into ``output["advantages"]``
and the loss (``_compute_loss``) reads ``inputs["advantages"]``. There is no advantage hook, so
:class:`ValorGRPOTrainer`

1. keeps the gathered reward matrix when ``_calculate_rewards`` returns it;
2. after ``_generate_and_score_completions`` returns, recomputes the advantages of every
   completion from that matrix and replaces ``output["advantages"]`` with this process's slice:

   * stage text: ``A = RankNorm(R)`` per group, ``R = Σ_j w_j · reward_j`` (R_text and the format
     reward with TRL's ``reward_weights``);
   * stage visual: one reward column holds the raw similarities S_i; per group
     ``r_vis = 1 − (rank(S) − 1)/(G − 1)`` (Eq. 7), ``R_vis = (1 − λ_vis)·R + λ_vis·r_vis`` (Eq. 8),
     ``A = RankNorm(R_vis)`` (Eq. 9) — all after gathering, because TRL may split a group across
     processes when it calls reward functions.

If an upgrade stops routing rewards through these methods the trainer raises instead of silently
training with TRL's advantages; ``tests/test_trainers.py`` also checks that the loss consumed the
rank-normalised values. Tested with trl>=1.16,<1.17 (the [train] extra pins it).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from radeval.rewards.valor import is_clinical_step, per_group, rank_norm, visual_rank_reward, visual_reward

TESTED_TRL = (1, 16)


def _check_trl_version() -> None:
    import trl

    parts = tuple(int(p) for p in trl.__version__.split(".")[:2] if p.isdigit())
    if parts != TESTED_TRL:
        warnings.warn(
            f"radeval's ValorGRPOTrainer overrides private TRL methods and is tested with trl "
            f"{TESTED_TRL[0]}.{TESTED_TRL[1]}.x; found {trl.__version__}. Run tests/test_trainers.py "
            "(its canary fails if the override is bypassed).",
            RuntimeWarning,
            stacklevel=3,
        )


def rank_advantages(
    rewards_per_func: np.ndarray,
    weights: np.ndarray,
    group_size: int,
    *,
    visual_index: int | None = None,
    lambda_vis: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """(advantages, the reward that was ranked) for a gathered (N, F) reward matrix.

    Rows are TRL's layout: contiguous groups of ``group_size``. NaN entries (a reward returned
    None) are skipped in the weighted sum; a row with every text reward NaN is unscorable and
    gets advantage 0 (it ranks last while its group is ranked).
    """
    r = np.asarray(rewards_per_func, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    text_cols = [j for j in range(r.shape[1]) if j != visual_index]
    text = r[:, text_cols]
    unscorable = np.isnan(text).all(axis=1)
    total = np.nansum(text * w[text_cols][None, :], axis=1)
    total[unscorable] = np.nan
    if visual_index is not None:
        r_vis = per_group(visual_rank_reward, r[:, visual_index], group_size)
        total = visual_reward(total, r_vis, lambda_vis)
    adv = per_group(rank_norm, total, group_size)
    adv[unscorable] = 0.0
    return adv, total


def _grpo_base():
    from trl import GRPOTrainer

    return GRPOTrainer


class ValorGRPOTrainer(_grpo_base()):  # type: ignore[misc]
    """``trl.GRPOTrainer`` whose advantages are VALOR's RankNorm (or TRL's, ``advantage="trl"``).

    Extra arguments:
        advantage: ``"rank"`` (Eq. 9) or ``"trl"`` (plain GRPO baseline: TRL's own advantages).
        visual_index: index in ``reward_funcs`` of the raw-similarity reward (stage visual), or None.
        lambda_vis: Eq. 8 mixing weight.
        step_offset: added to TRL's 1-based step to give VALOR's k (carried across stages).
        k_clin: the clinical period, only to log ``valor/clinical`` (the reward itself decides).
    """

    def __init__(
        self,
        *args: Any,
        advantage: str = "rank",
        visual_index: int | None = None,
        lambda_vis: float = 0.5,
        step_offset: int = 0,
        k_clin: int | None = None,
        **kwargs: Any,
    ):
        _check_trl_version()
        if advantage not in ("rank", "trl"):
            raise ValueError(f"advantage must be 'rank' or 'trl', got {advantage!r}")
        if visual_index is not None and advantage != "rank":
            raise ValueError("the visual reward is ranked in the trainer: it needs advantage='rank'")
        super().__init__(*args, **kwargs)
        self.valor_advantage = advantage
        self.valor_visual_index = visual_index
        self.valor_lambda_vis = float(lambda_vis)
        self.valor_step_offset = int(step_offset)
        self.valor_k_clin = k_clin
        self._valor_rewards = None
        #: the last generation batch's advantages for all processes (float64), for inspection/tests
        self.valor_last_advantages: np.ndarray | None = None
        self.valor_last_rewards: np.ndarray | None = None

    @property
    def valor_k(self) -> int:
        """VALOR's k for the step being formed: 1-based optimizer step plus the carried offset."""
        return int(self.state.global_step) + 1 + self.valor_step_offset

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        self._valor_rewards = rewards  # gathered over processes: whole groups
        return rewards

    def _generate_and_score_completions(self, inputs):
        self._valor_rewards = None
        output = super()._generate_and_score_completions(inputs)
        mode = "train" if self.model.training else "eval"
        k = self.valor_k
        self._metrics[mode]["valor/k"].append(float(k))
        if self.valor_k_clin:
            self._metrics[mode]["valor/clinical"].append(float(is_clinical_step(k, self.valor_k_clin)))
        if self._valor_rewards is not None:
            self.valor_last_rewards = self._valor_rewards.detach().double().cpu().numpy()
        if self.valor_advantage == "trl":
            return output
        if self._valor_rewards is None:
            raise RuntimeError(
                "ValorGRPOTrainer: TRL did not compute rewards through _calculate_rewards, so RankNorm "
                "advantages cannot be applied; this TRL version is not supported (tested: trl 1.16)"
            )
        import torch

        group = self.num_generations if mode == "train" else self.num_generations_eval
        rewards = self.valor_last_rewards
        weights = self.reward_weights.detach().float().cpu().numpy()
        adv, ranked = rank_advantages(
            rewards, weights, group, visual_index=self.valor_visual_index, lambda_vis=self.valor_lambda_vis
        )
        local = output["advantages"]
        n_local = local.shape[0]
        start = self.accelerator.process_index * n_local
        new_local = torch.as_tensor(adv[start : start + n_local], dtype=local.dtype, device=local.device)
        if new_local.shape != local.shape:
            raise RuntimeError(
                f"ValorGRPOTrainer: advantages of shape {tuple(local.shape)} from TRL vs {tuple(new_local.shape)}; "
                "this TRL version is not supported (tested: trl 1.16)"
            )
        output["advantages"] = new_local
        # TRL logged its own advantages for this batch: replace them in the completions log
        logged = self._logs["advantages"]
        for _ in range(min(len(adv), len(logged))):
            logged.pop()
        logged.extend(adv.tolist())
        self._metrics[mode]["valor/ranked_reward"].append(
            float(np.nanmean(ranked)) if np.isfinite(ranked).any() else 0.0
        )
        self.valor_last_advantages = adv
        return output
