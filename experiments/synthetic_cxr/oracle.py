"""The study's target: true-label F1 over the five findings the generator draws.

The generator knows which findings each image holds (``cases.jsonl``'s ``findings``), so a
report can be graded against the truth rather than against a (possibly under-reported)
reference text. The report's labels come from radeval's rule-based CheXpert labeler (the same
labeler the metric tables use), uncertain counted as positive (the tables' convention).

* :func:`counts` — TP/FP/FN per report over the five findings: the rows the primary metric
  (micro-F1, pooled counts) and its hierarchical bootstrap are built from;
* :func:`f1_per_report` — per-report F1 over the five findings (a report and truth that are
  both empty score 1: a correct normal report), the pre-flight's target and the oracle reward;
* :class:`OracleF1Reward` — that per-report F1 as a TRL reward (picklable callable object),
  looking the truth up by the dataset's ``id`` column: the positive control's reward.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from experiments.synthetic_cxr.generator import FINDINGS

#: generator finding keys, in a fixed order, and the CheXpert observation each one is labeled as
FIVE: tuple[str, ...] = tuple(FINDINGS)
FIVE_OBS: tuple[str, ...] = tuple(FINDINGS[k] for k in FIVE)


def truth_matrix(findings: Iterable[Iterable[str]]) -> np.ndarray:
    """(n, 5) bool: which of the five findings each case holds (generator keys)."""
    rows = [set(f) for f in findings]
    return np.array([[k in r for k in FIVE] for r in rows], dtype=bool).reshape(len(rows), len(FIVE))


def label_matrix(texts: Sequence[str]) -> np.ndarray:
    """(n, 5) bool: the rule-based labeler's positives (1 or uncertain −1) among the five findings."""
    from radeval.labels import CHEXPERT_OBSERVATIONS
    from radeval.metrics.chexpert_rules import label_reports

    if not len(texts):
        return np.zeros((0, len(FIVE)), dtype=bool)
    idx = [CHEXPERT_OBSERVATIONS.index(o) for o in FIVE_OBS]
    lab = np.asarray(label_reports(list(texts)), dtype=float)[:, idx]
    return (lab == 1.0) | (lab == -1.0)


def counts(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """(n, 3) int: TP, FP, FN per report, summed over the five findings."""
    pred, true = np.asarray(pred, bool), np.asarray(true, bool)
    tp = (pred & true).sum(1)
    fp = (pred & ~true).sum(1)
    fn = (~pred & true).sum(1)
    return np.stack([tp, fp, fn], axis=1).astype(np.int64)


def micro_f1(c: np.ndarray) -> float:
    """Micro-F1 from summed (TP, FP, FN) rows; 0 when nothing is positive on either side."""
    tp, fp, fn = np.asarray(c).reshape(-1, 3).sum(0)
    den = 2 * tp + fp + fn
    return float(2 * tp / den) if den else 0.0


def f1_per_report(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Per-report F1 over the five findings; both sides empty (a correct normal report) = 1."""
    c = counts(pred, true)
    tp, fp, fn = c[:, 0], c[:, 1], c[:, 2]
    den = 2 * tp + fp + fn
    return np.where(den > 0, 2 * tp / np.maximum(den, 1), 1.0)


def load_truth(cases_path: str | Path) -> dict[str, list[str]]:
    """id -> generator findings, from ``cases.jsonl``."""
    out = {}
    with Path(cases_path).open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                r = json.loads(line)
                out[str(r["id"])] = list(r["findings"])
    return out


class OracleF1Reward:
    """Positive-control reward: per-report true-label F1 over the five findings.

    TRL's reward contract; reads the ``id`` column TRL repeats per completion and scores the
    text inside ``<report>…</report>`` (as every VALOR reward does). Never raises: an id
    without truth scores None (unscored), which the trainer treats as neutral.
    """

    __name__ = "oracle_f1"

    def __init__(self, cases_path: str | Path):
        self.cases_path = str(cases_path)
        self._truth: dict[str, list[str]] | None = None

    def __call__(self, prompts=None, completions=(), completion_ids=None, **kwargs: Any) -> list[float | None]:
        from radeval.rewards.extract import extract_report

        if self._truth is None:
            self._truth = load_truth(self.cases_path)
        ids = [str(i) for i in kwargs.get("id") or [None] * len(completions)]
        texts = [extract_report(c) for c in completions]
        known = [i for i, rid in enumerate(ids) if rid in self._truth]
        out: list[float | None] = [None] * len(completions)
        if known:
            pred = label_matrix([texts[i] for i in known])
            true = truth_matrix([self._truth[ids[i]] for i in known])
            for j, v in zip(known, f1_per_report(pred, true)):
                out[j] = float(v)
        return out
