"""VALOR trainers on CPU with a tiny random-weight Qwen2.5-VL (tests/tiny_vlm.py); no hub.

One module-scoped pipeline runs SFT -> stage text (2 steps, checkpoint every step) -> stage text
resumed to step 3 -> stage visual (2 steps) and the tests below inspect it:

* stage text changes only LoRA tensors; stage visual changes only the projector (model.visual.merger);
* the loss consumed rank-normalised advantages (the canary for the private-method override);
* the clinical term fires only on k_clin steps, and k carries on across stages;
* resume continues from the saved step;
* predictions are written in the JSONL `radeval score` reads.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

torch = pytest.importorskip("torch")
pytest.importorskip("trl")
pytest.importorskip("peft")
pytest.importorskip("datasets")

from radeval.errors import ConfigError, DependencyError, InputError  # noqa: E402
from radeval.rewards.valor import per_group, rank_norm, visual_rank_reward, visual_reward  # noqa: E402
from trainers.config import load_config  # noqa: E402

CONFIGS = Path(__file__).resolve().parents[1] / "trainers" / "configs"


# ----- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def one_thread():
    # the tiny model is ~40x slower with 2 intra-op threads on a busy 2-core machine
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, one_thread):
    from tests.tiny_vlm import build_tiny_qwen25vl, tiny_records

    root = tmp_path_factory.mktemp("valor")
    model_dir = build_tiny_qwen25vl(root / "model")
    (root / "images").mkdir()
    lines = []
    for i, r in enumerate(tiny_records(8, seed=1)):
        name = f"images/{r['id']}.png"
        r["image"].save(root / name)
        # short references keep the tiny run fast; split: 6 train, 2 test
        lines.append(
            json.dumps(
                {"id": r["id"], "image": name, "report": r["report"][:60], "split": "train" if i < 6 else "test"}
            )
        )
    (root / "data.jsonl").write_text("\n".join(lines) + "\n")
    return root, model_dir


def _overrides(root: Path, model_dir: Path, out: str, **extra) -> list[str]:
    items = [f"model.name_or_path={model_dir}", f"data.path={root / 'data.jsonl'}", f"train.output_dir={root / out}"]
    return items + [f"{k}={v}" for k, v in extra.items()]


class Snapshot:
    """A TrainerCallback keeping the parameters at train begin and end (tiny model: cheap)."""

    def __init__(self):
        from transformers import TrainerCallback

        snap = self

        class _CB(TrainerCallback):
            def on_train_begin(self, args, state, control, model=None, **kw):
                snap.before = {n: p.detach().clone() for n, p in model.named_parameters()}

            def on_train_end(self, args, state, control, model=None, **kw):
                snap.after = {n: p.detach().clone() for n, p in model.named_parameters()}
                snap.trainable = {n for n, p in model.named_parameters() if p.requires_grad}

            def on_step_end(self, args, state, control, **kw):
                snap.steps.append(state.global_step)

        self.steps: list[int] = []
        self.callback = _CB()

    def changed(self) -> set[str]:
        return {n for n in self.before if not torch.equal(self.before[n], self.after[n])}


class LossSpy:
    """Wraps the trainer's _compute_loss: records the advantages the loss read and the loss value."""

    def __init__(self, monkeypatch):
        from trainers.grpo import ValorGRPOTrainer

        self.calls = []
        original = ValorGRPOTrainer._compute_loss
        spy = self

        def wrapped(trainer, model, inputs):
            loss = original(trainer, model, inputs)
            spy.calls.append(
                {
                    "advantages": inputs["advantages"].detach().double().cpu().numpy().copy(),
                    "loss": float(loss.detach()),
                    "accum": trainer.current_gradient_accumulation_steps,
                    "k": trainer.valor_k,
                    "rewards": None if trainer.valor_last_rewards is None else trainer.valor_last_rewards.copy(),
                    "weights": trainer.reward_weights.detach().double().cpu().numpy().copy(),
                    "visual_index": trainer.valor_visual_index,
                    "logged": {name: list(trainer._logs["rewards"][name]) for name in trainer.reward_func_names},
                }
            )
            return loss

        monkeypatch.setattr(ValorGRPOTrainer, "_compute_loss", wrapped)


@pytest.fixture(scope="module")
def pipeline(tiny):
    from trainers.api import train

    root, model_dir = tiny
    mp = pytest.MonkeyPatch()
    t0 = time.perf_counter()
    try:
        timings = {}
        t = time.perf_counter()
        sft = train("sft", CONFIGS / "tiny" / "sft.yaml", _overrides(root, model_dir, "sft"))
        timings["sft"] = time.perf_counter() - t

        t = time.perf_counter()
        text_snap, text_spy = Snapshot(), LossSpy(mp)
        text = train(
            "text",
            CONFIGS / "tiny" / "text.yaml",
            _overrides(root, model_dir, "text", **{"model.init_from": sft.final_dir}),
            callbacks=[text_snap.callback],
        )
        timings["text"] = time.perf_counter() - t

        # resume: same output dir, one more step; must start from checkpoint-2
        t = time.perf_counter()
        resume_snap = Snapshot()
        resumed = train(
            "text",
            CONFIGS / "tiny" / "text.yaml",
            _overrides(root, model_dir, "text", **{"model.init_from": sft.final_dir, "train.max_steps": 3}),
            callbacks=[resume_snap.callback],
        )
        timings["text_resume"] = time.perf_counter() - t

        t = time.perf_counter()
        vis_snap, vis_spy = Snapshot(), LossSpy(mp)
        visual = train(
            "visual",
            CONFIGS / "tiny" / "visual.yaml",
            _overrides(root, model_dir, "visual", **{"model.init_from": resumed.final_dir}),
            callbacks=[vis_snap.callback],
        )
        timings["visual"] = time.perf_counter() - t
    finally:
        mp.undo()
    timings["total"] = time.perf_counter() - t0
    print("\nVALOR tiny pipeline wall time (s):", {k: round(v, 1) for k, v in timings.items()})
    return {
        "root": root,
        "model_dir": model_dir,
        "sft": sft,
        "text": text,
        "resumed": resumed,
        "visual": visual,
        "text_snap": text_snap,
        "text_spy": text_spy,
        "resume_snap": resume_snap,
        "vis_snap": vis_snap,
        "vis_spy": vis_spy,
        "timings": timings,
    }


# ----- the pipeline ------------------------------------------------------------------------------


def test_pipeline_runs_all_stages(pipeline):
    assert pipeline["sft"].global_step == 2
    assert pipeline["text"].global_step == 2
    assert pipeline["resumed"].global_step == 3
    assert pipeline["visual"].global_step == 2
    for key in ("sft", "resumed", "visual"):
        final = pipeline[key].final_dir
        assert (final / "model.safetensors").is_file() and (final / "valor_state.json").is_file()
    metrics = (pipeline["text"].output_dir / "metrics.jsonl").read_text().splitlines()
    first = json.loads(metrics[0])
    # metrics logged per reward name
    assert "rewards/valor_text/mean" in first and "rewards/valor_format/mean" in first
    # the resumed run (same folder) kept the first run's steps 1-2 and added step 3, once each
    assert [json.loads(m)["step"] for m in metrics if "reward" in json.loads(m)] == [1, 2, 3]


def test_metrics_log_replaced_by_a_fresh_run_trimmed_on_resume(tmp_path):
    from types import SimpleNamespace

    from trainers.stages import _metrics_callback

    path = tmp_path / "metrics.jsonl"
    old = "".join(json.dumps({"step": s, "reward": 0.1 * s}) + "\n" for s in (1, 2, 3, 4))
    cb = _metrics_callback(path)
    path.write_text(old + '{"step": 5, "rew')  # an earlier run, its last line cut
    cb.on_train_begin(None, SimpleNamespace(is_world_process_zero=True, global_step=2), None)
    assert [json.loads(x)["step"] for x in path.read_text().splitlines()] == [1, 2]  # resumed at checkpoint-2
    path.write_text(old)
    cb.on_train_begin(None, SimpleNamespace(is_world_process_zero=True, global_step=0), None)
    assert path.read_text() == ""  # a fresh run starts a new log


def test_sft_loss_is_assistant_only(pipeline):
    trainer = pipeline["sft"].trainer
    batch = next(iter(trainer.get_train_dataloader()))
    tok = trainer.processing_class.tokenizer
    for ids, labels in zip(batch["input_ids"], batch["labels"]):
        target = tok.decode(ids[labels != -100])
        assert target.startswith("<report>") and "</report>" in target, target
        assert "Describe the X-ray" not in target and "<|image_pad|>" not in target


def test_stage_text_changes_only_lora(pipeline):
    snap = pipeline["text_snap"]
    changed = snap.changed()
    assert changed, "stage text changed nothing"
    assert all("lora_" in n for n in changed), sorted(n for n in changed if "lora_" not in n)
    assert all("lora_" in n for n in snap.trainable)
    # LoRA sits on the language model only, never on the vision tower (it has gate/up/down_proj too)
    assert all("language_model" in n for n in snap.trainable)
    assert any("lora_B" in n for n in changed)


def test_stage_visual_changes_only_projector(pipeline):
    snap = pipeline["vis_snap"]
    changed = snap.changed()
    assert changed, "stage visual changed nothing"
    assert all(".visual.merger." in n for n in changed), sorted(changed)
    assert all(".visual.merger." in n for n in snap.trainable)
    assert not any("lora_" in n for n in snap.before), "stage visual must start from the merged model"


def _expected_advantages(call) -> np.ndarray:
    """Eq. 7-9 recomputed from the gathered reward matrix with radeval.rewards.valor's functions."""
    r, w, vi = call["rewards"], call["weights"], call["visual_index"]
    text_cols = [j for j in range(r.shape[1]) if j != vi]
    total = (r[:, text_cols] * w[text_cols]).sum(axis=1)
    if vi is not None:
        total = visual_reward(total, per_group(visual_rank_reward, r[:, vi], 4), 0.5)
    return per_group(rank_norm, total, 4)


def _trl_advantages(call) -> np.ndarray:
    r, w = call["rewards"], call["weights"]
    total = (r * w).sum(axis=1).reshape(-1, 4)
    return ((total - total.mean(1, keepdims=True)) / (total.std(1, ddof=1, keepdims=True) + 1e-4)).reshape(-1)


@pytest.mark.parametrize("stage", ["text", "visual"])
def test_loss_consumed_rank_normalised_advantages(pipeline, stage):
    """Canary for the override of TRL's private advantage computation (trl 1.16)."""
    calls = pipeline[f"{'vis' if stage == 'visual' else 'text'}_spy"].calls
    assert calls, "the loss was never computed"
    by_k: dict[int, list] = {}
    for call in calls:
        assert call["rewards"] is not None, "TRL bypassed ValorGRPOTrainer._calculate_rewards"
        # the reward matrix the trainer ranked is the one TRL logged per reward name
        for j, name in enumerate(call["logged"]):
            np.testing.assert_allclose(call["logged"][name][-len(call["rewards"]) :], call["rewards"][:, j], rtol=1e-6)
        # loss_type="grpo", beta=0, one iteration: the ratio is exactly 1, so the loss is
        # -mean(A) over the micro-batch divided by the accumulation steps
        assert math.isclose(call["loss"] * call["accum"], -call["advantages"].mean(), rel_tol=1e-5, abs_tol=1e-6)
        by_k.setdefault(call["k"], []).append(call)
    distinct = False
    for k, group in by_k.items():
        expected = _expected_advantages(group[0])
        seen = np.concatenate([c["advantages"] for c in group])
        # every micro-batch of the step, together, is the step's rank-normalised batch (shuffled)
        np.testing.assert_allclose(np.sort(seen), np.sort(expected), atol=1e-6, err_msg=f"k={k}")
        if not np.allclose(np.sort(expected), np.sort(_trl_advantages(group[0])), atol=1e-3):
            distinct = True
    assert distinct, "rank-normalised and TRL advantages coincided on every step: the check proves nothing"


def _logs_by_step(result) -> dict[int, dict]:
    return {h["step"]: h for h in result.log_history if "valor/k" in h}


def test_clinical_term_fires_only_on_k_clin_steps(pipeline):
    # k_clin = 2; stage text k = 1, 2, 3 (k restarts after SFT); stage visual carries on: k = 4, 5
    text = _logs_by_step(pipeline["resumed"])
    assert sorted(int(h["valor/k"]) for h in text.values()) == [1, 2, 3]
    visual = _logs_by_step(pipeline["visual"])
    assert sorted(int(h["valor/k"]) for h in visual.values()) == [4, 5]
    assert pipeline["visual"].step_offset == 3
    for logs in (text, visual):
        for h in logs.values():
            k = int(h["valor/k"])
            clinical = k % 2 == 0
            assert h["valor/clinical"] == float(clinical)
            assert ("valor/r_clin" in h) == clinical, (k, sorted(h))
            # R_text = R_ver (+ λ_clin·R_clin on clinical steps); batch means are linear
            expected = h["valor/r_ver"] + (h["valor/r_clin"] if clinical else 0.0)
            assert math.isclose(h["rewards/valor_text/mean"], expected, rel_tol=1e-5, abs_tol=1e-6)


def test_resume_continues_from_saved_step(pipeline):
    text_dir = pipeline["text"].output_dir
    assert (text_dir / "checkpoint-1").is_dir() and (text_dir / "checkpoint-2").is_dir()
    assert pipeline["resume_snap"].steps == [3], "the resumed run must only run step 3"
    state = json.loads((pipeline["resumed"].final_dir / "valor_state.json").read_text())
    assert state["global_step"] == 3 and state["last_k"] == 3
    # the resumed run started from the checkpoint's LoRA weights, not a fresh adapter
    before = pipeline["resume_snap"].before
    saved = pipeline["text_snap"].after
    lora = [n for n in before if "lora_B" in n]
    assert lora and all(torch.allclose(before[n], saved[n]) for n in lora)


def test_visual_reference_policy_is_the_sft_model(pipeline):
    """Algorithm 1 fixes θ_ref = θ_SFT before both stages; stage visual starts from stage text."""
    from safetensors.torch import load_file

    from trainers.stages import build_grpo_trainer

    root, model_dir = pipeline["root"], pipeline["model_dir"]
    cfg = load_config(
        CONFIGS / "tiny" / "visual.yaml",
        _overrides(
            root, model_dir, "visual-ref", **{"model.init_from": pipeline["resumed"].final_dir, "grpo.beta": 0.04}
        ),
    )
    trainer, _ = build_grpo_trainer(cfg)
    assert Path(trainer.valor_ref_model) == pipeline["sft"].final_dir
    key = "model.language_model.layers.0.self_attn.q_proj.weight"
    # saved checkpoints keep Qwen2.5-VL's hub key layout (no "language_model" level)
    sft_w = load_file(pipeline["sft"].final_dir / "model.safetensors")["model.layers.0.self_attn.q_proj.weight"]
    ref_w = dict(trainer.ref_model.named_parameters())[key].detach()
    policy_w = dict(trainer.model.named_parameters())[key].detach()
    assert torch.equal(ref_w, sft_w)
    assert not torch.equal(policy_w, sft_w)  # stage text's merged LoRA moved it
    assert trainer.model.config._name_or_path == str(pipeline["resumed"].final_dir)


def test_generate_writes_records_radeval_reads(pipeline):
    from radeval.data import read_records
    from trainers.api import generate

    root, model_dir = pipeline["root"], pipeline["model_dir"]
    out = generate(
        CONFIGS / "tiny" / "visual.yaml",
        _overrides(root, model_dir, "visual", **{"generate.max_new_tokens": 8}),
        split="test",
    )
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["id"] for x in lines] == ["case006", "case007"]
    assert all({"prediction", "reference", "completion", "image"} <= set(x) for x in lines)
    recs = read_records(out)
    assert len(recs) == 2


# ----- plain GRPO baseline -----------------------------------------------------------------------


def test_plain_grpo_uses_trl_advantages(pipeline, monkeypatch):
    from trainers.api import train

    root, model_dir = pipeline["root"], pipeline["model_dir"]
    spy = LossSpy(monkeypatch)
    res = train(
        "grpo",
        CONFIGS / "tiny" / "text.yaml",
        _overrides(
            root,
            model_dir,
            "grpo",
            **{
                "stage": "grpo",
                "model.init_from": pipeline["sft"].final_dir,
                "train.max_steps": 1,
                "train.save_steps": 0,
            },
        ),
    )
    assert res.global_step == 1
    logs = [h for h in res.log_history if "rewards/valor_ver/mean" in h]
    assert logs and "valor/r_clin" not in logs[0]
    # TRL's own advantages (group z-scores), not rank-normalised ones, reached the loss
    assert spy.calls
    seen = np.sort(np.concatenate([c["advantages"] for c in spy.calls]))
    np.testing.assert_allclose(seen, np.sort(_trl_advantages(spy.calls[0])), atol=1e-4)

    # seeds: the same config in another folder samples the same completions and rewards
    again = train(
        "grpo",
        CONFIGS / "tiny" / "text.yaml",
        _overrides(
            root,
            model_dir,
            "grpo-again",
            **{
                "stage": "grpo",
                "model.init_from": pipeline["sft"].final_dir,
                "train.max_steps": 1,
                "train.save_steps": 0,
            },
        ),
    )
    np.testing.assert_array_equal(spy.calls[-1]["rewards"], spy.calls[0]["rewards"])
    first = [h for h in again.log_history if "rewards/valor_ver/mean" in h][0]
    assert first["rewards/valor_ver/mean"] == logs[0]["rewards/valor_ver/mean"]


def test_dpo_baseline_on_user_pairs(pipeline):
    from trainers.api import train

    root, model_dir = pipeline["root"], pipeline["model_dir"]
    pairs = root / "pairs.jsonl"
    pairs.write_text(
        "\n".join(
            json.dumps(
                {
                    "id": f"case00{i}",
                    "chosen": "<report>No acute findings.</report>",
                    "rejected": "Large right effusion.",
                }
            )
            for i in range(2)
        )
        + "\n"
    )
    res = train(
        "dpo",
        CONFIGS / "tiny" / "sft.yaml",
        _overrides(
            root,
            model_dir,
            "dpo",
            **{
                "stage": "dpo",
                "data.pairs_path": pairs,
                "model.init_from": pipeline["sft"].final_dir,
                "train.max_steps": 1,
                "train.batch_size": 2,
                "train.per_device_batch_size": 2,
            },
        ),
    )
    assert res.global_step == 1
    logs = [h for h in res.log_history if "rewards/margins" in h]
    assert logs and math.isfinite(logs[0]["loss"])


# ----- units: config, data, models, advantages, CLI ---------------------------------------------


def test_example_configs_load():
    for stage in ("sft", "text", "visual", "grpo", "dpo"):
        cfg = load_config(CONFIGS / f"{stage}.yaml", stage=stage)
        assert cfg.stage == stage
    text = load_config(CONFIGS / "text.yaml")
    assert (text.train.batch_size, text.train.learning_rate, text.train.epochs) == (8, 1e-6, 3.0)
    assert text.grpo.loss_type == "grpo" and text.grpo.beta > 0 and text.grpo.advantage == "rank"
    assert text.grad_accum() == 8  # 8 prompts x G=8 completions / 8 per pass
    assert load_config(CONFIGS / "grpo.yaml").valor_config().lambda_clin == 0.0


def test_config_overrides_and_errors(tmp_path):
    cfg = load_config(
        CONFIGS / "text.yaml", ["train.learning_rate=1e-5", "lora.target_modules=q_proj,v_proj", "rewards.k_clin=5"]
    )
    assert cfg.train.learning_rate == 1e-5 and cfg.lora.target_modules == ["q_proj", "v_proj"]
    assert cfg.valor_config(step_offset=7).k_clin == 5 and cfg.valor_config(7).step_offset == 7
    with pytest.raises(ConfigError, match=r"train\.learnig_rate"):
        load_config(CONFIGS / "text.yaml", ["train.learnig_rate=1"])
    with pytest.raises(ConfigError, match=r"grpo\.num_generations must be an integer"):
        load_config(CONFIGS / "text.yaml", ["grpo.num_generations=abc"])
    with pytest.raises(ConfigError, match="lambda_lex"):
        load_config(CONFIGS / "text.yaml", ["rewards.lambda_lex=0.9"])
    with pytest.raises(ConfigError, match="stage 'text'"):
        load_config(CONFIGS / "text.yaml", stage="visual")
    with pytest.raises(ConfigError, match="rewards.visual_reward"):
        load_config(CONFIGS / "visual.yaml", ["rewards.visual_reward=null"])
    with pytest.raises(ConfigError, match="per_device_batch_size"):
        load_config(CONFIGS / "text.yaml", ["train.per_device_batch_size=7"])
    with pytest.raises(ConfigError, match="bad override"):
        load_config(CONFIGS / "text.yaml", ["train.learning_rate"])
    toml = tmp_path / "c.toml"
    toml.write_text('stage = "sft"\n[train]\nbatch_size = 4\nper_device_batch_size = 2\n')
    assert load_config(toml).train.batch_size == 4


def test_r2gen_loader_and_errors(tmp_path):
    from tests.tiny_vlm import make_images
    from trainers.data import grpo_rows, load_r2gen, sft_rows

    (tmp_path / "images" / "CXR1").mkdir(parents=True)
    make_images(1)[0].save(tmp_path / "images" / "CXR1" / "0.png")
    ann = {
        "train": [
            {"id": "CXR1", "report": "No acute disease.", "image_path": ["CXR1/0.png", "CXR1/1.png"], "split": "train"}
        ],
        "val": [],
        "test": [],
    }
    (tmp_path / "annotation.json").write_text(json.dumps(ann))
    recs = load_r2gen(tmp_path / "annotation.json", "train", None)  # default root: <dir>/images
    assert recs[0]["image"].endswith("CXR1/0.png") and recs[0]["report"] == "No acute disease."
    row = next(sft_rows(recs, "Describe."))
    assert row["completion"][0]["content"][0]["text"] == "<report>No acute disease.</report>"
    assert row["images"] == [recs[0]["image"]]  # a path: decoded per batch, not up front
    assert next(grpo_rows(recs, "Describe."))["ground_truth"] == "No acute disease."
    with pytest.raises(InputError, match="CXR1/1.png"):
        load_r2gen(tmp_path / "annotation.json", "train", None, max_images=2)
    with pytest.raises(InputError, match="no split 'dev'"):
        load_r2gen(tmp_path / "annotation.json", "dev", None)
    ann["train"][0].pop("report")
    (tmp_path / "annotation.json").write_text(json.dumps(ann))
    with pytest.raises(InputError, match=r"id 'CXR1'.*'report'"):
        load_r2gen(tmp_path / "annotation.json", "train", None)


def test_jsonl_and_hf_loaders(tiny, tmp_path):
    import datasets

    from trainers.data import load_hf, load_jsonl

    root, _ = tiny
    train = load_jsonl(root / "data.jsonl", split="train")
    assert len(train) == 6 and len(load_jsonl(root / "data.jsonl", split="test")) == 2
    ds = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_list(
                [{"id": r["id"], "image": r["image"], "report": r["report"]} for r in train]
            )
        }
    )
    ds.save_to_disk(str(tmp_path / "hf"))
    recs = load_hf(str(tmp_path / "hf"), "train", image_root=None)
    assert [r["id"] for r in recs] == [r["id"] for r in train]
    # an Image column with embedded bytes: read undecoded, decoded per row by the training dataset
    from tests.tiny_vlm import make_images
    from trainers.data import grpo_rows, to_dataset

    img_ds = datasets.Dataset.from_list(
        [{"id": "a", "image": make_images(1)[0], "report": "No acute disease."}],
        features=datasets.Features(
            {"id": datasets.Value("string"), "image": datasets.Image(), "report": datasets.Value("string")}
        ),
    )
    img_ds.save_to_disk(str(tmp_path / "hf-img"))
    recs = load_hf(str(tmp_path / "hf-img"), "train")
    assert isinstance(recs[0]["image"], dict) and recs[0]["image"]["bytes"][:4] == b"\x89PNG"
    row = to_dataset(grpo_rows(recs, "Describe."))[0]
    assert row["image"].mode == "RGB" and row["image"].size == (56, 56)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "image": "missing.png", "report": "x"}\n')
    with pytest.raises(InputError, match=r"bad.jsonl:1 \(id 'a'\).*missing.png"):
        load_jsonl(bad)


def test_projector_by_family(tiny):
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        Qwen2_5_VLForConditionalGeneration,
    )

    from trainers.models import family_of, projector, projector_parts

    _, model_dir = tiny
    qwen = Qwen2_5_VLForConditionalGeneration.from_pretrained(model_dir)
    assert projector(qwen)[0] == "model.visual.merger"
    llava = LlavaForConditionalGeneration(
        LlavaConfig(
            vision_config=CLIPVisionConfig(
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=1,
                num_attention_heads=2,
                image_size=28,
                patch_size=14,
            ),
            text_config=LlamaConfig(
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=1,
                num_attention_heads=2,
                num_key_value_heads=1,
                vocab_size=64,
            ),
        )
    )
    assert projector(llava)[0] == "model.multi_modal_projector"
    assert projector_parts(qwen) == ["model.visual.merger"]
    with pytest.raises(ConfigError, match="unknown VLM family 'bert'"):
        family_of(type("C", (), {"model_type": "bert"})())


def test_rank_advantages_unit():
    from trainers.grpo import rank_advantages

    # two groups of 4; columns: R_text, format, similarity
    r = np.array(
        [
            [0.1, 1, 0.9],
            [0.2, 1, 0.1],
            [0.3, 0, 0.5],
            [0.4, 0, 0.3],
            [0.5, 1, 0.2],
            [0.5, 1, 0.2],
            [0.5, 1, 0.2],
            [0.5, 1, 0.2],
        ]
    )
    w = np.array([1.0, 1.0, 0.0])
    adv, _ = rank_advantages(r, w, 4)
    np.testing.assert_allclose(adv[:4], [1 / 3, 1, -1, -1 / 3])  # totals 1.1, 1.2, 0.3, 0.4
    np.testing.assert_allclose(adv[4:], 0.0)  # all-equal group
    adv_v, mixed = rank_advantages(r, w, 4, visual_index=2, lambda_vis=0.5)
    # r_vis of the first group from similarities (0.9, 0.1, 0.5, 0.3) = (1, 0, 2/3, 1/3)
    np.testing.assert_allclose(mixed[:4], 0.5 * np.array([1.1, 1.2, 0.3, 0.4]) + 0.5 * np.array([1, 0, 2 / 3, 1 / 3]))
    np.testing.assert_allclose(adv_v[:4], [1, 1 / 3, -1 / 3, -1])
    nan_row = r.copy()
    nan_row[0, :] = np.nan  # every reward function returned None
    assert rank_advantages(nan_row, w, 4)[0][0] == 0.0  # unscorable completion: no signal


def test_cli_names_the_extra_when_missing(monkeypatch):
    import importlib.util

    from radeval.commands import train as train_cmd

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "trl" else real(name, *a))
    with pytest.raises(DependencyError, match=r"pip install 'radeval-toolkit\[train\]'"):
        train_cmd.train(stage="text", config=CONFIGS / "text.yaml", overrides=[])


def test_package_level_generate_stays_a_function():
    """Regression: a submodule named `generate` used to shadow trainers.generate after first use."""
    import trainers
    import trainers.generation  # noqa: F401  (the module that writes predictions)

    assert callable(trainers.generate) and trainers.generate.__module__ == "trainers"


def test_config_with_non_string_keys_is_a_config_error(tmp_path):
    """Found by fuzzing (benchmarks/fuzz.py, target config): YAML keys that are not strings."""
    from radeval.errors import ConfigError
    from trainers.config import load_config

    for text in ("?\n\ufffd\ufffd:::::::", "1: 2\n", "train:\n  null: 3\n"):
        f = tmp_path / "c.yaml"
        f.write_text(text, encoding="utf-8")
        with pytest.raises(ConfigError):
            load_config(f, stage="text")


# ----- precision: trainable parameters in fp32 whatever the load dtype --------------------------


class OptimizerSnapshot:
    """Trainable values at train begin and the tensors the optimizer holds at train end."""

    def __init__(self):
        from transformers import TrainerCallback

        snap = self

        class _CB(TrainerCallback):
            def on_train_begin(self, args, state, control, model=None, **kw):
                snap.before = {n: p.detach().float().clone() for n, p in model.named_parameters() if p.requires_grad}

            def on_train_end(self, args, state, control, model=None, optimizer=None, **kw):
                names = {id(p): n for n, p in model.named_parameters()}
                snap.held = {names[id(p)]: p.detach().clone() for g in optimizer.param_groups for p in g["params"]}

        self.callback = _CB()

    def share_changed(self, after: dict) -> float:
        changed = sum(int((after[n].float() != b).sum()) for n, b in self.before.items())
        return changed / sum(b.numel() for b in self.before.values())


@pytest.mark.parametrize("stage", ["visual", "text"])
def test_bf16_loaded_model_trains_in_fp32_at_lr_1e6(tiny, stage):
    """At lr 1e-6 an Adam step is below bf16's resolution: the trained tensors must be fp32."""
    from safetensors.torch import load_file

    from trainers.api import train

    root, model_dir = tiny
    snap = OptimizerSnapshot()
    res = train(
        stage,
        CONFIGS / "tiny" / f"{stage}.yaml",
        _overrides(
            root,
            model_dir,
            f"bf16-{stage}",
            **{"model.dtype": "bfloat16", "train.learning_rate": 1e-6, "train.max_steps": 3, "train.save_steps": 0},
        ),
        callbacks=[snap.callback],
    )
    assert res.global_step == 3
    assert set(snap.held) == set(snap.before)
    assert {p.dtype for p in snap.held.values()} == {torch.float32}
    assert snap.share_changed(snap.held) > 0.98
    if stage == "visual":
        assert all(".visual.merger." in n for n in snap.before)
        saved = load_file(res.final_dir / "model.safetensors")
        ckpt = {n: saved[n.replace("model.visual.", "visual.")] for n in snap.before}
    else:
        assert all(".lora_" in n for n in snap.before)
        saved = load_file(res.final_dir / "adapter" / "adapter_model.safetensors")
        ckpt = {n: saved[n.replace(".default.weight", ".weight")] for n in snap.before}
        # the merged weights are fp32 too (a bf16 merge would round the update away)
        merged = load_file(res.final_dir / "model.safetensors")
        assert merged["model.layers.0.self_attn.q_proj.weight"].dtype == torch.float32
        assert merged["model.embed_tokens.weight"].dtype == torch.bfloat16  # frozen: load dtype
    assert {t.dtype for t in ckpt.values()} == {torch.float32}
    assert snap.share_changed(ckpt) > 0.98


# ----- every advertised family runs every stage -------------------------------------------------


@pytest.mark.parametrize("family", ["llava", "qwen3_vl", "qwen2_vl"])
def test_family_runs_sft_text_visual(family, tmp_path, one_thread):
    """Tiny LLaVA (llava-hf, LLaVA-1.5 template: LLaVA-Med v1.5's shape), Qwen3-VL, Qwen2-VL.

    (Qwen2.5-VL runs in the module pipeline above.) One step per stage; SFT's loss covers the
    report only; stage text trains LoRA on the LM, stage visual only the projector.
    """
    from tests.tiny_vlm import build_tiny
    from trainers.api import train
    from trainers.models import FAMILIES
    from trainers.tiny import write_tiny_dataset

    model_dir = build_tiny(family, tmp_path / "model")
    data = write_tiny_dataset(tmp_path)
    common = [f"model.name_or_path={model_dir}", f"data.path={data}", "train.max_steps=1", "train.save_steps=0"]
    sft = train("sft", CONFIGS / "tiny" / "sft.yaml", common + [f"train.output_dir={tmp_path / 'sft'}"])
    trainer = sft.trainer
    batch = next(iter(trainer.get_train_dataloader()))
    tok = trainer.processing_class.tokenizer
    for ids, labels in zip(batch["input_ids"], batch["labels"]):
        target = tok.decode(ids[labels != -100])
        assert target.startswith("<report>") and "</report>" in target, target
        assert "Describe the X-ray" not in target and "image" not in target, target
    snaps = {}
    start = sft.final_dir
    for stage in ("text", "visual"):
        snap = Snapshot()
        res = train(
            stage,
            CONFIGS / "tiny" / f"{stage}.yaml",
            common + [f"train.output_dir={tmp_path / stage}", f"model.init_from={start}"],
            callbacks=[snap.callback],
        )
        assert res.global_step == 1
        snaps[stage], start = snap, res.final_dir
    assert snaps["text"].changed() and all("lora_" in n for n in snaps["text"].trainable)
    assert all(".language_model." in n for n in snaps["text"].trainable)
    projector = FAMILIES[family][0]
    changed = snaps["visual"].changed()
    assert changed and all(f"{projector}." in n or "deepstack_merger" in n for n in snaps["visual"].trainable)
    assert any(f"{projector}." in n for n in changed)


def test_reference_policy_resolves_after_a_move_or_fails_loudly(pipeline, tmp_path, monkeypatch):
    """θ_ref is recorded absolutely and relative to the state file; a lost folder is an error."""
    import shutil

    from trainers.stages import STATE_FILE, resolve_ref_model

    root, model_dir = pipeline["root"], pipeline["model_dir"]
    state = json.loads((pipeline["resumed"].final_dir / STATE_FILE).read_text())
    assert Path(state["ref_model"]["path"]) == pipeline["sft"].final_dir.resolve()
    assert not Path(state["ref_model"]["relative"]).is_absolute()
    # the whole runs tree moves, and the process runs from elsewhere: the relative record resolves
    moved = tmp_path / "moved"
    shutil.copytree(pipeline["sft"].final_dir, moved / "sft" / "final")
    shutil.copytree(pipeline["resumed"].final_dir, moved / "text" / "final")
    st = json.loads((moved / "text" / "final" / STATE_FILE).read_text())
    st["ref_model"]["path"] = str(tmp_path / "gone")  # the absolute record no longer exists
    (moved / "text" / "final" / STATE_FILE).write_text(json.dumps(st))
    monkeypatch.chdir(tmp_path)
    over = _overrides(root, model_dir, "visual-moved", **{"model.init_from": moved / "text" / "final"})
    cfg = load_config(CONFIGS / "tiny" / "visual.yaml", over)
    assert Path(resolve_ref_model(cfg)).resolve() == (moved / "sft" / "final").resolve()
    # the SFT model is gone: a clear error naming the setting, never the text model instead
    shutil.rmtree(moved / "sft")
    with pytest.raises(ConfigError, match=r"grpo\.ref_model"):
        resolve_ref_model(cfg)
    assert resolve_ref_model(load_config(CONFIGS / "tiny" / "visual.yaml", over + ["grpo.ref_model=start"])) == str(
        moved / "text" / "final"
    )


def test_rewards_section_is_valor_config():
    """One definition of VALOR's constants: the rewards section holds radeval's ValorConfig."""
    import dataclasses

    from radeval.rewards.valor import ValorConfig
    from trainers.config import VALOR_KEYS, StageConfig

    assert StageConfig().rewards.valor == ValorConfig()
    assert set(VALOR_KEYS) <= {f.name for f in dataclasses.fields(ValorConfig)}
    cfg = load_config(CONFIGS / "text.yaml", ["rewards.lambda_vis=0.3", 'rewards.metric_options={"bleu": {}}'])
    assert cfg.rewards.valor == dataclasses.replace(ValorConfig(), lambda_vis=0.3, metric_options={"bleu": {}})
    assert cfg.rewards.lambda_vis == 0.3 and cfg.valor_config(4) == dataclasses.replace(
        cfg.rewards.valor, step_offset=4
    )
    with pytest.raises(ConfigError, match=r"rewards\.k_clin must be an integer"):
        load_config(CONFIGS / "text.yaml", ["rewards.k_clin=x"])


def test_processor_resolution_is_a_setting(tiny):
    """model.max_pixels/min_pixels bound the Qwen processor; the prompt-length check names them."""
    from trainers.data import load_jsonl
    from trainers.models import load_model
    from trainers.stages import check_prompt_length

    root, model_dir = tiny
    assert load_config(CONFIGS / "text.yaml").model.max_pixels == 448 * 448  # CXR-sized default
    rec = load_jsonl(root / "data.jsonl", split="train")[0]
    counts = {}
    for side in (56, 112):
        _, proc = load_model(str(model_dir), max_pixels=side * side, min_pixels=side * side)
        assert (proc.image_processor.size.shortest_edge, proc.image_processor.size.longest_edge) == (side**2,) * 2
        grid = proc(text=["<|image_pad|>"], images=[_load(rec["image"])], return_tensors="pt")["image_grid_thw"]
        counts[side] = int(grid.prod()) // 4  # tokens after the 2x2 merge
    assert counts == {56: 4, 112: 16}
    cfg = load_config(
        CONFIGS / "tiny" / "text.yaml",
        _overrides(root, model_dir, "res", **{"grpo.max_prompt_length": 20, "model.max_pixels": 112 * 112}),
    )
    with pytest.raises(ConfigError, match=r"model\.max_pixels"):
        check_prompt_length(cfg, proc, rec)
    with pytest.raises(ConfigError, match="min_pixels"):
        load_config(CONFIGS / "text.yaml", ["model.min_pixels=1000000"])


def _load(path):
    from trainers.data import _load_image

    return _load_image(path)
