"""Fingerprint of the study's float math on this machine: a few training steps of its real policy.

    python -m experiments.synthetic_cxr.numerics_check [--steps 6] [--out FILE]

Builds the study's tiny Qwen2.5-VL (``vlm.build_policy``, seed 0) in a temporary folder, takes 8
generator cases through its processor and chat template, and trains every weight for a few AdamW
steps at the SFT learning rate on one thread. It prints (and writes) each step's loss as an exact
hexadecimal float and a SHA-256 of the final weights. Two machines (or one machine and an emulated
processor, ``check_cross_cpu.sh``) whose fingerprints are equal run the study's kernels bit for bit
alike; a single differing bit shows as a different hash.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

from experiments.synthetic_cxr import numerics

numerics.pin_cpu_kernels()  # before torch loads, as in the study


def fingerprint(steps: int = 6, lr: float = 3e-3) -> dict:
    import numpy as np
    import torch
    from PIL import Image
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    from experiments.synthetic_cxr import generator, vlm

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        policy = vlm.build_policy(Path(tmp) / "policy", seed=0)
        processor = AutoProcessor.from_pretrained(policy)
        model = Qwen2_5_VLForConditionalGeneration.from_pretrained(policy, dtype=torch.float32)
    cases = generator.make_cases(8, 4242)
    texts, images = [], []
    for case in cases:
        messages = [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": vlm.PROMPT}]},
            {"role": "assistant", "content": [{"type": "text", "text": f"<report>{case.report}</report>"}]},
        ]
        texts.append(processor.apply_chat_template(messages, tokenize=False))
        images.append(Image.fromarray(np.asarray(case.image, dtype=np.uint8)).convert("RGB"))
    batch = processor(text=texts, images=images, return_tensors="pt", padding=True)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    losses = []
    for _ in range(steps):
        loss = model(**batch, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(float(loss.detach()).hex())
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().numpy().tobytes())
    return {"losses": losses, "weights_sha256": digest.hexdigest(), **numerics.describe()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--out", type=Path, help="also write the fingerprint (JSON) here")
    args = ap.parse_args(argv)
    result = fingerprint(args.steps)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
