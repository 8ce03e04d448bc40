"""The policy: a tiny Qwen2.5-VL with a BPE tokenizer trained on this benchmark's report templates.

Built by the package's one tiny-VLM builder (``trainers.tiny``: real architecture, random weights,
Qwen's special tokens, TRL's Qwen2.5-VL chat template) but sized for the benchmark: 56x56 images cut into 7-px
patches (8x8), merged 2x2 into 16 image tokens so attention maps have a 4x4 grid.
"""

from __future__ import annotations

from pathlib import Path

from experiments.synthetic_cxr import generator

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


def build_policy(dest: str | Path, *, seed: int = 0, hidden: int = 64, layers: int = 2, vision: int = 32) -> Path:
    """Write a random-weight tiny Qwen2.5-VL (model + tokenizer + processor) to ``dest``."""
    from trainers.tiny import build_tiny_qwen25vl

    return build_tiny_qwen25vl(
        dest,
        texts=corpus(seed),
        seed=seed,
        text_layers=layers,
        hidden=hidden,
        vision_hidden=vision,
        vision_depth=2,
        patch=PATCH,
        image_side=generator.SIDE,
        # grayscale images: mean/std of the 8-bit range, not ImageNet's
        image_mean=[0.5] * 3,
        image_std=[0.25] * 3,
        # the stages train LoRA on the LM only, so the output head keeps its init: a head of std 0.4
        # gives pretrained-like logit scales (trainers.tiny explains); still random
        lm_head_std=0.4,
        tie_word_embeddings=False,
        max_position_embeddings=512,
    )
