"""METEOR 1.5's aligner and sufficient statistics, written from the jar's behaviour.

Stages run in the jar's order (exact, stem, synonym, paraphrase); each appends candidate
matches to the list of the reference word where they start, in the jar's loop order, because
that order breaks ties in the search. Words are compared the way the jar compares them:
exact and stem matches by Java ``String.hashCode`` (so colliding words match), synonyms by
WordNet synset, paraphrases by phrase. Matches whose words no other candidate touches are
fixed up front; the rest is a left-to-right beam search over reference positions (beam 40),
ranking partial alignments by weighted match count (integer, with the jar's truncation of the
0.5 stage weights), then fewer chunks, then smaller distance, with a stable sort.

Two quirks of the jar are kept on purpose, since they change which alignment wins: a new
partial alignment adds its distance to the *parent* (so later siblings inherit it), and the
ranking weights are (1, 0.5, 0.5, 0.5) truncated to an int after every match, not the scoring
weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from heapq import heappush, heapreplace
from operator import itemgetter

import numpy as np

from radeval.metrics.meteor_text import java_hash, java_trim, normalize_line, split_score_line, string_tokenize

BEAM = 40
SEARCH_WEIGHTS = (1.0, 0.5, 0.5, 0.5)  # MeteorScorer.loadConfiguration's aligner weights
N_MODULES = 4


# A candidate match, as a tuple (fields by position, for speed):
#   0 start, 1 length (reference side), 2 match_start, 3 match_length (hypothesis side),
#   4 module, 5 mask1, 6 mask2 (words it uses, as bits), 7 rank increment, 8 end (start +
#   length), 9 match end, 10 |start - match_start|.
# The rank increment is what the jar's ``matches1 += len * w`` (an int field) adds: with the
# search weights (1, .5, .5, .5) that is floor(len * w) per side, e.g. 0 for a one-word stem
# match. A partial alignment is a tuple too:
#   (key, idx, last_match_end, used1, used2, chain)
# where key packs the jar's comparator (more matches, then fewer chunks, then less distance)
# into one int, (R - rank) << 64 | chunks << 32 | distance, so that a plain int sort (stable, as
# Collections.sort) orders the beam the jar's way; chain links the matches taken by the search
# ((position, match, chain) or None).
_KEY = itemgetter(0)
_RANK = 1 << 64
_CHUNK = 1 << 32
_START = (1 << 40) << 64  # rank offset: ranks stay far below 2**40
_NEVER = 1 << 200  # larger than any key


def make_match(j: int, length: int, i: int, mlen: int, module: int) -> tuple:
    w = SEARCH_WEIGHTS[module]
    inc = int(mlen * w) + int(length * w)
    return (
        j,
        length,
        i,
        mlen,
        module,
        ((1 << mlen) - 1) << i,
        ((1 << length) - 1) << j,
        inc * _RANK,
        j + length,
        i + mlen,
        abs(j - i),
    )


def resolve(n2: int, cands: list[list[tuple]], fixed: list, used1: int, used2: int) -> tuple:
    """The jar's ``Aligner.resolve``: beam search over reference positions; returns the best
    partial alignment. ``fixed`` holds the matches placed before the search."""
    nxt = [(_START, 0, -1, used1, used2, None)]
    for current in range(n2 + 1):
        paths = nxt
        paths.sort(key=_KEY)
        if len(paths) > BEAM:
            del paths[BEAM:]
        nxt = []
        push = nxt.append
        if current == n2:
            for p in paths:
                push((p[0] + _CHUNK, *p[1:]) if p[2] != -1 else p)
            continue
        bit = 1 << current
        here = cands[current]
        # Pruning that cannot change the result: once BEAM children with key <= k are in nxt,
        # a later item with key k sorts (stably) after all of them and is cut at the next
        # step's truncation, so it is not built at all. heap: the BEAM smallest child keys.
        heap: list[int] = []
        cut = _NEVER
        for p in paths:
            key, idx, last_end, u1, u2, chain = p
            if u2 & bit:
                if current < idx:
                    push(p)
                else:
                    m = fixed[idx]
                    if m is not None:
                        k = key - m[7] + m[10]
                        if last_end != -1 and m[2] != last_end:
                            k += _CHUNK
                        push((k, m[8], m[9], u1, u2, chain))
                continue
            if here:
                split = key - _CHUNK if last_end == -1 else key  # a match not continuing adds a chunk
                for m in here:
                    if u1 & m[5] or u2 & m[6]:
                        continue
                    k = (key if m[2] == last_end else split + _CHUNK) - m[7]
                    key += m[10]  # sic: the jar adds the child's distance to the parent
                    split += m[10]
                    if k >= cut:
                        continue
                    push((k, m[8], m[9], u1 | m[5], u2 | m[6], (current, m, chain)))
                    if len(heap) < BEAM:
                        heappush(heap, -k)
                        if len(heap) == BEAM:
                            cut = -heap[0]
                    else:
                        heapreplace(heap, -k)
                        cut = -heap[0]
            push((key + _CHUNK if last_end != -1 else key, idx + 1, -1, u1, u2, chain))
        if not nxt:
            nxt.append(paths[0])
    nxt.sort(key=_KEY)
    return nxt[0]


def _count_and_chunks(matches: list) -> tuple[int, int, int]:
    m1 = m2 = chunks = 0
    idx, last_end = 0, -1
    while idx < len(matches):
        m = matches[idx]
        if m is None:
            if last_end != -1:
                chunks += 1
                last_end = -1
            idx += 1
        else:
            m1 += m[3]
            m2 += m[1]
            if last_end != -1 and m[2] != last_end:
                chunks += 1
            idx = m[0] + m[1]
            last_end = m[2] + m[3]
    if last_end != -1:
        chunks += 1
    return m1, m2, chunks


class Aligner:
    """The jar's ``MeteorScorer`` for ``-l en -norm`` (resources loaded once, on construction)."""

    def __init__(self) -> None:
        import snowballstemmer

        from radeval.metrics.meteor_resources import Paraphrases, Synonyms, function_words, nonbreaking_prefixes

        self.function_words = function_words()
        self.nbp = nonbreaking_prefixes()
        self._stemmer = snowballstemmer.stemmer("english")
        self.synonyms = Synonyms()
        self.para = Paraphrases.load()
        self._stem_hash: dict[str, int] = {}
        self._word_key: dict[str, int] = {}
        self._norm: dict[str, list[str]] = {}

    # ------------------------------------------------------------------ text
    def words(self, part: str) -> list[str]:
        """One side of a SCORE line: trim, normalise, lower-case, split (cached)."""
        got = self._norm.get(part)
        if got is None:
            got = string_tokenize(normalize_line(java_trim(part), self.nbp).lower())
            if len(self._norm) > 200_000:
                self._norm.clear()
            self._norm[part] = got
        return got

    def line_stats(self, line: str) -> tuple[float, ...] | None:
        """The 23 numbers the jar prints for one ``SCORE ||| ref ... ||| hyp`` line, or None
        where the jar answers with an error (fewer than three parts)."""
        parts = split_score_line(line)
        if len(parts) < 3:
            return None
        test = self.words(parts[-1])
        if len(parts) == 3:  # one reference (what radeval sends): no score to compare
            return self.stats(test, self.words(parts[1]))
        from radeval.metrics.meteor import meteor_from_totals

        best, best_score = None, -1.0
        for ref in parts[1:-1]:  # several references: the first with the highest score
            stats = self.stats(test, self.words(ref))
            score = float(meteor_from_totals(np.array(stats, dtype=np.float64)))
            if score > best_score:
                best, best_score = stats, score
        return best

    # ------------------------------------------------------------------ matching
    def _stem_key(self, w: str) -> int:
        h = self._stem_hash.get(w)
        if h is None:
            h = self._stem_hash[w] = java_hash(self._stemmer.stemWord(w))
        return h

    def _keys(self, words: Sequence[str]) -> np.ndarray:
        from radeval.metrics.meteor_resources import word_key

        get = self._word_key.get
        out = []
        for w in words:
            k = get(w)
            if k is None:
                k = self._word_key[w] = word_key(w)
            out.append(k)
        return np.array(out, dtype=np.uint64)

    def _grams(self, words: Sequence[str]) -> list[list[int]]:
        """Phrase keys of every n-gram (n up to the table's longest phrase): [n-1][start]."""
        from radeval.metrics.meteor_resources import ngram_keys

        lmax = min(max(self.para.max_ref_len, self.para.max_para_len), len(words))
        if lmax == 0:
            return []
        grams = ngram_keys(self._keys(words), lmax)
        return [grams[n - 1, : len(words) - n + 1].tolist() for n in range(1, lmax + 1)]

    def _phrases_at(self, grams: list[list[int]]) -> list[tuple[int, int, int, int]]:
        """Table phrases starting in this line: (position, length, first entry, end entry),
        by position then length, the order the jar's trie emits them. (The trie stops at the
        first word with no transition; a longer phrase is then absent from the table too.)"""
        index, starts = self.para.index, self.para.starts_list
        out = []
        for i in range(len(grams[0]) if grams else 0):
            for n in range(1, min(self.para.max_ref_len, len(grams)) + 1):
                if i < len(grams[n - 1]):
                    r = index.get(grams[n - 1][i])
                    if r is not None:
                        out.append((i, n, starts[r], starts[r + 1]))
        return out

    def _para_hits(self, phrases, other: list[list[int]]) -> list[tuple[int, int, int, int, int]]:
        """For each table phrase at (pos, len): its paraphrases found in the other line, as
        (pos, len, entry, other_pos, para_len), in the jar's loop order."""
        if not phrases or not other:
            return []
        where: dict[int, list[int]] = {}
        for n in range(1, min(self.para.max_para_len, len(other)) + 1):
            for i, k in enumerate(other[n - 1]):
                where.setdefault(k, []).append(i)
        lo = np.array([p[2] for p in phrases], dtype=np.int64)
        counts = np.array([p[3] - p[2] for p in phrases], dtype=np.int64)
        owner = np.repeat(np.arange(len(phrases)), counts)
        entries = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts) + np.repeat(lo, counts)
        pk = self.para.para_keys[entries]
        hit = np.isin(pk, np.fromiter(where.keys(), dtype=np.uint64, count=len(where)))
        out = []
        plens = self.para.para_lens
        for e, o, k in zip(entries[hit].tolist(), owner[hit].tolist(), pk[hit].tolist()):
            pos, length = phrases[o][0], phrases[o][1]
            plen = int(plens[e])
            for j in where[k]:
                out.append((pos, length, e, j, plen))
        return out

    def stats(self, w1: list[str], w2: list[str]) -> tuple[float, ...]:
        """``getMeteorStats(align(test=w1, reference=w2))``."""
        n1, n2 = len(w1), len(w2)
        h1 = [java_hash(w) for w in w1]
        h2 = [java_hash(w) for w in w2]
        cands: list[list[tuple]] = [[] for _ in range(n2)]
        cov1 = [0] * n1
        cov2 = [0] * n2

        def add(j: int, length: int, i: int, mlen: int, module: int) -> None:
            cands[j].append(make_match(j, length, i, mlen, module))
            for k in range(mlen):
                cov1[i + k] += 1
            for k in range(length):
                cov2[j + k] += 1

        # exact
        pos1: dict[int, list[int]] = {}
        for i, h in enumerate(h1):
            pos1.setdefault(h, []).append(i)
        for j, h in enumerate(h2):
            for i in pos1.get(h, ()):
                add(j, 1, i, 1, 0)
        if not (n1 == n2 and h1 == h2):  # identical lines: the jar runs the exact stage only
            # stem
            s1 = [self._stem_key(w) for w in w1]
            spos: dict[int, list[int]] = {}
            for i, s in enumerate(s1):
                spos.setdefault(s, []).append(i)
            for j, w in enumerate(w2):
                for i in spos.get(self._stem_key(w), ()):
                    if h1[i] != h2[j]:
                        add(j, 1, i, 1, 1)
            # synonym
            syn = self.synonyms.synsets
            inv: dict[int, set[int]] = {}
            for i, w in enumerate(w1):
                for sid in syn(w):
                    inv.setdefault(sid, set()).add(i)
            for j, w in enumerate(w2):
                cand: set[int] = set()
                for sid in syn(w):
                    got = inv.get(sid)
                    if got:
                        cand |= got
                for i in sorted(cand):
                    if h1[i] != h2[j]:
                        add(j, 1, i, 1, 2)
            # paraphrase: phrases of the reference found in the hypothesis, then the reverse
            if n1 and n2:
                g1, g2 = self._grams(w1), self._grams(w2)
                for j, length, _e, i, plen in self._para_hits(self._phrases_at(g2), g1):
                    add(j, length, i, plen, 3)
                for i, length, _e, j, plen in self._para_hits(self._phrases_at(g1), g2):
                    add(j, plen, i, length, 3)

        fixed: list = [None] * n2
        used1 = used2 = 0
        for j in range(n2):
            if len(cands[j]) == 1:
                m = cands[j][0]
                if all(cov2[j + k] == 1 for k in range(m[1])) and all(cov1[m[2] + k] == 1 for k in range(m[3])):
                    fixed[j] = m
                    used1 |= m[5]
                    used2 |= m[6]
        best = resolve(n2, cands, fixed, used1, used2)
        matches = fixed.copy()
        chain = best[5]
        while chain is not None:
            matches[chain[0]] = chain[1]
            chain = chain[2]

        fw = self.function_words
        func1 = [w.lower() in fw for w in w1]
        func2 = [w.lower() in fw for w in w2]
        c1 = [0] * N_MODULES
        c2 = [0] * N_MODULES
        f1 = [0] * N_MODULES
        f2 = [0] * N_MODULES
        for m in matches:
            if m is not None:
                for k in range(m[3]):
                    if func1[m[2] + k]:
                        f1[m[4]] += 1
                    else:
                        c1[m[4]] += 1
                for k in range(m[1]):
                    if func2[m[0] + k]:
                        f2[m[4]] += 1
                    else:
                        c2[m[4]] += 1
        _, _, chunks = _count_and_chunks(matches)
        row = [float(n1), float(n2), float(sum(func1)), float(sum(func2))]
        for mod in range(N_MODULES):
            row += [float(c1[mod]), float(c2[mod]), float(f1[mod]), float(f2[mod])]
        row += [float(chunks), float(sum(c1) + sum(f1)), float(sum(c2) + sum(f2))]
        return tuple(row)
