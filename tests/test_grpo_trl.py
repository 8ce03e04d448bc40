"""A real trl.GRPOTrainer run with radeval rewards: tiny Qwen2 + a locally trained BPE tokenizer.

Checks that TRL logs each reward under its own name and that reference features are computed
once per distinct reference text over the whole run (two epochs), not once per completion.
"""

from __future__ import annotations

import math
import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

torch = pytest.importorskip("torch")
trl = pytest.importorskip("trl")
datasets = pytest.importorskip("datasets")
transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

import radeval.rewards as R  # noqa: E402
from radeval.metrics import nlg  # noqa: E402
from radeval.rewards import trl as rtrl  # noqa: E402

REPORTS = [
    "The heart size is normal. The lungs are clear. No pleural effusion or pneumothorax.",
    "Mild cardiomegaly. Small left pleural effusion with adjacent atelectasis.",
    "Right lower lobe consolidation concerning for pneumonia. No pneumothorax.",
    "Stable mediastinal contours. Mild pulmonary edema. Degenerative changes of the spine.",
]
PROMPT = "Write the findings of the chest X-ray. <report>"


def build_tiny_model(tmp_path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<pad>", "<eos>", "<unk>", "<report>", "</report>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(REPORTS * 4 + [PROMPT, "</report>"], trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<pad>", unk_token="<unk>")
    path = tmp_path / "tiny-qwen2"
    fast.save_pretrained(path)
    config = Qwen2Config(
        vocab_size=len(fast),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(0)
    Qwen2ForCausalLM(config).save_pretrained(path)
    return str(path), fast


def test_grpo_two_epochs_with_radeval_rewards(tmp_path):
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    model_path, tokenizer = build_tiny_model(tmp_path)
    dataset = Dataset.from_dict({"prompt": [PROMPT] * len(REPORTS), "ground_truth": REPORTS})
    rewards = [R.bleu_4, R.rouge_l, R.valor_format_reward]

    calls = {"n": 0, "completions": 0}
    bleu = R.bleu_4

    def counted_bleu(prompts=None, completions=(), completion_ids=None, **kwargs):
        calls["n"] += 1
        calls["completions"] += len(completions)
        assert kwargs["trainer_state"].global_step in (0, 1, 2, 3)  # TRL passes its state
        assert callable(kwargs["log_metric"])
        return bleu(prompts, completions, completion_ids, **kwargs)

    counted_bleu.__name__ = bleu.__name__
    rewards[0] = counted_bleu

    args = GRPOConfig(
        output_dir=str(tmp_path / "out"),
        use_cpu=True,
        report_to="none",
        loss_type="grpo",
        beta=0.04,
        epsilon=0.2,
        gradient_checkpointing=False,
        per_device_train_batch_size=8,
        num_generations=4,
        max_completion_length=12,
        max_steps=4,  # 2 prompts per step, 4 prompts in the data set: two epochs
        learning_rate=1e-4,
        logging_steps=1,
        save_strategy="no",
        bf16=False,
        seed=0,
        temperature=1.0,
        disable_tqdm=True,
    )
    rtrl.clear_caches()
    nlg._reference_info.cache_clear()
    nlg._coco_ref_tokens.cache_clear()
    trainer = GRPOTrainer(
        model=model_path, reward_funcs=rewards, args=args, train_dataset=dataset, processing_class=tokenizer
    )
    trainer.train()

    logs = [entry for entry in trainer.state.log_history if "rewards/radeval_bleu_4/mean" in entry]
    assert len(logs) == 4
    for entry in logs:
        for name in ("radeval_bleu_4", "radeval_rouge_l", "valor_format"):
            assert math.isfinite(entry[f"rewards/{name}/mean"])
    assert calls["n"] == 4 and calls["completions"] == 32
    # 32 completions scored against 4 distinct references over two epochs: 4 reference
    # feature computations per metric
    assert nlg._reference_info.cache_info().misses == len(REPORTS)
    assert nlg._coco_ref_tokens.cache_info().misses == len(REPORTS)
