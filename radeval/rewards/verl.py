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

Unscored samples. radeval rewards answer ``None`` for a pair they cannot score; verl's reward
managers need a number per sample, so these entries return ``unscored`` instead (a reward
kwarg, default 0.0) and, in the dict form verl also accepts, say so: ``compute_score_remote``
returns ``{"score": value, "radeval_unscored": 0 or 1}`` so verl logs the unscored share.

Reward service (verl's reward loop, ``verl.experimental.reward_loop``): its reward managers
await an ``async def compute_score(data_source, solution_str, ground_truth, extra_info,
**kwargs)`` once per sample, concurrently, and pass ``reward_router_address`` /
``reward_model_tokenizer`` when verl itself serves a reward model. :func:`compute_score_remote`
is that entry for the radeval service (``radeval serve rewards start``): set
``custom_reward_function.path`` to this file, ``name: compute_score_remote`` and
``reward_kwargs: {service_url: http://host:8300/get_reward, reward: <name or omitted>}``.
The service batches the concurrent per-sample requests of all reward workers together.
``reward_router_address`` points at verl's own reward-model router (its GenRM servers), not
at radeval, and is not used; ``service_url`` names ours.

Never raises on odd responses.
"""

from __future__ import annotations

import asyncio
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
    unscored: float = 0.0,
    **reward_kwargs: Any,
) -> list[float]:
    """verl ``BatchRewardManager`` form: one float per sample (``unscored`` where a pair has no score)."""
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
    if asyncio.iscoroutine(out):
        out = asyncio.run(out)
    return [float(v) if v is not None else float(unscored) for v in out]


def compute_score(
    data_source: Any = None,
    solution_str: str = "",
    ground_truth: Any = None,
    extra_info: dict[str, Any] | None = None,
    **reward_kwargs: Any,
) -> float:
    """verl ``NaiveRewardManager`` form: the score of one response."""
    return compute_score_batch([data_source], [solution_str], [ground_truth], [extra_info], **reward_kwargs)[0]


async def compute_score_remote(
    data_source: Any = None,
    solution_str: str = "",
    ground_truth: Any = None,
    extra_info: dict[str, Any] | None = None,
    *,
    service_url: str = "http://127.0.0.1:8300/get_reward",
    reward: str | None = None,
    token: str | None = None,
    timeout: float = 60.0,
    retries: int = 3,
    unscored: float = 0.0,
    reward_router_address: str | None = None,
    reward_model_tokenizer: Any = None,
    **_ignored: Any,
) -> dict[str, float]:
    """verl reward-loop entry (async, per sample) scoring through the radeval reward service.

    ``reward`` picks one of the service's rewards (its name); omitted, the service's weighted
    total. ``extra_info`` may carry ``global_step`` and ``image`` (a path), as for
    :func:`compute_score`. The token, if the service has one, comes from ``token`` or
    ``RADEVAL_SERVICE_TOKEN``.
    """
    from radeval.rewards.client import RemoteReward

    client = RemoteReward(service_url, reward, token=token, timeout=timeout, retries=retries, name="radeval_remote")
    info = extra_info if isinstance(extra_info, dict) else {}
    kwargs: dict[str, Any] = {"ground_truth": [ground_truth]}
    if isinstance(info.get("global_step"), int):
        kwargs["trainer_state"] = SimpleNamespace(global_step=info["global_step"])
    if isinstance(info.get("image"), str):
        kwargs["image"] = [info["image"]]
    value = (await client(completions=[solution_str if isinstance(solution_str, str) else ""], **kwargs))[0]
    return {"score": float(unscored) if value is None else value, "radeval_unscored": float(value is None)}
