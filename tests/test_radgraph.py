"""RadGraph: extraction and F1 parity with the radgraph package (0.1.18) on synthetic archives.

tests/data/radgraph_parity/parity.json holds the package's outputs (made in its own venv by
make_fixtures.py) on archives built by tests/radgraph_fixture.py from fixed seeds; here the
same archives are rebuilt and radeval's batched extractor must give the same entities,
relations and F1 values.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import tarfile
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from radeval.errors import InputError, ModelNotFound  # noqa: E402
from radeval.metrics import radgraph as rg  # noqa: E402
from tests.radgraph_fixture import annotation_pairs, build_archive  # noqa: E402
from tests.report_corpus import report_pairs  # noqa: E402

PARITY = json.loads((Path(__file__).parent / "data" / "radgraph_parity" / "parity.json").read_text())
CASES = {c["name"]: c for c in PARITY["cases"]}


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    # tiny models: one thread is faster, and far faster on a loaded machine
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    # extracted archives go under the test's own models dir, never the user's cache
    monkeypatch.setenv("RADEVAL_MODELS_DIR", str(tmp_path_factory.getbasetemp() / "models"))


@pytest.fixture(scope="module")
def archives(tmp_path_factory):
    built = {}
    for name, case in CASES.items():
        built[name] = build_archive(tmp_path_factory.mktemp(name), **case["archive"])
    return built


def _texts(case):
    from tests.data.radgraph_parity.make_fixtures import case_texts

    texts, hyps, refs = case_texts(case["report_pairs"]["n"], case["report_pairs"]["seed"])
    assert hashlib.sha1(json.dumps(texts).encode()).hexdigest() == case["texts_sha"], (
        "tests/report_corpus.py changed: regenerate parity.json with make_fixtures.py"
    )
    return texts, hyps, refs


def _compact(ann):
    from tests.data.radgraph_parity.make_fixtures import compact

    return compact(ann)


# ----- extraction parity ------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(CASES))
def test_extraction_matches_package(name, archives, monkeypatch):
    case = CASES[name]
    texts, _, _ = _texts(case)
    ex = rg.RadGraphExtractor(case["archive"]["model_type"], archives[name], device="cpu", batch_tokens=2048)
    got = [_compact(a) for a in ex(texts)]
    want = case["annotations"]
    assert len(got) == len(want) >= 30
    mism = [i for i, (g, w) in enumerate(zip(got, want)) if g != w]
    assert not mism, f"{len(mism)} reports differ, first {mism[0]}: {got[mism[0]]} vs {want[mism[0]]}"
    # the fixture is not trivial: entities and relations were found
    assert sum(len(a["e"]) for a in want) > 5 * len(want)
    assert sum(len(a["r"]) for a in want) > 0.5 * len(want)


def test_batching_and_cache_do_not_change_annotations(archives):
    case = CASES["radgraph"]
    texts, _, _ = _texts(case)
    texts = texts[:16]
    a = rg.RadGraphExtractor("radgraph", archives["radgraph"], device="cpu", batch_tokens=1)
    b = rg.RadGraphExtractor("radgraph", archives["radgraph"], device="cpu", batch_tokens=1 << 20)
    one_by_one = [a([t])[0] for t in texts]
    assert b(texts) == one_by_one
    assert b(list(reversed(texts))) == list(reversed(one_by_one))  # served from the cache
    assert len(b._cache) == len(set(texts))


# ----- F1 parity --------------------------------------------------------------------------------
def test_reward_functions_match_package_on_annotations():
    pairs = annotation_pairs(PARITY["ann_pairs"]["n"], seed=PARITY["ann_pairs"]["seed"])
    got = [list(rg.reward(h, r)) for h, r in pairs]
    assert got == PARITY["ann_pairs"]["rewards"]  # bit-for-bit
    vals = np.array(got)
    assert (vals > 0).mean() > 0.3 and (vals == 1).any() and ((vals > 0) & (vals < 1)).any()


@pytest.mark.parametrize("name", ["radgraph", "radgraph-xl-fold"])
def test_f1radgraph_matches_package(name, archives):
    case = CASES[name]
    _, hyps, refs = _texts(case)
    m = rg.RadGraphF1(case["archive"]["model_type"], archives[name], device="cpu")
    res = m.score(hyps, refs)
    got = np.stack([res.sample["radgraph_simple"], res.sample["radgraph_partial"], res.sample["radgraph_complete"]], 1)
    want = np.array(case["f1"]).T  # the package returns (simple list, partial list, complete list)
    assert np.array_equal(got, want)
    for k, key in enumerate(("radgraph_simple", "radgraph_partial", "radgraph_complete")):
        assert math.isclose(res.corpus[key], case["f1_mean"][k], rel_tol=1e-12)
    assert res.higher_is_better["radgraph_partial"] is True
    assert f"model:{case['archive']['model_type']}@" in res.signature


# ----- behaviour the package leaves undefined / edge cases ----------------------------------------
def test_empty_and_whitespace_reports(archives):
    m = rg.RadGraphF1("radgraph", archives["radgraph"], device="cpu")
    ref = "There is a small left pleural effusion. No pneumothorax."
    v = m.rewards(["", "   \n ", ref, ref], [ref, ref, "", ref])
    assert v[:3].tolist() == [[0.0] * 3] * 3  # empty or whitespace-only: 0, never an error
    ann = m.extractor(["   \n "])[0]
    assert ann["entities"] == {} and ann["text"] == ""
    assert m.extractor([""])[0]["text"] == "None"  # the package's substitution
    assert not np.isnan(v).any()


def test_odd_text_never_raises(archives):
    ex = rg.RadGraphExtractor("radgraph", archives["radgraph"], device="cpu")
    odd = ["\u200b\u200b", "°×–é", "a" * 3000, "word " * 300, "(((", "/. /?", "\r\n\t"]
    anns = ex(odd)
    assert len(anns) == len(odd)
    assert anns[5]["text"] == "/ . / ?"
    with pytest.raises(InputError):
        ex([None])  # type: ignore[list-item]


# ----- words --------------------------------------------------------------------------------------
_PKG_V1 = re.compile("(?<! )(?=[/,-,:,.,!?()])|(?<=[/,-,:,.,!?()])(?! )")  # the package's pattern


def test_v1_words_equal_package_pattern():
    for h, r in report_pairs(200, seed=3):
        for t in (h, r):
            assert rg.words_v1(t) == _PKG_V1.sub(" ", t).split()
    assert rg.words_v1("left-sided 3.5cm (a/b)") == ["left-sided", "3", ".", "5cm", "(", "a", "/", "b", ")"]


def test_xl_words():
    nltk = pytest.importorskip("nltk")
    from nltk.tokenize import wordpunct_tokenize

    for h, r in report_pairs(200, seed=4):
        for t in (h, r):
            assert rg._WORDPUNCT.findall(re.sub(r"\s+", " ", t)) == wordpunct_tokenize(re.sub(r"\s+", " ", t))
    assert rg.words_xl('Said \\"x\\" 2\\n3') == ["Said", "``", "x", "``", "2", "3"]
    assert rg.words_xl("5%. (ETT).") == ["5", "%", ".", "(", "ETT", ")", "."]
    assert nltk is not None


# ----- archive handling ---------------------------------------------------------------------------
def test_archive_extracted_once_and_safely(archives, tmp_path, monkeypatch):
    monkeypatch.setenv("RADEVAL_MODELS_DIR", str(tmp_path / "m"))
    d1, id1 = rg.locate_model("radgraph", archives["radgraph"])
    d2, id2 = rg.locate_model("radgraph", archives["radgraph"])
    assert d1 == d2 and id1 == id2 and (d1 / "weights.th").is_file()
    assert str(d1).startswith(str(tmp_path / "m" / ".extracted"))
    # an extracted directory works directly
    assert rg.locate_model("radgraph", d1)[0] == d1
    # a malicious archive is refused before anything is written
    bad = tmp_path / "radgraph.tar.gz"
    with tarfile.open(bad, "w:gz") as tf:
        info = tarfile.TarInfo("../escape.txt")
        info.size = 2
        tf.addfile(info, io.BytesIO(b"hi"))
    with pytest.raises(InputError):
        rg.locate_model("radgraph", bad)
    assert not (tmp_path / "m" / "escape.txt").exists() and not (tmp_path / "escape.txt").exists()


def test_missing_model_message(tmp_path):
    with pytest.raises(ModelNotFound):
        rg.locate_model("radgraph", tmp_path / "nowhere")
    with pytest.raises(Exception) as ei:
        rg.locate_model("radgraph-xxl")
    assert "model_type" in str(ei.value)
