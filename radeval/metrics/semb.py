"""SembScore: cosine similarity of the CheXbert embeddings of a report pair (higher is better).

As CXR-Report-Metric (``CXRMetric/run_eval.py``, ``add_semb_col``) and ReXrank's
``semb_score`` define it: the embedding is the final-layer hidden state of the [CLS] token
of the CheXbert encoder (``bert_encoder(logits=False)`` in its ``CheXbert/src/encode.py``),
the report cleaned as its tokenizer script cleans it (strip, newlines and whitespace runs ->
one space; the same cleaning as f1chexbert's, see :mod:`radeval.metrics.chexbert`), and per
pair ``(g * p).sum() / (norm(g) * norm(p))`` in float32, as that code computes it with numpy on
the float32 embeddings. The corpus value is the mean of the per-pair values (the column mean
ReXrank reports). A zero-norm embedding (impossible after BERT's final LayerNorm unless its
weights are zero) scores 0 instead of the reference's NaN.

It is also RadCliQ's ``semb_score`` feature: both read the embeddings from the process-wide
CheXbert labeler (:mod:`radeval.metrics.shared`), so with CheXbert F1 or RadCliQ selected too
each report goes through CheXbert once.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from radeval.errors import InputError
from radeval.metric import MeanMetric


def semb_cosine(ref_emb: np.ndarray, hyp_emb: np.ndarray) -> np.ndarray:
    """Per-row cosine of two (n, d) float32 embedding arrays, in the reference's float32 order."""
    out = np.zeros(len(ref_emb), dtype=np.float64)
    for i, (g, p) in enumerate(zip(np.asarray(ref_emb, np.float32), np.asarray(hyp_emb, np.float32))):
        norm = np.linalg.norm(g) * np.linalg.norm(p)
        out[i] = float((g * p).sum() / norm) if norm > 0 else 0.0
    return out


class SembScore(MeanMetric):
    """Cosine of CheXbert [CLS] embeddings per pair; corpus = mean."""

    name = "semb"
    keys = ("semb_score",)

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        tokenizer_path: str | os.PathLike[str] | None = None,
        device: str = "cpu",
        batch_size: int = 32,
        *,
        chexbert: Any = None,
    ) -> None:
        if chexbert is None:
            from radeval.metrics.shared import chexbert_labeler

            chexbert = chexbert_labeler(model_path, tokenizer_path, device=device, batch_size=batch_size)
        self.chexbert = chexbert

    def settings(self) -> dict[str, Any]:
        cx = self.chexbert.settings() if hasattr(self.chexbert, "settings") else {}
        return {
            "embedding": "chexbert-final-cls",
            "model": cx.get("model", "chexbert"),
            "model_sha256": cx.get("model_sha256", "?"),
            "tokenizer": cx.get("tokenizer", "bert-base-uncased"),
            "cosine": "float32",
            "ref": "CXR-Report-Metric",
        }

    def values(self, hyps: Sequence[str], refs: Sequence[str], images=None) -> dict[str, np.ndarray]:
        for i, (h, r) in enumerate(zip(hyps, refs)):
            if not isinstance(h, str) or not isinstance(r, str):
                raise InputError(f"semb: record {i}: prediction and reference must be strings")
        ge = self.chexbert.embed(list(refs))
        pe = self.chexbert.embed(list(hyps))
        return {"semb_score": semb_cosine(ge, pe)}


__all__ = ["SembScore", "semb_cosine"]
