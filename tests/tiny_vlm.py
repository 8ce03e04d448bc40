"""A tiny Qwen2.5-VL checkpoint for CPU tests: real architecture, random weights, real tokenizer files.

``build_tiny_qwen25vl(dest)`` writes a directory that loads with
``Qwen2_5_VLForConditionalGeneration.from_pretrained`` and ``AutoProcessor.from_pretrained``
(no hub, no remote code):

* a byte-level BPE tokenizer trained here on a few hundred synthetic chest X-ray reports
  (``tests/report_corpus.py``) plus the prompt text, with Qwen's special tokens
  (``<|im_start|>``, ``<|im_end|>``, ``<|vision_start|>``, ``<|image_pad|>``...) and TRL's stock
  Qwen2.5-VL chat template (so TRL swaps in its training template for assistant-only loss);
* a ``Qwen2VLImageProcessor`` pinned to 56x56 pixels (4x4 patches of 14 → 4 image tokens after
  the 2x2 merge) so every image costs the same few tokens;
* a 2-layer, hidden-64 language model and a 1-block vision tower whose ``merger`` (the projector)
  maps to the text width.

``make_images(n, seed)`` gives small deterministic PIL images with visibly different content,
``tiny_records`` pairs them with reports, and ``toy_similarity`` is a deterministic image–report
similarity in TRL's reward contract (a stand-in for a frozen expert's cosine S_i), for trainers
and grounding tests that import this module.
"""

from __future__ import annotations

import math
import random
import zlib
from pathlib import Path
from typing import Any

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]

IMAGE_SIDE = 56  # pixels; 4x4 patches of 14, merged 2x2 -> 4 tokens per image


def _corpus(n_reports: int, seed: int) -> list[str]:
    from tests.report_corpus import report_pairs

    texts: list[str] = []
    for pred, ref in report_pairs(n_reports, seed=seed):
        texts.extend([pred, ref, f"<report>{ref}</report>"])
    texts.append("system user assistant You are a helpful assistant.")
    texts.append("Describe the findings of this chest X-ray. Write the report between <report> and </report>.")
    return texts


def build_tokenizer(dest: Path, *, vocab_size: int = 512, n_reports: int = 200, seed: int = 0):
    """Train a byte-level BPE on synthetic reports and save it as a transformers fast tokenizer."""
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
    tok.train_from_iterator(_corpus(n_reports, seed), trainer=trainer)
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


def build_tiny_qwen25vl(dest: str | Path, *, seed: int = 0, text_layers: int = 2, hidden: int = 64) -> Path:
    """Write a tiny random-weight Qwen2.5-VL (model + tokenizer + processor) to ``dest``."""
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
    pixels = IMAGE_SIDE * IMAGE_SIDE
    image_processor = Qwen2VLImageProcessor(min_pixels=pixels, max_pixels=pixels)
    video_processor = Qwen2VLVideoProcessor(min_pixels=pixels, max_pixels=pixels)
    processor = Qwen2_5_VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=qwen2_5_vl_chat_template,
    )
    processor.save_pretrained(dest)

    heads = 4
    head_dim = hidden // heads
    # mrope splits head_dim/2 rotary frequencies over (time, height, width)
    half = head_dim // 2
    mrope = [half - 2 * (half // 3), half // 3, half // 3]
    config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": hidden,
            "intermediate_size": 2 * hidden,
            "num_hidden_layers": text_layers,
            "num_attention_heads": heads,
            "num_key_value_heads": 2,
            "max_position_embeddings": 1024,
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": mrope},
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={
            "depth": 1,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "out_hidden_size": hidden,
            "fullatt_block_indexes": [0],
            "window_size": 112,
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config)
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.generation_config.bos_token_id = ids["<|endoftext|>"]
    model.save_pretrained(dest)
    return dest


def make_images(n: int, seed: int = 0) -> list[Any]:
    """n deterministic RGB images (IMAGE_SIDE square): a bright disc on a dark field, moved per image."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    out = []
    for _ in range(n):
        img = Image.new("RGB", (IMAGE_SIDE, IMAGE_SIDE), (rng.randrange(0, 40),) * 3)
        draw = ImageDraw.Draw(img)
        cx, cy, r = rng.randrange(10, 46), rng.randrange(10, 46), rng.randrange(5, 14)
        shade = rng.randrange(150, 256)
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(shade, shade, shade))
        out.append(img)
    return out


def tiny_records(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """n records ``{"id", "image", "report"}`` with synthetic reports and images."""
    from tests.report_corpus import report_pairs

    images = make_images(n, seed)
    return [
        {"id": f"case{i:03d}", "image": images[i], "report": ref}
        for i, (_pred, ref) in enumerate(report_pairs(n, seed=seed))
    ]


TOY_DIM = 8


def _image_features(image: Any) -> list[float]:
    """Mean intensity of a 2x2 grid, its spread, and 3 coarse intensity-histogram bins."""
    if isinstance(image, (list, tuple)):
        image = image[0] if image else None
    if image is None:
        return [0.0] * TOY_DIM
    if isinstance(image, str):
        from PIL import Image

        image = Image.open(image)
    g = image.convert("L").resize((16, 16))
    px = list(g.tobytes())  # 8-bit grey levels, row-major
    quads = []
    for qy in (0, 1):
        for qx in (0, 1):
            vals = [px[y * 16 + x] for y in range(qy * 8, qy * 8 + 8) for x in range(qx * 8, qx * 8 + 8)]
            quads.append(sum(vals) / len(vals) / 255.0)
    mean = sum(px) / len(px)
    spread = math.sqrt(sum((p - mean) ** 2 for p in px) / len(px)) / 255.0
    hist = [sum(1 for p in px if lo <= p < hi) / len(px) for lo, hi in ((0, 85), (85, 170), (170, 256))]
    return quads + [spread] + hist


def _text_features(text: str) -> list[float]:
    """Character trigrams hashed (crc32, stable across runs) into TOY_DIM buckets."""
    v = [0.0] * TOY_DIM
    t = text.lower()
    for i in range(len(t) - 2):
        v[zlib.crc32(t[i : i + 3].encode("utf-8")) % TOY_DIM] += 1.0
    return v


def toy_similarity(prompts=None, completions=(), completion_ids=None, **kwargs) -> list[float]:
    """Cosine between toy image features and toy text features of each completion's report.

    Deterministic, depends on both the image (``image``/``images`` column) and the text, never
    raises; 0.0 for an empty text or a missing image.
    """
    from radeval.rewards.extract import extract_report

    imgs = kwargs.get("image", kwargs.get("images")) or [None] * len(completions)
    out = []
    for c, img in zip(completions, imgs):
        a, b = _image_features(img), _text_features(extract_report(c))
        na, nb = math.sqrt(sum(x * x for x in a)), math.sqrt(sum(x * x for x in b))
        out.append(sum(x * y for x, y in zip(a, b)) / (na * nb) if na > 0 and nb > 0 else 0.0)
    return out


toy_similarity.__name__ = "toy_similarity"
