"""Lexical NLG metrics computed exactly as pycocoevalcap / rouge-score compute them.

* :class:`Bleu`: pycocoevalcap ``Bleu(4)``: per record the hypothesis length, the reference
  length ('closest' rule; one reference per record here), and for n = 1..4 the number of
  hypothesis n-grams ("guess") and clipped matches ("correct"). Corpus BLEU-n comes from the
  summed counts, sentence BLEU-n from one record's counts, both with pycocoevalcap's
  smoothing constants (tiny = 1e-15 on matches, small = 1e-9 on guesses) and brevity penalty.
  ``bleu_mean`` is the mean of BLEU-1..4 (the VALOR paper's "BLEU" column).
* :class:`RougeL`: pycocoevalcap ``Rouge``: LCS over ``text.split(" ")``, F with beta = 1.2,
  corpus = mean of per-record scores.
* :class:`RougeLStemmed`: rouge-score's ``rougeL`` F-measure with its tokenizer and Porter
  stemmer (RadEval's convention), corpus = mean.

References are reduced to their n-gram counts / token lists once and cached by text: in GRPO
each reference is compared with G completions per step and again every epoch.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from rapidfuzz.distance import LCSseq

from radeval.metric import MeanMetric, Metric
from radeval.tokenize import DEFAULT_TOKENIZE, check_mode, normalize

BLEU_N = 4
_TINY = 1e-15  # pycocoevalcap: added to matches so a zero count gives ~0, not 0/0
_SMALL = 1e-9  # pycocoevalcap: added to guesses and reference length


def _ngram_counts(words: Sequence[str], n_max: int = BLEU_N) -> list[Counter]:
    """One Counter of n-gram tuples per order n = 1..n_max (zip builds the tuples at C speed)."""
    return [Counter(zip(*(words[k:] for k in range(n)))) for n in range(1, n_max + 1)]


@lru_cache(maxsize=8192)
def _reference_info(text: str) -> tuple[int, list[Counter]]:
    # bounded: in GRPO a step holds B distinct references; 8192 keeps an epoch of a small
    # dataset without letting a million-record file grow memory (a Counter set is ~10 kB)
    words = text.split()
    return len(words), _ngram_counts(words)


def bleu_counts(hyp: str, ref: str) -> list[float]:
    """One stats row: [testlen, reflen, guess_1..4, correct_1..4] of normalised texts."""
    reflen, ref_counts = _reference_info(ref)
    words = hyp.split()
    testlen = len(words)
    guess = [max(0, testlen - k) for k in range(BLEU_N)]
    correct = []
    for hyp_n, ref_n in zip(_ngram_counts(words), ref_counts):
        get = ref_n.get
        correct.append(sum(min(c, get(g, 0)) for g, c in hyp_n.items()))
    return [testlen, reflen, *guess, *correct]


def bleu_from_counts(totals: np.ndarray) -> dict[str, np.ndarray]:
    """pycocoevalcap's BLEU from (summed) counts; vectorised over leading axes."""
    totals = np.asarray(totals, dtype=np.float64)
    testlen, reflen = totals[..., 0], totals[..., 1]
    guess, correct = totals[..., 2 : 2 + BLEU_N], totals[..., 2 + BLEU_N : 2 + 2 * BLEU_N]
    ratio = (testlen + _TINY) / (reflen + _SMALL)
    with np.errstate(divide="ignore", over="ignore"):
        brevity = np.where(ratio < 1, np.exp(1 - 1 / np.where(ratio < 1, ratio, 1.0)), 1.0)
    out: dict[str, np.ndarray] = {}
    product = np.ones_like(testlen)
    for k in range(BLEU_N):
        # same operation order as the reference: running product, then the k-th root
        product = product * ((correct[..., k] + _TINY) / (guess[..., k] + _SMALL))
        out[f"bleu_{k + 1}"] = product ** (1.0 / (k + 1)) * brevity
    out["bleu_mean"] = (out["bleu_1"] + out["bleu_2"] + out["bleu_3"] + out["bleu_4"]) / 4.0
    return out


class Bleu(Metric):
    name = "bleu"
    keys = ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "bleu_mean")
    stat_names = ("testlen", "reflen", *(f"guess_{n}" for n in range(1, 5)), *(f"correct_{n}" for n in range(1, 5)))

    def __init__(self, tokenize: str = DEFAULT_TOKENIZE):
        self.tokenize = check_mode(tokenize)

    def settings(self) -> dict:
        return {
            "impl": "pycocoevalcap-bleu",
            "tok": self.tokenize,
            "reflen": "closest",
            "smooth": "coco(1e-15,1e-9)",
            "nrefs": 1,
            "mean": "bleu1-4",
        }

    def stats(self, hyps, refs, images=None) -> np.ndarray:
        hyps_n, refs_n = normalize(hyps, self.tokenize), normalize(refs, self.tokenize)
        if not hyps_n:
            return np.zeros((0, len(self.stat_names)))
        return np.array([bleu_counts(h, r) for h, r in zip(hyps_n, refs_n)], dtype=np.float64)

    def from_totals(self, totals: np.ndarray) -> dict[str, np.ndarray]:
        return bleu_from_counts(totals)


def rouge_l_coco(hyp: str, ref: str, beta: float = 1.2) -> float:
    """pycocoevalcap's ROUGE-L F for one pair of normalised texts (tokens = split on ' ')."""
    cand, reference = hyp.split(" "), _coco_ref_tokens(ref)
    lcs = LCSseq.similarity(reference, cand)
    prec = lcs / len(cand)
    rec = lcs / len(reference)
    if prec != 0 and rec != 0:
        return ((1 + beta**2) * prec * rec) / float(rec + beta**2 * prec)
    return 0.0


@lru_cache(maxsize=8192)
def _coco_ref_tokens(text: str) -> list[str]:
    return text.split(" ")


class RougeL(MeanMetric):
    name = "rouge_l"
    keys = ("rouge_l",)

    def __init__(self, tokenize: str = DEFAULT_TOKENIZE, beta: float = 1.2):
        self.tokenize = check_mode(tokenize)
        if not (isinstance(beta, (int, float)) and math.isfinite(beta) and beta > 0):
            from radeval.errors import ConfigError

            raise ConfigError(f"rouge_l beta must be a positive number, got {beta!r}")
        self.beta = float(beta)

    def settings(self) -> dict:
        return {"impl": "pycocoevalcap-rouge", "tok": self.tokenize, "beta": self.beta, "split": "space"}

    def values(self, hyps, refs, images=None) -> dict[str, np.ndarray]:
        hyps_n, refs_n = normalize(hyps, self.tokenize), normalize(refs, self.tokenize)
        return {"rouge_l": np.array([rouge_l_coco(h, r, self.beta) for h, r in zip(hyps_n, refs_n)])}


class RougeLStemmed(MeanMetric):
    name = "rouge_l_stemmed"
    keys = ("rouge_l_stemmed",)

    def __init__(self) -> None:
        from rouge_score.tokenizers import DefaultTokenizer

        self._tokenizer = DefaultTokenizer(use_stemmer=True)
        self._ref_tokens = lru_cache(maxsize=8192)(lambda t: tuple(self._tokenizer.tokenize(t)))

    def settings(self) -> dict:
        import rouge_score

        version = getattr(rouge_score, "__version__", "0.1.2")
        return {"impl": f"rouge-score-{version}", "tok": "rouge-score", "stem": "porter", "f": "f1"}

    def values(self, hyps, refs, images=None) -> dict[str, np.ndarray]:
        out = np.empty(len(hyps))
        for i, (h, r) in enumerate(zip(hyps, refs)):
            target, pred = self._ref_tokens(r), self._tokenizer.tokenize(h)
            if not target or not pred:
                out[i] = 0.0
                continue
            lcs = LCSseq.similarity(list(target), pred)
            p, rec = lcs / len(pred), lcs / len(target)
            out[i] = 2 * p * rec / (p + rec) if p + rec > 0 else 0.0
        return {"rouge_l_stemmed": out}
