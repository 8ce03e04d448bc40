"""radeval rewards in verl's custom reward-function contract.

verl (``custom_reward_function.path`` / ``.name`` in its trainer config) calls, per sample
(``NaiveRewardManager``)::

    compute_score(data_source, solution_str, ground_truth, extra_info=None, **reward_kwargs)

and, with ``reward_model.reward_manager=batch`` (``BatchRewardManager``), once per batch::

    compute_score(data_sources=[...], solution_strs=[...], ground_truths=[...], extra_infos=[...],
                  **reward_kwargs)

returning a float (or a dict with a ``"score"`` key) per sample. ``reward_kwargs`` comes from
``custom_reward_function.reward_kwargs``; here it selects the reward: ``reward="bleu_4"`` (any
attribute of :mod:`radeval.rewards`: a metric key, ``valor_text_reward``, ``box_ap50_reward``…;
default ``valor_text_reward``). ``solution_str`` is the decoded response; ``ground_truth`` the
row's ``reward_model.ground_truth``. Optional ``extra_info`` fields: ``global_step`` (for the
periodic clinical term of R_text; verl does not pass a step otherwise), ``image`` (a path, for
metrics that need the image) and ``boxes`` / ``image_size`` (box reward). Prefer the batched form:
it scores distinct pairs once and shares the reference cache across the batch.

Never raises on odd responses; a value that cannot be computed is 0.0.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

DEFAULT_REWARD = "valor_text_reward"


def _reward_fn(name: str):
    import radeval.rewards as rewards

    try:
        return getattr(rewards, name)
    except AttributeError:
        from radeval.errors import ConfigError

        raise ConfigError(
            f"unknown radeval reward {name!r} for verl; use a metric key or a radeval.rewards name"
        ) from None


def compute_score_batch(
    data_sources: Sequence[Any],
    solution_strs: Sequence[str],
    ground_truths: Sequence[Any],
    extra_infos: Sequence[Any] | None = None,
    *,
    reward: str = DEFAULT_REWARD,
    reference_column: str | None = None,
    **reward_kwargs: Any,
) -> list[float]:
    """verl ``BatchRewardManager`` form: one float per sample."""
    n = len(solution_strs)
    fn = _reward_fn(reward)
    extras = list(extra_infos) if extra_infos is not None else [None] * n
    extras = [e if isinstance(e, dict) else {} for e in extras]
    column = reference_column or getattr(fn, "reference_column", None) or "ground_truth"
    kwargs: dict[str, Any] = {column: list(ground_truths)}
    for extra_key in ("image", "image_size"):
        vals = [e.get(extra_key) for e in extras]
        if any(v is not None for v in vals):
            kwargs[extra_key] = vals
    steps = [e.get("global_step") for e in extras if isinstance(e.get("global_step"), int)]
    if steps:
        kwargs["trainer_state"] = SimpleNamespace(global_step=max(steps))
    kwargs["data_source"] = list(data_sources)
    out = fn(prompts=[""] * n, completions=list(solution_strs), **kwargs)
    return [float(v) if v is not None else 0.0 for v in out]


def compute_score(
    data_source: Any = None,
    solution_str: str = "",
    ground_truth: Any = None,
    extra_info: dict[str, Any] | None = None,
    **reward_kwargs: Any,
) -> float:
    """verl ``NaiveRewardManager`` form: the score of one response."""
    return compute_score_batch([data_source], [solution_str], [ground_truth], [extra_info], **reward_kwargs)[0]
