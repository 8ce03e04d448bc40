"""Grounding similarity (image-report cosine from a frozen open_clip expert), offline.

Models are built here from local configs with random weights (tests/clip_fixture.py): a tiny
BiomedCLIP-layout model for most checks and BiomedCLIP's real-size architecture for one.
"""

from __future__ import annotations

import os
import socket
import time

import numpy as np
import pytest

pytest.importorskip("open_clip")
pytest.importorskip("timm")

from clip_fixture import BIOMEDBERT_ID, BIOMEDCLIP_ID, make_clip_dir, write_image  # noqa: E402
from conftest_models import setup_hf_cache  # noqa: E402

from radeval.errors import ConfigError, InputError, ModelNotFound  # noqa: E402
from radeval.metrics import grounding as gr  # noqa: E402
from radeval.metrics.grounding import KEY, Grounding  # noqa: E402

REPORTS = [
    "No acute cardiopulmonary process.",
    "Small right pleural effusion with adjacent atelectasis.",
    "",
    "Cardiomegaly. " * 200,  # longer than the 256-token context: truncated
    "Épanchement pleural, ünïcödé ✓",
]


@pytest.fixture(scope="module", autouse=True)
def offline():
    """HF_HUB_OFFLINE=1 and no sockets: any attempt to reach the network fails loudly."""

    def refuse(*a, **k):
        raise AssertionError(f"network access attempted: {a!r}")

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        mp.setattr(socket.socket, "connect", refuse)
        mp.setattr(socket, "create_connection", refuse)
        yield


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    # tokenizer files beside the weights: open_clip's own local-dir loader needs them there
    return make_clip_dir(tmp_path_factory.mktemp("clip") / "tiny", "tiny", seed=0, tokenizer_in_model_dir=True)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp("img")
    return [
        write_image(d / "gray.png", seed=1),
        write_image(d / "rgb.png", seed=2, mode="RGB"),
        write_image(d / "sixteen.png", seed=3, mode="I;16", size=(120, 70)),
        write_image(d / "small.png", seed=4, size=(20, 30)),
        write_image(d / "wide.png", seed=5, size=(50, 200)),
    ]


@pytest.fixture(autouse=True)
def fresh_experts():
    gr.clear_experts()
    yield
    gr.clear_experts()


def open_clip_by_hand(model_dir, texts, paths):
    """S_i the way BiomedCLIP's model card computes it, with open_clip alone."""
    import open_clip
    import torch
    from PIL import Image

    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{model_dir}")
    tokenizer = open_clip.get_tokenizer(f"local-dir:{model_dir}")
    model.eval()
    with torch.no_grad():
        img = model.encode_image(torch.stack([preprocess(Image.open(p)) for p in paths]))
        txt = model.encode_text(tokenizer(list(texts)))
    img = img / img.norm(dim=-1, keepdim=True)
    txt = txt / txt.norm(dim=-1, keepdim=True)
    return (img.double() * txt.double()).sum(-1).numpy()


def test_cosine_equals_open_clip_hand_computation(tiny, images):
    m = Grounding(model=str(tiny), device="cpu")
    got = m.score(REPORTS, ["unused reference"] * 5, [str(p) for p in images])
    want = open_clip_by_hand(tiny, REPORTS, images)
    np.testing.assert_allclose(got.sample[KEY], want, rtol=0, atol=2e-6)
    assert got.corpus[KEY] == pytest.approx(float(np.mean(got.sample[KEY])), abs=1e-12)
    assert np.all(np.abs(got.sample[KEY]) <= 1 + 1e-6)
    # the reference text plays no part: S_i compares the prediction with the image
    other = m.score(REPORTS, ["something else"] * 5, [str(p) for p in images])
    np.testing.assert_array_equal(other.sample[KEY], got.sample[KEY])


def test_one_record_alone_matches_its_batch_value(tiny, images):
    m = Grounding(model=str(tiny), device="cpu", batch_size=2)
    batch = m.values(REPORTS, REPORTS, [str(p) for p in images])[KEY]
    gr.clear_experts()
    alone = Grounding(model=str(tiny), device="cpu").values(REPORTS[1:2], REPORTS[1:2], [str(images[1])])[KEY]
    assert alone[0] == pytest.approx(batch[1], abs=1e-6)


def test_image_and_text_caches_count_hits(tiny, images, tmp_path):
    copy = tmp_path / "same-bytes-other-name.png"
    copy.write_bytes(images[0].read_bytes())
    m = Grounding(model=str(tiny), device="cpu")
    paths = [str(images[0]), str(images[0]), str(copy), str(images[1])]
    texts = ["a", "b", "a", "a"]
    first = m.values(texts, texts, paths)[KEY]
    info = m.cache_info()
    # one embedding per distinct image content (the copy is the same bytes) and per distinct text
    assert info["image_misses"] == 2 and info["image_entries"] == 2
    assert info["text_misses"] == 2 and info["text_entries"] == 2
    assert first[0] == first[2]  # same image content, same text
    again = m.values(texts, texts, paths)[KEY]
    info2 = m.cache_info()
    assert info2["image_misses"] == 2 and info2["image_hits"] == 2
    assert info2["text_misses"] == 2 and info2["text_hits"] == 2
    np.testing.assert_array_equal(again, first)
    # another metric instance on the same model shares the expert and its caches
    m2 = Grounding(model=str(tiny), device="cpu")
    m2.values(["a"], ["a"], [images[0].read_bytes()])  # raw bytes: same content key as the file
    assert m2.cache_info()["image_hits"] == 3 and m2.cache_info()["image_misses"] == 2


def test_other_image_inputs_give_the_same_value(tiny, images):
    from PIL import Image

    m = Grounding(model=str(tiny), device="cpu")
    p = images[1]
    ref = m.values(["x"], ["x"], [str(p)])[KEY][0]
    as_bytes = m.values(["x"], ["x"], [p.read_bytes()])[KEY][0]
    as_dict = m.values(["x"], ["x"], [{"bytes": p.read_bytes(), "path": None}])[KEY][0]
    as_pil = m.values(["x"], ["x"], [Image.open(p)])[KEY][0]
    as_rel = Grounding(model=str(tiny), device="cpu", image_root=p.parent).values(["x"], ["x"], [p.name])[KEY][0]
    assert ref == as_bytes == as_dict == as_rel
    assert as_pil == pytest.approx(ref, abs=1e-6)


def _bad_files(tmp_path, good):
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(200))
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:120])
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    corrupt_copy = tmp_path / "corrupt-copy.png"  # same bytes: same cache key, still reported
    corrupt_copy.write_bytes(corrupt.read_bytes())
    return {
        "missing": tmp_path / "nope" / "missing.png",
        "corrupt": corrupt,
        "truncated": truncated,
        "text": text,
        "empty": empty,
        "corrupt_copy": corrupt_copy,
        "dir": tmp_path,
    }


def test_bad_images_raise_one_input_error_naming_every_record(tiny, images, tmp_path):
    bad = _bad_files(tmp_path, images[0])
    paths = [str(images[0])] + [str(p) for p in bad.values()] + [None]
    ids = ["ok-1"] + [f"rec-{k}" for k in bad] + ["rec-none"]
    m = Grounding(model=str(tiny), device="cpu")
    with pytest.raises(InputError) as e:
        m.check_images(paths, ids=ids)
    msg = str(e.value)
    for rid, p in zip(ids[1:], paths[1:]):
        assert f"record {rid}" in msg
        if p is not None:
            assert str(p) in msg
    assert "ok-1" not in msg
    assert "file not found" in msg and "no image given" in msg and "empty file" in msg
    m.check_images(paths[:1], ids=ids[:1])  # a good image passes
    # scoring collects every bad image of the batch too, by position
    with pytest.raises(InputError) as e2:
        m.score(["r"] * len(paths), ["r"] * len(paths), paths)
    msg2 = str(e2.value)
    assert f"{len(paths) - 1} image(s)" in msg2
    for i in range(1, len(paths)):
        assert f"record #{i} of this batch" in msg2
    with pytest.raises(InputError, match="needs an image"):
        m.score(["r"], ["r"], None)


def test_reward_mode_gives_defined_values(tiny, images, tmp_path):
    bad = _bad_files(tmp_path, images[0])
    paths = [str(images[0]), str(bad["corrupt"]), str(bad["truncated"]), None, str(images[1])]
    m = Grounding(model=str(tiny), device="cpu", on_bad_image="nan")
    v = m.values(["a"] * 5, ["a"] * 5, paths)[KEY]
    assert np.isfinite(v[[0, 4]]).all() and np.isnan(v[[1, 2, 3]]).all()
    assert np.isnan(m.values(["a"], ["a"], None)[KEY]).all()
    # the signature does not depend on how bad images are reported
    assert m.signature == Grounding(model=str(tiny), device="cpu").signature


def test_trl_reward_over_grounding_never_raises(tiny, images, tmp_path, monkeypatch):
    from radeval import registry
    from radeval.rewards import trl

    if "grounding" not in registry.specs():
        spec = registry.MetricSpec("grounding", "radeval.metrics.grounding:Grounding", (KEY,), "test", "grounding")
        monkeypatch.setitem(registry._REGISTRY, "grounding", spec)
    bad = _bad_files(tmp_path, images[0])
    reward = trl.make_reward(
        "grounding", KEY, metric_options={"model": str(tiny), "device": "cpu", "on_bad_image": "nan"}, on_error=-1.0
    )
    try:
        out = reward(
            prompts=["p"] * 4,
            completions=["<report>No effusion.</report>", "", "x" * 100_000, "<report>unbalanced"],
            ground_truth=["ref"] * 4,
            image=[str(images[0]), str(bad["corrupt"]), str(images[1]), str(bad["missing"])],
        )
        assert len(out) == 4 and all(isinstance(x, float) and np.isfinite(x) for x in out)
        assert out[1] == -1.0 and out[3] == -1.0
        assert -1.0 <= out[0] <= 1.0 and -1.0 <= out[2] <= 1.0
        # the evaluator setting (raise on a bad image) still never crashes a reward: the reward
        # layer rescores pair by pair and gives the bad ones on_error
        strict = trl.make_reward("grounding", KEY, metric_options={"model": str(tiny), "device": "cpu"}, on_error=-1.0)
        with pytest.warns(RuntimeWarning):
            out2 = strict(
                prompts=["p"] * 2,
                completions=["a", "b"],
                ground_truth=["r", "r"],
                image=[str(images[0]), str(bad["corrupt"])],
            )
        assert out2[1] == -1.0 and -1.0 <= out2[0] <= 1.0
    finally:
        trl.clear_caches()


def test_signature_names_weights_preprocessing_and_context(tiny, tmp_path):
    sig = Grounding(model=str(tiny), device="cpu").signature
    for part in (
        "grounding|model:local:tiny",
        "ctx:256",
        "resize:shortest-64x64-bicubic",
        "crop:center",
        "mean:0.48145466,0.4578275,0.40821073",
        "std:0.26862954,0.26130258,0.27577711",
        "sim:cos-l2",
        "open_clip:",
        "weights:",
    ):
        assert part in sig
    other = make_clip_dir(tmp_path / "tiny", "tiny", seed=1, tokenizer_in_model_dir=True)
    sig2 = Grounding(model=str(other), device="cpu").signature
    assert sig2 != sig and sig2.split("|weights:")[0] == sig.split("|weights:")[0]


def test_pickle_weights_load_with_weights_only(tmp_path, images, monkeypatch):
    import torch

    d = make_clip_dir(tmp_path / "binmodel", "tiny", seed=0, weights="bin")
    v = Grounding(model=str(d), device="cpu").values(["a"], ["a"], [str(images[0])])[KEY]
    assert np.isfinite(v).all()

    class Payload:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    (d / "open_clip_pytorch_model.bin").unlink()
    torch.save({"x": Payload()}, d / "open_clip_pytorch_model.bin")
    gr.clear_experts()
    with pytest.raises(ConfigError, match="cannot build"):
        Grounding(model=str(d), device="cpu").values(["a"], ["a"], [str(images[0])])
    # before torch 2.6 open_clip's fallback torch.load would unpickle it: refused first
    monkeypatch.setattr(gr, "_TORCH_LOAD_SAFE_BY_DEFAULT", False)
    gr.clear_experts()
    with pytest.raises(ConfigError, match="Weights only load failed"):
        Grounding(model=str(d), device="cpu").values(["a"], ["a"], [str(images[0])])


def test_registered_biomedclip_resolves_from_hf_cache_offline(tmp_path, monkeypatch, images):
    cache = setup_hf_cache(tmp_path, monkeypatch)
    src = make_clip_dir(tmp_path / "src", "tiny", text_dir=tmp_path / "bert", text_name=BIOMEDBERT_ID)
    snap = cache.add(
        BIOMEDCLIP_ID,
        {
            "open_clip_config.json": src / "open_clip_config.json",
            "open_clip_model.safetensors": src / "open_clip_model.safetensors",
        },
    )
    with pytest.raises(ModelNotFound, match="BiomedNLP-BiomedBERT"):
        Grounding(device="cpu")
    # the text tower's config + vocab, as the hub cache holds them
    cache.add(BIOMEDBERT_ID, {f: tmp_path / "bert" / f for f in ("config.json", "vocab.txt", "tokenizer_config.json")})
    m = Grounding(device="cpu")  # default model: biomedclip
    assert m.files.model_dir == snap
    assert "model:biomedclip@0123456789ab" in m.signature
    v = m.values(["No effusion."], ["r"], [str(images[0])])[KEY]
    by_dir = Grounding(model=str(src), device="cpu").values(["No effusion."], ["r"], [str(images[0])])[KEY]
    np.testing.assert_allclose(v, by_dir, atol=1e-6)
    # the hub id of a registered model is the same thing
    assert Grounding(model=f"hf-hub:{BIOMEDCLIP_ID}", device="cpu").files.model_dir == snap


def test_missing_model_gives_the_model_manager_message(tmp_path, monkeypatch):
    setup_hf_cache(tmp_path, monkeypatch)
    with pytest.raises(ModelNotFound) as e:
        Grounding()
    assert "radeval models download biomedclip" in str(e.value)
    with pytest.raises(ModelNotFound, match="not a radeval-registered model"):
        Grounding(model="hf-hub:someone/other-clip")
    with pytest.raises(ModelNotFound):
        Grounding(model=f"local-dir:{tmp_path / 'nowhere'}")


def test_option_errors(tiny):
    with pytest.raises(ConfigError, match="pretrained="):
        Grounding(model="ViT-B-16")
    with pytest.raises(ConfigError, match="unknown model"):
        Grounding(model="no-such-model")
    with pytest.raises(ConfigError):
        Grounding(model=str(tiny), on_bad_image="ignore")
    with pytest.raises(ConfigError):
        Grounding(model=str(tiny), batch_size=0)


@pytest.mark.slow
def test_real_size_biomedclip_architecture_scores_an_image(tmp_path, images):
    t0 = time.perf_counter()
    d = make_clip_dir(tmp_path / "biomedclip", "base", seed=0, tokenizer_in_model_dir=True)
    m = Grounding(model=str(d), device="cpu")
    v = m.values(["Small left pleural effusion."], ["r"], [str(images[2])])[KEY]
    elapsed = time.perf_counter() - t0
    assert np.isfinite(v).all() and abs(v[0]) <= 1 + 1e-6
    model = m.expert.model
    trunk = model.visual.trunk
    assert type(trunk).__name__ == "VisionTransformer"
    assert trunk.embed_dim == 768 and len(trunk.blocks) == 12 and trunk.patch_embed.patch_size == (16, 16)
    bert = model.text.transformer.config
    assert (bert.hidden_size, bert.num_hidden_layers, bert.num_attention_heads) == (768, 12, 12)
    assert isinstance(model.text.proj[0], __import__("torch").nn.Linear)  # MLP projection
    assert model.text.proj[-1].out_features == 512 and model.visual.head.proj.out_features == 512
    n_params = sum(p.numel() for p in model.parameters())
    assert 190e6 < n_params < 200e6, n_params
    assert "ctx:256" in m.signature and "resize:shortest-224x224-bicubic" in m.signature
    print(f"real-size BiomedCLIP architecture: build + score one image {elapsed:.1f} s, {n_params / 1e6:.1f}M params")


def test_evaluate_reports_grounding_with_its_signature(tiny, images):
    import radeval

    m = Grounding(model=str(tiny), device="cpu")
    res = radeval.evaluate(
        predictions=REPORTS,
        references=["r"] * 5,
        ids=[f"s{i}" for i in range(5)],
        images=[str(p) for p in images],
        metrics=[m],
        bootstrap=20,
        seed=0,
    )
    summary = res.summary()["metrics"][KEY]
    direct = m.score(REPORTS, ["r"] * 5, [str(p) for p in images])
    assert summary["score"] == pytest.approx(direct.corpus[KEY], abs=1e-12)
    assert summary["higher_is_better"] is True and summary["signature"] == m.signature
    lo, hi = summary["ci95"]
    assert lo <= summary["score"] <= hi
