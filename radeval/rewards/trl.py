"""Metric rewards in TRL's reward-function contract.

A reward is a plain callable ``f(prompts, completions, completion_ids=None, **kwargs) ->
list[float | None]`` (TRL's ``GRPOTrainer``): ``kwargs`` carries every dataset column
(repeated once per completion), ``trainer_state``, ``log_metric`` and ``log_extra``. Each reward
has its own ``__name__`` (``radeval_<key>``) because TRL logs ``rewards/<__name__>/mean``.

What a reward does with a batch:

1. extracts the report text from each completion (:func:`radeval.rewards.extract.extract_report`);
2. reads the reference from ``kwargs[reference_column]`` (default ``ground_truth``) and, for
   metrics that need images, the image from ``image`` / ``images`` (first image of a list);
3. scores each *distinct* (report, reference, image) pair once through the registry's metric
   object (``metric.score(hyps, refs, images).sample[key]``) and remembers the per-pair values
   of every key of that metric in a process-wide LRU: the G copies of a reference in a GRPO
   group, identical completions, and several rewards over the same metric (``bleu_1`` and
   ``bleu_4``, or BLEU-4 inside a VALOR composite) cost one scoring. Reference *features*
   (n-gram counts, labels, embeddings) are cached by text inside the metrics themselves
   (e.g. ``radeval.metrics.nlg``), so B prompts x G completions compute B reference feature
   sets, and none on later epochs. Per-pair caching assumes per-sample values do not depend on
   the rest of the batch, which every registered metric guarantees (no batch IDF).
4. never raises on odd completions and never returns NaN: a pair whose scoring fails or gives a
   non-finite value gets ``on_error``, default ``None`` (unscored: TRL leaves it out of the
   weighted sum, and the rank steps of :mod:`radeval.rewards.valor` give it a neutral
   advantage; 0.0 would rank it last). The first failure of each kind is reported with
   :func:`warnings.warn`; failure counts go to TRL's ``log_metric`` as
   ``radeval/errors/<reward name>``.
5. an empty or whitespace-only report scores the key's worst value (``empty="worst"``, the
   reward default; :mod:`radeval.rewards.empty`), not the package's rule, so saying nothing
   never pays.

Rewards are instances of :class:`MetricReward` (a module-level class, :mod:`radeval.rewards.base`):
they pickle, and a copy scores the same.

Setup mistakes are not "odd completions" and do raise, with a message: an unknown metric or key
(:class:`~radeval.errors.ConfigError` when the reward is built), a metric that cannot load
(missing extra or model, on the first call), a missing reference column or a column whose length
does not match the completions (:class:`~radeval.errors.InputError`).
"""

from __future__ import annotations

import hashlib
import inspect
import math
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from radeval.errors import ConfigError, InputError
from radeval.rewards.base import AsyncReward, Reward
from radeval.rewards.empty import WORST, check_empty, empty_tag, resolve_empty
from radeval.rewards.extract import extract_report

# ----- process-wide metric instances and per-pair value cache ------------------------------------

_LOCK = threading.RLock()
_METRICS: dict[tuple, Any] = {}
#: metric signature -> LRU of (hyp, ref, image key) -> {key: value}
_PAIR_CACHE: dict[str, OrderedDict] = {}
PAIR_CACHE_SIZE = 1 << 16
_WARNED: set[tuple[str, str]] = set()


def _freeze(options: dict[str, Any] | None) -> tuple:
    return tuple(sorted((options or {}).items(), key=lambda kv: kv[0]))


def shared_metric(name: str, options: dict[str, Any] | None = None):
    """One metric object per (name, options) per process, shared by every reward."""
    cache_key = (name, _freeze(options))
    with _LOCK:
        metric = _METRICS.get(cache_key)
        if metric is None:
            from radeval.registry import get_metric

            metric = get_metric(name, **(options or {}))
            _METRICS[cache_key] = metric
        return metric


def clear_caches() -> None:
    """Forget shared metric objects and cached pair values (tests, or to free memory)."""
    with _LOCK:
        _METRICS.clear()
        _PAIR_CACHE.clear()
        _WARNED.clear()


def _image_key(image: Any) -> tuple[bool, Any]:
    """(cacheable across calls?, key). Paths and bytes are stable; in-memory images are not."""
    if image is None:
        return True, None
    if isinstance(image, str):
        return True, ("path", image)
    if isinstance(image, (bytes, bytearray)):
        return True, ("sha1", hashlib.sha1(bytes(image)).hexdigest())
    return False, ("id", id(image))


def _warn_once(reward_name: str, exc: BaseException) -> None:
    tag = (reward_name, type(exc).__name__)
    if tag in _WARNED:
        return
    _WARNED.add(tag)
    warnings.warn(
        f"reward {reward_name}: scoring failed ({type(exc).__name__}: {exc}); "
        "affected completions get the on_error value",
        RuntimeWarning,
        stacklevel=3,
    )


def score_pairs(
    metric: Any,
    hyps: Sequence[str],
    refs: Sequence[str],
    images: Sequence[Any] | None = None,
    *,
    reward_name: str = "radeval",
    use_cache: bool = True,
) -> tuple[list[dict[str, float] | None], int]:
    """Per-pair ``{key: value}`` for every key of ``metric`` (None where scoring failed).

    Distinct pairs are scored once per call, and once per process while they stay in the LRU.
    Returns the values and the number of distinct pairs that failed.
    """
    n = len(hyps)
    needs_images = bool(getattr(metric, "needs_images", False))
    sig = metric.signature
    with _LOCK:
        lru = _PAIR_CACHE.setdefault(sig, OrderedDict())
    keys: list[tuple] = []
    stable: list[bool] = []
    for i in range(n):
        ok, ik = _image_key(images[i]) if (needs_images and images is not None) else (True, None)
        keys.append((hyps[i], refs[i], ik))
        stable.append(ok)

    found: dict[tuple, dict[str, float] | None] = {}
    todo: list[int] = []  # first index of each distinct uncached pair
    for i, k in enumerate(keys):
        if k in found:
            continue
        hit = None
        if use_cache and stable[i]:
            with _LOCK:
                hit = lru.get(k)
                if hit is not None:
                    lru.move_to_end(k)
        if hit is not None:
            found[k] = hit
        else:
            found[k] = None
            todo.append(i)

    failures = 0
    if todo:
        sub_h = [hyps[i] for i in todo]
        sub_r = [refs[i] for i in todo]
        sub_i = [images[i] for i in todo] if (needs_images and images is not None) else None
        try:
            values = _score_batch(metric, sub_h, sub_r, sub_i)
        except Exception as exc:  # one bad pair must not zero the batch: retry one by one
            _warn_once(reward_name, exc)
            values = []
            for j in range(len(todo)):
                try:
                    values.extend(_score_batch(metric, [sub_h[j]], [sub_r[j]], None if sub_i is None else [sub_i[j]]))
                except Exception as exc1:
                    _warn_once(reward_name, exc1)
                    values.append(None)
        for j, i in enumerate(todo):
            v = values[j]
            if v is None:
                failures += 1
                continue
            found[keys[i]] = v
            if use_cache and stable[i]:
                with _LOCK:
                    lru[keys[i]] = v
                    if len(lru) > PAIR_CACHE_SIZE:
                        lru.popitem(last=False)
    return [found[k] for k in keys], failures


def _score_batch(metric: Any, hyps, refs, images) -> list[dict[str, float]]:
    result = metric.score(list(hyps), list(refs), images)
    sample = result.sample
    out: list[dict[str, float]] = []
    for j in range(len(hyps)):
        out.append({k: float(np.asarray(v)[j]) for k, v in sample.items()})
    return out


def _higher_is_better(metric: Any, key: str) -> bool:
    try:
        return bool(metric.higher_is_better(key))
    except Exception:
        return True


def _warn_direction(reward_name: str, key: str) -> None:
    tag = (reward_name, "direction")
    if tag in _WARNED:
        return
    _WARNED.add(tag)
    warnings.warn(
        f"reward {reward_name} returns {key!r} as is, and lower is better for it: a trainer "
        "maximising it makes reports worse. Pass transform=lambda v: -v (or use "
        "radeval.rewards.make_radcliq_reward for RadCliQ)",
        UserWarning,
        stacklevel=3,
    )


# ----- reading TRL's kwargs ------------------------------------------------------------------------


def references(kwargs: dict[str, Any], column: str, n: int) -> list[str | None]:
    """The reference column, one entry per completion; None where a row has no reference."""
    if column not in kwargs:
        cols = sorted(k for k in kwargs if k not in ("trainer_state", "log_metric", "log_extra"))
        raise InputError(
            f"reward needs the reference column {column!r}, but the batch has only {cols}; "
            "set reference_column= to the dataset column holding the reference report"
        )
    col = kwargs[column]
    if isinstance(col, str):
        col = [col] * n
    col = list(col)
    if len(col) != n:
        raise InputError(f"reference column {column!r} has {len(col)} rows for {n} completions")
    out: list[str | None] = []
    for v in col:
        if v is None:
            out.append(None)
        elif isinstance(v, str):
            out.append(v)
        elif isinstance(v, (list, tuple)) and v and all(isinstance(x, str) for x in v):
            out.append(v[0])  # one reference per record (metrics take one)
        else:
            out.append(str(v))
    return out


def images_from(kwargs: dict[str, Any], n: int) -> list[Any] | None:
    """Per-completion image from ``image`` or ``images`` (first of a list), or None if absent."""
    col = kwargs.get("image", kwargs.get("images"))
    if col is None:
        return None
    col = list(col) if isinstance(col, (list, tuple)) else [col] * n
    if len(col) != n:
        return None
    out = []
    for v in col:
        if isinstance(v, (list, tuple)):
            v = v[0] if v else None
        out.append(v)
    return out


def step_from(kwargs: dict[str, Any]) -> int | None:
    """TRL's ``trainer_state.global_step``, else a ``global_step`` column/value, else None."""
    state = kwargs.get("trainer_state")
    step = getattr(state, "global_step", None)
    if isinstance(step, (int, np.integer)) and not isinstance(step, bool):
        return int(step)
    col = kwargs.get("global_step")
    if isinstance(col, (list, tuple)):
        ints = [int(v) for v in col if isinstance(v, (int, np.integer)) and not isinstance(v, bool)]
        return max(ints) if ints else None
    if isinstance(col, (int, np.integer)) and not isinstance(col, bool):
        return int(col)
    return None


def current_step(kwargs: dict[str, Any], offset: int = 0) -> int:
    """k: the 1-based optimizer step being formed (``global_step + 1``) + offset; 1 + offset if unknown."""
    step = step_from(kwargs)
    return (0 if step is None else step) + 1 + int(offset)


def _log(kwargs: dict[str, Any], name: str, value: float) -> None:
    log = kwargs.get("log_metric")
    if callable(log):
        try:
            log(name, float(value))
        except Exception:  # logging must never break training
            pass


def finite_or(value: Any, default: float | None) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return default
    return v if math.isfinite(v) else default


# ----- building rewards ----------------------------------------------------------------------------


def resolve_key(metric_name: str, key: str | None) -> tuple[str, str]:
    """(metric, key) from a metric name and optional key, or from a key name alone."""
    from radeval.registry import specs

    all_specs = specs()
    if metric_name not in all_specs:
        owners = [s.name for s in all_specs.values() if metric_name in s.keys]
        if key is None and len(owners) == 1:
            return owners[0], metric_name
        raise ConfigError(f"unknown metric {metric_name!r} for a reward; metrics: {', '.join(sorted(all_specs))}")
    spec = all_specs[metric_name]
    if key is None:
        if len(spec.keys) == 1:
            return metric_name, spec.keys[0]
        if not spec.keys:
            raise ConfigError(f"metric {metric_name!r} does not list its keys; pass key=")
        raise ConfigError(f"metric {metric_name!r} has keys {list(spec.keys)}; pass key= to choose one")
    if spec.keys and key not in spec.keys:
        raise ConfigError(f"metric {metric_name!r} has no key {key!r}; keys: {list(spec.keys)}")
    return metric_name, key


def _options_suffix(options: dict[str, Any] | None) -> str:
    if not options:
        return ""
    parts = []
    for k, v in _freeze(options):
        s = f"{k}_{v}"
        parts.append("".join(c if c.isalnum() else "_" for c in s))
    return "__" + "__".join(parts)


def _check_transform(transform: Any) -> Any:
    if transform is None or transform in TRANSFORMS:
        return transform
    if callable(transform):
        return transform  # must be picklable (module-level) for the reward to pickle
    raise ConfigError(f"transform must be None, one of {sorted(TRANSFORMS)} or a callable, got {transform!r}")


def negate(v: float) -> float:
    """``-v``: the transform for distances (module-level, so rewards using it pickle)."""
    return -v


#: named transforms (picklable by name)
TRANSFORMS: dict[str, Callable[[float], float]] = {"neg": negate}


def _apply(transform: Any, v: float) -> float:
    fn = TRANSFORMS[transform] if isinstance(transform, str) else transform
    return fn(v)


class MetricReward(Reward):
    """One key of a registered metric as a TRL reward (built by :func:`make_reward`).

    Holds settings only (metric name, key, options, column, ``on_error``, ``empty``,
    ``transform``, name); the metric object is looked up per process through
    :func:`shared_metric`, so the reward pickles and a copy scores identically.
    """

    def __init__(
        self,
        metric_name: str,
        key: str,
        *,
        reference_column: str = "ground_truth",
        metric_options: dict[str, Any] | None = None,
        on_error: float | None = None,
        empty: str | float = WORST,
        transform: Any = None,
        name: str | None = None,
    ):
        options = dict(metric_options or {})
        super().__init__(name or f"radeval_{key}{_options_suffix(options)}")
        self.metric_name = metric_name
        self.key = key
        self.reference_column = reference_column
        self.metric_options = options
        self.on_error = on_error
        self.empty = empty
        self.transform = transform

    # -- per-process ---------------------------------------------------------------------------
    def metric(self):
        return shared_metric(self.metric_name, self.metric_options)

    @property
    def signature(self) -> str:
        """The metric's signature plus the reward's own settings (key, empty rule, transform)."""
        metric = self.metric()
        parts = [metric.signature, f"key:{self.key}", empty_tag(self.empty, metric, self.key)]
        if self.transform is not None:
            parts.append(
                f"transform:{self.transform if isinstance(self.transform, str) else getattr(self.transform, '__name__', 'custom')}"
            )
        return "|".join(parts)

    def _empty_value(self, metric) -> float | None:
        v = resolve_empty(self.empty, metric, self.key)
        if v is not None and self.transform is not None and self.empty == WORST:
            v = _apply(self.transform, v)  # the worst metric value, expressed as the reward
        return v

    def score(self, completions: Sequence[Any], kwargs: dict[str, Any]) -> list[float | None]:
        """Values for a batch (the body of ``__call__``; also used by the async variant)."""
        n = len(completions)
        if n == 0:
            return []
        refs = references(kwargs, self.reference_column, n)
        hyps = [extract_report(c) for c in completions]
        out: list[float | None] = [self.on_error] * n
        idx = [i for i in range(n) if refs[i] is not None]
        if not idx:
            return out
        metric = self.metric()
        if self.transform is None and not _higher_is_better(metric, self.key):
            _warn_direction(self.__name__, self.key)
        empty_value = self._empty_value(metric)
        todo = []
        for i in idx:
            if empty_value is not None and not hyps[i]:
                out[i] = empty_value
            else:
                todo.append(i)
        if not todo:
            return out
        imgs = images_from(kwargs, n) if getattr(metric, "needs_images", False) else None
        values, failures = score_pairs(
            metric,
            [hyps[i] for i in todo],
            [refs[i] for i in todo],
            None if imgs is None else [imgs[i] for i in todo],
            reward_name=self.__name__,
        )
        bad = failures
        for j, i in enumerate(todo):
            v = values[j]
            val = None if v is None else v.get(self.key)
            if val is not None and self.transform is not None:
                try:
                    val = _apply(self.transform, val)
                except Exception:
                    val = None
            fin = finite_or(val, None)
            if fin is None:
                if v is not None:
                    bad += 1
                out[i] = self.on_error
            else:
                out[i] = fin
        if bad:
            _log(kwargs, f"radeval/errors/{self.__name__}", bad)
        return out

    def __call__(
        self,
        prompts: Sequence[Any] | None = None,
        completions: Sequence[Any] = (),
        completion_ids: Sequence[Any] | None = None,
        **kwargs: Any,
    ) -> list[float | None]:
        return self.score(completions, kwargs)


class AsyncMetricReward(MetricReward, AsyncReward):
    """:class:`MetricReward` with ``async def __call__`` for metrics that wait on I/O.

    When the metric has ``async def ascore(hyps, refs, images)`` (an endpoint-backed judge),
    it is awaited on the caller's loop; otherwise the sync scoring runs in a worker thread
    (``asyncio.to_thread``) so the loop stays free. Values equal the sync reward's.
    """

    async def __call__(  # type: ignore[override]
        self,
        prompts: Sequence[Any] | None = None,
        completions: Sequence[Any] = (),
        completion_ids: Sequence[Any] | None = None,
        **kwargs: Any,
    ) -> list[float | None]:
        import asyncio

        metric = self.metric()
        if inspect.iscoroutinefunction(getattr(metric, "ascore", None)):
            return await self._ascore(metric, completions, kwargs)
        return await asyncio.to_thread(self.score, completions, kwargs)

    async def _ascore(self, metric, completions, kwargs) -> list[float | None]:
        # same rules as score(), with the metric awaited on the distinct, non-empty pairs
        n = len(completions)
        if n == 0:
            return []
        refs = references(kwargs, self.reference_column, n)
        hyps = [extract_report(c) for c in completions]
        out: list[float | None] = [self.on_error] * n
        empty_value = self._empty_value(metric)
        todo = [i for i in range(n) if refs[i] is not None and not (empty_value is not None and not hyps[i])]
        for i in range(n):
            if refs[i] is not None and empty_value is not None and not hyps[i]:
                out[i] = empty_value
        pairs = sorted({(hyps[i], refs[i]) for i in todo})
        if not pairs:
            return out
        imgs = images_from(kwargs, n) if getattr(metric, "needs_images", False) else None
        try:
            result = await metric.ascore([p[0] for p in pairs], [p[1] for p in pairs], None)
            col = np.asarray(result.sample[self.key], dtype=np.float64)
            got = {p: float(col[j]) for j, p in enumerate(pairs)}
        except Exception as exc:
            _warn_once(self.__name__, exc)
            got = {}
        del imgs  # async metrics are text-only judges today
        for i in todo:
            val = got.get((hyps[i], refs[i]))
            if val is not None and self.transform is not None:
                try:
                    val = _apply(self.transform, val)
                except Exception:
                    val = None
            out[i] = finite_or(val, self.on_error)
        return out


def make_reward(
    metric_name: str,
    key: str | None = None,
    *,
    reference_column: str = "ground_truth",
    metric_options: dict[str, Any] | None = None,
    on_error: float | None = None,
    empty: str | float = WORST,
    on_empty: float | None = None,
    transform: Any = None,
    name: str | None = None,
    asynchronous: bool = False,
) -> MetricReward:
    """A TRL reward scoring completions with one key of a registered metric.

    Args:
        metric_name: registry name (``"bleu"``) or a key name that belongs to one metric
            (``"bleu_4"``).
        key: the metric key to return (required when the metric has several).
        reference_column: dataset column with the reference report.
        metric_options: options for :func:`radeval.get_metric` (e.g. ``{"tokenize": "whitespace"}``).
        on_error: value for a pair whose scoring fails or is non-finite; default ``None``
            (unscored: TRL leaves it out of the sum, the rank steps give it a neutral advantage).
        empty: an empty/whitespace completion's value: ``"worst"`` (default: the key's worst
            value), ``"metric"`` (the reference package's rule) or a number
            (:mod:`radeval.rewards.empty`).
        on_empty: older spelling of ``empty=<number>``.
        transform: applied to each metric value: ``"neg"`` (for a distance) or a module-level
            function (a lambda works in-process but does not pickle).
        name: ``__name__`` of the reward; default ``radeval_<key>`` (+ the options, if any).
        asynchronous: return an :class:`AsyncMetricReward` (``async def __call__``).

    Returns:
        A picklable callable ``f(prompts, completions, completion_ids=None, **kwargs) ->
        list[float | None]``.

    Example:
        >>> f = make_reward("bleu", "bleu_4")
        >>> f.__name__
        'radeval_bleu_4'
    """
    metric_name, key = resolve_key(metric_name, key)
    if on_error is not None and (
        isinstance(on_error, bool) or not (isinstance(on_error, (int, float)) and math.isfinite(on_error))
    ):
        raise ConfigError(f"on_error must be a finite number or None, got {on_error!r}")
    if on_empty is not None:
        empty = on_empty
    empty = check_empty(empty)
    from radeval.preflight import check_models

    check_models({metric_name: dict(metric_options or {})})  # a missing model fails here, not at the first GRPO step
    cls = AsyncMetricReward if asynchronous else MetricReward
    return cls(
        metric_name,
        key,
        reference_column=reference_column,
        metric_options=metric_options,
        on_error=None if on_error is None else float(on_error),
        empty=empty,
        transform=_check_transform(transform),
        name=name,
    )


# ----- one module-level reward per registered key --------------------------------------------------

_DEFAULT_REWARDS: dict[str, Callable] = {}


def reward_keys() -> dict[str, str]:
    """Every importable reward attribute name -> its metric (all keys of all registered metrics)."""
    from radeval.registry import specs

    out: dict[str, str] = {}
    for spec in specs().values():
        for k in spec.keys:
            out.setdefault(k, spec.name)
    return out


def default_reward(key: str) -> Callable[..., list[float | None]]:
    """The default-options reward for a metric key (the object ``radeval.rewards.<key>`` returns)."""
    with _LOCK:
        f = _DEFAULT_REWARDS.get(key)
        if f is None:
            owners = reward_keys()
            if key not in owners:
                raise AttributeError(key)
            f = make_reward(owners[key], key)
            _DEFAULT_REWARDS[key] = f
        return f


def __getattr__(name: str):
    # `radeval.rewards.trl.bleu_4` works too; built on first access so importing stays cheap
    if name.startswith("_"):
        raise AttributeError(name)
    try:
        return default_reward(name)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
