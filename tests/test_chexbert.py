"""CheXbert labeler: identical labels to f1chexbert 0.0.2 on the same checkpoint, safe strict loading.

The checkpoint is rebuilt here from the seed stored in the parity fixture (random weights,
real architecture, real uncased vocab, real file format and HF-cache layout); the fixture
holds the labels and token ids f1chexbert produced for it in its own venv
(tests/chexbert_fixture.py says how to regenerate it).
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from chexbert_fixture import (  # noqa: E402
    PARITY_JSON,
    build_state_dict,
    make_caches,
    write_checkpoint,
)

from radeval.errors import InputError, ModelNotFound, RadevalError  # noqa: E402
from radeval.labels import CHEXPERT_OBSERVATIONS  # noqa: E402
from radeval.metrics.chexbert import CHEXBERT_CONDITIONS, CheXbertLabeler  # noqa: E402

VALUE = {"": np.nan, 1: 1.0, 0: 0.0, -1: -1.0}


@pytest.fixture(scope="module")
def parity() -> dict:
    return json.loads(PARITY_JSON.read_text())


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # tiny matrices: thread hand-offs cost more than they save on a shared 2-core machine
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def caches(tmp_path_factory, parity) -> dict:
    info = make_caches(tmp_path_factory.mktemp("chexbert"), parity["seed"], parity["config"])
    # the rebuilt weights are the ones f1chexbert labelled with (same seed, same generator)
    assert info["fingerprint"] == parity["weights_fingerprint"]
    return info


@pytest.fixture(scope="module")
def labeler(caches) -> CheXbertLabeler:
    return CheXbertLabeler(model_path=caches["checkpoint"], tokenizer_path=caches["tokenizer_dir"], batch_size=16)


def expected_labels(parity: dict) -> np.ndarray:
    """f1chexbert's rows (its target_names order, '' blank) -> CheXpert-order float array."""
    out = np.full((len(parity["labels"]), 14), np.nan)
    for i, row in enumerate(parity["labels"]):
        for j, name in enumerate(parity["target_names"]):
            out[i, CHEXPERT_OBSERVATIONS.index(name)] = VALUE[row[j]]
    return out


def same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.all((a == b) | (np.isnan(a) & np.isnan(b))))


def test_fixture_is_meaningful(parity):
    labels = expected_labels(parity)
    assert len(labels) >= 300
    # labels vary with the text (a constant labeler would prove nothing) ...
    assert len({tuple(np.nan_to_num(r, nan=9)) for r in labels}) > 100
    for col in range(14):
        assert len(set(np.nan_to_num(labels[:, col], nan=9))) >= 2, CHEXPERT_OBSERVATIONS[col]
    # ... and no head is a near-tie that float rounding under batching could flip
    assert parity["min_margin"] > 1e-3
    # our head order is f1chexbert's
    assert tuple(parity["target_names"]) == CHEXBERT_CONDITIONS


def test_token_ids_match_f1chexbert(labeler, parity):
    ids = labeler.encode(parity["texts"])
    for i, (ours, theirs) in enumerate(zip(ids, parity["token_ids"])):
        assert ours == theirs, f"text {i}: {parity['texts'][i][:80]!r}"
    assert max(len(x) for x in ids) == 512  # the long reports are truncated like f1chexbert's


def test_labels_match_f1chexbert(labeler, parity):
    labeler.clear_cache()
    ours = labeler.label(parity["texts"])
    theirs = expected_labels(parity)
    bad = np.argwhere(~((ours == theirs) | (np.isnan(ours) & np.isnan(theirs))))
    assert len(bad) == 0, [(int(i), CHEXPERT_OBSERVATIONS[j], parity["texts"][i][:60]) for i, j in bad[:10]]


def test_batch_size_and_order_invariance(caches, parity, labeler):
    texts = parity["texts"][:40] + parity["texts"][-12:]  # the tail holds the edge cases
    ref = labeler.label(texts, cache=False)
    for bs in (1, 5, 64):
        other = CheXbertLabeler(model_path=caches["checkpoint"], tokenizer_path=caches["tokenizer_dir"], batch_size=bs)
        assert same(other.label(texts), ref), bs
    perm = np.random.default_rng(0).permutation(len(texts))
    other.clear_cache()
    assert same(other.label([texts[i] for i in perm]), ref[perm])


def test_cache_and_dedup(caches, parity):
    lab = CheXbertLabeler(model_path=caches["checkpoint"], tokenizer_path=caches["tokenizer_dir"])
    refs = parity["texts"][:8]
    group = [r for r in refs for _ in range(8)]  # a GRPO step: 8 references x 8 completions
    first = lab.label(group)
    assert lab.n_forward == 8  # each distinct text ran once
    again = lab.label(group + ["  " + refs[0].replace(" ", "\n")])  # same text after cleaning
    assert lab.n_forward == 8  # cached, whitespace variants included
    assert same(again[:-1], first) and same(again[-1:], first[:1])
    hyps = parity["texts"][200:204]
    lab.label(hyps, cache=False)
    lab.label(hyps, cache=False)
    # not kept in the label cache, but still in the bounded recent-texts window that lets
    # SembScore/RadCliQ reuse a chunk's forward pass: run once
    assert lab.n_forward == 12
    assert len(lab._cache) == 8
    lab._recent.clear()
    lab.label(hyps, cache=False)
    assert lab.n_forward == 16  # once out of the window, a one-off text runs again
    small = CheXbertLabeler(model_path=caches["checkpoint"], tokenizer_path=caches["tokenizer_dir"], max_cache=3)
    small.label(refs)
    assert len(small._cache) == 3


def test_batches_bound_padding(labeler):
    """Length-aware batches: every report once, width-sorted, padding and size bounded."""
    lengths = [512, 300, 120] + [100] * 40 + [70] * 7 + [30] * 10 + [5] * 3
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches = labeler._batches(order, lengths)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        width = lengths[b[0]]
        assert len(b) <= labeler.batch_size
        assert all(width - lengths[i] <= max(0.25 * width, 32) for i in b)
        assert len(b) == 1 or len(b) * width <= labeler.batch_size * 128
    assert [lengths[b[0]] for b in batches][:3] == [512, 300, 120]  # long reports pad nobody


def test_output_shape_and_values(labeler, parity):
    out = labeler.label(parity["texts"][:30])
    assert out.shape == (30, 14) and out.dtype == np.float64
    assert set(np.unique(out[~np.isnan(out)])) <= {-1.0, 0.0, 1.0}
    nf = CHEXPERT_OBSERVATIONS.index("No Finding")
    assert set(np.nan_to_num(out[:, nf], nan=9)) <= {1.0, 9.0}  # two-way head: blank or positive
    assert labeler.label([]).shape == (0, 14)


def test_bad_input(labeler):
    with pytest.raises(InputError, match="report 1"):
        labeler.label(["fine", None])
    with pytest.raises(InputError, match="list of reports"):
        labeler.label("one string")


def test_settings(labeler, caches):
    s = labeler.settings()
    import hashlib

    assert s["model_sha256"] == hashlib.sha256(Path(caches["checkpoint"]).read_bytes()).hexdigest()[:12]
    assert s["max_len"] == 512 and s["tokenizer"].startswith("bert-base-uncased")


def test_resolves_from_hf_cache(caches, parity, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(caches["hub"]))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("RADEVAL_MODELS_DIR", raising=False)
    lab = CheXbertLabeler()
    assert lab.model_file.name == "chexbert.pth" and "models--StanfordAIMI--RRG_scorers" in str(lab.model_file)
    assert same(lab.label(parity["texts"][:20]), expected_labels(parity)[:20])


def test_model_not_found(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("RADEVAL_MODELS_DIR", raising=False)
    with pytest.raises(ModelNotFound) as e:
        CheXbertLabeler()
    msg = str(e.value)
    assert "chexbert" in msg and "StanfordAIMI/RRG_scorers" in msg
    assert "empty-hub" in msg and "radeval models download chexbert" in msg
    with pytest.raises(ModelNotFound, match="does not exist"):
        CheXbertLabeler(model_path=tmp_path / "nowhere" / "chexbert.pth")


def _ckpt(tmp_path, parity, edit=None, **kw):
    sd = build_state_dict(parity["seed"], parity["config"])
    if edit:
        edit(sd)
    return write_checkpoint(tmp_path / "chexbert.pth", sd, **kw)


def test_strict_loading_names_keys(tmp_path, caches, parity):
    def rename(sd):
        sd["module.bert.embeddings.LayerNorm.gamma"] = sd.pop("module.bert.embeddings.LayerNorm.weight")
        sd["module.extra_head.weight"] = torch.zeros(2, 2)

    path = _ckpt(tmp_path, parity, rename)
    with pytest.raises(RadevalError) as e:
        CheXbertLabeler(model_path=path, tokenizer_path=caches["tokenizer_dir"])
    msg = str(e.value)
    assert "missing keys: bert.embeddings.LayerNorm.weight" in msg
    assert "bert.embeddings.LayerNorm.gamma" in msg and "extra_head.weight" in msg


def test_strict_loading_shapes(tmp_path, caches, parity):
    def shrink(sd):
        sd["module.linear_heads.13.weight"] = sd["module.linear_heads.13.weight"][:1]

    with pytest.raises(RadevalError, match=r"linear_heads.13.weight: checkpoint \(1, 64\)"):
        CheXbertLabeler(model_path=_ckpt(tmp_path, parity, shrink), tokenizer_path=caches["tokenizer_dir"])


def test_not_a_checkpoint(tmp_path, caches):
    bad = tmp_path / "chexbert.pth"
    torch.save({"weights": torch.zeros(1)}, bad)
    with pytest.raises(RadevalError, match="model_state_dict"):
        CheXbertLabeler(model_path=bad, tokenizer_path=caches["tokenizer_dir"])

    class Evil:  # anything beyond tensors and plain containers is refused by weights_only
        def __reduce__(self):
            return (print, ("pickle code ran",))

    evil = tmp_path / "evil.pth"
    with open(evil, "wb") as f:
        pickle.dump({"model_state_dict": Evil()}, f)
    with pytest.raises(RadevalError, match="weights_only"):
        CheXbertLabeler(model_path=evil, tokenizer_path=caches["tokenizer_dir"])


def test_legacy_format_and_position_ids(tmp_path, caches, parity):
    """Pre-zip torch.save files load too (no mmap), and a saved position_ids buffer is accepted."""

    def add_buffer(sd):
        sd["module.bert.embeddings.position_ids"] = torch.arange(512).unsqueeze(0)

    path = _ckpt(tmp_path, parity, add_buffer, legacy_format=True)
    lab = CheXbertLabeler(model_path=path, tokenizer_path=caches["tokenizer_dir"])
    assert same(lab.label(parity["texts"][:10]), expected_labels(parity)[:10])

    def wrong_buffer(sd):
        sd["module.bert.embeddings.position_ids"] = torch.arange(512).flip(0)

    with pytest.raises(RadevalError, match="position_ids"):
        CheXbertLabeler(model_path=_ckpt(tmp_path, parity, wrong_buffer), tokenizer_path=caches["tokenizer_dir"])


@pytest.mark.real_weights
def test_real_checkpoint_smoke():
    """With the real chexbert.pth present: strict loading succeeds and obvious reports label right."""
    import os

    if os.environ.get("RADEVAL_REAL_WEIGHTS") != "1":
        pytest.skip("real CheXbert weights: set RADEVAL_REAL_WEIGHTS=1 with chexbert.pth in the HF cache")
    lab = CheXbertLabeler()
    out = lab.label(["No acute cardiopulmonary process.", "Large right pleural effusion. Severe cardiomegaly."])
    col = CHEXPERT_OBSERVATIONS.index
    assert out[0, col("No Finding")] == 1.0
    assert out[1, col("Pleural Effusion")] == 1.0 and out[1, col("Cardiomegaly")] == 1.0


def test_embed_is_the_final_cls_state_of_bert(caches, labeler):
    """RadCliQ's CheXbert embedding: equals transformers' BertModel last_hidden_state[:, 0]."""
    from transformers import BertConfig, BertModel

    from radeval.metrics.chexbert import clean_report, load_chexbert_state_dict

    texts = ["Mild cardiomegaly.", "No  pleural\neffusion.", "Mild cardiomegaly.", "Large right pneumothorax with shift."]
    emb = labeler.embed(texts)
    assert emb.shape == (4, labeler._head_w.shape[1]) and emb.dtype == np.float32
    np.testing.assert_array_equal(emb[0], emb[2])
    sd = load_chexbert_state_dict(caches["checkpoint"])
    bert_sd = {k.removeprefix("bert."): v for k, v in sd.items() if k.startswith("bert.")}
    ref = BertModel(BertConfig.from_pretrained(str(labeler.tokenizer_dir)), add_pooling_layer=False)
    missing, unexpected = ref.load_state_dict(bert_sd, strict=False)
    assert not [m for m in missing if "position_ids" not in m]
    ref.eval()
    with torch.inference_mode():
        for t, e in zip(texts, emb):
            ids = torch.tensor([labeler.encode([t])[0]])
            want = ref(input_ids=ids).last_hidden_state[0, 0].numpy()
            np.testing.assert_allclose(e, want, atol=1e-4)
    assert clean_report(texts[1]) == "No pleural effusion."
