"""Tiny random-weight VLMs in the real formats, built locally (nothing downloaded).

One builder for the tests, ``experiments/synthetic_cxr`` and the offline quickstart
(``radeval train --build-tiny DIR``). Each ``build_tiny_<family>(dest)`` writes a folder that loads
with the family's ``*ForConditionalGeneration.from_pretrained`` and ``AutoProcessor`` (no hub, no
remote code): a byte-level BPE tokenizer trained here on report text with the family's special
tokens and chat template, the family's real image processor pinned to a small fixed image size,
and a 2-layer language model with a 1-2 block vision tower. Such a model shows that a pipeline
runs; it learns nothing useful.

Families: Qwen2-VL, Qwen2.5-VL, Qwen3-VL (TRL's stock chat templates) and LLaVA in llava-hf
format (LLaVA-1.5's ``USER: <image>\\n… ASSISTANT:`` template with ``</s>`` closing the answer,
the template shape converted LLaVA-Med v1.5 checkpoints carry).

``make_images``/``tiny_records``/``write_tiny_dataset`` give deterministic toy images and reports;
``toy_similarity`` is a deterministic image–report similarity in TRL's reward contract, a stand-in
for a frozen expert's cosine S_i (stage visual's reward) that needs no model.
"""

from __future__ import annotations

import json
import math
import random
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

QWEN_SPECIAL = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
LLAVA_SPECIAL = ["<unk>", "<s>", "</s>", "<pad>", "<image>"]

IMAGE_SIDE = 56  # pixels: Qwen 4x4 patches of 14 -> 4 tokens after the 2x2 merge; LLaVA 2x2 patches of 28
PROMPT = "Describe the findings of this chest X-ray. Write the report between <report> and </report>."

#: LLaVA-1.5 (llava-hf) conversation shape: images first, then text; the answer ends with </s>
LLAVA_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{% for c in message['content'] %}{{ c['text'] }}{% endfor %}\n"
    "{% else %}{{ message['role'].upper() + ': ' }}"
    "{% for c in message['content'] %}{% if c['type'] == 'image' %}{{ '<image>\n' }}{% endif %}{% endfor %}"
    "{% for c in message['content'] %}{% if c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}"
    "{% if message['role'] == 'assistant' %}{{ '</s>' }}{% endif %}{{ '\n' }}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT: ' }}{% endif %}"
)

_FINDINGS = [
    "The heart size is normal.",
    "The heart is mildly enlarged.",
    "The lungs are clear.",
    "There is a small right pleural effusion.",
    "There is a left basilar consolidation.",
    "No pneumothorax is seen.",
    "There is mild pulmonary edema.",
    "The mediastinal contours are within normal limits.",
    "Degenerative changes of the thoracic spine.",
    "A right-sided central venous catheter is in place.",
]
_IMPRESSIONS = [
    "No acute cardiopulmonary process.",
    "Cardiomegaly without edema.",
    "Small right effusion.",
    "Left lower lobe pneumonia.",
    "Mild edema.",
]


def sample_reports(n: int, seed: int = 0) -> list[str]:
    """n deterministic toy chest X-ray reports (findings + impression), for tokenizers and data."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        findings = " ".join(rng.sample(_FINDINGS, rng.randint(2, 4)))
        out.append(f"FINDINGS: {findings} IMPRESSION: {rng.choice(_IMPRESSIONS)}")
    return out


def _default_texts(seed: int) -> list[str]:
    reports = sample_reports(200, seed)
    return reports + [f"<report>{r}</report>" for r in reports] + [PROMPT, "system user assistant USER ASSISTANT"]


def build_tokenizer(
    dest: Path,
    texts: Sequence[str],
    *,
    special_tokens: list[str],
    eos: str,
    pad: str,
    chat_template: str,
    extra_special: dict[str, str] | None = None,
    bos: str | None = None,
    unk: str | None = None,
    vocab_size: int = 512,
):
    """Train a byte-level BPE on ``texts`` and save it as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=eos,
        pad_token=pad,
        bos_token=bos,
        unk_token=unk,
        extra_special_tokens=extra_special or {},
    )
    fast.chat_template = chat_template
    fast.save_pretrained(dest)
    return fast


def build_qwen_tokenizer(dest: Path, texts: Sequence[str], chat_template: str, *, vocab_size: int = 512):
    """A Qwen-VL-style tokenizer (Qwen's special tokens, ``<|im_end|>`` ends turns) on ``texts``."""
    return build_tokenizer(
        dest,
        texts,
        special_tokens=QWEN_SPECIAL,
        eos="<|im_end|>",
        pad="<|endoftext|>",
        chat_template=chat_template,
        extra_special={"image_token": "<|image_pad|>", "video_token": "<|video_pad|>"},
        vocab_size=vocab_size,
    )


def _mrope(head_dim: int) -> list[int]:
    """mrope splits head_dim/2 rotary frequencies over (time, height, width)."""
    half = head_dim // 2
    return [half - 2 * (half // 3), half // 3, half // 3]


def _finish_qwen(model: Any, ids: dict[str, int], dest: Path, lm_head_std: float | None) -> Path:
    import torch

    if lm_head_std is not None:
        # a random head of std 0.02 gives logits ~0.2 apart on a 64-d state: LoRA on the LM cannot
        # make such a model confident; a larger std gives pretrained-like logit scales (still random)
        with torch.no_grad():
            model.lm_head.weight.normal_(0.0, lm_head_std)
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.generation_config.bos_token_id = ids["<|endoftext|>"]
    model.save_pretrained(dest)
    return dest


def build_tiny_qwen25vl(
    dest: str | Path,
    *,
    texts: Sequence[str] | None = None,
    seed: int = 0,
    text_layers: int = 2,
    hidden: int = 64,
    vision_hidden: int = 32,
    vision_depth: int = 1,
    patch: int = 14,
    image_side: int = IMAGE_SIDE,
    image_mean: list[float] | None = None,
    image_std: list[float] | None = None,
    lm_head_std: float | None = None,
    tie_word_embeddings: bool | None = None,
    max_position_embeddings: int = 1024,
    family: str = "qwen2_5_vl",
) -> Path:
    """Tiny Qwen2.5-VL (or Qwen2-VL with ``family="qwen2_vl"``): model + tokenizer + processor."""
    import torch
    import transformers
    from transformers import Qwen2VLImageProcessor, Qwen2VLVideoProcessor
    from trl.chat_template_utils import qwen2_5_vl_chat_template

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    tokenizer = build_qwen_tokenizer(dest, texts or _default_texts(seed), qwen2_5_vl_chat_template)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN_SPECIAL}
    pixels = image_side * image_side
    proc_kw: dict[str, Any] = dict(min_pixels=pixels, max_pixels=pixels, patch_size=patch)
    if image_mean is not None:
        proc_kw.update(image_mean=image_mean, image_std=image_std)
    qwen2 = family == "qwen2_vl"
    processor_cls = transformers.Qwen2VLProcessor if qwen2 else transformers.Qwen2_5_VLProcessor
    processor = processor_cls(
        image_processor=Qwen2VLImageProcessor(**proc_kw),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(min_pixels=pixels, max_pixels=pixels, patch_size=patch),
        chat_template=qwen2_5_vl_chat_template,
    )
    processor.save_pretrained(dest)
    heads = 4
    text_config = {
        "vocab_size": len(tokenizer),
        "hidden_size": hidden,
        "intermediate_size": 2 * hidden,
        "num_hidden_layers": text_layers,
        "num_attention_heads": heads,
        "num_key_value_heads": 2,
        "max_position_embeddings": max_position_embeddings,
        "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": _mrope(hidden // heads)},
        "bos_token_id": ids["<|endoftext|>"],
        "eos_token_id": ids["<|im_end|>"],
        "pad_token_id": ids["<|endoftext|>"],
    }
    if tie_word_embeddings is not None:
        text_config["tie_word_embeddings"] = tie_word_embeddings
    if qwen2:
        vision_config = {
            "depth": vision_depth,
            "embed_dim": vision_hidden,
            "hidden_size": hidden,  # Qwen2-VL's merger maps embed_dim -> the text width
            "mlp_ratio": 2,
            "num_heads": 2,
            "patch_size": patch,
        }
        config_cls, model_cls = transformers.Qwen2VLConfig, transformers.Qwen2VLForConditionalGeneration
    else:
        vision_config = {
            "depth": vision_depth,
            "hidden_size": vision_hidden,
            "intermediate_size": 2 * vision_hidden,
            "num_heads": 2,
            "out_hidden_size": hidden,
            "patch_size": patch,
            "fullatt_block_indexes": list(range(vision_depth)),
            "window_size": 2 * image_side,
        }
        config_cls, model_cls = transformers.Qwen2_5_VLConfig, transformers.Qwen2_5_VLForConditionalGeneration
    config = config_cls(
        text_config=text_config,
        vision_config=vision_config,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    torch.manual_seed(seed)
    return _finish_qwen(model_cls(config), ids, dest, lm_head_std)


def build_tiny_qwen2vl(dest: str | Path, **kwargs: Any) -> Path:
    """Tiny Qwen2-VL (same tokenizer/processor shape as Qwen2.5-VL; PatchMerger projector)."""
    return build_tiny_qwen25vl(dest, family="qwen2_vl", **kwargs)


def build_tiny_qwen3vl(
    dest: str | Path,
    *,
    texts: Sequence[str] | None = None,
    seed: int = 0,
    text_layers: int = 2,
    hidden: int = 64,
    vision_hidden: int = 32,
    vision_depth: int = 2,
    image_side: int = 64,
) -> Path:
    """Tiny Qwen3-VL: 16-px patches (64x64 image -> 4 tokens), DeepStack from vision block 0."""
    import torch
    import transformers
    from transformers import Qwen2VLImageProcessor
    from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor
    from trl.chat_template_utils import qwen3_vl_chat_template

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    tokenizer = build_qwen_tokenizer(dest, texts or _default_texts(seed), qwen3_vl_chat_template)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN_SPECIAL}
    pixels = image_side * image_side
    processor = transformers.Qwen3VLProcessor(
        image_processor=Qwen2VLImageProcessor(min_pixels=pixels, max_pixels=pixels, patch_size=16, merge_size=2),
        tokenizer=tokenizer,
        video_processor=Qwen3VLVideoProcessor(patch_size=16, merge_size=2),
        chat_template=qwen3_vl_chat_template,
    )
    processor.save_pretrained(dest)
    heads, head_dim = 4, hidden // 4
    config = transformers.Qwen3VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": hidden,
            "intermediate_size": 2 * hidden,
            "num_hidden_layers": text_layers,
            "num_attention_heads": heads,
            "num_key_value_heads": 2,
            "head_dim": head_dim,
            "max_position_embeddings": 1024,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 10000.0,
                "mrope_section": _mrope(head_dim),
                "mrope_interleaved": True,
            },
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={
            "depth": vision_depth,
            "hidden_size": vision_hidden,
            "intermediate_size": 2 * vision_hidden,
            "num_heads": 2,
            "out_hidden_size": hidden,
            "patch_size": 16,
            "num_position_embeddings": 16,
            "deepstack_visual_indexes": [0],
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    torch.manual_seed(seed)
    return _finish_qwen(transformers.Qwen3VLForConditionalGeneration(config), ids, dest, None)


def build_tiny_llava(
    dest: str | Path,
    *,
    texts: Sequence[str] | None = None,
    seed: int = 0,
    text_layers: int = 2,
    hidden: int = 64,
    vision_hidden: int = 32,
    image_side: int = IMAGE_SIDE,
    patch: int = 28,
) -> Path:
    """Tiny LLaVA (llava-hf format): CLIP vision tower, 2-layer MLP projector, Llama decoder.

    LLaVA-1.5's layout (LLaVA-Med v1.5's once converted): CLS + patch features of the
    second-to-last vision layer (``vision_feature_layer=-2``, strategy ``default`` drops CLS).
    """
    import torch
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(
        dest,
        texts or _default_texts(seed),
        special_tokens=LLAVA_SPECIAL,
        eos="</s>",
        pad="<pad>",
        bos="<s>",
        unk="<unk>",
        chat_template=LLAVA_CHAT_TEMPLATE,
        extra_special={"image_token": "<image>"},
    )
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in LLAVA_SPECIAL}
    size = {"shortest_edge": image_side}
    crop = {"height": image_side, "width": image_side}
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(size=size, crop_size=crop),
        tokenizer=tokenizer,
        patch_size=patch,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=LLAVA_CHAT_TEMPLATE,
    )
    processor.save_pretrained(dest)
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(
            hidden_size=vision_hidden,
            intermediate_size=2 * vision_hidden,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=image_side,
            patch_size=patch,
        ),
        text_config=LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=hidden,
            intermediate_size=2 * hidden,
            num_hidden_layers=text_layers,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=1024,
            bos_token_id=ids["<s>"],
            eos_token_id=ids["</s>"],
            pad_token_id=ids["<pad>"],
        ),
        image_token_index=ids["<image>"],
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
        projector_hidden_act="gelu",
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config)
    model.generation_config.eos_token_id = ids["</s>"]
    model.generation_config.pad_token_id = ids["<pad>"]
    model.generation_config.bos_token_id = ids["<s>"]
    model.save_pretrained(dest)
    return dest


BUILDERS = {
    "qwen2_vl": build_tiny_qwen2vl,
    "qwen2_5_vl": build_tiny_qwen25vl,
    "qwen3_vl": build_tiny_qwen3vl,
    "llava": build_tiny_llava,
}


def build_tiny(family: str, dest: str | Path, **kwargs: Any) -> Path:
    """Build the tiny model of ``family`` (a key of ``BUILDERS``) in ``dest``."""
    if family not in BUILDERS:
        raise ValueError(f"no tiny builder for family {family!r}; known: {sorted(BUILDERS)}")
    return BUILDERS[family](dest, **kwargs)


# ----- toy data ------------------------------------------------------------------------------------


def make_images(n: int, seed: int = 0, side: int = IMAGE_SIDE) -> list[Any]:
    """n deterministic RGB images: a bright disc on a dark field, moved per image."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    out = []
    for _ in range(n):
        img = Image.new("RGB", (side, side), (rng.randrange(0, 40),) * 3)
        draw = ImageDraw.Draw(img)
        cx, cy, r = rng.randrange(10, side - 10), rng.randrange(10, side - 10), rng.randrange(5, 14)
        shade = rng.randrange(150, 256)
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(shade, shade, shade))
        out.append(img)
    return out


def tiny_records(n: int, seed: int = 0, reports: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """n records ``{"id", "image", "report"}`` (PIL images; toy reports unless given)."""
    images = make_images(n, seed)
    reports = list(reports) if reports is not None else sample_reports(n, seed)
    return [{"id": f"case{i:03d}", "image": images[i], "report": reports[i]} for i in range(n)]


def write_tiny_dataset(dest: str | Path, n: int = 8, *, n_test: int = 2, seed: int = 1, max_chars: int = 60) -> Path:
    """Images under ``dest/images`` and ``dest/data.jsonl`` with a ``split`` field (train/test)."""
    dest = Path(dest)
    (dest / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    for i, r in enumerate(tiny_records(n, seed=seed)):
        name = f"images/{r['id']}.png"
        r["image"].save(dest / name)
        split = "train" if i < n - n_test else "test"
        # short references keep tiny runs fast
        lines.append(json.dumps({"id": r["id"], "image": name, "report": r["report"][:max_chars], "split": split}))
    path = dest / "data.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# ----- toy image-report similarity -----------------------------------------------------------------

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
