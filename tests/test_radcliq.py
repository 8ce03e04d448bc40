"""RadCliQ-v1: published constants, BLEU-2 parity with fast_bleu, IDF-BERTScore parity with
bert-score, the frozen-IDF fix, and the composition (lower is better).

The CheXbert embedder here is a TEST DOUBLE (``FakeCheXbertEmbedder``): radeval's CheXbert
labeler is tested in tests/test_chexbert.py; this file checks only how RadCliQ uses its
embeddings (cosine per pair).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("bert_score")

from radeval.metrics import radcliq as rq  # noqa: E402
from radeval.metrics.radgraph import RadGraphExtractor  # noqa: E402
from tests.radgraph_fixture import build_archive  # noqa: E402
from tests.report_corpus import report_pairs  # noqa: E402

DATA = Path(__file__).parent / "data" / "radgraph_parity"


class FakeCheXbertEmbedder:
    """TEST DOUBLE for CheXbertLabeler.embed: a fixed pseudo-random 8-d vector per text."""

    def embed(self, texts):
        out = []
        for t in texts:
            seed = int.from_bytes(hashlib.sha1(t.encode()).digest()[:4], "little")
            out.append(np.random.default_rng(seed).normal(size=8).astype(np.float32))
        return np.stack(out) if out else np.zeros((0, 8), np.float32)


def _bytes_to_unicode() -> dict[int, str]:
    # GPT-2's byte -> printable-unicode table (a public algorithm), for a tiny byte-level BPE
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


@pytest.fixture(scope="module")
def tiny_roberta(tmp_path_factory) -> Path:
    """A 6-layer, 16-wide RoBERTa with a byte-level BPE tokenizer, random weights (seed 0)."""
    return build_tiny_roberta(tmp_path_factory.mktemp("distilroberta"))


def build_tiny_roberta(d: Path) -> Path:
    """Write the tiny distilroberta stand-in into ``d`` (also used by benchmarks/rexrank_synthetic.py)."""
    d = Path(d)
    d.mkdir(parents=True, exist_ok=True)
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for ch in _bytes_to_unicode().values():
        vocab.setdefault(ch, len(vocab))
    merges = [
        ("Ġ", "t"),
        ("h", "e"),
        ("Ġt", "he"),
        ("e", "f"),
        ("Ġ", "e"),
        ("i", "o"),
        ("n", "o"),
        ("Ġ", "n"),
        ("Ġn", "o"),
        ("Ġ", "p"),
        ("l", "e"),
        ("u", "s"),
    ]
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    vocab["<mask>"] = len(vocab)
    (d / "vocab.json").write_text(json.dumps(vocab))
    (d / "merges.txt").write_text("#version: 0.2\n" + "\n".join(f"{a} {b}" for a, b in merges) + "\n")
    (d / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "RobertaTokenizer", "model_max_length": 512})
    )
    cfg = transformers.RobertaConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=6,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=514,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        type_vocab_size=1,
    )
    torch.manual_seed(0)
    transformers.RobertaModel(cfg).save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def rg_archive(tmp_path_factory):
    return build_archive(tmp_path_factory.mktemp("rg"), seed=0, model_type="radgraph")


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    # tiny models: one thread is faster, and far faster on a loaded machine
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(autouse=True)
def _models_dir(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("RADEVAL_MODELS_DIR", str(tmp_path_factory.getbasetemp() / "models"))


def _metric(tiny_roberta, rg_archive, **kw):
    return rq.RadCliQ(
        radgraph=RadGraphExtractor("radgraph", rg_archive, device="cpu"),
        bertscore=rq._IdfBertScore(tiny_roberta, device="cpu"),
        chexbert=FakeCheXbertEmbedder(),
        **kw,
    )


# ----- constants and formula ----------------------------------------------------------------
def test_published_constants():
    assert rq.COLS == ("radgraph_combined", "bertscore", "semb_score", "bleu_score")
    # full precision from CXR-Report-Metric's radcliq-v1.pkl; RadEval's 8-digit transcription agrees
    np.testing.assert_allclose(rq.SCALER_MEAN, (0.53792312, 0.61757256, 0.76479421, 0.44738335), rtol=0, atol=5e-9)
    np.testing.assert_allclose(rq.SCALER_SCALE, (0.30282584, 0.22430938, 0.25394391, 0.29892717), rtol=0, atol=5e-9)
    np.testing.assert_allclose(
        rq.COEFS, (-3.77083683e-01, -3.70300100e-01, -2.52616218e-01, 4.31504841e-12, 2.46655256e-10), rtol=5e-9, atol=0
    )
    assert rq.SCALER_MEAN[0] == 0.5379231241355762 and rq.COEFS[0] == -0.37708368261038905


def test_combine_is_the_scaled_linear_model():
    x = np.array([[0.5, 0.6, 0.7, 0.4], [1.0, 1.0, 1.0, 1.0], [0.0, -0.2, 0.1, 0.0]])
    want = []
    for row in x:
        z = [(v - m) / s for v, m, s in zip(row, rq.SCALER_MEAN, rq.SCALER_SCALE)]
        want.append(sum(c * v for c, v in zip(rq.COEFS[:4], z)) + rq.COEFS[4])
    assert np.allclose(rq.RadCliQ.combine(x), want, rtol=0, atol=1e-12)
    # better features -> lower RadCliQ (it is a distance)
    assert rq.RadCliQ.combine(x)[1] < rq.RadCliQ.combine(x)[0] < rq.RadCliQ.combine(x)[2]


# ----- BLEU-2 --------------------------------------------------------------------------------
def test_bleu2_matches_fast_bleu():
    fx = json.loads((DATA / "radcliq_bleu2.json").read_text())
    pairs = [(r, h) for h, r in report_pairs(fx["n_corpus"], seed=fx["seed"])] + [tuple(p) for p in fx["edge"]]
    got = [rq.bleu2(rq.cxr_words(r), rq.cxr_words(h)) for r, h in pairs]
    assert len(got) == len(fx["bleu2"])
    assert np.allclose(got, fx["bleu2"], rtol=1e-12, atol=1e-15)
    assert sum(g > 0 for g in got) > 200


def test_cxr_words():
    assert rq.cxr_words("Effusion.\nNo  PTX.") == ["effusion", ".\nno", "ptx", "."]


# ----- BERTScore with IDF --------------------------------------------------------------------
def test_idf_bertscore_matches_bert_score(tiny_roberta):
    from bert_score import BERTScorer

    pairs = [(h, r) for h, r in report_pairs(40, seed=6) if h.strip() and r.strip()]
    hyps = [h for h, _ in pairs]
    refs = [r for _, r in pairs]
    ours = rq._IdfBertScore(tiny_roberta, device="cpu")
    ours.fit(refs, "test-refs")
    got = ours.f1(hyps, refs, use_idf=True)
    clean = [rq._SPACES.sub(" ", t) for t in refs]
    scorer = BERTScorer(
        model_type=str(tiny_roberta), num_layers=5, idf=True, idf_sents=clean, lang="en", rescale_with_baseline=False
    )
    _, _, f = scorer.score([rq._SPACES.sub(" ", h) for h in hyps], clean)
    b = ours.engine._baseline[2].item()
    want = (f.numpy().astype(np.float64) - b) / (1 - b)
    assert np.allclose(got, want, rtol=0, atol=2e-5)
    # and the plain (no-IDF) variant
    got0 = ours.f1(hyps, refs, use_idf=False)
    s0 = BERTScorer(model_type=str(tiny_roberta), num_layers=5, lang="en")
    _, _, f0 = s0.score([rq._SPACES.sub(" ", h) for h in hyps], clean)
    assert np.allclose(got0, (f0.numpy() - b) / (1 - b), rtol=0, atol=2e-5)
    assert not np.allclose(got, got0)


def test_frozen_idf_makes_rewards_batch_independent(tiny_roberta, rg_archive):
    corpus = [r for _, r in report_pairs(30, seed=7)]
    m = _metric(tiny_roberta, rg_archive, idf_corpus=corpus)
    h, r = report_pairs(3, seed=8)[2]
    alone = m.score([h], [r]).sample["radcliq_v1"][0]
    others = report_pairs(6, seed=9)
    batch = m.score([h] + [x for x, _ in others], [r] + [y for _, y in others]).sample["radcliq_v1"][0]
    same = m.score([h] * 4, [r] * 4).sample["radcliq_v1"]
    # equal up to float noise from padding in the encoder batch (~1e-7 on BERTScore)
    assert abs(alone - batch) < 1e-6 and np.allclose(same, alone, rtol=0, atol=1e-6)
    assert "idf:corpus(n=30," in m.signature
    # what the fix prevents: IDF refitted on each call's references moves the same pair's value
    per_call = []
    for refs in ([r], [r] + [y for _, y in others]):
        b = rq._IdfBertScore(m.bertscore.engine.model_dir, device="cpu")
        b.fit(refs, "call")
        per_call.append(b.f1([h], [r], use_idf=True)[0])
    assert abs(per_call[0] - per_call[1]) > 1e-3


def test_default_idf_is_the_evaluated_references(tiny_roberta, rg_archive):
    pairs = report_pairs(12, seed=10)
    hyps = [h for h, _ in pairs]
    refs = [r for _, r in pairs]
    m = _metric(tiny_roberta, rg_archive)
    whole = m.score(hyps, refs)
    assert "idf:test-refs(n=12," in whole.signature
    # chunked stats after fit_references on the whole file give the same rows
    m2 = _metric(tiny_roberta, rg_archive)
    m2.fit_references(refs)
    rows = np.concatenate([m2.stats(hyps[:7], refs[:7]), m2.stats(hyps[7:], refs[7:])])
    assert np.allclose(rows, whole.stats, rtol=0, atol=1e-6)  # batch padding noise only
    assert whole.higher_is_better["radcliq_v1"] is False
    assert "lower_is_better:yes" in whole.signature
    vals = whole.sample["radcliq_v1"]
    assert np.isfinite(vals).all() and vals.std() > 0


def test_features_and_values(tiny_roberta, rg_archive):
    pairs = report_pairs(12, seed=11) + [("", "No pneumothorax."), ("No pneumothorax.", "No pneumothorax.")]
    hyps = [h for h, _ in pairs]
    refs = [r for _, r in pairs]
    m = _metric(tiny_roberta, rg_archive)
    m.fit_references(refs)
    x = m.features(hyps, refs)
    assert x.shape == (len(pairs), 4) and np.isfinite(x).all()
    # identical reports: RadGraph 1 (if it finds entities) or 0, cosine 1, BLEU-2 1, BERTScore 1
    assert math.isclose(x[-1, 2], 1.0, rel_tol=1e-6) and x[-1, 3] == 1.0
    assert math.isclose(x[-1, 1], 1.0, abs_tol=1e-5)
    assert np.allclose(m.values(hyps, refs)["radcliq_v1"], rq.RadCliQ.combine(x))
    assert x[-2, 3] == 0.0  # empty prediction: BLEU 0
