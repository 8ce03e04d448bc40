"""Text normalisation modes for the lexical metrics, each named in the metric's signature.

Papers differ in what they do to a report before n-gram matching, and the numbers move by
several points between conventions:

* ``whitespace``: the text as given, split on whitespace (RadEval's BLEU).
* ``r2gen-iu`` / ``r2gen-mimic``: the report cleaning of the R2Gen code base
  (``clean_report_iu_xray`` / ``clean_report_mimic_cxr`` of its tokenizer): list-number and
  repeated-dot removal, lower-casing, sentence split on ``". "``, punctuation stripped, then
  sentences joined with ``" . "``. Most IU-Xray / MIMIC-CXR report-generation papers since
  2020 (R2Gen, R2GenCMN, METransformer and their descendants) compute BLEU/METEOR/ROUGE with
  pycocoevalcap on this text, without the PTB tokenizer.
* ``ptb``: the coco-caption Stanford PTB tokenizer (lower-cased, punctuation tokens dropped),
  as pycocoevalcap's ``PTBTokenizer``; needs Java and the ``[coco]`` extra.

Default: ``r2gen-mimic``. It is the convention behind most published IU-Xray/MIMIC-CXR tables,
it is pure Python (runs on a fresh core install), and it makes case and punctuation style not
count as n-gram errors. On IU-Xray-style text it gives the same tokens as ``r2gen-iu`` except
for newlines (treated as spaces) and runs of more than 8 dots.

Each mode returns a normalised *string*; each metric then splits it the way its reference
implementation does (pycocoevalcap's BLEU splits on whitespace, its ROUGE-L on single spaces).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

from radeval.errors import ConfigError

TOKENIZE_MODES = ("r2gen-mimic", "r2gen-iu", "whitespace", "ptb")
DEFAULT_TOKENIZE = "r2gen-mimic"

# R2Gen's sentence cleaner deletes these characters. Its pattern writes ":-\[" inside the
# class, which is a *range* from ':' to '[' (so it also deletes ;<=>?@ and A-Z, the latter
# harmless after lower-casing); we spell the same set out.
_R2GEN_STRIP = re.compile(r"[.,?;*!%^&_+()\]{}\x3a-\x5b]")
_R2GEN_DELETE = str.maketrans("", "", "\"/\\'")
# R2Gen's per-sentence cleaning, cached: reports repeat sentences far more than whole texts
_SENTENCES: dict[str, str] = {}
_SENTENCES_MAX = 100_000  # (a few tens of MB at most; past it the cache starts over)

# (old, new, how many successive str.replace passes R2Gen applies): each mode's own head, then
# the list-number patterns both apply
_LIST_NUMBERS: tuple[tuple[str, str, int], ...] = (
    ("1. ", "", 1),
    (". 2. ", ". ", 1),
    (". 3. ", ". ", 1),
    (". 4. ", ". ", 1),
    (". 5. ", ". ", 1),
    (" 2. ", ". ", 1),
    (" 3. ", ". ", 1),
    (" 4. ", ". ", 1),
    (" 5. ", ". ", 1),
)
_LIST_NUMBER = re.compile(r"[1-5]\. ")  # in every list-number pattern
_IU_HEAD: tuple[tuple[str, str, int], ...] = (("..", ".", 3),)
_MIMIC_HEAD: tuple[tuple[str, str, int], ...] = (
    ("\n", " ", 1),
    ("__", "_", 7),
    ("  ", " ", 6),
    ("..", ".", 8),
)


def _replace_passes(text: str, replacements: tuple[tuple[str, str, int], ...]) -> str:
    for old, new, times in replacements:
        for _ in range(times):
            if old not in text:  # later passes of the same pattern would change nothing
                break
            text = text.replace(old, new)
    return text


def _r2gen_clean(text: str, head: tuple[tuple[str, str, int], ...]) -> str:
    text = _replace_passes(text, head)
    if _LIST_NUMBER.search(text):  # else none of the list-number patterns occurs: nothing to replace
        text = _replace_passes(text, _LIST_NUMBERS)
    cleaned = cached_each(_SENTENCES, text.strip().lower().split(". "), _r2gen_sentence, _SENTENCES_MAX)
    # R2Gen keeps empty sentences (its filter compares a string with a list, always true).
    return " . ".join(cleaned) + " ."


def cached_each(cache: dict, keys: list, compute, limit: int) -> list:
    """``[compute(k) for k in keys]``, each answer kept in ``cache`` (which starts over once it
    holds ``limit`` entries). For per-sentence caches: the lookups run in C, and most keys hit."""
    out = list(map(cache.get, keys))
    if None in out:
        for i, key in enumerate(keys):
            if out[i] is None:
                out[i] = compute(key)
                if len(cache) >= limit:
                    cache.clear()
                cache[key] = out[i]
    return out


def _r2gen_sentence(sentence: str) -> str:
    """R2Gen's cleaning of one sentence: delete "/\\' then strip, lower, delete the punctuation
    set. (The text is lower-cased already; lower() is idempotent on every code point, and
    deleting or stripping characters makes no upper case, so it is not repeated.)"""
    return _R2GEN_STRIP.sub("", sentence.translate(_R2GEN_DELETE).strip())


def clear_caches() -> None:
    """Forget every text and sentence cleaned so far (benchmarks: a warm process meeting new text)."""
    clean_r2gen_iu.cache_clear()
    clean_r2gen_mimic.cache_clear()
    _SENTENCES.clear()


@lru_cache(maxsize=8192)
def clean_r2gen_iu(text: str) -> str:
    """R2Gen's IU-Xray report cleaning."""
    return _r2gen_clean(text, _IU_HEAD)


@lru_cache(maxsize=8192)
def clean_r2gen_mimic(text: str) -> str:
    """R2Gen's MIMIC-CXR report cleaning."""
    return _r2gen_clean(text, _MIMIC_HEAD)


def check_mode(mode: str) -> str:
    if mode not in TOKENIZE_MODES:
        raise ConfigError(f"unknown tokenize mode {mode!r}; choose one of {', '.join(TOKENIZE_MODES)}")
    return mode


def normalize(texts: Sequence[str], mode: str) -> list[str]:
    """Normalise a batch of texts in one mode (batched because the PTB mode runs one JVM)."""
    check_mode(mode)
    if mode == "whitespace":
        return list(texts)
    if mode == "r2gen-iu":
        return [clean_r2gen_iu(t) for t in texts]
    if mode == "r2gen-mimic":
        return [clean_r2gen_mimic(t) for t in texts]
    from radeval.coco import ptb_tokenize

    return ptb_tokenize(texts)
