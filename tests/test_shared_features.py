"""SembScore, RadCliQ-v0 and the CXR-Report-Metric columns on shared encoders: each text runs
through CheXbert, RadGraph and RadCliQ's BERTScore once however many metrics read it
(counters), and sharing changes no value."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("bert_score")

from radeval import evaluate  # noqa: E402
from radeval.metrics import radcliq as rq  # noqa: E402
from radeval.metrics import shared  # noqa: E402
from radeval.metrics.chexbert import clean_report  # noqa: E402
from radeval.registry import PRESETS, resolve  # noqa: E402
from tests.chexbert_fixture import make_caches  # noqa: E402
from tests.report_corpus import report_pairs  # noqa: E402
from tests.test_radcliq import rg_archive, tiny_roberta  # noqa: E402,F401  (fixtures)


@pytest.fixture(scope="module")
def cx(tmp_path_factory):
    return make_caches(tmp_path_factory.mktemp("chexbert"), seed=0)


@pytest.fixture(autouse=True)
def _env(cx, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(cx["hub"]))
    monkeypatch.delenv("RADEVAL_MODELS_DIR", raising=False)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    shared.clear()
    yield
    shared.clear()
    torch.set_num_threads(n)


def _options(cx, rg, rob):
    clin = {"radgraph_path": str(rg), "bertscore_path": str(rob), "chexbert_path": str(cx["checkpoint"])}
    return {
        "chexbert": {"model_path": str(cx["checkpoint"])},
        "semb": {"model_path": str(cx["checkpoint"])},
        "radcliq": {**clin, "idf": False},
        "radcliq_v0": dict(clin),
        "radcliq_features": {k: v for k, v in clin.items() if k != "chexbert_path"},
    }


def test_encoders_run_once_per_text_across_metrics(cx, rg_archive, tiny_roberta):  # noqa: F811
    pairs = report_pairs(20, seed=3)
    pairs += pairs[:5]  # repeated pairs, as a GRPO batch has
    hyps, refs = [h for h, _ in pairs], [r for _, r in pairs]
    names = ["chexbert", "semb", "radcliq", "radcliq_v0", "radcliq_features"]
    result = evaluate(
        predictions=hyps, references=refs, metrics=names, options=_options(cx, rg_archive, tiny_roberta), bootstrap=0
    )

    labeler = shared.chexbert_labeler(cx["checkpoint"])
    assert labeler.n_forward == len({clean_report(t) for t in hyps + refs})
    extractor = shared.radgraph_extractor("radgraph", rg_archive)
    assert extractor.n_forward == len(set(hyps + refs))
    engine = shared.shared(("radcliq-bertscore", shared._path(tiny_roberta), None, None), lambda: None)
    assert engine.n_forward == len({" ".join(t.split(" ")) for t in set(hyps) | set(refs)})

    # sharing changes no value: a metric on its own encoders gives the same numbers
    shared.clear()
    alone = rq.RadCliQ(radgraph_path=rg_archive, bertscore_path=tiny_roberta, chexbert_path=cx["checkpoint"], idf=False)
    x = alone.features(hyps, refs)
    sample = result.per_sample
    np.testing.assert_allclose(sample["radcliq_v1"], rq.RadCliQ.combine(x), rtol=0, atol=1e-12)
    np.testing.assert_allclose(sample["radcliq_v0"], rq.RadCliQV0.combine(x), rtol=0, atol=1e-12)
    np.testing.assert_allclose(sample["semb_score"], x[:, 2], rtol=0, atol=0)
    np.testing.assert_allclose(sample["radgraph_combined"], x[:, 0], rtol=0, atol=0)
    np.testing.assert_allclose(sample["bertscore_cxr"], x[:, 1], rtol=0, atol=0)
    np.testing.assert_allclose(sample["bleu2_cxr"], x[:, 3], rtol=0, atol=0)
    assert result.higher_is_better["radcliq_v0"] is False and result.higher_is_better["semb_score"] is True


def test_semb_is_the_reference_formula(cx):
    """CXR-Report-Metric: per pair (g * p).sum() / (norm(g) * norm(p)) on float32 [CLS] states."""
    from radeval.metrics.semb import SembScore

    pairs = report_pairs(12, seed=5)
    hyps, refs = [h for h, _ in pairs], [r for _, r in pairs]
    m = SembScore(model_path=cx["checkpoint"])
    got = m.score(hyps, refs).sample["semb_score"]
    # the reference side: labeller's [CLS] state computed by transformers' BertModel itself
    from transformers import BertModel

    from radeval.metrics.chexbert import _bert_config, build_chexbert_net, load_chexbert_state_dict

    net = build_chexbert_net(_bert_config(m.chexbert.tokenizer_dir))
    sd = load_chexbert_state_dict(cx["checkpoint"])
    sd.pop("bert.embeddings.position_ids", None)
    net.load_state_dict(sd)
    bert: BertModel = net.bert.eval()

    def cls(text):
        ids = torch.tensor([m.chexbert.encode([text])[0]])
        with torch.no_grad():
            return bert(ids, attention_mask=torch.ones_like(ids))[0][0, 0].numpy()

    for i, (h, r) in enumerate(zip(hyps, refs)):
        g, p = cls(r), cls(h)
        want = (g * p).sum() / (np.linalg.norm(g) * np.linalg.norm(p))
        assert got[i] == pytest.approx(float(want), abs=1e-5)


def test_radcliq_v0_constants_and_formula():
    x = np.array([[0.5, 0.6, 0.7, 0.4], [1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
    z = (x - np.array(rq.V0_SCALER_MEAN)) / np.array(rq.V0_SCALER_SCALE)
    want = z @ np.array(rq.V0_COEFS) + rq.V0_INTERCEPT
    np.testing.assert_array_equal(rq.RadCliQV0.combine(x), want)
    # perfect reports score lower (better) than empty ones: a predicted error count
    assert rq.RadCliQV0.combine(x)[1] < rq.RadCliQV0.combine(x)[2]


def test_presets():
    assert resolve("r2gen") == ["bleu", "meteor", "rouge_l", "cider"]
    assert resolve("rexrank") == list(PRESETS["rexrank"])
    from radeval.registry import preset_options

    assert preset_options("rexrank,default") == {"radcliq": {"idf": False}}
