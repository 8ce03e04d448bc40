"""VALOR's composite rewards (arXiv 2512.16201, §4.2 and Algorithm 1) with DESIGN's definitions.

Equations, as implemented (shared/DESIGN.md fixes what the paper leaves open):

* Eq. 3  ``R_ver = λ_lex·(BLEU-4 + ROUGE-L) + λ_sem·BERTScore``, with λ_lex, λ_sem ≥ 0 and
  λ_lex + λ_sem = 1.
* Eq. 4  ``R_clin = λ_cx·CheXbert-F1 + λ_rg·RadGraph-F1``.
* Eq. 5  ``R_text = R_ver + λ_clin·R_clin`` when ``k % k_clin == 0``, else ``R_ver``; k is the
  1-based optimizer step (TRL's ``trainer_state.global_step + 1``) plus ``step_offset`` (stage
  visual sets it to stage text's last k so k runs on across stages). The paper prints
  "if k = k_clin" but its text says "every k_clin updates"; we follow the text.
* Eq. 7  ``r_vis_i = 1 − (rank_i − 1)/(G − 1)``, rank 1 = highest similarity, ties get their
  average rank (an all-equal group gives 0.5 each), G = 1 → 0.5.
* Eq. 8  ``R_vis = (1 − λ_vis)·R_text + λ_vis·r_vis``, λ_vis ∈ [0, 1].
* Eq. 9  RankNorm, not defined in the paper. Ours: centred ranks ``A_i = 1 − 2·(rank_i − 1)/(G − 1)``
  in [−1, 1] (rank 1 = largest), ties averaged, an all-equal group or G = 1 → 0.

Non-finite values (a failed image, say) rank below every finite one, tied among themselves.

Ranks need whole groups, and TRL calls reward functions per process on a slice that may split a
group; so the visual reward is the raw cosine S_i and Eq. 7–9 run in the trainer after gathering.
The group functions here take one group (or a flat array plus ``group_size``, groups contiguous,
TRL's layout).

Defaults for the constants the paper leaves open (ours; all settable in :class:`ValorConfig`):
λ_lex = λ_sem = 0.5 (equal weight under the paper's sum-to-one constraint), λ_cx = λ_rg = 0.5,
λ_clin = 1.0, k_clin = 10 (the paper reports only "moderate" beats "dense" and "rare"),
λ_vis = 0.5 (the paper's best, Table 3 / Fig. 6a). The terms' metrics are registry names:
BLEU-4 ``bleu:bleu_4``, ROUGE-L ``rouge_l:rouge_l``, BERTScore ``bertscore:bertscore_f1``,
CheXbert ``chexbert:chexbert_f1_sample`` (per-report F1 pooled over the 14 observations;
a normal/normal pair scores 1), RadGraph ``radgraph:radgraph_partial`` (RG_ER). A term whose weight
is 0 is never computed (e.g. ``lambda_rg=0`` needs no RadGraph model).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from radeval.errors import ConfigError
from radeval.rewards.extract import format_reward

# ----- group functions (Eq. 7–9) -----------------------------------------------------------------


def average_ranks(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """1-based ranks, rank 1 = largest, ties averaged; non-finite values rank last (tied)."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    n = v.size
    if n == 0:
        return np.zeros(0)
    finite = np.isfinite(v)
    # sort key: finite values descending, then all non-finite together at the end
    key = np.where(finite, -v, np.inf)
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    ranks = np.empty(n, dtype=np.float64)
    i = 0
    while i < n:
        j = i
        while j + 1 < n and sorted_key[j + 1] == sorted_key[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0  # average of 1-based positions i+1..j+1
        i = j + 1
    return ranks


def visual_rank_reward(similarities: Sequence[float] | np.ndarray) -> np.ndarray:
    """Eq. 7 over one group: ``1 − (rank − 1)/(G − 1)``; ties averaged; G = 1 → 0.5."""
    s = np.asarray(similarities, dtype=np.float64).reshape(-1)
    g = s.size
    if g == 0:
        return np.zeros(0)
    if g == 1:
        return np.array([0.5])
    return 1.0 - (average_ranks(s) - 1.0) / (g - 1)


def rank_norm(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Eq. 9 (ours) over one group: centred ranks ``1 − 2·(rank − 1)/(G − 1)`` in [−1, 1].

    Ties averaged; G = 1 or an all-equal group → all 0. The result has zero mean, so a group
    pushes toward its best member and away from its worst.
    """
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    g = v.size
    if g <= 1:
        return np.zeros(g)
    return 1.0 - 2.0 * (average_ranks(v) - 1.0) / (g - 1)


def visual_reward(r_text: Any, r_vis: Any, lambda_vis: float) -> np.ndarray:
    """Eq. 8: ``(1 − λ_vis)·R_text + λ_vis·r_vis`` (elementwise)."""
    _check_unit("lambda_vis", lambda_vis)
    return (1.0 - lambda_vis) * np.asarray(r_text, dtype=np.float64) + lambda_vis * np.asarray(r_vis, dtype=np.float64)


def per_group(fn: Callable[[np.ndarray], np.ndarray], values: Any, group_size: int) -> np.ndarray:
    """Apply a group function to contiguous groups of ``group_size`` (TRL's completion layout)."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if not isinstance(group_size, (int, np.integer)) or isinstance(group_size, bool) or group_size < 1:
        raise ConfigError(f"group_size must be a positive integer, got {group_size!r}")
    if v.size % group_size:
        raise ConfigError(f"{v.size} values do not split into groups of {group_size}")
    return np.concatenate([fn(v[i : i + group_size]) for i in range(0, v.size, group_size)]) if v.size else v


def valor_advantages(r_text: Any, similarities: Any = None, *, group_size: int, lambda_vis: float = 0.5) -> np.ndarray:
    """Algorithm 1's advantages for a flat batch of whole groups.

    Stage text (``similarities is None``): ``RankNorm(R_text)`` per group. Stage visual:
    ``RankNorm(R_vis)`` with ``R_vis = (1 − λ_vis)·R_text + λ_vis·r_vis`` and r_vis from Eq. 7.
    """
    if similarities is None:
        return per_group(rank_norm, r_text, group_size)
    r_vis = per_group(visual_rank_reward, similarities, group_size)
    return per_group(rank_norm, visual_reward(r_text, r_vis, lambda_vis), group_size)


# ----- scalar terms (Eq. 3–5) ----------------------------------------------------------------------


def verifiable_reward(bleu4: Any, rouge_l: Any, bertscore: Any, lambda_lex: float, lambda_sem: float):
    """Eq. 3: ``λ_lex·(BLEU-4 + ROUGE-L) + λ_sem·BERTScore``."""
    return lambda_lex * (np.asarray(bleu4, float) + np.asarray(rouge_l, float)) + lambda_sem * np.asarray(
        bertscore, float
    )


def clinical_reward(s_cx: Any, s_rg: Any, lambda_cx: float, lambda_rg: float):
    """Eq. 4: ``λ_cx·s_cx + λ_rg·s_rg``."""
    return lambda_cx * np.asarray(s_cx, float) + lambda_rg * np.asarray(s_rg, float)


def is_clinical_step(k: int, k_clin: int) -> bool:
    """Whether step k injects the clinical reward (Eq. 5 read as "every k_clin updates")."""
    return k % k_clin == 0


def text_reward(r_ver: Any, r_clin: Any, k: int, k_clin: int, lambda_clin: float):
    """Eq. 5: ``R_ver + λ_clin·R_clin`` on clinical steps, else ``R_ver``."""
    r_ver = np.asarray(r_ver, float)
    if is_clinical_step(k, k_clin):
        return r_ver + lambda_clin * np.asarray(r_clin, float)
    return r_ver


# ----- configuration -------------------------------------------------------------------------------


def _check_weight(name: str, v: Any) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        raise ConfigError(f"VALOR {name} must be a finite number >= 0, got {v!r}")


def _check_unit(name: str, v: Any) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not 0 <= v <= 1:
        raise ConfigError(f"VALOR {name} must be a number in [0, 1], got {v!r}")


def _parse_term(name: str, spec: Any) -> tuple[str, str | None]:
    if not isinstance(spec, str) or not spec.strip() or spec.count(":") > 1:
        raise ConfigError(f"VALOR {name} must be 'metric' or 'metric:key', got {spec!r}")
    metric, _, key = spec.strip().partition(":")
    if not metric:
        raise ConfigError(f"VALOR {name} must name a metric, got {spec!r}")
    return metric, (key or None)


@dataclass(frozen=True)
class ValorConfig:
    """Constants of VALOR's rewards; defaults are ours where the paper gives none (module doc)."""

    lambda_lex: float = 0.5
    lambda_sem: float = 0.5
    lambda_cx: float = 0.5
    lambda_rg: float = 0.5
    lambda_clin: float = 1.0
    k_clin: int = 10
    lambda_vis: float = 0.5
    #: added to TRL's step so k runs on across stages (stage visual: stage text's last k)
    step_offset: int = 0
    bleu4: str = "bleu:bleu_4"
    rouge_l: str = "rouge_l:rouge_l"
    bertscore: str = "bertscore:bertscore_f1"
    chexbert: str = "chexbert:chexbert_f1_sample"
    radgraph: str = "radgraph:radgraph_partial"
    #: metric name -> options for radeval.get_metric (e.g. {"bleu": {"tokenize": "r2gen-iu"}})
    metric_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    reference_column: str = "ground_truth"
    on_error: float = 0.0

    def __post_init__(self) -> None:
        for name in ("lambda_lex", "lambda_sem", "lambda_cx", "lambda_rg", "lambda_clin"):
            _check_weight(name, getattr(self, name))
        if abs(self.lambda_lex + self.lambda_sem - 1.0) > 1e-9:
            raise ConfigError(
                f"VALOR lambda_lex + lambda_sem must be 1 (Eq. 3), got {self.lambda_lex} + {self.lambda_sem}"
            )
        _check_unit("lambda_vis", self.lambda_vis)
        if isinstance(self.k_clin, bool) or not isinstance(self.k_clin, (int, np.integer)) or self.k_clin < 1:
            raise ConfigError(f"VALOR k_clin must be an integer >= 1, got {self.k_clin!r}")
        if (
            isinstance(self.step_offset, bool)
            or not isinstance(self.step_offset, (int, np.integer))
            or self.step_offset < 0
        ):
            raise ConfigError(f"VALOR step_offset must be an integer >= 0, got {self.step_offset!r}")
        for name in ("bleu4", "rouge_l", "bertscore", "chexbert", "radgraph"):
            _parse_term(name, getattr(self, name))
        if not isinstance(self.metric_options, dict) or not all(
            isinstance(k, str) and isinstance(v, dict) for k, v in self.metric_options.items()
        ):
            raise ConfigError("VALOR metric_options must map metric names to option dicts")
        if not isinstance(self.reference_column, str) or not self.reference_column:
            raise ConfigError(f"VALOR reference_column must be a column name, got {self.reference_column!r}")
        if (
            isinstance(self.on_error, bool)
            or not isinstance(self.on_error, (int, float))
            or not math.isfinite(self.on_error)
        ):
            raise ConfigError(f"VALOR on_error must be a finite number, got {self.on_error!r}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ValorConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown VALOR setting(s) {unknown}; known: {sorted(known)}")
        return cls(**d)

    def terms(self, which: str) -> list[tuple[str, float, str, str | None]]:
        """(term, weight, metric, key) of R_ver (``"ver"``) or R_clin (``"clin"``)."""
        if which == "ver":
            spec = [("bleu4", self.lambda_lex), ("rouge_l", self.lambda_lex), ("bertscore", self.lambda_sem)]
        elif which == "clin":
            spec = [("chexbert", self.lambda_cx), ("radgraph", self.lambda_rg)]
        else:
            raise ValueError(which)
        return [(t, w, *_parse_term(t, getattr(self, t))) for t, w in spec]


# ----- TRL reward callables ------------------------------------------------------------------------


class _Terms:
    """Resolved (weight, metric, key) of a weighted sum; zero-weight terms are dropped."""

    def __init__(self, config: ValorConfig, which: str):
        from radeval.rewards.trl import resolve_key

        self.items = []
        for _term, weight, metric, key in config.terms(which):
            if weight == 0:
                continue
            metric, key = resolve_key(metric, key)
            self.items.append((float(weight), metric, key))

    def values(self, config: ValorConfig, hyps, refs, images, reward_name, kwargs) -> np.ndarray:
        """Weighted sum per pair; NaN where any needed term failed."""
        from radeval.rewards.trl import _log, score_pairs, shared_metric

        total = np.zeros(len(hyps))
        for weight, metric_name, key in self.items:
            metric = shared_metric(metric_name, config.metric_options.get(metric_name))
            imgs = images if getattr(metric, "needs_images", False) else None
            vals, _failures = score_pairs(metric, hyps, refs, imgs, reward_name=reward_name)
            col = np.array([np.nan if v is None else v.get(key, np.nan) for v in vals], dtype=np.float64)
            bad = int(np.sum(~np.isfinite(col)))
            if bad:
                _log(kwargs, f"radeval/errors/{reward_name}/{metric_name}.{key}", bad)
            total = total + weight * col
        return total


def _composite(config: ValorConfig, which: str, name: str) -> Callable[..., list[float]]:
    """R_ver, R_clin or R_text as a TRL reward."""
    from radeval.preflight import check_models, valor_metrics
    from radeval.rewards.extract import extract_report
    from radeval.rewards.trl import _log, images_from, references

    check_models(valor_metrics(config, which))  # every missing model now, not at the first GRPO step
    ver = _Terms(config, "ver") if which in ("ver", "text") else None
    clin = _Terms(config, "clin") if which in ("clin", "text") else None
    on_error = float(config.on_error)

    def reward(
        prompts: Sequence[Any] | None = None,
        completions: Sequence[Any] = (),
        completion_ids: Sequence[Any] | None = None,
        **kwargs: Any,
    ) -> list[float]:
        n = len(completions)
        if n == 0:
            return []
        refs = references(kwargs, config.reference_column, n)
        hyps = [extract_report(c) for c in completions]
        idx = [i for i in range(n) if refs[i] is not None]
        out = np.full(n, on_error)
        if not idx:
            return out.tolist()
        h = [hyps[i] for i in idx]
        r = [refs[i] for i in idx]
        imgs = images_from(kwargs, n)
        im = None if imgs is None else [imgs[i] for i in idx]
        if which == "ver":
            vals = ver.values(config, h, r, im, name, kwargs)
        elif which == "clin":
            vals = clin.values(config, h, r, im, name, kwargs)
        else:
            k = _step(kwargs, config)
            r_ver = ver.values(config, h, r, im, name, kwargs)
            _log(kwargs, "valor/r_ver", float(np.nanmean(r_ver)) if np.isfinite(r_ver).any() else 0.0)
            if is_clinical_step(k, config.k_clin) and clin.items:
                r_clin = clin.values(config, h, r, im, name, kwargs)
                _log(kwargs, "valor/r_clin", float(np.nanmean(r_clin)) if np.isfinite(r_clin).any() else 0.0)
                vals = text_reward(r_ver, r_clin, k, config.k_clin, config.lambda_clin)
            else:
                vals = r_ver
        vals = np.where(np.isfinite(vals), vals, on_error)
        out[idx] = vals
        return out.tolist()

    reward.__name__ = name
    reward.__qualname__ = name
    reward.config = config  # type: ignore[attr-defined]
    reward.reference_column = config.reference_column  # type: ignore[attr-defined]
    return reward


def _step(kwargs: dict[str, Any], config: ValorConfig) -> int:
    from radeval.rewards.trl import current_step

    return current_step(kwargs, config.step_offset)


def make_ver_reward(config: ValorConfig | None = None, *, name: str = "valor_ver"):
    """R_ver (Eq. 3) as a TRL reward."""
    return _composite(config or ValorConfig(), "ver", name)


def make_clin_reward(config: ValorConfig | None = None, *, name: str = "valor_clin"):
    """R_clin (Eq. 4) as a TRL reward (every step; R_text injects it periodically)."""
    return _composite(config or ValorConfig(), "clin", name)


def make_text_reward(config: ValorConfig | None = None, *, name: str = "valor_text"):
    """R_text (Eq. 5) as a TRL reward: R_ver every step, + λ_clin·R_clin when k % k_clin == 0.

    It logs the batch means of R_ver (every step) and R_clin (clinical steps) through TRL's
    ``log_metric`` as ``valor/r_ver`` and ``valor/r_clin``.
    """
    return _composite(config or ValorConfig(), "text", name)


def make_valor_rewards(config: ValorConfig | None = None) -> list[Callable]:
    """Stage-text reward functions for ``GRPOTrainer(reward_funcs=...)``: R_text and the format reward."""
    config = config or ValorConfig()
    return [make_text_reward(config), valor_format_reward]


def valor_format_reward(
    prompts: Sequence[Any] | None = None,
    completions: Sequence[Any] = (),
    completion_ids: Sequence[Any] | None = None,
    **kwargs: Any,
) -> list[float]:
    """VALOR's format reward: 1 for exactly one well-formed ``<report>…</report>`` span, else 0."""
    return format_reward(prompts, completions, completion_ids, **kwargs)


valor_format_reward.__name__ = "valor_format"

_DEFAULTS: dict[str, Callable] = {}
_FACTORIES = {
    "valor_text_reward": make_text_reward,
    "valor_ver_reward": make_ver_reward,
    "valor_clin_reward": make_clin_reward,
}


def __getattr__(name: str):
    # default-config composites are built on first access: building resolves metric names
    # against the registry, and RadGraph may not be registered in a given install
    if name in _FACTORIES:
        if name not in _DEFAULTS:
            _DEFAULTS[name] = _FACTORIES[name]()
        return _DEFAULTS[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
