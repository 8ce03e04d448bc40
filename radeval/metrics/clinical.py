"""Clinical-efficacy F1 over the 14 CheXpert observations, for any labeler.

Both reports of a record are labelled (1 positive, 0 negative, -1 uncertain, blank) and
compared per observation. One F1 layer serves both labelers:

* :class:`CheXpertRulesF1` (``chexpert_rules``): radeval's offline rule-based labeler;
* :class:`CheXbertF1` (``chexbert``): the CheXbert labeler (``chexbert.pth``).

**Conventions** (``convention=``), blank and negative are "no finding" in all of them:

* ``uncertain-positive`` (default): uncertain counts as positive -- f1chexbert's ``rrg`` mode,
  ViLMedic, RadEval, RadVLM-GRPO's evaluation;
* ``uncertain-negative``: positive-only, uncertain counts as negative -- the R2Gen lineage's
  CE metrics, MAIRA-2;
* ``uncertain-class``: positive and uncertain are two classes (IFCC's ``--uncertain``): per
  observation the counts pool the two classes as sklearn's
  ``precision_recall_fscore_support(labels=[pos, unc], average="micro")`` does, so a
  positive/uncertain mix-up is one FP and one FN.

**Keys** (``P`` = the metric name):

* ``P_f1``: micro-averaged F1 over the ``label_set`` (default the 14 observations) -- what
  the papers we reproduce print as "CheXbert F1" (VALOR's text: "micro-averaged F1";
  RadVLM-GRPO's "CheXbert micro"; f1chexbert's ``micro avg`` of ``class_report``);
* ``P_f1_{micro,macro,weighted}_{14,5}``: sklearn's averages over all 14 observations and
  over the 5 (Atelectasis, Cardiomegaly, Consolidation, Edema, Pleural Effusion); an
  observation with no positive on either side scores 0 in macro (sklearn's zero_division);
* ``P_f1_sample``: per-report F1 pooled over the label_set -- the reward. A pair with no
  positive on either side (a correct normal report) scores 1.0, not 0/0; its corpus value is
  the mean over reports;
* ``P_em5``: 1 when the two reports agree on all 5 observations (ViLMedic's SCST reward,
  f1chexbert's ``accuracy``); corpus value = mean.

The per-sample value of every corpus key is that key on a one-record corpus (so a normal/
normal pair has ``P_f1`` = 0 there); use ``P_f1_sample`` as the reward.

Statistics rows: TP, FP, FN per observation, then the per-report F1, the 5-label match and
a count, so every corpus key (and its bootstrap) comes from summed rows.
Reference labels are cached by text hash: a GRPO group repeats its reference G times.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from radeval.errors import ConfigError, InputError
from radeval.labels import CHEXPERT_OBSERVATIONS, FIVE_INDEX
from radeval.metric import Metric

CONVENTIONS = ("uncertain-positive", "uncertain-negative", "uncertain-class")
LABEL_SETS = ("14", "5")
AVERAGES = ("micro", "macro", "weighted")
N_OBS = len(CHEXPERT_OBSERVATIONS)
ALL_INDEX = tuple(range(N_OBS))
REF_CACHE_SIZE = 200_000

# column layout of a stats row
_TP, _FP, _FN = 0, N_OBS, 2 * N_OBS
_SAMPLE_F1, _EM5, _COUNT = 3 * N_OBS, 3 * N_OBS + 1, 3 * N_OBS + 2


def _slug(name: str) -> str:
    return name.lower().replace(" ", "_")


def to_classes(labels: np.ndarray, convention: str) -> np.ndarray:
    """Labeler values -> integer classes: 0 no finding, 1 positive, 2 uncertain (own class).

    Blank (NaN) and negative (0) are 0 in every convention; uncertain (-1) becomes 1
    (uncertain-positive), 0 (uncertain-negative) or 2 (uncertain-class).
    """
    if convention not in CONVENTIONS:
        raise ConfigError(f"unknown convention {convention!r}; use one of {', '.join(CONVENTIONS)}")
    labels = np.asarray(labels, dtype=np.float64)
    out = np.zeros(labels.shape, dtype=np.int8)
    out[labels == 1.0] = 1
    unc = {"uncertain-positive": 1, "uncertain-negative": 0, "uncertain-class": 2}[convention]
    out[labels == -1.0] = unc
    return out


def label_counts(hyp: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-record, per-observation TP, FP, FN of class matrices (0 = no finding).

    With two positive classes (uncertain-class) these are sklearn's micro counts over both.
    """
    same = hyp == ref
    tp = same & (ref > 0)
    fp = (hyp > 0) & ~same
    fn = (ref > 0) & ~same
    return tp, fp, fn


def _div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den with 0 where den == 0 (sklearn's zero_division default)."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)


def prf(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall, F1 from counts (elementwise; 0 where undefined, as sklearn)."""
    precision = _div(tp, tp + fp)
    recall = _div(tp, tp + fn)
    f1 = _div(2 * tp, 2 * tp + fp + fn)
    return precision, recall, f1


def averaged_f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, average: str) -> np.ndarray:
    """sklearn's micro / macro / weighted F1 over the last axis (the observations)."""
    if average == "micro":
        return prf(tp.sum(-1), fp.sum(-1), fn.sum(-1))[2]
    f1 = prf(tp, fp, fn)[2]
    if average == "macro":
        return f1.mean(-1)
    if average == "weighted":
        support = tp + fn
        return _div((f1 * support).sum(-1), support.sum(-1))
    raise ConfigError(f"unknown average {average!r}; use one of {', '.join(AVERAGES)}")


class _ClinicalF1(Metric):
    """The F1 layer; subclasses provide ``name``, ``_build_labeler`` and labeler options."""

    name: ClassVar[str]
    impl_version: ClassVar[str] = "1"

    def __init__(self, convention: str = "uncertain-positive", label_set: str | int = "14") -> None:
        if convention not in CONVENTIONS:
            raise ConfigError(f"unknown convention {convention!r}; use one of {', '.join(CONVENTIONS)}")
        label_set = str(label_set)
        if label_set not in LABEL_SETS:
            raise ConfigError(f"unknown label_set {label_set!r}; use 14 or 5")
        self.convention = convention
        self.label_set = label_set
        self._labeler: Any = None
        self._ref_cache: dict[bytes, np.ndarray] = {}
        p = self.name
        self.keys = (
            f"{p}_f1",
            *(f"{p}_f1_{avg}_{n}" for n in LABEL_SETS for avg in AVERAGES),
            f"{p}_f1_sample",
            f"{p}_em5",
        )
        self.stat_names = (
            *(f"tp_{_slug(o)}" for o in CHEXPERT_OBSERVATIONS),
            *(f"fp_{_slug(o)}" for o in CHEXPERT_OBSERVATIONS),
            *(f"fn_{_slug(o)}" for o in CHEXPERT_OBSERVATIONS),
            "f1_sample",
            "em5",
            "n",
        )
        self.directions = {k: True for k in self.keys}

    # ----- labeler ------------------------------------------------------------------------------
    def _build_labeler(self) -> Any:
        raise NotImplementedError

    @property
    def labeler(self) -> Any:
        if self._labeler is None:
            self._labeler = self._build_labeler()
        return self._labeler

    def settings(self) -> dict[str, Any]:
        out = dict(self.labeler.settings())
        out.update(
            convention=self.convention,
            label_set=self.label_set,
            f1=f"micro-{self.label_set}",
            zero_division=0,
            empty_pair_sample=1,
        )
        return out

    def _labels(self, texts: Sequence[str], *, cache: bool) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, N_OBS))
        return np.asarray(self.labeler.label(list(texts), cache=cache), dtype=np.float64)

    def reference_labels(self, refs: Sequence[str]) -> np.ndarray:
        """Labels of references, cached by text hash (GRPO repeats each reference G times)."""
        out = np.empty((len(refs), N_OBS))
        keys = []
        for i, r in enumerate(refs):
            if not isinstance(r, str):
                raise InputError(f"reference {i}: expected a string, got {type(r).__name__}")
            keys.append(hashlib.blake2b(r.encode("utf-8", "surrogatepass"), digest_size=16).digest())
        # rows of this batch are collected locally first: trimming the cache below must never
        # drop a row this batch still needs (a batch larger than the cache, or old hits)
        rows: dict[bytes, np.ndarray] = {}
        todo: dict[bytes, str] = {}
        for k, r in zip(keys, refs):
            if k in rows or k in todo:
                continue
            hit = self._ref_cache.pop(k, None)
            if hit is None:
                todo[k] = r
            else:
                rows[k] = hit
                self._ref_cache[k] = hit  # re-insert: most recently used goes last
        if todo:
            fresh = self._labels(list(todo.values()), cache=False)
            for k, row in zip(todo, fresh):
                rows[k] = row
                self._ref_cache[k] = row
        while len(self._ref_cache) > REF_CACHE_SIZE:  # least recently used first
            del self._ref_cache[next(iter(self._ref_cache))]
        for i, k in enumerate(keys):
            out[i] = rows[k]
        return out

    def hypothesis_labels(self, hyps: Sequence[str]) -> np.ndarray:
        for i, h in enumerate(hyps):
            if not isinstance(h, str):
                raise InputError(f"hypothesis {i}: expected a string, got {type(h).__name__}")
        # completions are one-off texts: label each distinct one once, don't keep them
        uniq = list(dict.fromkeys(hyps))
        rows = self._labels(uniq, cache=False)
        index = {t: i for i, t in enumerate(uniq)}
        return rows[[index[h] for h in hyps]] if hyps else np.zeros((0, N_OBS))

    # ----- statistics ---------------------------------------------------------------------------
    def stats(self, hyps, refs, images=None) -> np.ndarray:
        if len(hyps) != len(refs):
            raise InputError(f"{len(hyps)} hypotheses but {len(refs)} references")
        return self.stats_from_labels(self.hypothesis_labels(hyps), self.reference_labels(refs))

    def stats_from_labels(self, hyp_labels: np.ndarray, ref_labels: np.ndarray) -> np.ndarray:
        """Stats rows from two ``(n, 14)`` label matrices (values 1 / 0 / -1 / NaN)."""
        h = to_classes(hyp_labels, self.convention)
        r = to_classes(ref_labels, self.convention)
        tp, fp, fn = label_counts(h, r)
        n = len(h)
        rows = np.zeros((n, len(self.stat_names)))
        rows[:, _TP:_FP] = tp
        rows[:, _FP:_FN] = fp
        rows[:, _FN:_SAMPLE_F1] = fn
        cols = list(FIVE_INDEX if self.label_set == "5" else ALL_INDEX)
        stp, sfp, sfn = tp[:, cols].sum(1), fp[:, cols].sum(1), fn[:, cols].sum(1)
        den = 2 * stp + sfp + sfn
        # per-report F1; a pair with nothing positive on either side agrees fully -> 1.0
        rows[:, _SAMPLE_F1] = np.where(den > 0, 2 * stp / np.where(den > 0, den, 1), 1.0)
        five = list(FIVE_INDEX)
        rows[:, _EM5] = (h[:, five] == r[:, five]).all(1)
        rows[:, _COUNT] = 1.0
        return rows

    def from_totals(self, totals: np.ndarray) -> dict[str, np.ndarray]:
        totals = np.asarray(totals, dtype=np.float64)
        tp = totals[..., _TP:_FP]
        fp = totals[..., _FP:_FN]
        fn = totals[..., _FN:_SAMPLE_F1]
        p = self.name
        out: dict[str, np.ndarray] = {}
        for n, idx in (("14", list(ALL_INDEX)), ("5", list(FIVE_INDEX))):
            for avg in AVERAGES:
                out[f"{p}_f1_{avg}_{n}"] = averaged_f1(tp[..., idx], fp[..., idx], fn[..., idx], avg)
        out[f"{p}_f1"] = out[f"{p}_f1_micro_{self.label_set}"]
        count = totals[..., _COUNT]
        out[f"{p}_f1_sample"] = _div(totals[..., _SAMPLE_F1], count)
        out[f"{p}_em5"] = _div(totals[..., _EM5], count)
        return {k: out[k] for k in self.keys}

    def details(self, totals: np.ndarray) -> dict[str, Any]:
        """Per-observation precision / recall / F1 / support, and the averages (sklearn's report)."""
        tp, fp, fn = totals[_TP:_FP], totals[_FP:_FN], totals[_FN:_SAMPLE_F1]
        precision, recall, f1 = prf(tp, fp, fn)
        per_label = {
            obs: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(tp[i] + fn[i]),
                "tp": int(tp[i]),
                "fp": int(fp[i]),
                "fn": int(fn[i]),
            }
            for i, obs in enumerate(CHEXPERT_OBSERVATIONS)
        }
        averages = {}
        for n, idx in (("14", list(ALL_INDEX)), ("5", list(FIVE_INDEX))):
            t, f_p, f_n = tp[idx], fp[idx], fn[idx]
            sup = t + f_n
            p_l, r_l, f_l = prf(t, f_p, f_n)
            mp, mr, mf = prf(t.sum(), f_p.sum(), f_n.sum())
            averages[f"micro_{n}"] = {"precision": float(mp), "recall": float(mr), "f1": float(mf)}
            averages[f"macro_{n}"] = {
                "precision": float(p_l.mean()),
                "recall": float(r_l.mean()),
                "f1": float(f_l.mean()),
            }
            averages[f"weighted_{n}"] = {
                "precision": float(_div((p_l * sup).sum(), sup.sum())),
                "recall": float(_div((r_l * sup).sum(), sup.sum())),
                "f1": float(_div((f_l * sup).sum(), sup.sum())),
            }
            for avg in AVERAGES:
                averages[f"{avg}_{n}"]["support"] = int(sup.sum())
        return {"convention": self.convention, "per_label": per_label, "averages": averages}


class CheXpertRulesF1(_ClinicalF1):
    """F1 from radeval's offline rule-based CheXpert-style labeler (pure Python, no model)."""

    name = "chexpert_rules"

    def _build_labeler(self) -> Any:
        from radeval.metrics.chexpert_rules import RuleLabeler

        return RuleLabeler()


class CheXbertF1(_ClinicalF1):
    """F1 from the CheXbert labeler; the model loads on first use (``ModelNotFound`` if absent)."""

    name = "chexbert"

    def __init__(
        self,
        convention: str = "uncertain-positive",
        label_set: str | int = "14",
        model_path: str | None = None,
        tokenizer_path: str | None = None,
        device: str = "cpu",
        batch_size: int = 32,
    ) -> None:
        super().__init__(convention=convention, label_set=label_set)
        self.model_path = model_path
        self.tokenizer_path = tokenizer_path
        self.device = device
        self.batch_size = batch_size

    def _build_labeler(self) -> Any:
        # shared with SembScore and RadCliQ: one forward pass per text for all of them
        from radeval.metrics.shared import chexbert_labeler

        return chexbert_labeler(
            model_path=self.model_path,
            tokenizer_path=self.tokenizer_path,
            device=self.device,
            batch_size=self.batch_size,
        )
