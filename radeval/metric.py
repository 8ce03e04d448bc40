"""The Metric interface: every metric reduces each record to a row of sufficient statistics.

A metric turns (hypothesis, reference[, image]) into a fixed-width row of numbers such that
its corpus score is a function of the *column sums* of those rows (BLEU: clipped n-gram
matches and lengths; micro-F1: TP/FP/FN; a mean metric: value and count). One function,
``from_totals``, maps summed rows to scores, and applied to a single row it gives the
per-sample score. Exact corpus scores, bootstrap over rows (no re-scoring of texts),
streaming and sharding all follow from this; sacrebleu's metrics are built the same way.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from radeval import __version__


@dataclass
class MetricResult:
    """What one metric returns for a batch: per-sample values, corpus values and the statistics."""

    name: str
    signature: str
    sample: dict[str, np.ndarray]
    corpus: dict[str, float]
    stats: np.ndarray
    higher_is_better: dict[str, bool]
    details: dict[str, Any] | None = None


def exact_column_sums(stats: np.ndarray) -> np.ndarray:
    """Column sums rounded once (math.fsum), so totals do not depend on record order or chunking."""
    if stats.ndim != 2:
        raise ValueError("stats must be a 2-D array (records x statistics)")
    return np.array([math.fsum(stats[:, j]) for j in range(stats.shape[1])], dtype=np.float64)


class Metric(ABC):
    """Base class. Subclasses set ``name``, ``keys``, ``stat_names`` and implement three hooks.

    * ``settings()``: every option that changes the number; it becomes the signature.
    * ``stats(hyps, refs, images)``: an ``(n, len(stat_names))`` float64 array, one row per record.
    * ``from_totals(totals)``: maps ``(..., d)`` summed statistics to ``{key: (...) array}``.

    ``sample_values`` defaults to ``from_totals`` on each row; override it where a per-sample
    value is defined differently from a one-record corpus (e.g. a per-report F1 reward).
    """

    name: ClassVar[str]
    keys: tuple[str, ...]
    stat_names: tuple[str, ...]
    #: key -> whether a larger value is better (RadCliQ, a distance, is the exception)
    directions: dict[str, bool] = {}
    needs_images: ClassVar[bool] = False
    #: bump when a change of ours changes the numbers
    impl_version: ClassVar[str] = "1"

    # ----- hooks -------------------------------------------------------------------------------
    @abstractmethod
    def settings(self) -> dict[str, Any]:
        """Settings that change the number, in signature order."""

    @abstractmethod
    def stats(
        self, hyps: Sequence[str], refs: Sequence[str], images: Sequence[str | None] | None = None
    ) -> np.ndarray:
        """One row of sufficient statistics per record."""

    @abstractmethod
    def from_totals(self, totals: np.ndarray) -> dict[str, np.ndarray]:
        """Scores from summed statistics; vectorised over leading axes."""

    def sample_values(self, stats: np.ndarray) -> dict[str, np.ndarray]:
        return self.from_totals(stats)

    def details(self, totals: np.ndarray) -> dict[str, Any] | None:
        """Optional breakdown of a corpus (per-label F1, error counts) for details.json."""
        return None

    # ----- derived -----------------------------------------------------------------------------
    def higher_is_better(self, key: str) -> bool:
        return self.directions.get(key, True)

    @property
    def signature(self) -> str:
        parts = [self.name]
        for k, v in self.settings().items():
            if isinstance(v, bool):
                v = "yes" if v else "no"
            parts.append(f"{k}:{v}")
        parts.append(f"v:{self.impl_version}")
        parts.append(f"radeval:{__version__}")
        return "|".join(parts)

    def corpus(self, stats: np.ndarray) -> dict[str, float]:
        if len(stats) == 0:
            return {k: float("nan") for k in self.keys}
        values = self.from_totals(exact_column_sums(stats))
        return {k: float(values[k]) for k in self.keys}

    def score(
        self,
        hyps: Sequence[str],
        refs: Sequence[str],
        images: Sequence[str | None] | None = None,
    ) -> MetricResult:
        """Score a batch: per-sample values and the corpus values, as the reference computes them."""
        if len(hyps) != len(refs):
            raise ValueError(f"{len(hyps)} hypotheses but {len(refs)} references")
        stats = np.asarray(self.stats(hyps, refs, images), dtype=np.float64)
        sample = {k: np.asarray(v, dtype=np.float64) for k, v in self.sample_values(stats).items()}
        totals = exact_column_sums(stats) if len(stats) else None
        return MetricResult(
            name=self.name,
            signature=self.signature,
            sample=sample,
            corpus=self.corpus(stats),
            stats=stats,
            higher_is_better={k: self.higher_is_better(k) for k in self.keys},
            details=self.details(totals) if totals is not None else None,
        )

    def __repr__(self) -> str:  # pragma: no cover - cosmetic
        return f"<{type(self).__name__} {self.signature}>"


def mean_rows(values: dict[str, np.ndarray], keys: Sequence[str]) -> np.ndarray:
    """Rows ``[v1, c1, v2, c2, ...]``: value (0 where undefined) and 1/0 whether it is defined."""
    cols = []
    for k in keys:
        v = np.asarray(values[k], dtype=np.float64)
        defined = ~np.isnan(v)
        cols.append(np.where(defined, v, 0.0))
        cols.append(defined.astype(np.float64))
    return np.stack(cols, axis=-1) if cols else np.zeros((0, 0))


def mean_from_totals(totals: np.ndarray, keys: Sequence[str]) -> dict[str, np.ndarray]:
    """Inverse of :func:`mean_rows`: sum of values / number defined (NaN where none is)."""
    out = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        for i, k in enumerate(keys):
            s = totals[..., 2 * i]
            c = totals[..., 2 * i + 1]
            out[k] = np.where(c > 0, s / np.where(c > 0, c, 1.0), np.nan)
    return out


def mean_stat_names(keys: Sequence[str]) -> tuple[str, ...]:
    return tuple(n for k in keys for n in (f"{k}_sum", f"{k}_n"))


class MeanMetric(Metric):
    """A metric whose corpus value per key is the mean of its defined per-sample values.

    Subclasses implement ``values(hyps, refs, images)`` returning ``{key: (n,) array}`` with NaN
    where a value is undefined for a record (e.g. an image that could not be read).
    """

    @property
    def stat_names(self) -> tuple[str, ...]:  # type: ignore[override]
        return mean_stat_names(self.keys)

    def values(
        self, hyps: Sequence[str], refs: Sequence[str], images: Sequence[str | None] | None = None
    ) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def stats(self, hyps, refs, images=None) -> np.ndarray:
        if len(hyps) == 0:
            return np.zeros((0, 2 * len(self.keys)))
        return mean_rows(self.values(hyps, refs, images), self.keys)

    def from_totals(self, totals: np.ndarray) -> dict[str, np.ndarray]:
        return mean_from_totals(totals, self.keys)
