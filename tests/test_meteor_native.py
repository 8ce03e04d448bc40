"""Native METEOR 1.5 (``meteor_native``) == the jar, statistic for statistic.

The default run compares a few hundred seeded report pairs in every tokenisation mode plus
hand-made adversarial cases against the jar (skipped without Java/pycocoevalcap); the 10,000-pair
run is ``scripts/meteor_parity.py`` (here ``test_meteor_native_parity_10k``, only with
``RADEVAL_METEOR_PARITY=1``).
Pure-Python pieces (normaliser rules, Java hash, stemmer) are checked without the jar where
a known answer exists.
"""

from __future__ import annotations

import importlib.util
import os
import shutil

import numpy as np
import pytest

HAS_COCO = importlib.util.find_spec("pycocoevalcap") is not None
HAS_JAVA = shutil.which("java") is not None
needs_coco = pytest.mark.skipif(not HAS_COCO, reason="needs pycocoevalcap (the [coco] extra) for the METEOR data files")
needs_jar = pytest.mark.skipif(not (HAS_COCO and HAS_JAVA), reason="needs pycocoevalcap and `java` (the reference jar)")

_LONG = " ".join(
    [
        "The heart size is normal.",
        "No focal consolidation, pleural effusion or pneumothorax.",
        "Mild bibasilar atelectasis.",
    ]
    * 40
)
# (hypothesis, reference) pairs chosen to stress the normaliser and the aligner's tie-breaking
ADVERSARIAL: tuple[tuple[str, str], ...] = (
    ("the the the the lung lung", "the lung the lung the"),  # repeated words: many equal candidates
    ("effusion effusion effusion", "effusion"),
    ("", "no acute cardiopulmonary process ."),  # empty hypothesis
    ("no acute cardiopulmonary process .", ""),  # empty reference
    ("", ""),
    ("   ", "\t"),
    ("1.5 cm nodule , 2,000 ml , 3/4 , 10:30 , 4th rib , 7's", "15 mm nodule , 2 000 ml , 3 / 4 , 1030 , fourth rib"),
    ("!!! ... ??? --- ;;; ((( ))) '' `` \" ... ....", ". . . ! ? - ; ( ) ' \""),  # punctuation runs
    ("U.S.-based Dr. Smith e.g. No. 5 Inc. etc.", "us based dr smith eg no 5 inc etc"),
    (
        "it's the patient's 1990's x-ray – unchanged — “stable” ‘ok’",
        "it is the patients 1990s xray - unchanged - \"stable\" 'ok'",
    ),
    (_LONG, _LONG.replace("normal", "enlarged").replace("Mild", "Moderate")),  # very long reports
    (_LONG, _LONG),
    # words and phrases the paraphrase table relates but exact/stem/synonym do not
    ("there is no evidence of pneumothorax", "no evidence of pneumothorax"),
    ("the lungs are clear", "lung is clear"),
    ("it appears stable", "it seems stable"),
    ("5 000 eur", "5 thousand"),
    ("heart size normal", "cardiac silhouette within normal limits"),
    ("the patient is ill", "the patient is sick"),  # synonyms
    ("running ran runs", "run running runner"),  # stems
    ("Aa BB", "BB Aa"),  # Java hashCode collision ("Aa" == "BB"): the jar counts them equal
    ("aa bb", "bb aa"),
    ("İstanbul straße ΟΔΟΣ café", "istanbul strasse οδος cafe"),
    ("a ||| b", "c |||| d"),
    ("line one\nline two\r\nline three", "line one line two line three"),
)


@needs_coco
def test_normaliser_known_answers():
    from radeval.metrics.meteor import native_aligner

    words = native_aligner().words
    # answers printed by the jar's own Normalizer.normalizeLine(..., en, true).toLowerCase()
    assert words("U.S.-based Dr. Smith, e.g. No. 5.") == ["us", "based", "dr.", "smith", ",", "eg", "no.", "5", "."]
    assert words("it's 1990's ''x''") == ["it", "'s", "1990", "'s", '"', "x", '"']
    assert words("a...b") == ["a", "...", "b"]
    assert words("  ") == []


def _normaliser_lines() -> list[str]:
    """Trimmed lines for the normaliser checks: the report corpus in three modes, and
    character soup built from what the normaliser's rules look at (sentence separators too)."""
    import random

    from radeval.metrics.meteor_text import java_trim
    from radeval.tokenize import normalize
    from tests.report_corpus import report_pairs

    texts = [t for p in report_pairs(1500, seed=3) for t in p]
    lines = [java_trim(x) for mode in ("r2gen-mimic", "r2gen-iu", "whitespace") for x in normalize(texts, mode)]
    rng = random.Random(16)
    alphabet = list("aZ09 .,-'`\"\u2019\u2018\u201c\u201d\u2013\u2014\u2026\u00d7\u00b0|#$/:;!?()")
    alphabet += ["  ", "Dr.", "No.", "U.S.", "e.g.", "1,000", "3.5", "..", "...", "'s", "n't", " a", " B", "DOTMULTI"]
    alphabet += [" . ", " . ", "  . ", " .  ", "\t", "\u00a0"]
    lines += [java_trim("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))) for _ in range(10_000)]
    return lines


@needs_coco
def test_piecewise_words_equal_the_whole_line_normaliser():
    # line_words normalises only the runs of non-plain tokens; it must give what the jar's
    # normaliser gives on the whole line
    from radeval.metrics.meteor_resources import nonbreaking_prefixes
    from radeval.metrics.meteor_text import line_words, normalize_line, string_tokenize

    nbp = nonbreaking_prefixes()
    runs: dict[str, list[str]] = {}
    for line in _normaliser_lines():
        assert line_words(line, nbp, runs) == string_tokenize(normalize_line(line, nbp).lower()), line


@needs_coco
def test_sentence_by_sentence_ids_equal_the_whole_line_normaliser():
    # the aligner normalises and looks up each " . "-separated sentence once (sentence_keys);
    # the ids of a line must be those of the jar's normaliser's words for the whole line
    from radeval.metrics.meteor import native_aligner
    from radeval.metrics.meteor_text import normalize_line, sentence_keys, string_tokenize

    al = native_aligner()
    lines = _normaliser_lines()
    assert sum(len(sentence_keys(x) or ()) > 1 for x in lines) > 5000
    for line in lines:
        got = np.frombuffer(al._ids(line), dtype=np.int32).tolist()
        words = string_tokenize(normalize_line(line, al.nbp).lower())
        assert [al._type_id[t] for t in words] == got, line


def test_java_hash_and_length():
    from radeval.metrics.meteor_text import java_hash, java_length

    assert java_hash("") == 0
    assert java_hash("Aa") == java_hash("BB") == 2112
    assert java_hash("hello") == 99162322
    assert java_hash("polygenelubricants") == -2147483648  # Integer.MIN_VALUE
    assert java_length("𝒳a") == 3


def test_snowball_stems_match_the_jar_on_known_words():
    # answers from the jar's org.tartarus.snowball englishStemmer (snowballstemmer 3.x differs
    # on some of these, hence the <3 bound)
    import snowballstemmer

    st = snowballstemmer.stemmer("english")
    known = {"added": "ad", "adding": "ad", "apologists": "apologist", "generously": "generous", "running": "run"}
    assert {w: st.stemWord(w) for w in known} == known


def _jar_and_native(lines: list[str]) -> tuple[np.ndarray, np.ndarray]:
    from radeval.coco import meteor_score_lines
    from radeval.metrics.meteor import _parse_stats, native_aligner

    jar = np.array([_parse_stats(line, a) for line, a in zip(lines, meteor_score_lines(lines))])
    nat = np.array(native_aligner().score_lines(lines), dtype=np.float64)
    return jar, nat


@needs_jar
def test_adversarial_statistics_equal_the_jar():
    from radeval.metrics.meteor import score_line

    lines = [score_line(h, r) for h, r in ADVERSARIAL]
    jar, nat = _jar_and_native(lines)
    for line, a, b in zip(lines, jar, nat):
        assert a.tolist() == b.tolist(), line[:200]


@needs_coco
def test_metric_path_equals_the_protocol_line_path():
    # MeteorNative.stats hands the two sanitised sides to the aligner instead of a protocol line
    from radeval.metrics import meteor as meteor_mod
    from radeval.metrics.meteor import MeteorNative, aggregation_rows, native_aligner, score_line

    hyps = [h for h, _ in ADVERSARIAL] + ["a |||| b ||||| c", "||", "x |", "| y"]
    refs = [r for _, r in ADVERSARIAL] + ["|||||| a", "b ||", "||| x", "y |||"]
    meteor_mod._NATIVE_CACHE.clear()
    lines = [score_line(h, r) for h, r in zip(hyps, refs)]
    by_line = aggregation_rows(np.array(native_aligner().score_lines(lines), dtype=np.float64))
    assert np.array_equal(MeteorNative(tokenize="whitespace").stats(hyps, refs), by_line)


@needs_jar
@pytest.mark.parametrize("mode", ["r2gen-mimic", "r2gen-iu", "whitespace", "ptb"])
def test_report_pairs_equal_the_jar_every_mode(mode):
    """200 seeded pairs per mode: raw statistics identical, sample and corpus scores equal."""
    from radeval.coco import meteor_jar, meteor_score_lines
    from radeval.metrics import meteor as meteor_mod
    from radeval.metrics.meteor import MeteorNative, _parse_stats, aggregation_rows, score_line
    from radeval.tokenize import normalize
    from tests.report_corpus import report_pairs

    pairs = report_pairs(200, seed=7)
    hyps, refs = [h for h, _ in pairs], [r for _, r in pairs]
    lines = [score_line(h, r) for h, r in zip(normalize(hyps, mode), normalize(refs, mode))]
    meteor_mod._NATIVE_CACHE.clear()
    metric = MeteorNative(tokenize=mode)
    res = metric.score(hyps, refs)
    jar = np.array([_parse_stats(line, a) for line, a in zip(lines, meteor_score_lines(lines))])
    assert np.array_equal(aggregation_rows(jar), metric.stats(hyps, refs))
    seg, corpus = meteor_jar().evaluate([" ".join(repr(x) for x in row) for row in jar.tolist()])
    np.testing.assert_allclose(res.sample["meteor"], seg, rtol=0, atol=1e-9)
    assert res.corpus["meteor"] == pytest.approx(corpus, abs=1e-9)


@needs_coco
def test_native_metric_basics():
    from radeval.metrics.meteor import MeteorNative

    m = MeteorNative(tokenize="whitespace")
    res = m.score(["the heart is normal", ""], ["the heart is normal", "no effusion"])
    assert res.sample["meteor"][0] == pytest.approx(1.0 - 0.6 * 0.0, abs=0) or res.sample["meteor"][0] > 0.99
    assert res.sample["meteor"][1] == 0.0
    assert m.stats([], []).shape == (0, 23)


@needs_coco
def test_search_keys_order_as_the_jar_compares():
    # the beam compares partial alignments by one packed key: more rank, then fewer chunks,
    # then less distance; the widths must hold every value the segment can reach
    from radeval.metrics.meteor_kernel import DIST, N_COLS, search_key_widths

    mt = np.zeros((3, N_COLS), dtype=np.int64)
    mt[:, DIST] = [5, 0, 7]
    rb, cb, db, cmax, dmax = search_key_widths(10, 12, mt, 3)
    assert (cmax, dmax) == (13, 24) and 2 * (10 + 12) + 2 < 2**rb and cmax < 2**cb and dmax < 2**db

    def key(r, c, d):
        return (((r << cb) + cmax - c) << db) + dmax - d

    cases = [(r, c, d) for r in (0, 1, 45) for c in (0, 1, 13) for d in (0, 1, 24)]
    by_key = sorted(cases, key=lambda x: key(*x), reverse=True)
    assert by_key == sorted(cases, key=lambda x: (-x[0], x[1], x[2]))
    assert key(2 * 22 + 2, 0, 0) < 2**63


@needs_coco
def test_too_long_for_the_search_keys_names_the_pair(monkeypatch):
    from radeval.errors import InputError
    from radeval.metrics.meteor import native_aligner

    al = native_aligner()
    monkeypatch.setattr(al, "pair_stats", lambda ids: np.full((len(ids), 23), np.nan))
    with pytest.raises(InputError, match=r"METEOR pair 0 \(2 test words, 3 reference words\).*backend=jar"):
        al.score_sides([("a b", "c d e")])


@needs_coco
def test_meteor_key_backends():
    from radeval.errors import ConfigError
    from radeval.metrics.meteor import Meteor, MeteorNative
    from radeval.registry import get_metric

    m = get_metric("meteor", tokenize="whitespace")
    assert isinstance(m, MeteorNative) and m.name == "meteor"
    assert m.signature.startswith("meteor|impl:radeval-native-meteor-1.5|tok:whitespace|")
    with pytest.raises(ConfigError):
        get_metric("meteor", backend="java")
    with pytest.raises(ConfigError):
        get_metric("meteor", jars=2)
    if HAS_JAVA:
        assert isinstance(get_metric("meteor", backend="jar"), Meteor)


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("RADEVAL_METEOR_PARITY") != "1", reason="set RADEVAL_METEOR_PARITY=1 (about 20 CPU-min)"
)
@needs_jar
def test_meteor_native_parity_10k():
    """The full parity run: 10,000 pairs x 4 tokenisation modes + adversarial cases."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, str(root / "scripts" / "meteor_parity.py"), "--pairs", "10000"], cwd=root)
    assert r.returncode == 0
