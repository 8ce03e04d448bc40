"""The shape every radeval reward shares: a picklable, module-level callable class.

TRL's ``AsyncGRPOTrainer`` pickles its reward functions into a spawned rollout process, and
multiprocessing / Ray ship callables the same way, so a reward is an *instance of a module-level
class* holding only plain settings (metric name, key, options, weights). Everything heavy — the
metric object, its models, the per-pair value cache — is looked up per process on first use
(:func:`radeval.rewards.trl.shared_metric`), never pickled. A pickled copy therefore equals the
original (``==`` compares the settings) and returns the same values.

Each instance carries its own ``__name__`` (TRL logs ``rewards/<__name__>/mean`` and reads the
name with ``getattr(f, "__name__", type(f).__name__)``), so two rewards of one class log apart.

Async rewards (:class:`AsyncReward`) have ``async def __call__``: TRL 1.16 detects them with
``inspect.iscoroutinefunction(f) or inspect.iscoroutinefunction(f.__call__)``
(``trl.trainer.utils.is_async_callable``) and awaits them, in ``GRPOTrainer`` on its event
loop thread and in the async rollout worker with ``asyncio.gather``; sync rewards there run in
``asyncio.to_thread``. Use an async reward where scoring waits on I/O (a remote judge, the
reward service); CPU/GPU-bound rewards stay sync.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

#: kwargs TRL adds beside the dataset columns; never treated as data
TRAINER_KWARGS = ("trainer_state", "log_metric", "log_extra", "environments")


class Reward:
    """Base class: picklable settings, a per-instance ``__name__``, equality by settings.

    Subclasses set their settings as attributes in ``__init__`` (call ``super().__init__(name)``)
    and implement ``__call__(prompts=None, completions=(), completion_ids=None, **kwargs)``.
    Attributes whose names start with ``_rt_`` are per-process runtime state (locks, counters,
    resolved metric objects): dropped when pickling and excluded from equality.
    """

    def __init__(self, name: str):
        self.__name__ = name
        self.__qualname__ = name

    # -- runtime state -------------------------------------------------------------------------
    def _rt_lock(self) -> threading.Lock:
        lock = self.__dict__.get("_rt_lock_obj")
        if lock is None:
            lock = self.__dict__.setdefault("_rt_lock_obj", threading.Lock())
        return lock

    def settings(self) -> dict[str, Any]:
        """The picklable settings that define this reward (its state minus runtime state)."""
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_rt_")}

    def __getstate__(self) -> dict[str, Any]:
        return self.settings()

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.settings() == other.settings()  # type: ignore[union-attr]

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.__name__))

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.settings().items() if k not in ("__name__", "__qualname__"))
        return f"{type(self).__name__}({self.__name__!r}, {shown})"


class AsyncReward(Reward):
    """Marker base for rewards whose ``__call__`` is ``async def`` (TRL awaits them)."""


def log_metric(kwargs: dict[str, Any], name: str, value: float) -> None:
    """TRL's ``log_metric(name, value)`` when the trainer passed one; never raises."""
    log = kwargs.get("log_metric")
    if callable(log):
        try:
            log(name, float(value))
        except Exception:  # logging must never break training
            pass


def log_extra(kwargs: dict[str, Any], column: str, values: Sequence[Any]) -> None:
    """TRL's ``log_extra(column, values)`` (one value per completion) when present; never raises."""
    log = kwargs.get("log_extra")
    if callable(log):
        try:
            log(column, list(values))
        except Exception:
            pass
