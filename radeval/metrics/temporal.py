"""Temporal F1: RadEval 2.2's temporal-entity F1 (``temporal_f1``; from Libra's TEM score).

The definition (RadEval 2.2.1 ``radeval/metrics/f1temporal``):

* The temporal entities of a text are the union of
  (a) stanza entities of type OBSERVATION or OBSERVATION_MODIFIER, lower-cased, whose whole text
      is one of the 44 temporal keywords below, from the pipeline
      ``stanza.Pipeline(lang="en", package="radiology", processors={"tokenize": "default",
      "ner": "radiology"})`` run on the raw text, and
  (b) every keyword found as a whole word in the lower-cased *cleaned* text (newlines and
      ``_``/``-`` to spaces, characters other than word characters, spaces and ``.,:;()``
      removed, runs of spaces collapsed).
  Only (a) sees a keyword glued to a removed character ("stable/improved", "stable's"), which
  is why the stanza model is needed for exact numbers.
* Per pair, with eps = 1e-10: no reference entity -> 1.0 if the prediction has none, else eps;
  otherwise P = (TP + eps) / (|pred| + eps), R = (TP + eps) / (|ref| + eps),
  F1 = 2PR / (P + R + eps). Corpus = mean of the per-pair values.

The stanza pipeline is a model file (``radeval models download stanza-radiology``); it is built
with ``download_method=None`` from the resolved directory, so nothing is fetched at run time.
Entity sets are cached per text (references recur in GRPO groups).
"""

from __future__ import annotations

import os
import re
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from radeval import models
from radeval.errors import DependencyError, InputError
from radeval.metric import MeanMetric

try:
    import stanza
except ImportError as e:  # the registry turns this into "install the [temporal] extra"
    raise ImportError(f"temporal F1 needs stanza: {e}") from e

EPS = 1e-10
ENTITY_TYPES = frozenset({"OBSERVATION", "OBSERVATION_MODIFIER"})
#: the temporal keywords (Bannur et al., CVPR 2023, as listed by RadEval/Libra)
KEYWORDS = frozenset(
    {
        "bigger", "change", "cleared", "constant", "decrease", "decreased", "decreasing", "elevated",
        "elevation", "enlarged", "enlargement", "enlarging", "expanded", "greater", "growing", "improved",
        "improvement", "improving", "increase", "increased", "increasing", "larger", "new", "persistence",
        "persistent", "persisting", "progression", "progressive", "reduced", "removal", "resolution",
        "resolved", "resolving", "smaller", "stability", "stable", "stably", "unchanged", "unfolded", "worse",
        "worsen", "worsened", "worsening", "unaltered",
    }
)  # fmt: skip
# longest first is irrelevant for whole-word matches; sorted for a stable pattern
_KEYWORD_RE = re.compile(r"\b(" + "|".join(re.escape(k) for k in sorted(KEYWORDS)) + r")\b")
# RadEval's clean_text steps, in order
_CLEAN = (
    (re.compile(r"\n+"), " "),
    (re.compile(r"[_-]+"), " "),
    (re.compile(r"\(___, __, __\)"), ""),
    (re.compile(r"---, ---, ---"), ""),
    (re.compile(r"\(__, __, ___\)"), ""),
    (re.compile(r"[_-]+"), " "),
    (re.compile(r"[^\w\s.,:;()-]"), ""),
    (re.compile(r"\s{2,}"), " "),
)
CACHE_SIZE = 100_000


def clean_text(text: str) -> str:
    for pattern, repl in _CLEAN:
        text = pattern.sub(repl, text)
    return text.strip()


def keyword_matches(text: str) -> set[str]:
    """Part (b): keywords as whole words in the cleaned, lower-cased text."""
    return {m.group().lower() for m in _KEYWORD_RE.finditer(clean_text(text).lower())}


def tem_score(pred: set[str], ref: set[str]) -> float:
    """RadEval's per-pair temporal F1 of two entity sets."""
    if not ref:
        return 1.0 if not pred else EPS
    tp = len(pred & ref)
    p = (tp + EPS) / (len(pred) + EPS)
    r = (tp + EPS) / (len(ref) + EPS)
    return (2 * p * r) / (p + r + EPS)


class TemporalF1(MeanMetric):
    """RadEval 2.2's temporal F1 (``temporal_f1``), exact given the same stanza models."""

    name = "temporal_f1"
    keys = ("temporal_f1",)

    def __init__(self, model_path: str | os.PathLike[str] | None = None, device: str | None = None) -> None:
        self.model_dir = models.resolve("stanza-radiology", model_path)
        self.device = device
        self._nlp: Any = None
        self._cache: OrderedDict[str, frozenset[str]] = OrderedDict()

    def settings(self) -> dict[str, Any]:
        return {
            "stanza": stanza.__version__,
            "ner": "radiology",
            "models": self._models_id(),
            "keywords": len(KEYWORDS),
            "eps": EPS,
        }

    def _models_id(self) -> str:
        """md5 prefix of the NER file: the resources dir has no commit to name."""
        import hashlib

        f = self.model_dir / "en" / "ner" / "radiology.pt"
        try:
            return hashlib.md5(f.read_bytes()).hexdigest()[:12]
        except OSError:
            return "unknown"

    def _pipeline(self) -> Any:
        if self._nlp is None:
            kw: dict[str, Any] = {}
            if self.device is not None:
                kw["device"] = self.device
            try:
                self._nlp = stanza.Pipeline(
                    lang="en",
                    dir=str(self.model_dir),
                    package="radiology",
                    processors={"tokenize": "default", "ner": "radiology"},
                    download_method=None,
                    logging_level="ERROR",
                    verbose=False,
                    **kw,
                )
            except (FileNotFoundError, ValueError) as e:
                raise DependencyError(
                    f"stanza could not build the radiology pipeline from {self.model_dir}: {e}; "
                    "fix: radeval models download stanza-radiology"
                ) from e
        return self._nlp

    def _annotate(self, texts: Sequence[str]) -> None:
        """Run the pipeline once per uncached text, one ``nlp(text)`` call each as RadEval does
        (stanza's ``bulk_process`` joins documents with blank lines and batches across them:
        about 25% faster here, but not the reference's call, so not used)."""
        nlp = self._pipeline()
        for t in dict.fromkeys(texts):
            if t in self._cache:
                continue
            doc = nlp(t)
            ner = {e.text.lower() for e in doc.entities if e.type in ENTITY_TYPES}
            self._cache[t] = frozenset((ner & KEYWORDS) | keyword_matches(t))
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)

    def entities(self, text: str) -> frozenset[str]:
        """The temporal entity set of one text (cached)."""
        self._annotate([text])
        self._cache.move_to_end(text)
        return self._cache[text]

    def values(self, hyps: Sequence[str], refs: Sequence[str], images=None) -> dict[str, np.ndarray]:
        if len(hyps) != len(refs):
            raise InputError(f"{len(hyps)} hypotheses but {len(refs)} references")
        for i, (h, r) in enumerate(zip(hyps, refs)):
            for what, t in (("hypothesis", h), ("reference", r)):
                if not isinstance(t, str):
                    raise InputError(f"{what} {i}: expected a string, got {type(t).__name__}")
        self._annotate(list(refs) + list(hyps))
        out = np.empty(len(hyps))
        for i, (h, r) in enumerate(zip(hyps, refs)):
            out[i] = tem_score(set(self.entities(h)), set(self.entities(r)))
        return {"temporal_f1": out}
