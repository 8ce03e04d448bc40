"""Test-side wrappers of :mod:`trainers.tiny` (the one tiny-VLM builder).

The tests' tokenizer is trained on ``tests/report_corpus.py``'s synthetic reports (richer than the
package's toy templates) and their records use those reports; everything else is
``trainers.tiny``'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainers.tiny import IMAGE_SIDE, make_images, toy_similarity  # noqa: F401  (re-exported)


def corpus(n_reports: int = 200, seed: int = 0) -> list[str]:
    from tests.report_corpus import report_pairs
    from trainers.tiny import PROMPT

    texts: list[str] = []
    for pred, ref in report_pairs(n_reports, seed=seed):
        texts.extend([pred, ref, f"<report>{ref}</report>"])
    texts += ["system user assistant You are a helpful assistant.", PROMPT]
    return texts


def build_tiny(family: str, dest: str | Path, *, seed: int = 0, **kwargs: Any) -> Path:
    from trainers.tiny import build_tiny as _build

    return _build(family, dest, texts=corpus(seed=seed), seed=seed, **kwargs)


def build_tiny_qwen25vl(dest: str | Path, *, seed: int = 0, **kwargs: Any) -> Path:
    return build_tiny("qwen2_5_vl", dest, seed=seed, **kwargs)


def tiny_records(n: int, seed: int = 0) -> list[dict[str, Any]]:
    from tests.report_corpus import report_pairs
    from trainers.tiny import tiny_records as _records

    return _records(n, seed, reports=[ref for _pred, ref in report_pairs(n, seed=seed)])


def build_tokenizer(dest: str | Path, *, vocab_size: int = 512, n_reports: int = 200, seed: int = 0):
    """A Qwen2.5-VL-style fast tokenizer alone (``trainers.tiny``'s builder on the tests' corpus),
    for tests that need text generation without a model (e.g. a fake completions server)."""
    from trl.chat_template_utils import qwen2_5_vl_chat_template

    from trainers.tiny import build_qwen_tokenizer

    return build_qwen_tokenizer(Path(dest), corpus(n_reports, seed), qwen2_5_vl_chat_template, vocab_size=vocab_size)
