"""Process-wide encoders shared by the metrics that read the same features.

CheXbert F1, SembScore and RadCliQ (v0 and v1) all read CheXbert's final [CLS] state; RadGraph
F1 and RadCliQ read RadGraph annotations; RadCliQ-v0 and -v1 read the same four features.
Each encoder is loaded once per process per setting, and each keeps what it computed for the
texts it saw last (CheXbert: labels and [CLS] state together, RadGraph: annotations,
RadCliQ's BERTScore: pair values), so a text runs through each encoder once however many
metrics read it. ``n_forward`` on each object counts the texts it actually encoded.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

_LOCK = threading.RLock()
_OBJECTS: dict[tuple, Any] = {}


def _path(p: str | os.PathLike[str] | None) -> str | None:
    return None if p is None else os.path.abspath(os.fspath(p))


def _get(key: tuple, build: Callable[[], Any]) -> Any:
    with _LOCK:
        obj = _OBJECTS.get(key)
        if obj is None:
            obj = _OBJECTS[key] = build()
        return obj


def chexbert_labeler(
    model_path: str | os.PathLike[str] | None = None,
    tokenizer_path: str | os.PathLike[str] | None = None,
    device: str = "cpu",
    batch_size: int = 32,
) -> Any:
    """One :class:`~radeval.metrics.chexbert.CheXbertLabeler` per (model, tokenizer, device).

    ``batch_size`` changes no value, so the first caller's is kept.
    """
    from radeval import models
    from radeval.metrics.chexbert import MODEL_FILE, MODEL_NAME, TOKENIZER_NAME, CheXbertLabeler

    # keyed by the files they resolve to, so metrics that name them differently (an explicit
    # path, RADEVAL_MODELS_DIR, the HF cache) still share one labeler
    model_file = models.resolve_file(MODEL_NAME, MODEL_FILE, model_path)
    tok = models.resolve(TOKENIZER_NAME, tokenizer_path)
    key = ("chexbert", _path(model_file), _path(tok), str(device))
    return _get(key, lambda: CheXbertLabeler(model_path, tokenizer_path, device=device, batch_size=batch_size))


def radgraph_extractor(
    model_type: str,
    model_path: str | os.PathLike[str] | None = None,
    *,
    encoder_path: str | os.PathLike[str] | None = None,
    device: str | None = None,
    batch_tokens: int | None = None,
) -> Any:
    """One :class:`~radeval.metrics.radgraph.RadGraphExtractor` per (model, paths, device)."""
    from radeval.metrics.radgraph import RadGraphExtractor

    key = ("radgraph", model_type.lower(), _path(model_path), _path(encoder_path), device, batch_tokens)
    return _get(
        key,
        lambda: RadGraphExtractor(
            model_type, model_path, encoder_path=encoder_path, device=device, batch_tokens=batch_tokens
        ),
    )


def shared(key: tuple, build: Callable[[], Any]) -> Any:
    """Any other shared object (e.g. RadCliQ's BERTScore engine), built once per key."""
    return _get(key, build)


def clear() -> None:
    """Forget every shared encoder (tests; or to free memory)."""
    with _LOCK:
        _OBJECTS.clear()


__all__ = ["chexbert_labeler", "clear", "radgraph_extractor", "shared"]
