"""Bootstrap confidence intervals and paired system comparisons over per-record statistics.

Everything here resamples *rows of sufficient statistics* (see radeval.metric), never texts:
the corpus score of a resample is ``metric.from_totals(counts @ stats)``, so a bootstrap of
corpus BLEU is a bootstrap of corpus BLEU (not of the mean sentence BLEU) and costs one
matrix product. Rows must be given in sorted-id order (the evaluator does this) so that
shuffling or sharding the input never changes an interval.

Defaults (as shared/DESIGN.md fixes them): B = 1000 resamples, seed 0, percentile 95% interval;
paired tests with 10,000 trials.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from radeval.metric import Metric

DEFAULT_BOOTSTRAP = 1000
DEFAULT_TRIALS = 10_000
# resample counts are built in blocks of about this many cells to bound memory
_BLOCK_CELLS = 1_000_000


def _resample_totals(stats: np.ndarray, n_resamples: int, rng: np.random.Generator):
    """Yield (block_size, d) totals of multinomial resamples of the rows, block by block."""
    n = len(stats)
    block = max(1, _BLOCK_CELLS // max(n, 1))
    done = 0
    while done < n_resamples:
        b = min(block, n_resamples - done)
        # one draw per resample, so the random stream (and every CI) does not depend on the block size
        idx = np.stack([rng.integers(0, n, size=n) for _ in range(b)])
        flat = (idx + (np.arange(b) * n)[:, None]).ravel()
        counts = np.bincount(flat, minlength=b * n).reshape(b, n).astype(np.float64)
        yield counts @ stats
        done += b


def bootstrap_ci(
    metric: Metric,
    stats: np.ndarray,
    *,
    n_resamples: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, tuple[float, float] | None]:
    """Percentile bootstrap interval of every corpus key of ``metric``."""
    if n_resamples <= 0 or len(stats) < 2:
        return {k: None for k in metric.keys}
    rng = np.random.default_rng(seed)
    values: dict[str, list[np.ndarray]] = {k: [] for k in metric.keys}
    for totals in _resample_totals(stats, n_resamples, rng):
        out = metric.from_totals(totals)
        for k in metric.keys:
            values[k].append(np.asarray(out[k], dtype=np.float64))
    alpha = (1 - confidence) / 2 * 100
    result: dict[str, tuple[float, float] | None] = {}
    for k in metric.keys:
        v = np.concatenate(values[k])
        v = v[~np.isnan(v)]
        if len(v) == 0:
            result[k] = None
            continue
        lo, hi = np.percentile(v, [alpha, 100 - alpha])
        result[k] = (float(lo), float(hi))
    return result


@dataclass(frozen=True)
class PairedResult:
    key: str
    score_a: float
    score_b: float
    delta: float  # a - b
    ci95: tuple[float, float] | None  # bootstrap interval of the delta
    p_bootstrap: float | None
    p_randomization: float | None
    higher_is_better: bool

    def as_dict(self) -> dict:
        return {
            "score_a": self.score_a,
            "score_b": self.score_b,
            "delta": self.delta,
            "ci95": list(self.ci95) if self.ci95 else None,
            "p_bootstrap": self.p_bootstrap,
            "p_randomization": self.p_randomization,
            "higher_is_better": self.higher_is_better,
        }


def paired_tests(
    metric: Metric,
    stats_a: np.ndarray,
    stats_b: np.ndarray,
    *,
    n_resamples: int = DEFAULT_BOOTSTRAP,
    n_trials: int = DEFAULT_TRIALS,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, PairedResult]:
    """Paired bootstrap and approximate randomization of system A vs B on the same records.

    Rows of ``stats_a`` and ``stats_b`` must describe the same records in the same (sorted-id)
    order. Both p-values are two-sided:
    * paired bootstrap: resample records, delta_b = score_A - score_B on the resample;
      p = (1 + #{|delta_b - mean(delta)| >= |delta_obs|}) / (B + 1) (the shifted-null form);
    * approximate randomization: swap each record's A/B rows with probability 1/2;
      p = (1 + #{|delta_t| >= |delta_obs|}) / (T + 1).
    """
    if stats_a.shape != stats_b.shape:
        raise ValueError("paired comparison needs the same records on both sides")
    n = len(stats_a)
    corpus_a = metric.from_totals(stats_a.sum(0))
    corpus_b = metric.from_totals(stats_b.sum(0))
    observed = {k: float(corpus_a[k] - corpus_b[k]) for k in metric.keys}
    boot: dict[str, list[np.ndarray]] = {k: [] for k in metric.keys}
    rand: dict[str, list[np.ndarray]] = {k: [] for k in metric.keys}
    if n >= 2 and n_resamples > 0:
        rng = np.random.default_rng(seed)
        both = np.concatenate([stats_a, stats_b], axis=1)
        d = stats_a.shape[1]
        for totals in _resample_totals(both, n_resamples, rng):
            va, vb = metric.from_totals(totals[:, :d]), metric.from_totals(totals[:, d:])
            for k in metric.keys:
                boot[k].append(np.asarray(va[k]) - np.asarray(vb[k]))
    if n >= 1 and n_trials > 0:
        rng = np.random.default_rng(seed + 1)
        diff = stats_b - stats_a
        block = max(1, _BLOCK_CELLS // max(n, 1))
        done = 0
        tot_a = stats_a.sum(0)
        tot_b = stats_b.sum(0)
        while done < n_trials:
            t = min(block, n_trials - done)
            swap = rng.integers(0, 2, size=(t, n)).astype(np.float64)
            moved = swap @ diff  # how much swapping moves A's totals (and B's, oppositely)
            va, vb = metric.from_totals(tot_a + moved), metric.from_totals(tot_b - moved)
            for k in metric.keys:
                rand[k].append(np.asarray(va[k]) - np.asarray(vb[k]))
            done += t
    alpha = (1 - confidence) / 2 * 100
    out: dict[str, PairedResult] = {}
    for k in metric.keys:
        obs = observed[k]
        ci = p_boot = p_rand = None
        if boot[k]:
            v = np.concatenate(boot[k])
            v = v[~np.isnan(v)]
            if len(v):
                lo, hi = np.percentile(v, [alpha, 100 - alpha])
                ci = (float(lo), float(hi))
                p_boot = float((1 + np.sum(np.abs(v - v.mean()) >= abs(obs) - 1e-12)) / (len(v) + 1))
        if rand[k]:
            v = np.concatenate(rand[k])
            v = v[~np.isnan(v)]
            if len(v):
                p_rand = float((1 + np.sum(np.abs(v) >= abs(obs) - 1e-12)) / (len(v) + 1))
        out[k] = PairedResult(
            key=k,
            score_a=float(corpus_a[k]),
            score_b=float(corpus_b[k]),
            delta=obs,
            ci95=ci,
            p_bootstrap=p_boot,
            p_randomization=p_rand,
            higher_is_better=metric.higher_is_better(k),
        )
    return out
