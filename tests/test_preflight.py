"""Preflight: every missing model of a run in one ModelNotFound (exit 4), before torch is imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from radeval import preflight
from radeval.errors import ModelNotFound
from radeval.registry import specs

ROOT = Path(__file__).resolve().parent.parent


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RADEVAL_MODELS_DIR", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE")}
    env.update(HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT), **extra)
    return env


def _main_in_subprocess(argv: list[str], env: dict[str, str]) -> tuple[int, str, bool]:
    """(exit code, stderr, whether torch got imported) of the CLI in a fresh interpreter."""
    code = (
        "import json, sys\nfrom radeval.cli import main\n"
        f"rc = main({argv!r})\nprint(json.dumps([rc, 'torch' in sys.modules]))"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120, cwd=ROOT)
    rc, torch_loaded = json.loads(p.stdout.strip().splitlines()[-1])
    return rc, p.stderr, torch_loaded


@pytest.fixture
def no_models(tmp_path, monkeypatch):
    for k in ("RADEVAL_MODELS_DIR", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    return tmp_path


def test_score_valor_names_every_missing_model_before_torch(tmp_path):
    rc, err, torch_loaded = _main_in_subprocess(["score", "examples/preds.jsonl", "-m", "valor"], _env(tmp_path))
    assert rc == 4 and not torch_loaded
    assert "5 models this run needs are missing" in err
    assert "Fix: radeval models download chexbert bert-base-uncased green rate-ner biolord" in err
    assert "Traceback" not in err


def test_train_preflight_before_torch(tmp_path):
    argv = ["train", "--stage", "text", "-c", "trainers/configs/text.yaml"]
    rc, err, torch_loaded = _main_in_subprocess(argv, _env(tmp_path))
    assert rc == 4 and not torch_loaded
    assert "radeval models download distilbert-base-uncased chexbert bert-base-uncased radgraph-xl" in err


def test_reward_constructors_fail_up_front(no_models):
    from radeval.rewards import make_reward, make_text_reward
    from radeval.rewards.valor import ValorConfig, make_ver_reward

    with pytest.raises(ModelNotFound) as e:
        make_text_reward(ValorConfig())  # before: built fine, failed at the first GRPO step
    for name in ("distilbert-base-uncased", "chexbert", "bert-base-uncased", "radgraph-xl"):
        assert f"- {name} (" in str(e.value)
    with pytest.raises(ModelNotFound, match="distilbert-base-uncased"):
        make_ver_reward(ValorConfig())
    with pytest.raises(ModelNotFound, match="radeval models download chexbert"):
        make_reward("chexbert", "chexbert_f1")
    # zero-weight terms load nothing, so they need nothing
    make_text_reward(ValorConfig(lambda_cx=0.0, lambda_rg=0.0, bertscore="bertscore_minilm:bertscore_minilm_f1"))


def test_bench_preflight_and_offline_names(no_models):
    from radeval.bench.rewards_bench import DEFAULT_REWARDS, REWARD_NOTES, reward_metrics

    assert not preflight.missing_models(preflight.required_models(reward_metrics(DEFAULT_REWARDS)))
    assert "valor_text" not in DEFAULT_REWARDS and "valor_text_offline" in DEFAULT_REWARDS
    assert REWARD_NOTES["valor_text_offline"].startswith("NOT VALOR")
    with pytest.raises(ModelNotFound, match="4 models"):
        preflight.check_models(reward_metrics(["valor_text", "bleu_4"]))


def test_needs_follow_options(no_models):
    def names(metric, **opts):
        return [n.model for n in preflight.required_models({metric: opts})]

    assert names("green", endpoint="http://x:8000/v1") == []
    assert names("green") == ["green"]
    assert names("radgraph", model_type="radgraph") == ["radgraph"]
    assert names("radgraph", model_path="/some/archive.tar.gz") == []
    assert names("grounding") == ["biomedclip", "biomedbert-abstract"]
    assert names("grounding", model="hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224")[0] == "biomedclip"
    assert names("grounding", model="ViT-B-32") == []
    assert names("bleu") == [] and names("chexpert_rules") == []


def test_present_models_pass(no_models, monkeypatch):
    d = no_models / "models" / "distilbert-base-uncased"
    d.mkdir(parents=True)
    for f in ("config.json", "vocab.txt", "model.safetensors"):
        (d / f).write_text("{}")
    monkeypatch.setenv("RADEVAL_MODELS_DIR", str(no_models / "models"))
    assert [n.model for n in preflight.check_models(["bertscore", "bleu"])] == ["distilbert-base-uncased"]
    with pytest.raises(ModelNotFound, match="explicit path .*does not exist"):
        preflight.check_models({"bertscore": {"model_path": str(no_models / "nope")}})


def test_every_preflight_entry_names_a_registered_implementation():
    targets = {s.target for s in specs().values()}
    assert set(preflight._NEEDS) <= targets, set(preflight._NEEDS) - targets
    for name in ("chexbert", "bertscore", "radgraph", "radcliq", "green", "ratescore", "grounding"):
        assert specs()[name].target in preflight._NEEDS, name
