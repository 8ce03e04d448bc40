"""The policy: a tiny Qwen2.5-VL with a BPE tokenizer trained on this benchmark's report templates.

Same construction as ``tests/tiny_vlm.py`` (real architecture, random weights, Qwen's special
tokens, TRL's Qwen2.5-VL chat template) but sized for the benchmark: 56x56 images cut into 7-px
patches (8x8), merged 2x2 into 16 image tokens so attention maps have a 4x4 grid.
"""

from __future__ import annotations

from pathlib import Path

from experiments.synthetic_cxr import generator

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
PATCH = 7
GRID = generator.SIDE // PATCH // 2  # merged tokens per side (4)
PROMPT = "Describe the findings of this chest X-ray. Write the report between <report> and </report>."
BOX_PROMPT = "Give the box of the {finding} as [x1, y1, x2, y2]."


def corpus(seed: int = 0, n: int = 600) -> list[str]:
    texts = []
    for c in generator.make_cases(n, seed + 10_000, prefix="tok"):
        texts += [c.report, c.report_under, f"<report>{c.report}</report>"]
    texts += ["system user assistant You are a helpful assistant.", PROMPT]
    texts += [
        BOX_PROMPT.format(finding=f)
        for f in ("cardiomegaly", "pleural effusion", "consolidation", "pneumothorax", "support device")
    ]
    texts += ["[0.12, 0.34, 0.56, 0.78] [0.90, 0.05, 0.61, 0.27]"] * 20
    return texts


def build_tokenizer(dest: Path, *, vocab_size: int = 512, seed: int = 0):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    from trl.chat_template_utils import qwen2_5_vl_chat_template

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus(seed), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        extra_special_tokens={"image_token": "<|image_pad|>", "video_token": "<|video_pad|>"},
    )
    fast.chat_template = qwen2_5_vl_chat_template
    fast.save_pretrained(dest)
    return fast


def build_policy(dest: str | Path, *, seed: int = 0, hidden: int = 64, layers: int = 2, vision: int = 32) -> Path:
    """Write a random-weight tiny Qwen2.5-VL (model + tokenizer + processor) to ``dest``."""
    import torch
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )
    from trl.chat_template_utils import qwen2_5_vl_chat_template

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(dest, seed=seed)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    pixels = generator.SIDE * generator.SIDE
    # grayscale images: mean/std of the 8-bit range, not ImageNet's
    proc_kw = dict(min_pixels=pixels, max_pixels=pixels, patch_size=PATCH, image_mean=[0.5] * 3, image_std=[0.25] * 3)
    image_processor = Qwen2VLImageProcessor(**proc_kw)
    video_processor = Qwen2VLVideoProcessor(min_pixels=pixels, max_pixels=pixels, patch_size=PATCH)
    processor = Qwen2_5_VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=qwen2_5_vl_chat_template,
    )
    processor.save_pretrained(dest)
    heads = 4
    half = hidden // heads // 2
    mrope = [half - 2 * (half // 3), half // 3, half // 3]
    config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": hidden,
            "intermediate_size": 2 * hidden,
            "num_hidden_layers": layers,
            "num_attention_heads": heads,
            "num_key_value_heads": 2,
            "max_position_embeddings": 512,
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": mrope},
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
            "tie_word_embeddings": False,
        },
        vision_config={
            "depth": 2,
            "hidden_size": vision,
            "intermediate_size": 2 * vision,
            "num_heads": 2,
            "out_hidden_size": hidden,
            "patch_size": PATCH,
            "fullatt_block_indexes": [0, 1],
            "window_size": generator.SIDE * 2,
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config)
    # The stages train LoRA on the language model only (trainers' design), so the output head
    # stays at its random init. At transformers' init (std 0.02) the logits of a 64-d state are
    # ~0.2 apart: no LoRA update can make the model confident. A head of std 0.4 gives logits of
    # a few units, like a pretrained model's; it is still random (no task knowledge).
    with torch.no_grad():
        model.lm_head.weight.normal_(0.0, 0.4)
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.generation_config.bos_token_id = ids["<|endoftext|>"]
    model.save_pretrained(dest)
    return dest
