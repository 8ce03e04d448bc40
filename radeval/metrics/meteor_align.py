"""METEOR 1.5 ``-l en -norm`` aligner: protocol lines in, the jar's 23 statistics out.

The Python side reads the protocol line, normalises each side as the jar does
(meteor_text.py; cached per text and per run of punctuation-bearing tokens) and turns words
into integer ids. Everything the jar derives from a word is computed once per distinct word:
Java ``String.hashCode`` (the jar compares words by it, so colliding words count as an exact
match), the hash of the Snowball stem, the WordNet synsets, the function-word flag and the
paraphrase word key. Matching, the alignment search and the statistics then run compiled, a
whole batch per call (meteor_kernel.py, which also lists the jar's quirks kept on purpose).
"""

from __future__ import annotations

import threading
from array import array
from collections.abc import Sequence

import numpy as np

from radeval.errors import InputError
from radeval.metrics.meteor_text import java_hash, java_trim, line_words, sentence_keys, split_score_line
from radeval.tokenize import cached_each

# Distinct words and texts kept between calls; past these the tables start over (ids are
# only meaningful within one table, so the per-text cache goes with them).
MAX_TYPES = 1_000_000
MAX_TEXTS = 100_000
assert array("i").itemsize == 4, "word ids travel as int32"


class Aligner:
    """The jar's ``MeteorScorer`` for ``-l en -norm`` (resources loaded once, on construction)."""

    def __init__(self) -> None:
        import snowballstemmer

        from radeval.metrics import meteor_kernel
        from radeval.metrics.meteor_resources import Paraphrases, Synonyms, function_words, nonbreaking_prefixes

        self._kernel = meteor_kernel
        self.function_words = function_words()
        self.nbp = nonbreaking_prefixes()
        self._stemmer = snowballstemmer.stemmer("english")
        self.synonyms = Synonyms()
        self.para = Paraphrases.load()
        self._table = meteor_kernel.build_phrase_table(np.ascontiguousarray(self.para.ref_keys))
        self._runs: dict[str, list[str]] = {}
        self._lock = threading.Lock()  # the word tables grow in several steps per new word
        self._reset_types()

    def _reset_types(self) -> None:
        self._type_id: dict[str, int] = {}
        self._texts: dict[str, bytes] = {}  # one side's text -> its word ids (int32 bytes)
        self._pieces: dict[str, bytes] = {}  # a sentence (meteor_text.sentence_keys) -> its word ids
        self._jh: list[int] = []
        self._sh: list[int] = []
        self._fn: list[bool] = []
        self._wk: list[int] = []
        self._syn_ptr: list[int] = [0]
        self._syn_ids: list[int] = []  # dense synset numbers (the kernel indexes an array by them)
        self._synset_no: dict[int, int] = {}
        self._arrays: tuple | None = None  # the lists above as arrays, rebuilt when types are added

    def clear_text_caches(self) -> None:
        """Forget the texts seen (their word ids and normalised pieces); words stay known."""
        self._texts.clear()
        self._pieces.clear()
        self._runs.clear()

    # ------------------------------------------------------------------ text
    def words(self, part: str) -> list[str]:
        """One side of a SCORE line as the jar's words: trim, normalise, lower-case, split."""
        return line_words(java_trim(part), self.nbp, self._runs)

    def _ids(self, part: str) -> bytes:
        got = self._texts.get(part)
        if got is None:
            line = java_trim(part)
            keys = sentence_keys(line)
            got = self._word_ids(line_words(line, self.nbp, self._runs)) if keys is None else self._sentence_ids(keys)
            if len(self._texts) >= MAX_TEXTS:
                self._texts.clear()
            self._texts[part] = got
        return got

    def _sentence_ids(self, keys: list[str]) -> bytes:
        """A line's word ids sentence by sentence (meteor_text.sentence_keys): reports repeat
        sentences far more often than whole texts, so each is normalised and looked up once."""
        return b"".join(cached_each(self._pieces, keys, self._piece_ids, MAX_TEXTS))

    def _piece_ids(self, piece: str) -> bytes:
        return self._word_ids(line_words(piece, self.nbp, self._runs))

    def _word_ids(self, words: list[str]) -> bytes:
        ids = list(map(self._type_id.get, words))
        if None in ids:
            ids = [self._new_type(w) if t is None and w not in self._type_id else self._type_id[w] for w, t in zip(words, ids)]
        return array("i", ids).tobytes()  # C int: int32 (checked at import); faster than numpy for short lists

    def _new_type(self, w: str) -> int:
        from radeval.metrics.meteor_resources import word_key

        t = self._type_id[w] = len(self._jh)
        self._jh.append(java_hash(w))
        self._sh.append(java_hash(self._stemmer.stemWord(w)))
        self._fn.append(w.lower() in self.function_words)
        self._wk.append(word_key(w))
        no = self._synset_no
        self._syn_ids += sorted(no.setdefault(x, len(no)) for x in self.synonyms.synsets(w))
        self._syn_ptr.append(len(self._syn_ids))
        self._arrays = None
        return t

    def _type_arrays(self) -> tuple:
        if self._arrays is None:
            self._arrays = (
                np.array(self._jh, dtype=np.int64),
                np.array(self._sh, dtype=np.int64),
                np.array(self._fn, dtype=np.bool_),
                np.array(self._wk, dtype=np.uint64),
                np.array(self._syn_ptr, dtype=np.int64),
                np.array(self._syn_ids, dtype=np.int64),
                len(self._synset_no),
            )
        return self._arrays

    # ------------------------------------------------------------------ scoring
    def pair_stats(self, pairs: Sequence[tuple[bytes, bytes]]) -> np.ndarray:
        """(test ids, reference ids) pairs -> the jar's statistics, (n, 23)."""
        t_len = np.fromiter((len(t) // 4 for t, _ in pairs), dtype=np.int64, count=len(pairs))
        r_len = np.fromiter((len(r) // 4 for _, r in pairs), dtype=np.int64, count=len(pairs))
        t_off = np.concatenate(([0], np.cumsum(t_len)))
        r_off = np.concatenate(([0], np.cumsum(r_len)))
        t_ids = np.frombuffer(b"".join(t for t, _ in pairs), dtype=np.int32)
        r_ids = np.frombuffer(b"".join(r for _, r in pairs), dtype=np.int32)
        para = self.para
        return self._kernel.score_pairs(
            t_off,
            t_ids,
            r_off,
            r_ids,
            *self._type_arrays(),
            *self._table,
            para.starts,
            para.para_keys,
            para.para_lens,
            para.max_ref_len,
            para.max_para_len,
        )

    def score_lines(self, lines: Sequence[str]) -> list[tuple[float, ...] | None]:
        """The 23 numbers the jar prints for each ``SCORE ||| ref ... ||| hyp`` line, or None
        where the jar answers with an error (fewer than three parts)."""
        with self._lock:
            return self._score_lines(lines)

    def _score_lines(self, lines: Sequence[str]) -> list[tuple[float, ...] | None]:
        sides: list[tuple[str, str]] = []
        spans: list[tuple[int, int] | None] = []
        for line in lines:
            parts = split_score_line(line)
            if len(parts) < 3:
                spans.append(None)
                continue
            spans.append((len(sides), len(parts) - 2))
            sides.extend((parts[-1], ref) for ref in parts[1:-1])
        stats = self._side_stats(sides)
        out: list[tuple[float, ...] | None] = []
        for span in spans:
            if span is None:
                out.append(None)
                continue
            first, n_refs = span
            best = first
            if n_refs > 1:  # several references: the first with the highest score
                from radeval.metrics.meteor import meteor_from_totals

                best = first + int(np.argmax(meteor_from_totals(stats[first : first + n_refs])))
            out.append(tuple(stats[best].tolist()))
        return out

    def score_sides(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """The statistics of ``score_line``'s (test, reference) parts given directly, (n, 23):
        what ``score_lines`` answers for lines that split into exactly three parts (java_trim
        drops the spaces around each part, so the parts need not carry them)."""
        with self._lock:
            return self._side_stats(pairs)

    def _side_stats(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """(test text, reference text) pairs -> statistics, (n, 23); the caller holds the lock."""
        if len(self._type_id) > MAX_TYPES:
            self._reset_types()
        ids = [(self._ids(test), self._ids(ref)) for test, ref in pairs]
        stats = self.pair_stats(ids) if ids else np.zeros((0, 23))
        too_long = np.flatnonzero(np.isnan(stats[:, 0]))
        if too_long.size:
            k = int(too_long[0])
            raise InputError(
                f"METEOR pair {k} ({len(ids[k][0]) // 4} test words, {len(ids[k][1]) // 4} reference words) is too "
                "long for the native aligner's search keys; score it with meteor.backend=jar"
            )
        return stats

    def line_stats(self, line: str) -> tuple[float, ...] | None:
        return self.score_lines([line])[0]
