"""``radeval bench human``: how well each metric agrees with radiologists.

For ReXVal and RadPref (a human score per candidate report, higher = better after the sign is
aligned):

* **Kendall's τ-b** between the metric's per-candidate scores and the human scores, over all
  candidates (scipy's ``kendalltau``, variant b); a metric where lower is better (RadCliQ) is
  negated first, so a positive τ always means agreement;
* **pairwise accuracy**: over pairs of candidates *of the same case* that the radiologists rank
  differently, the share the metric orders the same way (a metric tie counts ½);
* **95% CIs** by the percentile bootstrap over *cases* (a case's candidates stay together, since
  they share a reference and raters): B resamples, seed fixed.

Candidates a metric leaves unscored (NaN: an LLM judge whose answer did not parse) are left out
of that metric's statistics and counted.

For RadJudge (expected orderings, no ratings): the number of cases whose every expected
ordering holds; "=" holds when the two scores differ by less than 0.01 (RadJudge's tolerance).
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from radeval.bench.human_data import RADJUDGE_TOLERANCE, HumanData
from radeval.errors import ConfigError, DependencyError, ModelNotFound, RadevalError


@dataclass
class HumanResult:
    dataset: str
    source: str
    candidates: int
    cases: int
    settings: dict[str, Any]
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "source": self.source,
            "candidates": self.candidates,
            "cases": self.cases,
            "settings": self.settings,
            "metrics": self.metrics,
            "skipped": self.skipped,
            "notes": self.notes,
            "seconds": self.seconds,
        }


def parse_metric(label: str) -> tuple[str, str | None]:
    name, _, key = label.partition(":")
    return name.strip(), (key.strip() or None)


def _kendall(s: np.ndarray, h: np.ndarray) -> float | None:
    from scipy.stats import kendalltau

    if len(s) < 2:
        return None
    tau = kendalltau(s, h).statistic  # variant "b" is scipy's default
    return float(tau) if tau is not None and math.isfinite(tau) else None


def _pairs(data: HumanData, h: np.ndarray) -> list[tuple[int, int, int]]:
    """(i, j, sign of h_i - h_j) for the candidates of one case that humans rank differently."""
    by_case: dict[str, list[int]] = defaultdict(list)
    for i, c in enumerate(data.candidates):
        by_case[c.case].append(i)
    out = []
    for idx in by_case.values():
        for a in range(len(idx)):
            for b in range(a + 1, len(idx)):
                i, j = idx[a], idx[b]
                if h[i] != h[j]:
                    out.append((i, j, 1 if h[i] > h[j] else -1))
    return out


def _pair_accuracy(s: np.ndarray, pairs: Sequence[tuple[int, int, int]]) -> tuple[float | None, int]:
    hits, n = 0.0, 0
    for i, j, sign in pairs:
        if np.isnan(s[i]) or np.isnan(s[j]):
            continue
        n += 1
        d = s[i] - s[j]
        hits += 0.5 if d == 0 else float((d > 0) == (sign > 0))
    return (hits / n if n else None), n


def _ci(values: list[float]) -> list[float] | None:
    v = [x for x in values if x is not None and math.isfinite(x)]
    return [float(x) for x in np.percentile(v, [2.5, 97.5])] if v else None


def _check(expected: str, scores: dict[str, float]) -> bool:
    if " = " in expected:
        a, b = (x.strip() for x in expected.split(" = "))
        return abs(scores[a] - scores[b]) < RADJUDGE_TOLERANCE
    a, b = (x.strip() for x in expected.split(" > "))
    return scores[a] > scores[b]


def score_candidates(
    data: HumanData, labels: Sequence[str], strict: bool, options: dict[str, dict[str, Any]] | None = None
) -> tuple[dict[str, np.ndarray], dict[str, str], dict[str, str]]:
    """Per-candidate scores of each ``metric[:key]`` (sign-aligned: higher = better), the
    skipped metrics with the reason, and the key each label used."""
    from radeval.registry import get_metric

    hyps = [c.text for c in data.candidates]
    refs = [c.reference for c in data.candidates]
    results: dict[str, Any] = {}
    out: dict[str, np.ndarray] = {}
    skipped: dict[str, str] = {}
    used: dict[str, str] = {}
    for label in labels:
        name, key = parse_metric(label)
        try:
            if name not in results:
                metric = get_metric(name, **(options or {}).get(name, {}))
                results[name] = (metric, metric.score(hyps, refs))
            metric, res = results[name]
            key = key or metric.keys[0]
            if key not in res.sample:
                raise ConfigError(f"metric {name!r} has no key {key!r} (keys: {', '.join(metric.keys)})")
            v = np.asarray(res.sample[key], dtype=np.float64)
            out[label] = v if metric.higher_is_better(key) else -v
            used[label] = key
        except (DependencyError, ModelNotFound) as e:
            if strict:
                raise
            skipped[label] = str(e).splitlines()[0]
    return out, skipped, used


def run(
    data: HumanData,
    labels: Sequence[str],
    *,
    bootstrap: int = 1000,
    seed: int = 0,
    strict: bool = False,
    options: dict[str, dict[str, Any]] | None = None,
) -> HumanResult:
    """Score every candidate with each ``metric[:key]`` (``options``: metric -> keyword options)."""
    if bootstrap < 0:
        raise ConfigError(f"bootstrap must be >= 0, got {bootstrap}")
    if not labels:
        raise ConfigError("no metric selected")
    t0 = time.perf_counter()
    cases = sorted({c.case for c in data.candidates})
    res = HumanResult(
        data.name, data.source, len(data.candidates), len(cases),
        {"bootstrap": bootstrap, "seed": seed, "ci": "percentile 95%, resampling cases",
         "tau": "Kendall tau-b (scipy)", "tie_tolerance": RADJUDGE_TOLERANCE if data.orderings else None},
        notes=list(data.notes),
    )  # fmt: skip
    scores, res.skipped, used = score_candidates(data, labels, strict, options)
    if data.orderings:
        for label, s in scores.items():
            passed, per_case, unscored = 0, {}, 0
            for tid, index, exps in data.orderings:
                sc = {c: float(s[i]) for c, i in index.items()}
                if any(math.isnan(v) for v in sc.values()):
                    unscored += 1
                    per_case[tid] = None
                    continue
                ok = all(_check(e, sc) for e in exps)
                per_case[tid] = ok
                passed += ok
            res.metrics[label] = {"key": used[label], "passed": passed, "total": len(data.orderings), "unscored_cases": unscored,
                                  "cases": per_case}  # fmt: skip
        res.seconds = time.perf_counter() - t0
        return res
    h = np.array([c.human[data.primary] for c in data.candidates])
    extra = [k for k in data.candidates[0].human if k != data.primary]
    pairs = _pairs(data, h)
    case_items: dict[str, list[int]] = defaultdict(list)
    for i, c in enumerate(data.candidates):
        case_items[c.case].append(i)
    rng = np.random.default_rng(seed)
    draws = [rng.integers(0, len(cases), size=len(cases)) for _ in range(bootstrap)]
    # a resample's candidates, and its within-case pairs (cases drawn twice contribute twice)
    pairs_by_case: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
    for p in pairs:
        pairs_by_case[data.candidates[p[0]].case].append(p)
    for label, s in scores.items():
        ok = ~np.isnan(s)
        row: dict[str, Any] = {"key": used[label], "unscored": int((~ok).sum())}
        row["tau_b"] = _kendall(s[ok], h[ok])
        acc, n = _pair_accuracy(s, pairs)
        row["pairwise_accuracy"], row["pairs"] = acc, n
        for k in extra:
            hk = np.array([c.human[k] for c in data.candidates])
            row[f"tau_b{k.replace('-', '_neg_')}"] = _kendall(s[ok], hk[ok])
        taus, accs = [], []
        for d in draws:
            idx = np.array([i for ci in d for i in case_items[cases[ci]]])
            keep = idx[ok[idx]]
            taus.append(_kendall(s[keep], h[keep]))
            accs.append(_pair_accuracy(s, [p for ci in d for p in pairs_by_case[cases[ci]]])[0])
        row["tau_b_ci95"] = _ci(taus) if bootstrap else None
        row["pairwise_accuracy_ci95"] = _ci(accs) if bootstrap else None
        res.metrics[label] = row
    res.seconds = time.perf_counter() - t0
    return res


def ranking(res: HumanResult) -> list[dict[str, Any]]:
    rows = [{"metric": k, **v} for k, v in res.metrics.items()]
    if res.dataset == "radjudge":
        rows.sort(key=lambda r: (-r["passed"], r["metric"]))
    else:
        rows.sort(key=lambda r: (-(r["tau_b"] if r["tau_b"] is not None else -math.inf), r["metric"]))
    return rows


def display_name(row: dict[str, Any]) -> str:
    """``metric:key`` unless the label already names the key (or the key is the metric's name)."""
    m = row["metric"]
    return m if ":" in m or row["key"] == m else f"{m}:{row['key']}"


def human_table_rows(res: HumanResult) -> tuple[list[str], list[list[str]]]:
    """Column names and cells of the ranking table (shared by the console, Markdown, HTML)."""

    def f(x, d=3):
        return "–" if x is None else f"{x:.{d}f}"

    def ci(c):
        return "" if not c else f" [{c[0]:.2f}, {c[1]:.2f}]"

    name = display_name

    if res.dataset == "radjudge":
        cols = ["metric", "cases passed", "unscored cases"]
        return cols, [[name(r), f"{r['passed']}/{r['total']}", str(r["unscored_cases"])] for r in ranking(res)]
    cols = ["metric", "Kendall τ-b [95% CI]", "pairwise accuracy [95% CI]", "pairs", "unscored"]
    rows = [
        [name(r), f(r["tau_b"]) + ci(r["tau_b_ci95"]),
         f(r["pairwise_accuracy"]) + ci(r["pairwise_accuracy_ci95"]), str(r["pairs"]), str(r["unscored"])]
        for r in ranking(res)
    ]  # fmt: skip
    return cols, rows


def check_result(res: HumanResult) -> None:
    if not res.metrics:
        raise RadevalError("no metric could run: " + "; ".join(f"{k}: {v}" for k, v in res.skipped.items()))
