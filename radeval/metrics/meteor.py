"""METEOR 1.5 exactly as pycocoevalcap computes it (its bundled jar, ``-l en -norm``).

Two backends give the same statistics: :class:`MeteorNative` (the ``meteor`` default and
``meteor_native``; no Java; see meteor_align.py and meteor_kernel.py) and :class:`Meteor`, which drives the
jar itself (``meteor.backend=jar``, the checked reference). What follows describes the jar's
protocol, which the native backend reproduces line for line.

pycocoevalcap sends one ``SCORE ||| ref ||| hyp`` line per segment to the jar, collects the
23 sufficient statistics the jar prints for each, and then sends one ``EVAL`` line holding all
of them; the jar answers with each segment's score and then the corpus score, which is its
scoring formula applied to the *element-wise sum* of all segment statistics (``MeteorStats
.addStats``), not the mean of segment scores.

We keep the same split: the jar's statistics line is the record's stats row (alignment needs
the jar's stemmer, synonyms and paraphrase table), and :meth:`Meteor.from_totals` is the
jar's ``MeteorScorer.computeMetrics`` written out in numpy, so corpus scores, sentence scores
and bootstrap resamples all come from summed rows without another round trip.

One wrinkle (read from the jar's bytecode, ``MeteorStats.addStats``): the aggregate is a
plain sum of every field *except* ``chunks``, which a segment whose alignment is perfect
(all words matched on both sides in one chunk) does not contribute. We store that
contribution (0 for such a segment) in the row, which keeps the corpus a column sum; the
segment's own score is unchanged, because the jar gives a perfect segment zero
fragmentation and a row with 0 chunks also has zero fragmentation.

Parameters of METEOR 1.5 for English (task "rank", the jar's default; its Eval ID is
``meteor-1.5-wo-en-norm-0.85_0.2_0.6_0.75-ex_st_sy_pa-1.0_0.6_0.8_0.6``): alpha 0.85,
beta 0.2, gamma 0.6, delta 0.75; modules exact, stem, synonym, paraphrase weighted
1.0, 0.6, 0.8, 0.6.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence

import numpy as np

from radeval.errors import ConfigError
from radeval.metric import Metric
from radeval.tokenize import DEFAULT_TOKENIZE, check_mode, normalize

ALPHA, BETA, GAMMA, DELTA = 0.85, 0.2, 0.6, 0.75
MODULE_WEIGHTS = (1.0, 0.6, 0.8, 0.6)  # exact, stem, synonym, paraphrase
EVAL_ID = "meteor-1.5-wo-en-norm-0.85_0.2_0.6_0.75-ex_st_sy_pa-1.0_0.6_0.8_0.6"

# The 23 numbers of MeteorStats.toString(), in order: lengths, function-word counts, then per
# module (test content, ref content, test function, ref function matches), chunks, and the
# unweighted word-match totals used for fragmentation. (The jar's parser rebuilds the total
# matches from the per-module counts.)
_STAGES = ("exact", "stem", "syn", "para")
STAT_NAMES: tuple[str, ...] = (
    "test_len",
    "ref_len",
    "test_func",
    "ref_func",
    *(
        f"{s}_{side}_{kind}"
        for s in _STAGES
        for side, kind in (("test", "content"), ("ref", "content"), ("test", "func"), ("ref", "func"))
    ),
    "chunks_agg",
    "test_word_matches",
    "ref_word_matches",
)
_CHUNKS = 20

# The jar's raw statistics keyed by the exact protocol line: in GRPO the same (completion, reference)
# recurs, and BLEU/ROUGE/METEOR runs over one file re-score nothing.
_CACHE: dict[str, tuple[float, ...]] = {}
_CACHE_MAX = 200_000


def one_line(text: str) -> str:
    """The text with "\n" and "\r" (where the jar's ``readLine`` ends a line) made spaces.

    pycocoevalcap writes texts as they are, so a line break inside one desynchronises its
    protocol (it reads the answer to the wrong line); normalised text never has one except
    in the whitespace and r2gen-iu modes. Other characters pass through unchanged."""
    return text.replace("\n", " ").replace("\r", " ")


def sanitize_hypothesis(text: str) -> str:
    """What pycocoevalcap's ``Meteor._stat`` does to a hypothesis, after :func:`one_line`."""
    return one_line(text).replace("|||", "").replace("  ", " ")


def sanitize_reference(text: str) -> str:
    """:func:`one_line`, and '|||' removed (pycocoevalcap passes references unchanged, so
    there a '|||' inside a reference silently splits it into two references)."""
    return one_line(text).replace("|||", "")


def score_line(hyp: str, ref: str) -> str:
    return " ||| ".join(("SCORE", sanitize_reference(ref), sanitize_hypothesis(hyp)))


def aggregation_rows(jar_stats: np.ndarray) -> np.ndarray:
    """The jar's statistics with ``chunks`` as ``addStats`` counts it: 0 for a perfect segment."""
    rows = np.array(jar_stats, dtype=np.float64, copy=True)
    test_total, ref_total = rows[:, 4:20:2].sum(axis=1), rows[:, 5:20:2].sum(axis=1)
    perfect = (test_total == rows[:, 0]) & (ref_total == rows[:, 1]) & (rows[:, _CHUNKS] == 1)
    rows[perfect, _CHUNKS] = 0.0
    return rows


def meteor_from_totals(totals: np.ndarray) -> np.ndarray:
    """The jar's ``computeMetrics`` on (summed) statistics, same operation order; vectorised."""
    t = np.asarray(totals, dtype=np.float64)
    test_len, ref_len, test_func, ref_func = t[..., 0], t[..., 1], t[..., 2], t[..., 3]
    # total matches = sum of content and function matches over modules (integers: exact)
    test_total, ref_total = t[..., 4:20:2].sum(axis=-1), t[..., 5:20:2].sum(axis=-1)
    chunks, test_words, ref_words = t[..., 20], t[..., 21], t[..., 22]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        test_wlen = DELTA * (test_len - test_func) + (1.0 - DELTA) * test_func
        ref_wlen = DELTA * (ref_len - ref_func) + (1.0 - DELTA) * ref_func
        test_wm = np.zeros_like(test_len)
        ref_wm = np.zeros_like(test_len)
        for i, w in enumerate(MODULE_WEIGHTS):  # content matches first, as the jar sums them
            test_wm = test_wm + t[..., 4 + 4 * i] * w * DELTA
        for i, w in enumerate(MODULE_WEIGHTS):
            ref_wm = ref_wm + t[..., 5 + 4 * i] * w * DELTA
        for i, w in enumerate(MODULE_WEIGHTS):
            test_wm = test_wm + t[..., 6 + 4 * i] * w * (1.0 - DELTA)
        for i, w in enumerate(MODULE_WEIGHTS):
            ref_wm = ref_wm + t[..., 7 + 4 * i] * w * (1.0 - DELTA)
        precision = test_wm / test_wlen
        recall = ref_wm / ref_wlen
        fmean = 1.0 / (((1.0 - ALPHA) / precision) + (ALPHA / recall))
        identical = (test_total == test_len) & (ref_total == ref_len) & (chunks == 1)
        frag = np.where(identical, 0.0, chunks / ((test_words + ref_words) / 2))
        score = fmean * (1.0 - GAMMA * np.power(frag, BETA))
    # the jar maps NaN (0/0: an empty side, or no matches) to 0 and clips at 0
    return np.where(np.isnan(score), 0.0, np.maximum(score, 0.0))


class Meteor(Metric):
    """METEOR 1.5 via pycocoevalcap's jar; needs Java and the ``[coco]`` extra."""

    name = "meteor"
    keys = ("meteor",)
    stat_names = STAT_NAMES

    def __init__(self, tokenize: str = DEFAULT_TOKENIZE, jars: int | None = None):
        self.tokenize = check_mode(tokenize)
        # jar processes to shard a batch over: only the time changes, never the numbers
        # (so it is not in the signature). Default: $RADEVAL_METEOR_JARS or 1.
        if jars is None:
            env = os.environ.get("RADEVAL_METEOR_JARS", "").strip() or "1"
            jars = int(env) if env.isdigit() else -1
            if jars < 1:
                raise ConfigError(f"RADEVAL_METEOR_JARS must be a positive integer, got {env!r}")
        if not isinstance(jars, int) or isinstance(jars, bool) or jars < 1:
            raise ConfigError(f"meteor jars must be a positive integer, got {jars!r}")
        self.jars = jars
        from radeval import coco  # fail at construction, with the fix, when pycocoevalcap is absent

        coco._pycocoevalcap_dir()
        coco._require_java()

    def settings(self) -> dict:
        return {"impl": "pycocoevalcap-meteor-1.5-jar", "tok": self.tokenize, "eval": EVAL_ID}

    def stats(self, hyps: Sequence[str], refs: Sequence[str], images: Sequence[str | None] | None = None) -> np.ndarray:
        if len(hyps) == 0:
            return np.zeros((0, len(STAT_NAMES)))
        hyps_n, refs_n = normalize(hyps, self.tokenize), normalize(refs, self.tokenize)
        lines = [score_line(h, r) for h, r in zip(hyps_n, refs_n)]

        def ask_jar(todo: list[str]) -> list[tuple[float, ...]]:
            from radeval.coco import meteor_score_lines

            return [_parse_stats(line, a) for line, a in zip(todo, meteor_score_lines(todo, self.jars))]

        return _cached_rows(lines, _CACHE, ask_jar)

    def from_totals(self, totals: np.ndarray) -> dict[str, np.ndarray]:
        return {"meteor": meteor_from_totals(totals)}


def _cached_rows(keys: list, cache: dict, compute) -> np.ndarray:
    """Aggregation rows for ``keys`` (protocol lines, or the pairs of sides sent natively):
    the jar's statistics from ``cache``, ``compute(todo)`` giving them for the distinct keys
    not yet there, in order."""
    known = {key: cache[key] for key in set(keys) if key in cache}
    todo = [key for key in dict.fromkeys(keys) if key not in known]
    if todo:
        known.update(zip(todo, compute(todo)))
        if len(cache) + len(todo) > _CACHE_MAX:
            cache.clear()
        cache.update((key, known[key]) for key in todo)
    return aggregation_rows(np.array([known[key] for key in keys], dtype=np.float64))


def _parse_stats(line: str, answer: str) -> tuple[float, ...]:
    try:
        values = tuple(float(x) for x in answer.split())
    except ValueError:
        values = ()
    if len(values) != len(STAT_NAMES):
        from radeval.errors import RadevalError

        raise RadevalError(f"unexpected answer from the METEOR jar {answer[:200]!r} to {line[:200]!r}")
    return values


# ------------------------------------------------------------------------------ native
_NATIVE_CACHE: dict[tuple[str, str], tuple[float, ...]] = {}  # (hypothesis, reference) sides as sent
_ALIGNER = None
_ALIGNER_LOCK = threading.Lock()


def native_aligner():
    """The process-wide native aligner (resources load once: ~1 s, or the one-time cache build)."""
    global _ALIGNER
    with _ALIGNER_LOCK:
        if _ALIGNER is None:
            from radeval.metrics.meteor_align import Aligner

            _ALIGNER = Aligner()
        return _ALIGNER


class MeteorNative(Metric):
    """METEOR 1.5 in Python, statistic for statistic the jar's (no Java): the same protocol
    line is parsed, normalised, aligned and counted as ``meteor-1.5.jar -stdio -l en -norm``
    does; the data files come from the installed pycocoevalcap (the ``[coco]`` extra)."""

    name = "meteor_native"
    keys = ("meteor",)
    stat_names = STAT_NAMES

    def __init__(self, tokenize: str = DEFAULT_TOKENIZE):
        self.tokenize = check_mode(tokenize)
        from radeval import coco

        coco._pycocoevalcap_dir()  # fail at construction, with the fix, when pycocoevalcap is absent

    def settings(self) -> dict:
        return {"impl": "radeval-native-meteor-1.5", "tok": self.tokenize, "eval": EVAL_ID}

    def stats(self, hyps: Sequence[str], refs: Sequence[str], images: Sequence[str | None] | None = None) -> np.ndarray:
        if len(hyps) == 0:
            return np.zeros((0, len(STAT_NAMES)))
        hyps_n, refs_n = normalize(hyps, self.tokenize), normalize(refs, self.tokenize)
        # The two sides of the protocol line score_line(h, r) would carry, without building the
        # line and splitting it again: after sanitising, neither side holds '|||' (removing it
        # leaves runs of at most two '|'), so the line always splits into exactly these parts
        # (tests/test_meteor_native.py checks this path against score_lines on the adversarial cases).
        keys = [(sanitize_hypothesis(h), sanitize_reference(r)) for h, r in zip(hyps_n, refs_n)]
        return _cached_rows(keys, _NATIVE_CACHE, lambda todo: map(tuple, native_aligner().score_sides(todo).tolist()))

    def from_totals(self, totals: np.ndarray) -> dict[str, np.ndarray]:
        return {"meteor": meteor_from_totals(totals)}


BACKENDS = ("native", "jar")


class MeteorNativeDefault(MeteorNative):
    """``meteor`` on the native backend: same numbers as the jar, so the same metric name."""

    name = "meteor"


def meteor_metric(tokenize: str = DEFAULT_TOKENIZE, backend: str = "native", jars: int | None = None) -> Metric:
    """The ``meteor`` registry entry: the native implementation by default; ``backend="jar"``
    runs pycocoevalcap's jar (Java needed), kept as the checked reference."""
    if backend == "native":
        if jars is not None:
            raise ConfigError("meteor jars applies to backend=jar only")
        return MeteorNativeDefault(tokenize=tokenize)
    if backend == "jar":
        return Meteor(tokenize=tokenize, jars=jars)
    raise ConfigError(f"meteor backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
