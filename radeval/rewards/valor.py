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

Unscored members (``None`` from a reward, NaN after TRL's conversion: a failed image or metric)
are left out of the ranks: Eq. 7 gives them NaN, Eq. 8 keeps NaN, and RankNorm gives them a
neutral advantage of 0 while ranking the scored members among themselves (G' = scored count).
Ranking them last instead would be the strongest push away from a completion that simply could
not be scored.

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
from radeval.rewards.base import Reward
from radeval.rewards.extract import FormatReward

# ----- group functions (Eq. 7–9) -----------------------------------------------------------------


def _floats(values: Any) -> np.ndarray:
    """A flat float64 array; ``None`` (TRL's unscored) and non-finite values become NaN."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    return np.where(np.isfinite(v), v, np.nan)


def average_ranks(values: Sequence[float | None] | np.ndarray) -> np.ndarray:
    """1-based ranks among the scored values, rank 1 = largest, ties averaged; unscored → NaN."""
    v = _floats(values)
    ranks = np.full(v.size, np.nan)
    scored = np.flatnonzero(np.isfinite(v))
    if scored.size == 0:
        return ranks
    key = -v[scored]
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    sub = np.empty(scored.size, dtype=np.float64)
    i = 0
    while i < scored.size:
        j = i
        while j + 1 < scored.size and sorted_key[j + 1] == sorted_key[i]:
            j += 1
        sub[order[i : j + 1]] = (i + j) / 2.0 + 1.0  # average of 1-based positions i+1..j+1
        i = j + 1
    ranks[scored] = sub
    return ranks


def visual_rank_reward(similarities: Sequence[float | None] | np.ndarray) -> np.ndarray:
    """Eq. 7 over one group: ``1 − (rank − 1)/(G' − 1)`` over the G' scored members.

    Ties averaged; one scored member → 0.5. An unscored similarity (None/NaN: the image or the
    expert failed) gets NaN — it stays unscored through Eq. 8 and gets a neutral advantage in
    :func:`rank_norm` — and is not counted in G'.
    """
    s = _floats(similarities)
    ranks = average_ranks(s)
    g = int(np.isfinite(s).sum())
    if g <= 1:
        return np.where(np.isfinite(s), 0.5, np.nan)
    return 1.0 - (ranks - 1.0) / (g - 1)


def rank_norm(values: Sequence[float | None] | np.ndarray) -> np.ndarray:
    """Eq. 9 (ours) over one group: centred ranks ``1 − 2·(rank − 1)/(G' − 1)`` in [−1, 1].

    Only the G' scored members are ranked; an unscored member (None/NaN reward) gets a neutral
    advantage of 0 — not the worst rank, which would push the policy away from a completion
    nobody could score. Ties averaged; G' ≤ 1 or an all-equal scored set → all 0. The scored
    advantages have zero mean, so a group pushes toward its best member and away from its worst.

    Example (G = 4, one unscored):

    >>> rank_norm([0.9, None, 0.1, 0.5]).tolist()
    [1.0, 0.0, -1.0, 0.0]
    """
    v = _floats(values)
    ranks = average_ranks(v)
    g = int(np.isfinite(v).sum())
    if g <= 1:
        return np.zeros(v.size)
    return np.where(np.isfinite(v), 1.0 - 2.0 * (ranks - 1.0) / (g - 1), 0.0)


def visual_reward(r_text: Any, r_vis: Any, lambda_vis: float) -> np.ndarray:
    """Eq. 8: ``(1 − λ_vis)·R_text + λ_vis·r_vis`` (elementwise)."""
    _check_unit("lambda_vis", lambda_vis)
    return (1.0 - lambda_vis) * _floats(r_text) + lambda_vis * _floats(r_vis)


def per_group(fn: Callable[[np.ndarray], np.ndarray], values: Any, group_size: int) -> np.ndarray:
    """Apply a group function to contiguous groups of ``group_size`` (TRL's completion layout).

    ``None`` entries (unscored) reach ``fn`` as NaN; :func:`rank_norm` makes them 0.
    """
    v = _floats(values)
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
    #: value of a pair that cannot be scored; None (default) = unscored, neutral in the rank steps
    on_error: float | None = None
    #: reward calls per optimizer step, for counting k where no step is passed (ValorReward)
    calls_per_step: int = 1

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
        if self.on_error is not None and (
            isinstance(self.on_error, bool)
            or not isinstance(self.on_error, (int, float))
            or not math.isfinite(self.on_error)
        ):
            raise ConfigError(f"VALOR on_error must be a finite number or None, got {self.on_error!r}")
        if (
            isinstance(self.calls_per_step, bool)
            or not isinstance(self.calls_per_step, (int, np.integer))
            or self.calls_per_step < 1
        ):
            raise ConfigError(f"VALOR calls_per_step must be an integer >= 1, got {self.calls_per_step!r}")

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


def _term_column(config: ValorConfig, metric_name: str, key: str, hyps, refs, images, reward_name, kwargs):
    """One term's values per pair: the key's worst value for empty reports, NaN where scoring failed."""
    from radeval.rewards.empty import WORST, resolve_empty
    from radeval.rewards.trl import _log, score_pairs, shared_metric

    n = len(hyps)
    col = np.full(n, np.nan)
    metric = shared_metric(metric_name, config.metric_options.get(metric_name))
    empty_value = resolve_empty(WORST, metric, key)
    todo = [i for i in range(n) if empty_value is None or hyps[i]]
    for i in range(n):
        if empty_value is not None and not hyps[i]:
            col[i] = empty_value
    if todo:
        imgs = images if getattr(metric, "needs_images", False) else None
        vals, _failures = score_pairs(
            metric,
            [hyps[i] for i in todo],
            [refs[i] for i in todo],
            None if imgs is None else [imgs[i] for i in todo],
            reward_name=reward_name,
        )
        col[todo] = [np.nan if v is None else v.get(key, np.nan) for v in vals]
        col[~np.isfinite(col)] = np.nan
    bad = int(np.sum(np.isnan(col)))
    if bad:
        _log(kwargs, f"radeval/errors/{reward_name}/{metric_name}.{key}", bad)
    return col


def _weighted(config: ValorConfig, which: str, hyps, refs, images, reward_name, kwargs) -> np.ndarray:
    """Eq. 3 or Eq. 4 per pair; NaN where any needed (non-zero-weight) term failed."""
    from radeval.rewards.trl import resolve_key

    total = np.zeros(len(hyps))
    for _term, weight, metric_name, key in config.terms(which):
        if weight == 0:
            continue  # a zero-weight term is never computed (no model needed)
        metric_name, key = resolve_key(metric_name, key)
        total = total + float(weight) * _term_column(config, metric_name, key, hyps, refs, images, reward_name, kwargs)
    return total


def _mean_or_none(values: np.ndarray) -> float | None:
    return float(np.nanmean(values)) if np.isfinite(values).any() else None


class ValorReward(Reward):
    """R_ver (Eq. 3), R_clin (Eq. 4) or R_text (Eq. 5) as a picklable TRL reward.

    Settings: a :class:`ValorConfig`, which composite (``"ver"``, ``"clin"``, ``"text"``) and the
    reward's name. A pair with a failed (non-zero-weight) term is unscored: ``config.on_error``,
    default ``None``. An empty report gets each term's worst value (0 for every default term).

    Steps (Eq. 5). k = ``trainer_state.global_step + 1 + step_offset`` when TRL passes
    ``trainer_state``, else ``global_step + 1 + step_offset`` from a ``global_step`` column /
    value (verl's ``extra_info``), else — a process that gives rewards no step, such as TRL's
    ``AsyncGRPOTrainer`` rollout worker — the reward counts its own calls in this process:
    k = ``ceil(calls / config.calls_per_step) + step_offset``, so with ``calls_per_step`` set to
    the number of reward calls that make one optimizer step (the async worker calls once per
    group: prompts per step) the clinical term comes every ``k_clin`` steps as in the trainer.
    The counter lives in the process (it is not pickled; a fresh copy starts at call 1).

    Logging. With TRL's ``log_metric``, R_text logs the batch means ``valor/r_ver`` and, on
    clinical steps, ``valor/r_clin``, and ``valor/clinical_step`` (1/0); with ``log_extra`` it
    adds per-completion columns ``valor/r_ver`` and ``valor/r_clin`` (None off clinical steps) to
    TRL's completions table.
    """

    def __init__(self, config: ValorConfig | None = None, which: str = "text", name: str | None = None):
        if which not in ("ver", "clin", "text"):
            raise ConfigError(f"VALOR composite must be 'ver', 'clin' or 'text', got {which!r}")
        config = config or ValorConfig()
        super().__init__(name or f"valor_{which}")
        self.config = config
        self.which = which
        # resolve the terms now so a bad metric name fails when the reward is built
        from radeval.rewards.trl import resolve_key

        for part in ("ver", "clin") if which == "text" else (which,):
            for _t, weight, metric, key in config.terms(part):
                if weight:
                    resolve_key(metric, key)

    @property
    def reference_column(self) -> str:
        return self.config.reference_column

    def step(self, kwargs: dict[str, Any]) -> int:
        """k for this call (class docstring); counts the call when no step is given."""
        from radeval.rewards.trl import step_from

        step = step_from(kwargs)
        if step is not None:
            return step + 1 + self.config.step_offset
        with self._rt_lock():
            calls = self.__dict__.get("_rt_calls", 0) + 1
            self.__dict__["_rt_calls"] = calls
        return -(-calls // self.config.calls_per_step) + self.config.step_offset

    def __call__(
        self,
        prompts: Sequence[Any] | None = None,
        completions: Sequence[Any] = (),
        completion_ids: Sequence[Any] | None = None,
        **kwargs: Any,
    ) -> list[float | None]:
        from radeval.rewards.extract import extract_report
        from radeval.rewards.trl import images_from, references

        config = self.config
        name = self.__name__
        n = len(completions)
        if n == 0:
            return []
        refs = references(kwargs, config.reference_column, n)
        hyps = [extract_report(c) for c in completions]
        idx = [i for i in range(n) if refs[i] is not None]
        vals_all = np.full(n, np.nan)
        if idx:
            h = [hyps[i] for i in idx]
            r = [refs[i] for i in idx]
            imgs = images_from(kwargs, n)
            im = None if imgs is None else [imgs[i] for i in idx]
            if self.which == "ver":
                vals = _weighted(config, "ver", h, r, im, name, kwargs)
            elif self.which == "clin":
                vals = _weighted(config, "clin", h, r, im, name, kwargs)
            else:
                k = self.step(kwargs)
                r_ver = _weighted(config, "ver", h, r, im, name, kwargs)
                clinical = is_clinical_step(k, config.k_clin) and config.lambda_clin > 0
                r_clin = _weighted(config, "clin", h, r, im, name, kwargs) if clinical else None
                vals = r_ver if r_clin is None else text_reward(r_ver, r_clin, k, config.k_clin, config.lambda_clin)
                self._log_parts(kwargs, idx, n, r_ver, r_clin)
            vals_all[idx] = vals
        default = config.on_error
        return [float(v) if math.isfinite(v) else default for v in vals_all]

    @staticmethod
    def _log_parts(kwargs, idx, n, r_ver, r_clin) -> None:
        from radeval.rewards.base import log_extra
        from radeval.rewards.trl import _log

        m = _mean_or_none(r_ver)
        if m is not None:
            _log(kwargs, "valor/r_ver", m)
        _log(kwargs, "valor/clinical_step", 1.0 if r_clin is not None else 0.0)
        if r_clin is not None and _mean_or_none(r_clin) is not None:
            _log(kwargs, "valor/r_clin", _mean_or_none(r_clin))
        ver_col: list[float | None] = [None] * n
        clin_col: list[float | None] = [None] * n
        for j, i in enumerate(idx):
            ver_col[i] = float(r_ver[j]) if math.isfinite(r_ver[j]) else None
            if r_clin is not None:
                clin_col[i] = float(r_clin[j]) if math.isfinite(r_clin[j]) else None
        log_extra(kwargs, "valor/r_ver", ver_col)
        log_extra(kwargs, "valor/r_clin", clin_col)


def _preflight(config: ValorConfig | None, which: str) -> ValorConfig:
    """The config, after every model the composite needs is found (all missing ones named in one
    ModelNotFound now, before torch loads, rather than at the first GRPO step)."""
    from radeval.preflight import check_models, valor_metrics

    config = config or ValorConfig()
    check_models(valor_metrics(config, which))
    return config


def make_ver_reward(config: ValorConfig | None = None, *, name: str = "valor_ver") -> ValorReward:
    """R_ver (Eq. 3) as a TRL reward."""
    return ValorReward(_preflight(config, "ver"), "ver", name)


def make_clin_reward(config: ValorConfig | None = None, *, name: str = "valor_clin") -> ValorReward:
    """R_clin (Eq. 4) as a TRL reward (every step; R_text injects it periodically)."""
    return ValorReward(_preflight(config, "clin"), "clin", name)


def make_text_reward(config: ValorConfig | None = None, *, name: str = "valor_text") -> ValorReward:
    """R_text (Eq. 5) as a TRL reward: R_ver every step, + λ_clin·R_clin when k % k_clin == 0.

    Logs its parts through TRL's ``log_metric`` / ``log_extra`` (see :class:`ValorReward`).
    """
    return ValorReward(_preflight(config, "text"), "text", name)


def make_valor_rewards(config: ValorConfig | None = None) -> list[Callable]:
    """Stage-text reward functions for ``GRPOTrainer(reward_funcs=...)``: R_text and the format reward."""
    config = config or ValorConfig()
    return [make_text_reward(config), valor_format_reward]


#: VALOR's format reward: 1 for exactly one well-formed ``<report>…</report>`` span, else 0
valor_format_reward = FormatReward("valor_format")

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
