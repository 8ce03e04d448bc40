"""Intervals for the study: seeds are the replicates, images nest inside seeds.

* :func:`hier_boot` — hierarchical (two-stage) bootstrap: resample seeds with replacement, then
  images with replacement inside each drawn seed, recompute the statistic on the pooled draw.
  Paired: both systems use the same draws (same seeds, same images), so a difference's interval
  carries the pairing. The statistic is recomputed on resampled data, so a metric's interval stays
  inside its range ([0, 100] for F1) — unlike a t-interval over 2-5 seed means.
* :func:`seed_boot` — bootstrap of a per-seed quantity's mean over seeds (the training-reward
  rise of an arm).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def _draws(n_seeds: int, n_items: Sequence[int], B: int, rng: np.random.Generator):
    """B draws of (seed indices, per drawn seed: item indices)."""
    seeds = rng.integers(0, n_seeds, (B, n_seeds))
    items = [[rng.integers(0, n_items[s], n_items[s]) for s in row] for row in seeds]
    return seeds, items


def micro_f1_rows(rows: np.ndarray) -> float:
    tp, fp, fn = rows.sum(0)[:3]
    den = 2 * tp + fp + fn
    return float(200.0 * tp / den) if den else 0.0


def mean_rows(rows: np.ndarray) -> float:
    return float(100.0 * rows[:, 0].mean())


def mean_raw(rows: np.ndarray) -> float:
    return float(rows[:, 0].mean())


def hier_boot(
    systems: dict[str, list[np.ndarray]],
    stat: Callable[[np.ndarray], float],
    pairs: Sequence[tuple[str, str]],
    *,
    B: int = 2000,
    seed: int = 0,
) -> dict[str, dict]:
    """Point values and 95% percentile intervals of each system and each paired difference.

    ``systems[name][s]``: the (n_images, k) per-image statistic rows of seed index s (the same
    images in the same order for every system). ``stat`` maps pooled rows to the metric.
    """
    names = list(systems)
    n_seeds = len(systems[names[0]])
    n_items = [len(systems[names[0]][s]) for s in range(n_seeds)]
    rng = np.random.default_rng(seed)
    seeds, items = _draws(n_seeds, n_items, B, rng)
    vals = {n: np.empty(B) for n in names}
    for b in range(B):
        for n in names:
            vals[n][b] = stat(np.concatenate([systems[n][s][idx] for s, idx in zip(seeds[b], items[b])]))
    out: dict[str, dict] = {"systems": {}, "differences": {}}
    for n in names:
        point = stat(np.concatenate(systems[n]))
        per_seed = [stat(systems[n][s]) for s in range(n_seeds)]
        lo, hi = np.percentile(vals[n], [2.5, 97.5])
        out["systems"][n] = {"value": point, "ci": [float(lo), float(hi)], "per_seed": per_seed}
    for a, b_ in pairs:
        d = vals[a] - vals[b_]
        point = stat(np.concatenate(systems[a])) - stat(np.concatenate(systems[b_]))
        per_seed = [stat(systems[a][s]) - stat(systems[b_][s]) for s in range(n_seeds)]
        lo, hi = np.percentile(d, [2.5, 97.5])
        out["differences"][f"{a} - {b_}"] = {
            "value": float(point),
            "ci": [float(lo), float(hi)],
            "per_seed": per_seed,
            "seeds_positive": int(sum(x > 0 for x in per_seed)),
        }
    return out


def seed_boot(values: Sequence[float], *, B: int = 10000, seed: int = 0) -> dict:
    """Mean over seeds and the 95% percentile bootstrap interval of that mean."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], float)
    if v.size == 0:
        return {"mean": None, "ci": None, "n": 0}
    rng = np.random.default_rng(seed)
    boots = v[rng.integers(0, v.size, (B, v.size))].mean(1)
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return {"mean": float(v.mean()), "ci": [float(lo), float(hi)], "n": int(v.size), "per_seed": v.tolist()}


def rise(curve: Sequence[float], frac: float = 0.2) -> float | None:
    """Mean of the last ``frac`` of the logged steps minus the mean of the first ``frac``."""
    c = np.asarray([x for x in curve], float)
    if c.size < 2:
        return None
    k = max(1, int(round(frac * c.size)))
    return float(np.nanmean(c[-k:]) - np.nanmean(c[:k]))
