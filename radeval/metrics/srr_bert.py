"""SRR-BERT: RadEval 2.2's structured-radiology-report labeler and its weighted P/R/F1.

The definition (RadEval 2.2.1, ``radeval/metrics/SRRBert``, key prefix ``srrbert_``):

* Each report is split into sentences: numbered-list markers ("1.", "word2.", ". 2.") are
  replaced by sentence breaks, a missing space after a period before a capital is added, a
  final period is added when the text does not end in ``.!?``, then nltk's Punkt splits the
  text with the English ``punkt_tab`` parameters (a model file: ``radeval models download
  punkt-tab``). An empty report becomes the one sentence ".".
* Every sentence is classified by ``StanfordAIMI/SRR-BERT-Leaves-with-Statuses``
  (``BertForSequenceClassification``, 163 sigmoid outputs, label = output > 0.5) with the
  tokenizer of ``microsoft/BiomedVLP-CXR-BERT-general`` (max 512 tokens). A report carries a
  label when any of its sentences does.
* Corpus keys ``srr_bert_weighted_{f1,precision,recall}``: sklearn's ``classification_report``
  "weighted avg" with the reference labels as truth (per-label values weighted by reference
  support, zero_division 0) -- RadEval's aggregate. Statistics rows are per-label TP/FP/FN, so
  the corpus value, streaming and bootstrap come from summed rows; the per-sample value of
  these keys is the key on a one-record corpus.
* Per-sample keys ``srr_bert_sample_{f1,precision,recall}``: RadEval's per-sample values
  (``multilabel_prf_per_sample``: per-label scores with eps 1e-8, averaged over the labels
  present on either side; a pair with no label on either side scores 1.0). Corpus value = mean.
  ``srr_bert_sample_f1`` is the reward.

Sentences are labelled once per distinct text (a GRPO group shares its reference and most
sentences recur), in length-sorted batches: padding differs from RadEval's batches of 4,
which moves logits in the last float32 bits only.
"""

from __future__ import annotations

import json
import os
import re
from collections import OrderedDict
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from radeval import models
from radeval.errors import ConfigError, InputError
from radeval.metric import Metric
from radeval.metrics.clinical import _div, prf

try:
    import torch
    import transformers
    from nltk.tabdata import PunktDecoder
    from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer
except ImportError as e:  # the registry turns this into "install the [clinical] extra"
    raise ImportError(f"SRR-BERT needs torch, transformers and nltk >= 3.9: {e}") from e

EPS = 1e-8  # RadEval's multilabel_prf_per_sample eps
THRESHOLD = 0.5
MAX_LENGTH = 512
PUNKT_LANG = "english"
PUNKT_FILES = ("collocations.tab", "sent_starters.txt", "abbrev_types.txt", "ortho_context.tab")
SENTENCE_CACHE_SIZE = 200_000


def label_names() -> list[str]:
    """The 163 labels in output order (RadEval's leaves_with_statuses mapping)."""
    text = resources.files("radeval").joinpath("resources/srr_bert/leaves_with_statuses_mapping.json").read_text()
    mapping = json.loads(text)
    return [k for k, _ in sorted(mapping.items(), key=lambda kv: kv[1])]


# ----- sentence splitting ----------------------------------------------------------------------
# RadEval's list-marker rewrites, in its order; (?!\d) keeps decimals such as "3.5" intact
_MARKERS = (
    (re.compile(r"^\s*\d+\.(?!\d)\s*"), ""),  # "1. ..." at the start
    (re.compile(r"(\w)\.(\d+)\.(?!\d)\s*"), r"\1. "),  # "word.2."
    (re.compile(r"(\w)(\d+)\.(?!\d)\s*"), r"\1. "),  # "word2."
    (re.compile(r"(\w)\s+\d+\.(?!\d)\s*"), r"\1. "),  # "word 2."
    (re.compile(r"([.!?])\s*\d+\.(?!\d)\s*"), r"\1 "),  # ". 2. word"
    (re.compile(r"\.([A-Z])"), r". \1"),  # "end.Next"
)


def locate_punkt(path: str | os.PathLike[str] | None = None) -> Path:
    """Directory holding the English punkt_tab files: an explicit path (an nltk data root or its
    ``english`` dir), $RADEVAL_MODELS_DIR/punkt-tab, then nltk's data path; else the model
    manager's error naming ``radeval models download punkt-tab``."""
    if path is not None and Path(path).name == PUNKT_LANG and all((Path(path) / f).is_file() for f in PUNKT_FILES):
        return Path(path)
    root = models.resolve("punkt-tab", path)
    return root / "tokenizers" / "punkt_tab" / PUNKT_LANG


def load_punkt(path: str | os.PathLike[str] | None = None) -> PunktSentenceTokenizer:
    """nltk's English Punkt tokenizer from punkt_tab files, read with nltk's own decoder.

    (``nltk.sent_tokenize`` would load the same files, but only from nltk's data path: nltk's
    path sandbox refuses any other directory, e.g. $RADEVAL_MODELS_DIR.)"""
    d = locate_punkt(path)
    params = PunktParameters()
    dec = PunktDecoder()
    with open(d / "collocations.tab", encoding="utf-8") as f:
        params.collocations = set(dec.tab2tups(f))
    with open(d / "sent_starters.txt", encoding="utf-8") as f:
        params.sent_starters = dec.txt2set(f)
    with open(d / "abbrev_types.txt", encoding="utf-8") as f:
        params.abbrev_types = dec.txt2set(f)
    with open(d / "ortho_context.tab", encoding="utf-8") as f:
        params.ortho_context = dec.tab2intdict(f)
    return PunktSentenceTokenizer(params)


def split_sentences(text: str, punkt: PunktSentenceTokenizer) -> list[str]:
    """RadEval's SRR-BERT sentence split of one report."""
    for pattern, repl in _MARKERS:
        text = pattern.sub(repl, text)
    if not text.strip().endswith((".", "!", "?")):
        text = text.strip() + "."
    return punkt.tokenize(text)


# ----- the labeler -----------------------------------------------------------------------------
class SrrBertLabeler:
    """Sentence -> 163 binary labels; report labels = OR over its sentences."""

    def __init__(
        self,
        device: str | None = None,
        batch_size: int = 32,
        model_path: str | os.PathLike[str] | None = None,
        tokenizer_path: str | os.PathLike[str] | None = None,
        punkt_path: str | os.PathLike[str] | None = None,
    ) -> None:
        if int(batch_size) < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size!r}")
        self.batch_size = int(batch_size)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.labels = label_names()
        # resolve everything now (cheap file checks): a missing file fails before any work
        self.model_dir = models.resolve("srr-bert", model_path)
        self.tokenizer_dir = models.resolve("cxr-bert-general", tokenizer_path)
        self.punkt = load_punkt(punkt_path)
        self._model: Any = None
        self._tok: Any = None
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()

    def _load(self) -> None:
        if self._model is not None:
            return
        from transformers import BertForSequenceClassification, BertTokenizer

        self._tok = BertTokenizer.from_pretrained(str(self.tokenizer_dir))
        model = BertForSequenceClassification.from_pretrained(str(self.model_dir), num_labels=len(self.labels))
        model.to(self.device)
        model.eval()
        self._model = model

    def label_sentences(self, sentences: Sequence[str]) -> np.ndarray:
        """(n, 163) int8 labels, one row per sentence (each distinct sentence run once)."""
        todo = [s for s in dict.fromkeys(sentences) if s not in self._cache]
        if todo:
            self._load()
            lens = {s: len(self._tok.tokenize(s)) for s in todo}
            todo.sort(key=lambda s: (-lens[s], s))
            with torch.inference_mode():
                for i in range(0, len(todo), self.batch_size):
                    chunk = todo[i : i + self.batch_size]
                    enc = self._tok(
                        chunk,
                        add_special_tokens=True,
                        max_length=MAX_LENGTH,
                        padding=True,
                        truncation=True,
                        return_attention_mask=True,
                        return_tensors="pt",
                    )
                    enc = {k: v.to(self.device) for k, v in enc.items()}
                    logits = self._model(**enc).logits.float()
                    flags = (torch.sigmoid(logits) > THRESHOLD).cpu().numpy().astype(np.int8)
                    for s, row in zip(chunk, flags):
                        self._cache[s] = row
            while len(self._cache) > SENTENCE_CACHE_SIZE:
                self._cache.popitem(last=False)
        out = np.zeros((len(sentences), len(self.labels)), dtype=np.int8)
        for i, s in enumerate(sentences):
            out[i] = self._cache[s]
        return out

    def label_reports(self, texts: Sequence[str]) -> np.ndarray:
        split = [split_sentences(t, self.punkt) for t in texts]
        flat = [s for sents in split for s in sents]
        rows = self.label_sentences(flat)
        out = np.zeros((len(texts), len(self.labels)), dtype=np.int8)
        pos = 0
        for i, sents in enumerate(split):
            if sents:
                out[i] = rows[pos : pos + len(sents)].any(axis=0)
            pos += len(sents)
        return out


# ----- the metric ------------------------------------------------------------------------------
def sample_prf(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """RadEval's per-sample P/R/F1 (labels present on either side, mean, eps 1e-8; none -> 1)."""
    t = np.asarray(y_true, dtype=int)
    p_ = np.asarray(y_pred, dtype=int)
    tp = ((t == 1) & (p_ == 1)).astype(int)
    fp = ((t == 0) & (p_ == 1)).astype(int)
    fn = ((t == 1) & (p_ == 0)).astype(int)
    p = tp / (tp + fp + EPS)
    r = tp / (tp + fn + EPS)
    f = (2 * tp) / (2 * tp + fp + fn + EPS)
    union = (t == 1) | (p_ == 1)
    n = len(t)
    sp, sr, sf = np.ones(n), np.ones(n), np.ones(n)
    for i in range(n):
        m = union[i]
        if m.any():
            sp[i], sr[i], sf[i] = float(p[i][m].mean()), float(r[i][m].mean()), float(f[i][m].mean())
    return sp, sr, sf


class SrrBert(Metric):
    """SRR-BERT weighted P/R/F1 (corpus) and RadEval's per-sample P/R/F1."""

    name: ClassVar[str] = "srr_bert"
    keys = (
        "srr_bert_weighted_f1",
        "srr_bert_weighted_precision",
        "srr_bert_weighted_recall",
        "srr_bert_sample_f1",
        "srr_bert_sample_precision",
        "srr_bert_sample_recall",
    )

    def __init__(
        self,
        device: str | None = None,
        batch_size: int = 32,
        model_path: str | os.PathLike[str] | None = None,
        tokenizer_path: str | os.PathLike[str] | None = None,
        punkt_path: str | os.PathLike[str] | None = None,
    ) -> None:
        self.labeler = SrrBertLabeler(device, batch_size, model_path, tokenizer_path, punkt_path)
        k = len(self.labeler.labels)
        self._k = k
        self.stat_names = (
            *(f"tp_{i}" for i in range(k)),
            *(f"fp_{i}" for i in range(k)),
            *(f"fn_{i}" for i in range(k)),
            "sample_f1",
            "sample_precision",
            "sample_recall",
            "n",
        )
        self.directions = {key: True for key in self.keys}

    def settings(self) -> dict[str, Any]:
        def src(d: Path) -> str:
            return (models._commit_of(d) or "local")[:12]

        return {
            "model": f"StanfordAIMI/SRR-BERT-Leaves-with-Statuses@{src(self.labeler.model_dir)}",
            "tokenizer": f"microsoft/BiomedVLP-CXR-BERT-general@{src(self.labeler.tokenizer_dir)}",
            "labels": self._k,
            "threshold": THRESHOLD,
            "split": "radeval22+punkt_tab-english",
            "average": "weighted",
            "sample": "union-mean-eps1e-8",
            "transformers": transformers.__version__,
        }

    def stats(self, hyps, refs, images=None) -> np.ndarray:
        if len(hyps) != len(refs):
            raise InputError(f"{len(hyps)} hypotheses but {len(refs)} references")
        for what, texts in (("hypothesis", hyps), ("reference", refs)):
            for i, t in enumerate(texts):
                if not isinstance(t, str):
                    raise InputError(f"{what} {i}: expected a string, got {type(t).__name__}")
        k = self._k
        rows = np.zeros((len(hyps), len(self.stat_names)))
        if not len(hyps):
            return rows
        labels = self.labeler.label_reports(list(refs) + list(hyps))
        r, h = labels[: len(refs)], labels[len(refs) :]
        rows[:, :k] = (r == 1) & (h == 1)
        rows[:, k : 2 * k] = (r == 0) & (h == 1)
        rows[:, 2 * k : 3 * k] = (r == 1) & (h == 0)
        sp, sr, sf = sample_prf(r, h)
        rows[:, 3 * k] = sf
        rows[:, 3 * k + 1] = sp
        rows[:, 3 * k + 2] = sr
        rows[:, 3 * k + 3] = 1.0
        return rows

    def from_totals(self, totals: np.ndarray) -> dict[str, np.ndarray]:
        totals = np.asarray(totals, dtype=np.float64)
        k = self._k
        tp, fp, fn = totals[..., :k], totals[..., k : 2 * k], totals[..., 2 * k : 3 * k]
        p, r, f = prf(tp, fp, fn)
        support = tp + fn
        total = support.sum(-1)
        n = totals[..., 3 * k + 3]
        return {
            "srr_bert_weighted_f1": _div((f * support).sum(-1), total),
            "srr_bert_weighted_precision": _div((p * support).sum(-1), total),
            "srr_bert_weighted_recall": _div((r * support).sum(-1), total),
            "srr_bert_sample_f1": _div(totals[..., 3 * k], n),
            "srr_bert_sample_precision": _div(totals[..., 3 * k + 1], n),
            "srr_bert_sample_recall": _div(totals[..., 3 * k + 2], n),
        }

    def details(self, totals: np.ndarray) -> dict[str, Any]:
        k = self._k
        tp, fp, fn = totals[:k], totals[k : 2 * k], totals[2 * k : 3 * k]
        p, r, f = prf(tp, fp, fn)
        return {
            "per_label": {
                name: {
                    "precision": float(p[i]),
                    "recall": float(r[i]),
                    "f1": float(f[i]),
                    "support": int(tp[i] + fn[i]),
                }
                for i, name in enumerate(self.labeler.labels)
                if f[i] > 0 or tp[i] + fn[i] > 0  # the labels RadEval's detailed output lists
            }
        }
