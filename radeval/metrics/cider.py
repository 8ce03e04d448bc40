"""CIDEr-D exactly as pycocoevalcap's ``Cider`` computes it, with a named document-frequency table.

pycocoevalcap's ``CiderScorer`` (the R2Gen lineage's "CIDEr"), on texts normalised by one of
radeval's tokenisation modes and split on whitespace:

* n-grams n = 1..4 of each text; a record's reference n-grams count once in the document
  frequency ``df(g)`` (one reference per record here);
* ``ref_len = log(N)``, N = number of references the DF was counted on;
* tf-idf vector per order: ``tf(g) * (ref_len - log(max(1, df(g))))``, its L2 norm per order;
* per order, ``sum_g min(v_hyp(g), v_ref(g)) * v_ref(g) / (|v_hyp| |v_ref|)`` (the "-D"
  clipping; 0 when a norm is 0), times the Gaussian length penalty
  ``e ** (-(l_hyp - l_ref) ** 2 / (2 sigma ** 2))`` with sigma = 6;
* score = mean over the 4 orders, x 10 (divided by the number of references: 1).

pycocoevalcap's "length" counts *bigrams*, not words (``if n == 1`` on ``len(ngram) - 1``);
we keep that, since the numbers must be its numbers. The corpus value is the mean of the
per-record values, as ``compute_score`` returns.

Document frequencies are a corpus-level setting (like RadCliQ's BERTScore IDF): a per-record
value depends on every reference. They come from one named corpus, fixed before scoring:

* default (evaluation, pycocoevalcap's definition): the references of the evaluated set.
  ``radeval score`` / :func:`radeval.evaluate` read all references in a first pass and call
  :meth:`Cider.fit_references`; chunked streaming, ``--resume`` (the first pass is repeated,
  the manifest holds the DF hash through the signature) and torchrun ranks (each rank reads
  every reference in its first pass) then give the values of one pycocoevalcap call on the
  whole file. Bootstrap resamples the per-record rows with the DF held fixed (the DF is part
  of the metric's definition, not re-estimated per resample), as RadCliQ's IDF is.
* ``df_corpus=``: a DF table built by ``radeval cider-df REFS -o df.json`` (JSON, records
  its tokenisation mode and reference count), a text/JSONL file of references, or a list of
  texts: fixed once, its hash in the signature. Rewards should use this (e.g. the training
  set's references): a GRPO batch repeats each reference G times, so a per-batch DF would make
  a completion's reward depend on the rest of its batch.
* neither: :meth:`score` / :meth:`stats` on an unfitted metric fit the DF on that call's
  references and freeze it (a single ``score`` call therefore equals one pycocoevalcap call);
  the signature names the corpus it was fitted on.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from radeval.errors import ConfigError, InputError
from radeval.metric import MeanMetric
from radeval.tokenize import DEFAULT_TOKENIZE, check_mode, normalize

N_ORDER = 4
SIGMA = 6.0
DF_FORMAT = "radeval-cider-df"
DF_VERSION = 1


def ngram_orders(text: str, n: int = N_ORDER) -> list[Counter]:
    """pycocoevalcap's ``precook`` split by order: one Counter of k-grams per k = 1..``n``.

    Each Counter's insertion order (first occurrence, by position) is the order in which
    ``precook``'s dict holds that order's n-grams, so sums over them run in the reference's order.
    """
    words = text.split()
    return [Counter(zip(*(words[i:] for i in range(k)))) for k in range(1, n + 1)]


def ngram_counts(text: str, n: int = N_ORDER) -> dict[tuple[str, ...], int]:
    """pycocoevalcap's ``precook``: counts of every n-gram, n = 1..``n``, in its order."""
    out: dict[tuple[str, ...], int] = {}
    for c in ngram_orders(text, n):
        out.update(c)
    return out


class DocumentFrequency:
    """Document frequencies of n-grams over a reference corpus (one document per reference)."""

    def __init__(self, df: dict[tuple[str, ...], float], n_refs: int, label: str, sha: str) -> None:
        self.df = df
        self.n_refs = int(n_refs)
        # pycocoevalcap: log(float(len(crefs))); an empty corpus cannot define it
        self.ref_len = math.log(float(self.n_refs)) if self.n_refs > 0 else 0.0
        self.label = label
        self.sha = sha
        # idf weight per n-gram, ref_len - log(max(1, df)), computed once (an unseen n-gram: ref_len)
        self.weight = {g: self.ref_len - math.log(max(1.0, c)) for g, c in df.items()}

    @property
    def id(self) -> str:
        return f"{self.label}(n={self.n_refs},sha={self.sha})"

    @classmethod
    def from_normalised(cls, refs: Iterable[str], label: str) -> DocumentFrequency:
        df: Counter = Counter()
        h = hashlib.sha256()
        n = 0
        for r in refs:
            for c in ngram_orders(r):
                df.update(c.keys())  # keys are distinct: each reference counts once
            h.update(r.encode("utf-8", "surrogatepass") + b"\n\x00")
            n += 1
        return cls({g: float(c) for g, c in df.items()}, n, label, h.hexdigest()[:12])

    def to_json(self, tokenize: str) -> dict[str, Any]:
        rows = sorted([" ".join(g), int(c)] for g, c in self.df.items())
        return {
            "format": DF_FORMAT,
            "version": DF_VERSION,
            "tokenize": tokenize,
            "n": N_ORDER,
            "n_refs": self.n_refs,
            "sha": self.sha,
            "df": rows,
        }

    @classmethod
    def from_json(cls, obj: Any, path: str, tokenize: str) -> DocumentFrequency:
        if not isinstance(obj, dict) or obj.get("format") != DF_FORMAT:
            raise InputError(f"{path}: not a CIDEr DF table (build one with `radeval cider-df`)")
        if obj.get("version") != DF_VERSION or obj.get("n") != N_ORDER:
            raise InputError(f"{path}: DF table version {obj.get('version')} / n={obj.get('n')} is not supported")
        if obj.get("tokenize") != tokenize:
            raise ConfigError(
                f"{path}: DF table was built with tokenize={obj.get('tokenize')!r}, the metric uses {tokenize!r}"
            )
        try:
            n_refs = int(obj["n_refs"])
            df = {tuple(g.split(" ")): float(c) for g, c in obj["df"]}
            sha = str(obj["sha"])
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(f"{path}: malformed DF table ({e!r})") from e
        if n_refs < 1:
            raise InputError(f"{path}: DF table has n_refs={n_refs}")
        return cls(df, n_refs, "df-file", sha)


def read_references(path: str | os.PathLike[str]) -> list[str]:
    """References from a text file (one per non-blank line) or JSONL (``reference`` field)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"CIDEr reference corpus {p}: no such file")
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise InputError(f"{p}: not UTF-8 text ({e})") from e
    if p.suffix != ".jsonl":
        return [ln for ln in lines if ln.strip()]
    out = []
    for i, ln in enumerate(lines, 1):
        if not ln.strip():
            continue
        try:
            rec = json.loads(ln)
            text = rec["reference"]
        except (ValueError, KeyError, TypeError) as e:
            raise InputError(f"{p}:{i}: need a JSON object with a 'reference' field ({e!r})") from e
        if not isinstance(text, str):
            raise InputError(f"{p}:{i}: 'reference' must be a string, got {type(text).__name__}")
        out.append(text)
    return out


class Cider(MeanMetric):
    """CIDEr-D (pycocoevalcap ``Cider``), per record and corpus mean, on a fixed DF table."""

    name = "cider"
    keys = ("cider",)

    def __init__(
        self,
        tokenize: str = DEFAULT_TOKENIZE,
        df_corpus: str | os.PathLike[str] | Sequence[str] | None = None,
        sigma: float = SIGMA,
    ) -> None:
        self.tokenize = check_mode(tokenize)
        if not (isinstance(sigma, (int, float)) and math.isfinite(sigma) and sigma > 0):
            raise ConfigError(f"cider sigma must be a positive number, got {sigma!r}")
        self.sigma = float(sigma)
        self._df: DocumentFrequency | None = None
        self._fixed = False
        self._ref_vec: dict[str, tuple] = {}
        if df_corpus is not None:
            self._df = self._load_corpus(df_corpus)
            self._fixed = True

    def _load_corpus(self, corpus) -> DocumentFrequency:
        if isinstance(corpus, dict):  # a DF table object (what worker_options hands to workers)
            return DocumentFrequency.from_json(corpus, "df_corpus", self.tokenize)
        if isinstance(corpus, (str, os.PathLike)):
            p = Path(corpus)
            if p.suffix == ".json":
                if not p.is_file():
                    raise ConfigError(f"cider df_corpus {p}: no such file")
                try:
                    obj = json.loads(p.read_text(encoding="utf-8"))
                except ValueError as e:
                    raise InputError(f"{p}: not JSON ({e})") from e
                return DocumentFrequency.from_json(obj, str(p), self.tokenize)
            texts = read_references(p)
            label = f"file:{p.name}"
        else:
            texts = list(corpus)
            if not all(isinstance(t, str) for t in texts):
                raise ConfigError("cider df_corpus must be a file path or a list of texts")
            label = "corpus"
        if not texts:
            raise ConfigError("cider df_corpus is empty")
        return DocumentFrequency.from_normalised(normalize(texts, self.tokenize), label)

    # ----- identity ---------------------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        return {
            "impl": "pycocoevalcap-cider",
            "tok": self.tokenize,
            "n": N_ORDER,
            "sigma": self.sigma,
            "df": self._df.id if self._df is not None else "unfitted",
            "nrefs": 1,
        }

    # ----- DF ---------------------------------------------------------------------------------
    def fit_references(self, refs: Sequence[str]) -> None:
        """DF from the evaluated references (the runner's first pass); no-op with a df_corpus."""
        if self._fixed:
            return
        self._df = DocumentFrequency.from_normalised(normalize(list(refs), self.tokenize), "test-refs")
        self._ref_vec.clear()

    def worker_options(self) -> dict[str, Any]:
        """Options that rebuild this metric with its fitted table in another process
        (``radeval score --workers N``): the table itself, so workers score with the DF of the
        main process's first pass."""
        if self._df is None:
            return {}
        return {"df_corpus": self._df.to_json(self.tokenize)}

    @property
    def document_frequency(self) -> DocumentFrequency | None:
        return self._df

    def score(self, hyps, refs, images=None):
        if self._df is None:
            self.fit_references(refs)
        return super().score(hyps, refs, images)

    # ----- scoring ----------------------------------------------------------------------------
    def _vec(self, text: str) -> tuple[list[dict], list[float], int]:
        """pycocoevalcap's ``counts2vec``: tf-idf per order, their norms, and the bigram count."""
        assert self._df is not None
        weight, ref_len = self._df.weight, self._df.ref_len
        get = weight.get
        orders = ngram_orders(text)
        vec = [{g: float(tf) * get(g, ref_len) for g, tf in c.items()} for c in orders]
        norms = []
        for v in vec:
            sq = 0.0
            for x in v.values():  # a plain running sum, in the reference's order (not sum()/fsum)
                sq += x**2
            norms.append(math.sqrt(sq))
        # sic: pycocoevalcap's "length" is the number of bigrams, not of words
        return vec, norms, sum(orders[1].values())

    def _ref(self, text: str) -> tuple:
        hit = self._ref_vec.get(text)
        if hit is None:
            if len(self._ref_vec) > 65536:  # bounded: GRPO sees new references every step
                self._ref_vec.clear()
            hit = self._ref_vec[text] = self._vec(text)
        return hit

    def _pair(self, hyp: str, ref: str) -> float:
        vh, nh, lh = self._vec(hyp)
        vr, nr, lr = self._ref(ref)
        delta = float(lh - lr)
        penalty = math.e ** (-(delta**2) / (2 * self.sigma**2))
        total = 0.0
        for n in range(N_ORDER):
            get = vr[n].get
            val = 0.0
            for g, v in vh[n].items():
                r = get(g)
                if r:  # an absent (or zero-weight) n-gram adds exactly 0.0: skipped
                    val += (v if v < r else r) * r
            if nh[n] != 0 and nr[n] != 0:
                val /= nh[n] * nr[n]
            total += val * penalty
        return total / N_ORDER * 10.0

    def values(self, hyps, refs, images=None) -> dict[str, np.ndarray]:
        if self._df is None:  # a bare stats call (e.g. a reward without df_corpus): freeze on it
            self._df = DocumentFrequency.from_normalised(normalize(list(refs), self.tokenize), "first-batch")
            self._fixed = True
        hyps_n, refs_n = normalize(hyps, self.tokenize), normalize(refs, self.tokenize)
        return {"cider": np.array([self._pair(h, r) for h, r in zip(hyps_n, refs_n)], dtype=np.float64)}


def build_df_table(refs: Sequence[str], tokenize: str = DEFAULT_TOKENIZE) -> dict[str, Any]:
    """The JSON DF table of ``refs`` (what ``radeval cider-df`` writes)."""
    check_mode(tokenize)
    if not refs:
        raise InputError("no references to count document frequencies on")
    return DocumentFrequency.from_normalised(normalize(list(refs), tokenize), "df-file").to_json(tokenize)


__all__ = ["Cider", "DocumentFrequency", "build_df_table", "ngram_counts", "ngram_orders", "read_references"]
