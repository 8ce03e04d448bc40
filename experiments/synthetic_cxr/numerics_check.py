"""Fingerprint of the study's float math on this machine: a few training steps of its real policy.

    python -m experiments.synthetic_cxr.numerics_check [--steps 6] [--out FILE]

Builds the study's tiny Qwen2.5-VL (``vlm.build_policy``, seed 0) in a temporary folder, takes 8
generator cases through its processor and chat template, and trains every weight for a few steps at
the SFT learning rate on one thread with the optimizer the study's trainers use (transformers' default:
fused AdamW) and the Trainer's gradient clipping; then samples two completions with top-p as the GRPO
stages do, and takes two policy-gradient steps on them with the math of TRL's GRPO loss. It prints
(and writes) each step's loss as an exact hexadecimal float and SHA-256s of the weights after SFT, of
the sampled tokens and of the weights after the GRPO steps. Two machines (or one machine and an emulated
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
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration, Trainer, TrainingArguments

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
    # the optimizer the study's trainers get from transformers (fused AdamW: its sqrt is torch's own
    # vector kernel; the unfused AdamW's sqrt goes through MKL's vector math, which differs on AMD)
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(output_dir=tmp, use_cpu=True, learning_rate=lr, report_to=[])
    optimizer_cls, optimizer_kw = Trainer.get_optimizer_cls_and_kwargs(args)
    optimizer = optimizer_cls(model.parameters(), **optimizer_kw)
    model.train()
    losses = []
    for _ in range(steps):
        loss = model(**batch, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)  # as the Trainer does
        optimizer.step()
        optimizer.zero_grad()
        losses.append(float(loss.detach()).hex())
    digest = _weights_sha256(model)
    # sampling, as the GRPO stages generate: softmax, top-p and the seeded multinomial draw
    model.eval()
    prompt = processor(
        text=[t.split("<report>")[0] for t in texts[:2]], images=images[:2], return_tensors="pt", padding=True
    )
    torch.manual_seed(0)
    with torch.no_grad():
        sampled = model.generate(
            **prompt, do_sample=True, top_p=0.9, max_new_tokens=12, pad_token_id=processor.tokenizer.pad_token_id
        )
    grpo_losses = _grpo_steps(model, prompt, sampled, optimizer, args.max_grad_norm)
    return {
        "losses": losses,
        "weights_sha256": digest,
        "sampled_sha256": hashlib.sha256(sampled.numpy().tobytes()).hexdigest(),
        "grpo_losses": grpo_losses,
        "grpo_weights_sha256": _weights_sha256(model),
        "optimizer": f"{optimizer_cls.__name__}({', '.join(f'{k}={v}' for k, v in sorted(optimizer_kw.items()))})",
        **numerics.describe(),
    }


def _weights_sha256(model) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _grpo_steps(
    model, prompt, sampled, optimizer, max_grad_norm: float, steps: int = 2, beta: float = 0.04
) -> list[str]:
    """A few policy-gradient steps on the sampled completions with the math of TRL's GRPO loss: token
    log-probs (TRL's ``selective_log_softmax``), the ratio exp(logp - logp_old) and the k3 KL
    exp(ref - logp) - (ref - logp) - 1. ``torch.exp`` and ``log`` on tensors run through MKL's vector
    math, whose code path depends on the processor: this is where those kernels enter the fingerprint."""
    import torch
    from trl.trainer.utils import selective_log_softmax

    start = prompt["input_ids"].shape[1]
    completion = sampled[:, start:].clone()
    # a random policy can sample the image placeholder token; it would ask for image features again
    for special in (model.config.image_token_id, model.config.video_token_id):
        completion[completion == special] = 0
    sampled = torch.cat([sampled[:, :start], completion], dim=1)
    inputs = {k: v for k, v in prompt.items() if k not in ("input_ids", "attention_mask")}
    if "mm_token_type_ids" in inputs:  # per prompt token; the completion's tokens are text (0)
        inputs["mm_token_type_ids"] = torch.cat([inputs["mm_token_type_ids"], torch.zeros_like(completion)], dim=1)
    attention = torch.cat([prompt["attention_mask"], torch.ones_like(completion)], dim=1)
    advantages = torch.tensor([[1.0], [-1.0]])

    def token_logps():
        logits = model(input_ids=sampled, attention_mask=attention, **inputs).logits[:, start - 1 : -1]
        return selective_log_softmax(logits, completion)

    model.train()
    with torch.no_grad():
        ref = token_logps()
    losses = []
    for _ in range(steps):
        logps = token_logps()
        ratio = torch.exp(logps - logps.detach())
        kl = torch.exp(ref - logps) - (ref - logps) - 1
        loss = (-ratio * advantages + beta * kl).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
        optimizer.step()
        optimizer.zero_grad()
        losses.append(float(loss.detach()).hex())
    return losses


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
