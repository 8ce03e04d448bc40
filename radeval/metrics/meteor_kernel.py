"""METEOR 1.5's matchers, alignment search and statistics, compiled with numba.

Words arrive as integer ids into per-word-type tables that the Python side fills once per
distinct word (``meteor_align.Aligner``): Java ``String.hashCode`` (exact matches compare
it), the hash of the Snowball stem, the function-word flag, the 64-bit paraphrase word key
and the WordNet synset ids. One call scores a whole batch of (test, reference) pairs.

What follows the jar (``Aligner.align`` / ``resolve``, ``MeteorScorer.getMeteorStats``) and
must stay as it is, because it changes which alignment wins:

* candidate matches are listed per reference start position in the jar's stage order (exact,
  stem, synonym, paraphrase; each stage by reference position, then test position; paraphrases
  in the trie's emission order) and that order breaks ties;
* a match whose words no other candidate touches is fixed before the search;
* the search walks reference positions left to right keeping the best ``BEAM`` partial
  alignments, ordered by more weighted matches, then fewer chunks, then smaller distance, ties
  kept in creation order (Java's stable ``Collections.sort``);
* the weighted match count is an int: each match adds ``int(len * w)`` per side with the search
  weights (1, .5, .5, .5), so a one-word stem/synonym/paraphrase match adds 0;
* a new partial alignment inherits the parent's distance *before* its own match, and the
  parent's distance grows by every child's (the jar adds it to the parent object).

Only the ``BEAM`` best of each step are ever used, so instead of sorting every child (the jar's
way) we keep the best ``BEAM`` in a sorted array, each newcomer placed after those it ties with
(they were created earlier): the surviving set and its order are the jar's.

Speed note: numba counts references to arrays passed into a compiled function (an atomic add
and subtract per array argument per call), which in the inner loops cost more than the work.
So the inner loops call no helper that takes an array: keeping the best alignments and
appending candidates are written out in place. (Data-dependent branches are the next cost:
newcomers are inserted by a short backward scan, not a binary search.)
"""

from __future__ import annotations

import numpy as np

from radeval.metrics.meteor_resources import _LEN_SALT, _P  # phrase keys, folded as the table's
from radeval.metrics.numba_jit import njit

BEAM = 40
N_STATS = 23
PARA = 3  # module index of the paraphrase stage

_MIX = np.uint64(0xBF58476D1CE4E5B9)  # slot hash of the phrase table (keys are already random)
_MIX2 = np.uint64(0x94D049BB133111EB)  # bit positions in its Bloom filter
_BLOOM_BITS = 22  # 4 Mbit (512 KB, stays in cache; the table is 16 MB): ~3% false positives


# ------------------------------------------------------------------------------ phrase table
@njit
def build_phrase_table(ref_keys):
    """Open-addressing table key -> row of ``ref_keys`` (unique; size a power of two >= 2n),
    and a Bloom filter of the keys (two bits each) that turns most absent n-grams away before
    they touch the table."""
    n = ref_keys.shape[0]
    bits = 1
    while (1 << bits) < 2 * n:
        bits += 1
    keys = np.zeros(1 << bits, dtype=np.uint64)
    rows = np.full(1 << bits, -1, dtype=np.int64)
    mask = (1 << bits) - 1
    shift = np.uint64(64 - bits)
    for r in range(n):
        k = ref_keys[r]
        s = np.int64((k * _MIX) >> shift)
        while rows[s] != -1:
            s = (s + 1) & mask
        keys[s] = k
        rows[s] = r
    bloom = np.zeros(1 << (_BLOOM_BITS - 6), dtype=np.uint64)
    for r in range(n):
        a, b = _bloom_bits(ref_keys[r])
        bloom[a >> 6] |= np.uint64(1) << np.uint64(a & 63)
        bloom[b >> 6] |= np.uint64(1) << np.uint64(b & 63)
    return keys, rows, bloom


@njit
def _bloom_bits(key):
    h = key * _MIX2
    return np.int64(h >> np.uint64(64 - _BLOOM_BITS)), np.int64(
        (h >> np.uint64(20)) & np.uint64((1 << _BLOOM_BITS) - 1)
    )


@njit
def _ngrams(wkeys, lmax):
    """[l-1, i] = phrase key of words[i:i+l] (unused past the end), folded as
    meteor_resources.fold_keys folds the table's phrases."""
    n = wkeys.shape[0]
    out = np.zeros((lmax, n), dtype=np.uint64)
    for i in range(n):
        k = np.uint64(0)
        for length in range(1, lmax + 1):
            if i + length > n:
                break
            k = k * _P + wkeys[i + length - 1]
            out[length - 1, i] = k ^ (np.uint64(length) * _LEN_SALT)
    return out


@njit
def _gram_table(grams, nwords, lmax):
    """The line's n-grams (length 1..lmax) by key: an open-addressing table whose slots chain
    the positions with that key in (length, position) order, the order the jar meets them.
    Returns (slot keys, first entry per slot or -1, next entry or -1, entry positions)."""
    total = 0
    for length in range(1, lmax + 1):
        total += nwords - length + 1
    size = 16
    while size < 2 * total:
        size *= 2
    mask = size - 1
    keys = np.zeros(size, dtype=np.uint64)
    head = np.full(size, -1, dtype=np.int64)
    tail = np.empty(size, dtype=np.int64)
    nxt = np.full(max(total, 1), -1, dtype=np.int64)
    pos = np.empty(max(total, 1), dtype=np.int64)
    e = 0
    for length in range(1, lmax + 1):
        for i in range(nwords - length + 1):
            key = grams[length - 1, i]
            slot = np.int64((key * _MIX) >> np.uint64(40)) & mask
            while head[slot] != -1 and keys[slot] != key:
                slot = (slot + 1) & mask
            if head[slot] == -1:
                keys[slot] = key
                head[slot] = e
            else:
                nxt[tail[slot]] = e
            tail[slot] = e
            pos[e] = i
            e += 1
    return keys, head, nxt, pos


@njit
def _para_stage(
    raw,
    cnt,
    ga,
    na,
    bkeys,
    bhead,
    bnext,
    bpos,
    a_is_ref,
    max_ref_len,
    tkeys,
    trows,
    bloom,
    shift,
    starts,
    para_keys,
    para_lens,
):
    """Table phrases starting in line a (by position, then length: the trie's order), each
    paraphrase of it found in line b (by the table's order, then b's (length, position)),
    appended to ``raw`` (where it has room; the count goes on)."""
    cap = raw.shape[0]
    mask = tkeys.shape[0] - 1
    bmask = bkeys.shape[0] - 1
    for i in range(na):
        for length in range(1, min(max_ref_len, na - i) + 1):
            key = ga[length - 1, i]
            a, b = _bloom_bits(key)
            if not ((bloom[a >> 6] >> np.uint64(a & 63)) & (bloom[b >> 6] >> np.uint64(b & 63)) & np.uint64(1)):
                continue
            slot = np.int64((key * _MIX) >> shift)
            r = -1
            while trows[slot] != -1:
                if tkeys[slot] == key:
                    r = trows[slot]
                    break
                slot = (slot + 1) & mask
            if r < 0:
                continue
            for e in range(starts[r], starts[r + 1]):
                pk = para_keys[e]
                slot = np.int64((pk * _MIX) >> np.uint64(40)) & bmask  # b's n-grams with this key
                while bhead[slot] != -1 and bkeys[slot] != pk:
                    slot = (slot + 1) & bmask
                g = bhead[slot]
                while g != -1:
                    if cnt < cap:
                        plen = np.int64(para_lens[e])
                        if a_is_ref:
                            raw[cnt, 0], raw[cnt, 1], raw[cnt, 2], raw[cnt, 3] = i, length, bpos[g], plen
                        else:
                            raw[cnt, 0], raw[cnt, 1], raw[cnt, 2], raw[cnt, 3] = bpos[g], plen, i, length
                        raw[cnt, 4] = PARA
                    cnt += 1
                    g = bnext[g]
    return cnt


# ------------------------------------------------------------------------------ search
# Candidate matches, sorted by reference start, as rows of an int64 table:
REF, REF_LEN, TEST, TEST_LEN, MOD, INC, DIST, REF_END, TEST_END, TW_A, TW_B = range(11)
# REF/TEST its start on each side, *_LEN/*_END length and end, MOD the module, INC what it adds
# to the int rank, DIST |REF - TEST|, TW_A/TW_B the 64-bit words of the used test-word bitset
# its test words fall in (their masks: a uint64 table, columns 0 and 1).
N_COLS = 11

# A partial alignment: a slot in one of two pools (this step's, the next step's), fields
R, C, D, IDX, LAST, CHAIN, CE = range(7)
# R int rank, C chunks, D distance, IDX next reference
# position, LAST end of the last match on the test side (-1: no chunk open), CHAIN the newest
# node of its linked list of matches taken by the search (-1: none), CE the reference end of
# the last match the search took. The jar keeps a bitset of used reference words per partial
# alignment; as the search takes matches left to right, the used words at or after the
# current position are exactly the fixed matches' and [current, CE), so CE stands in for it.
N_FIELDS = 7

# The search orders partial alignments by (R desc, C asc, D asc). It compares them by one
# int64 key, R | cmax - C | dmax - D in bit fields wide enough for this segment (search_key_widths):
# one comparison instead of up to two on (R, C) then D, and one key to move when inserting.

# what a partial alignment of the step before turns into (one or more per parent)
_PASS, _FIXED, _CHILD, _SKIP = range(4)


@njit
def search_key_widths(n1, n2, mt, cnt):
    """Bit widths (rank, chunks, distance) and the largest chunks and distance for this
    segment's packed search keys. Rank: each side's word counts once (<= n1 + n2), and the
    pruning bound adds at most one more match's worth. Chunks: at most one per reference word,
    plus one. Distance: along a partial alignment's history each candidate's distance is added
    at most twice (once when a sibling is made at its step, the jar's quirk; once when taken),
    so it stays below twice the sum of all candidates' distances."""
    dsum = 0
    for q in range(cnt):
        dsum += mt[q, DIST]
    rmax, cmax, dmax = 2 * (n1 + n2) + 2, n2 + 1, 2 * dsum
    rb, cb, db = 1, 1, 1
    while (1 << rb) <= rmax:
        rb += 1
    while (1 << cb) <= cmax:
        cb += 1
    while (1 << db) <= dmax:
        db += 1
    return rb, cb, db, cmax, dmax


@njit
def _resolve(n2, cptr, mt, mk, fixed, fcov2, free2, num, u1, order, nodes, cb, db, cmax, dmax):
    """The beam search from the start alignment (slot 0 of pool 0, prepared by the caller).
    ``fcov2``: reference words of fixed matches; ``free2[q]``: candidate q's reference words
    are not among them; ``cb``, ``db``, ``cmax``, ``dmax``: the key's layout
    (search_key_widths). Returns the best alignment's chain, or -2 when ``nodes`` is full."""
    n_nodes = 0
    fixed_gain = 0
    for j in range(n2):
        if fixed[j] >= 0:
            fixed_gain = max(fixed_gain, mt[fixed[j], INC])
    w1n = u1.shape[2]
    keys = np.empty(BEAM, dtype=np.int64)  # the search key of order[nx, k], this step's pool
    cur = 0
    size_c = 1
    order[0, 0] = 0
    for current in range(n2):
        nx = 1 - cur
        size = 0
        qlo, qhi = cptr[current], cptr[current + 1]
        # no partial alignment gains more than this at this step (a fixed match is taken only
        # where the word is covered by one: a parent's IDX never lags behind its CE)
        gain = 0
        if fcov2[current]:
            gain = fixed_gain
        for q in range(qlo, qhi):
            gain = max(gain, mt[q, INC])
        for oi in range(size_c):
            s = order[cur, oi]
            rank, chunks, dist = num[cur, s, R], num[cur, s, C], num[cur, s, D]
            if size == BEAM:
                # what it makes has at most `gain` more rank, at least its chunks and distance;
                # if even that is not ahead of the last kept one, neither is anything a later
                # parent (behind this one) makes
                bound = ((((rank + gain) << cb) + cmax - chunks) << db) + dmax - dist
                if bound <= keys[BEAM - 1]:
                    break
            idx, last, chain, ce = num[cur, s, IDX], num[cur, s, LAST], num[cur, s, CHAIN], num[cur, s, CE]
            covered = fcov2[current] or current < ce
            split = chunks if last == -1 else chunks + 1  # chunks of a child not continuing the last match
            q = qlo
            while True:
                # the next partial alignment made from this parent, in the jar's order
                if covered:  # the reference word is covered: by a match taken earlier, or fixed
                    if current < idx:
                        kind = _PASS
                        r2, c2, d2, idx2, last2, ce2 = rank, chunks, dist, idx, last, ce
                    else:
                        f = fixed[idx]
                        if f < 0:
                            break  # dropped
                        kind = _FIXED
                        r2, d2 = rank + mt[f, INC], dist + mt[f, DIST]
                        c2 = chunks + 1 if (last != -1 and mt[f, TEST] != last) else chunks
                        idx2, last2, ce2 = mt[f, REF_END], mt[f, TEST_END], ce
                elif q < qhi:
                    if not free2[q] or (u1[cur, s, mt[q, TW_A]] & mk[q, 0]) | (u1[cur, s, mt[q, TW_B]] & mk[q, 1]):
                        q += 1
                        continue
                    kind = _CHILD
                    r2, d2 = rank + mt[q, INC], dist
                    c2 = chunks if mt[q, TEST] == last else split
                    idx2, last2, ce2 = mt[q, REF_END], mt[q, TEST_END], mt[q, REF_END]
                    dist += mt[q, DIST]  # sic: the jar adds the child's distance to the parent
                elif q == qhi:  # the parent itself, this reference word left unmatched
                    kind = _SKIP
                    r2, d2 = rank, dist
                    c2 = chunks + 1 if last != -1 else chunks
                    idx2, last2, ce2 = idx + 1, -1, ce
                else:
                    break
                # is it among the BEAM best so far? order[nx] keeps them sorted, the last
                # furthest behind; a newcomer goes after those it ties with (created earlier)
                k2 = (((r2 << cb) + cmax - c2) << db) + dmax - d2
                keep = size
                if size == BEAM:
                    if k2 > keys[BEAM - 1]:
                        keep = BEAM - 1  # the last one drops out; its slot is reused
                    else:
                        keep = -1
                if keep >= 0:
                    t = order[nx, BEAM - 1] if size == BEAM else size  # (all slots in use when full)
                    chain2 = chain
                    if kind == _CHILD:
                        if n_nodes == nodes.shape[0]:
                            return -2
                        nodes[n_nodes, 0] = current
                        nodes[n_nodes, 1] = q
                        nodes[n_nodes, 2] = chain
                        chain2 = n_nodes
                        n_nodes += 1
                    num[nx, t, R], num[nx, t, C], num[nx, t, D] = r2, c2, d2
                    num[nx, t, IDX], num[nx, t, LAST], num[nx, t, CHAIN], num[nx, t, CE] = idx2, last2, chain2, ce2
                    for w in range(w1n):
                        u1[nx, t, w] = u1[cur, s, w]
                    if kind == _CHILD:
                        u1[nx, t, mt[q, TW_A]] |= mk[q, 0]
                        u1[nx, t, mt[q, TW_B]] |= mk[q, 1]
                    # move the kept ones behind it back by one; their keys sit beside `order`
                    # in `keys`, so the scan reads no slot through an index
                    k = keep
                    while k > 0:
                        kk = keys[k - 1]
                        if kk >= k2:
                            break
                        order[nx, k] = order[nx, k - 1]
                        keys[k] = kk
                        k -= 1
                    order[nx, k] = t
                    keys[k] = k2
                    size = keep + 1
                if kind == _CHILD:
                    q += 1
                elif kind == _SKIP:
                    q += 1
                else:
                    break  # a covered word gives one partial alignment
        if size == 0:  # every path dropped: the jar keeps the best of the previous step
            s = order[cur, 0]
            for f in range(N_FIELDS):
                num[nx, 0, f] = num[cur, s, f]
            for w in range(w1n):
                u1[nx, 0, w] = u1[cur, s, w]
            order[nx, 0] = 0
            size = 1
        size_c = size
        cur = nx
    # end of the reference: close open chunks, take the best (first on ties)
    best = order[cur, 0]
    bc = num[cur, best, C] + (1 if num[cur, best, LAST] != -1 else 0)
    for oi in range(1, size_c):
        s = order[cur, oi]
        c = num[cur, s, C] + (1 if num[cur, s, LAST] != -1 else 0)
        r, d, br, bd = num[cur, s, R], num[cur, s, D], num[cur, best, R], num[cur, best, D]
        if r > br or (r == br and (c < bc or (c == bc and d < bd))):
            best, bc = s, c
    return num[cur, best, CHAIN]


# ------------------------------------------------------------------------------ one segment
@njit
def _segment(
    t_ids,
    r_ids,
    jh,
    sh,
    fn,
    wk,
    syn_ptr,
    syn_ids,
    shead,
    tkeys,
    trows,
    bloom,
    shift,
    starts,
    para_keys,
    para_lens,
    max_ref_len,
    max_para_len,
    raw,
    mt,
    mk,
    nodes,
    out,
):
    """One pair's statistics into ``out``. Returns 0, or the rows ``raw``/``mt`` need (more
    than they have), or -1 when ``nodes`` is too small: the caller grows them and calls again;
    -2 when the search keys would not fit 63 bits (tens of thousands of words a side)."""
    n1, n2 = t_ids.shape[0], r_ids.shape[0]
    cap = raw.shape[0]
    cnt = 0
    # candidates in the jar's order, appended to raw: (ref start, ref len, test start, test len, module)
    # the words' hashes in line order (the n1 x n2 loops below then read contiguous memory)
    th1, th2 = jh[t_ids], jh[r_ids]
    for j in range(n2):  # exact (by Java hashCode)
        h = th2[j]
        for i in range(n1):
            if th1[i] == h:
                if cnt < cap:
                    raw[cnt, 0], raw[cnt, 1], raw[cnt, 2], raw[cnt, 3], raw[cnt, 4] = j, 1, i, 1, 0
                cnt += 1
    same = n1 == n2
    if same:
        for i in range(n1):
            if th1[i] != th2[i]:
                same = False
                break
    if not same:  # identical lines: the jar runs the exact stage only
        st1 = sh[t_ids]
        for j in range(n2):  # stem
            s, h = sh[r_ids[j]], th2[j]
            for i in range(n1):
                if st1[i] == s and th1[i] != h:
                    if cnt < cap:
                        raw[cnt, 0], raw[cnt, 1], raw[cnt, 2], raw[cnt, 3], raw[cnt, 4] = j, 1, i, 1, 1
                    cnt += 1
        # synonym: test positions listed per synset (ids are dense: shead is indexed by them),
        # then each reference word's synsets looked up
        tot = 0
        for i in range(n1):
            tot += syn_ptr[t_ids[i] + 1] - syn_ptr[t_ids[i]]
        if tot > 0:
            snext = np.empty(tot, dtype=np.int64)
            spos = np.empty(tot, dtype=np.int64)
            e = 0
            for i in range(n1):
                for e2 in range(syn_ptr[t_ids[i]], syn_ptr[t_ids[i] + 1]):
                    x = syn_ids[e2]
                    snext[e] = shead[x]
                    shead[x] = e
                    spos[e] = i
                    e += 1
            hit = np.zeros(n1, dtype=np.bool_)
            for j in range(n2):
                b, h = r_ids[j], jh[r_ids[j]]
                found = False
                for e2 in range(syn_ptr[b], syn_ptr[b + 1]):
                    x = syn_ids[e2]
                    g = shead[x]
                    while g != -1:
                        hit[spos[g]] = True
                        found = True
                        g = snext[g]
                if found:
                    for i in range(n1):  # by test position, as the jar's sorted set
                        if hit[i]:
                            hit[i] = False
                            if jh[t_ids[i]] != h:
                                if cnt < cap:
                                    raw[cnt, 0], raw[cnt, 1], raw[cnt, 2], raw[cnt, 3], raw[cnt, 4] = j, 1, i, 1, 2
                                cnt += 1
            for i in range(n1):  # leave shead empty for the next segment
                for e2 in range(syn_ptr[t_ids[i]], syn_ptr[t_ids[i] + 1]):
                    x = syn_ids[e2]
                    shead[x] = -1
        if n1 > 0 and n2 > 0:
            lm = max(max_ref_len, max_para_len)
            g1 = _ngrams(wk[t_ids], min(lm, n1))
            g2 = _ngrams(wk[r_ids], min(lm, n2))
            k1, h1, x1, p1 = _gram_table(g1, n1, min(max_para_len, n1))
            k2, h2, x2, p2 = _gram_table(g2, n2, min(max_para_len, n2))
            # phrases of the reference found in the test line, then the reverse
            cnt = _para_stage(
                raw,
                cnt,
                g2,
                n2,
                k1,
                h1,
                x1,
                p1,
                True,
                max_ref_len,
                tkeys,
                trows,
                bloom,
                shift,
                starts,
                para_keys,
                para_lens,
            )
            cnt = _para_stage(
                raw,
                cnt,
                g1,
                n1,
                k2,
                h2,
                x2,
                p2,
                False,
                max_ref_len,
                tkeys,
                trows,
                bloom,
                shift,
                starts,
                para_keys,
                para_lens,
            )
    if cnt > cap:
        return cnt
    # how many candidates use each word
    cov1 = np.zeros(n1 + 1, dtype=np.int64)
    cov2 = np.zeros(n2 + 1, dtype=np.int64)
    for c in range(cnt):
        for k in range(raw[c, 0], raw[c, 0] + raw[c, 1]):
            cov2[k] += 1
        for k in range(raw[c, 2], raw[c, 2] + raw[c, 3]):
            cov1[k] += 1
    # candidates grouped by reference start, stable (counting sort)
    cptr = np.zeros(n2 + 1, dtype=np.int64)
    for c in range(cnt):
        cptr[raw[c, 0] + 1] += 1
    for j in range(n2):
        cptr[j + 1] += cptr[j]
    fill = cptr[:n2].copy()
    for c in range(cnt):
        j = raw[c, 0]
        q = fill[j]
        fill[j] += 1
        mt[q, REF], mt[q, REF_LEN], mt[q, TEST], mt[q, TEST_LEN], mt[q, MOD] = (
            raw[c, 0],
            raw[c, 1],
            raw[c, 2],
            raw[c, 3],
            raw[c, 4],
        )
        if mt[q, MOD] == 0:
            mt[q, INC] = mt[q, TEST_LEN] + mt[q, REF_LEN]
        else:  # int(len * 0.5) per side
            mt[q, INC] = (mt[q, TEST_LEN] >> 1) + (mt[q, REF_LEN] >> 1)
        mt[q, DIST] = abs(mt[q, REF] - mt[q, TEST])
        mt[q, REF_END] = mt[q, REF] + mt[q, REF_LEN]
        mt[q, TEST_END] = mt[q, TEST] + mt[q, TEST_LEN]
        # its test words as bits of at most two 64-bit words (a match is at most 64 words long)
        start, end = mt[q, TEST], mt[q, TEST_END]
        a = start >> 6
        mt[q, TW_A] = a
        mt[q, TW_B] = (end - 1) >> 6 if end > start else a
        ma = np.uint64(0)
        mb = np.uint64(0)
        for p in range(start, end):
            bit = np.uint64(1) << np.uint64(p & 63)
            if (p >> 6) == a:
                ma |= bit
            else:
                mb |= bit
        mk[q, 0] = ma
        mk[q, 1] = mb
    # pools of partial alignments; slot 0 of pool 0 is the start: matches nothing else
    # competes for are fixed in it
    w1n = (n1 >> 6) + 1
    num = np.zeros((2, BEAM, N_FIELDS), dtype=np.int64)
    u1 = np.zeros((2, BEAM, w1n), dtype=np.uint64)
    order = np.zeros((2, BEAM), dtype=np.int64)
    num[0, 0, LAST] = -1
    num[0, 0, CHAIN] = -1
    fixed = np.full(n2 + 1, -1, dtype=np.int64)
    fcov2 = np.zeros(n2 + 1, dtype=np.bool_)
    for j in range(n2):
        if cptr[j + 1] - cptr[j] == 1:
            q = cptr[j]
            alone = True
            for k in range(mt[q, REF_LEN]):
                if cov2[j + k] != 1:
                    alone = False
            for k in range(mt[q, TEST_LEN]):
                if cov1[mt[q, TEST] + k] != 1:
                    alone = False
            if alone:
                fixed[j] = q
                u1[0, 0, mt[q, TW_A]] |= mk[q, 0]
                u1[0, 0, mt[q, TW_B]] |= mk[q, 1]
                for k in range(mt[q, REF_LEN]):
                    fcov2[j + k] = True
    free2 = np.ones(cnt, dtype=np.bool_)
    for q in range(cnt):
        for k in range(mt[q, REF], mt[q, REF_END]):
            if fcov2[k]:
                free2[q] = False
    rb, cb, db, cmax, dmax = search_key_widths(n1, n2, mt, cnt)
    if rb + cb + db > 63:
        return -2
    chain = _resolve(n2, cptr, mt, mk, fixed, fcov2, free2, num, u1, order, nodes, cb, db, cmax, dmax)
    if chain == -2:
        return -1
    at = fixed[:n2].copy()  # the match starting at each reference position, or -1
    while chain != -1:
        at[nodes[chain, 0]] = nodes[chain, 1]
        chain = nodes[chain, 2]
    # statistics (MeteorScorer.getMeteorStats)
    out[0] = n1
    out[1] = n2
    for i in range(n1):
        out[2] += fn[t_ids[i]]
    for j in range(n2):
        out[3] += fn[r_ids[j]]
    for j in range(n2):
        q = at[j]
        if q >= 0:
            base = 4 + 4 * mt[q, MOD]
            for k in range(mt[q, TEST_LEN]):
                out[base + (2 if fn[t_ids[mt[q, TEST] + k]] else 0)] += 1.0
            for k in range(mt[q, REF_LEN]):
                out[base + (3 if fn[r_ids[mt[q, REF] + k]] else 1)] += 1.0
            out[21] += mt[q, TEST_LEN]
            out[22] += mt[q, REF_LEN]
    chunks = 0  # getCountAndChunks
    idx, last = 0, -1
    while idx < n2:
        q = at[idx]
        if q < 0:
            if last != -1:
                chunks += 1
                last = -1
            idx += 1
            continue
        if last != -1 and mt[q, TEST] != last:
            chunks += 1
        idx = mt[q, REF] + mt[q, REF_LEN]
        last = mt[q, TEST] + mt[q, TEST_LEN]
    if last != -1:
        chunks += 1
    out[20] = chunks
    return 0


@njit
def score_pairs(
    t_off,
    t_ids,
    r_off,
    r_ids,
    jh,
    sh,
    fn,
    wk,
    syn_ptr,
    syn_ids,
    n_synsets,
    tkeys,
    trows,
    bloom,
    starts,
    para_keys,
    para_lens,
    max_ref_len,
    max_para_len,
):
    """The jar's 23 statistics for each pair (test = t_ids[t_off[k]:t_off[k+1]], reference
    alike); a row of NaN for a pair too long for the packed search keys."""
    n = t_off.shape[0] - 1
    out = np.zeros((n, N_STATS), dtype=np.float64)
    shead = np.full(max(n_synsets, 1), -1, dtype=np.int64)  # per synset: a test position list
    bits = 0
    while (1 << bits) < tkeys.shape[0]:
        bits += 1
    shift = np.uint64(64 - bits)
    rows, n_nodes = 1024, 1 << 14
    k = 0
    while k < n:
        # work space for a run of segments; regrown (and the segment redone) when one needs more
        raw = np.empty((rows, 5), dtype=np.int64)
        mt = np.empty((rows, N_COLS), dtype=np.int64)
        mk = np.empty((rows, 2), dtype=np.uint64)
        nodes = np.empty((n_nodes, 3), dtype=np.int64)
        while k < n:
            out[k, :] = 0.0
            got = _segment(
                t_ids[t_off[k] : t_off[k + 1]],
                r_ids[r_off[k] : r_off[k + 1]],
                jh,
                sh,
                fn,
                wk,
                syn_ptr,
                syn_ids,
                shead,
                tkeys,
                trows,
                bloom,
                shift,
                starts,
                para_keys,
                para_lens,
                max_ref_len,
                max_para_len,
                raw,
                mt,
                mk,
                nodes,
                out[k],
            )
            if got > 0:
                rows = 2 * got
                break
            if got == -1:
                n_nodes *= 2
                break
            if got == -2:  # too long to score exactly here: NaN statistics, the caller says so
                out[k, :] = np.nan
            k += 1
    return out
