"""Real-size dry runs of the VALOR stages on CPU (issue 13): real widths, 2 decoder + 2 vision layers.

For each family the published config of the 7-8B model is typed in below with its real hidden
sizes, heads, vocabulary and vision settings, but only 2 decoder and 2 vision layers (layer-index
settings remapped to the layers kept); weights are random. The tokenizer/processor files come from
``trainers.tiny`` (their token ids are < the real vocabulary), with the processor at one 448x448
image. This catches wrong module paths and dtype/shape assumptions that tiny widths hide.

fp32 (default): one optimizer step of sft, text and visual, each in its own process (peak RSS per
stage), G = 2, completions of 16 tokens, β = 0 (no second model in memory); asserts the trainable
sets, finite losses and that the projector changed. ``--bf16``: loads in bf16, checks the
trainable set is fp32 and the frozen rest bf16, and runs one forward + backward on 16 text tokens
(bf16 matmul is unaccelerated on some CPUs: slow).

    flock /tmp/radeval-measure.lock env PYTHONPATH=$PWD HF_HUB_OFFLINE=1 OMP_NUM_THREADS=2 \\
        python benchmarks/bench_trainer_real_size.py --family qwen2_5_vl [--bf16]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

#: published configs (Qwen/Qwen2.5-VL-7B-Instruct, llava-hf/llava-1.5-7b-hf, Qwen/Qwen3-VL-8B-Instruct),
#: cut to 2 decoder + 2 vision layers
REAL = {
    "qwen2_5_vl": {
        "text_config": {
            "hidden_size": 3584,
            "intermediate_size": 18944,
            "num_attention_heads": 28,
            "num_key_value_heads": 4,
            "vocab_size": 152064,
            "max_position_embeddings": 128000,
            "rms_norm_eps": 1e-6,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]},
            "tie_word_embeddings": False,
        },
        "vision_config": {
            "hidden_size": 1280,
            "intermediate_size": 3420,
            "num_heads": 16,
            "out_hidden_size": 3584,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 112,
            # the published [7, 15, 23, 31]: every 8th block is full attention, the last one
            # included; of the 2 kept, block 1 plays block 31
            "fullatt_block_indexes": [1],
        },
    },
    "llava": {
        # LLaVA-1.5-7B: Vicuna-7B (Llama-2) text, CLIP ViT-L/14-336 vision, 2-layer MLP projector
        "text_config": {
            "hidden_size": 4096,
            "intermediate_size": 11008,
            "num_attention_heads": 32,
            "num_key_value_heads": 32,
            "vocab_size": 32064,
            "max_position_embeddings": 4096,
            "rms_norm_eps": 1e-5,
        },
        "vision_config": {
            "hidden_size": 1024,
            "intermediate_size": 4096,
            "num_attention_heads": 16,
            "image_size": 336,
            "patch_size": 14,
            "projection_dim": 768,
        },
        # vision_feature_layer -2 (second-to-last hidden state) keeps its meaning with 2 layers
        "vision_feature_layer": -2,
    },
    "qwen3_vl": {
        "text_config": {
            "hidden_size": 4096,
            "intermediate_size": 12288,
            "num_attention_heads": 32,
            "num_key_value_heads": 8,
            "head_dim": 128,
            "vocab_size": 151936,
            "max_position_embeddings": 262144,
            "rms_norm_eps": 1e-6,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 5000000.0,
                "mrope_section": [24, 20, 20],
                "mrope_interleaved": True,
            },
        },
        "vision_config": {
            "hidden_size": 1152,
            "intermediate_size": 4304,
            "num_heads": 16,
            "out_hidden_size": 4096,
            "patch_size": 16,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "num_position_embeddings": 2304,
            # the published [8, 16, 24] of 27 blocks: DeepStack taps intermediate blocks; kept: block 0
            "deepstack_visual_indexes": [0],
        },
        "tie_word_embeddings": False,
    },
}


def ids_similarity(prompts=None, completions=(), completion_ids=None, **kwargs) -> list[float]:
    """Stage visual's S_i for the dry run: a hash of the completion's token ids.

    A random model with the real vocabulary samples mostly ids the tiny tokenizer cannot decode,
    so every completion's text (and any text-based similarity) is equal and RankNorm gives 0:
    nothing would train. Distinct id sequences get distinct S_i, so r_vis (Eq. 7) separates them.
    """
    ids = completion_ids or [[] for _ in completions]
    return [(sum((i + 1) * (t + 7) for i, t in enumerate(seq)) % 9973) / 9973 for seq in ids]


def build(family: str, dest: Path) -> int:
    """Tiny tokenizer/processor + the real-width 2+2-layer model in ``dest``; returns the parameter count."""
    import torch
    import transformers

    from trainers.tiny import build_tiny

    build_tiny(family, dest)
    cfg = transformers.AutoConfig.from_pretrained(dest)
    spec = REAL[family]
    for key, value in spec["text_config"].items():
        setattr(cfg.text_config, key, value)
    cfg.text_config.num_hidden_layers = 2
    for key, value in spec["vision_config"].items():
        setattr(cfg.vision_config, key, value)
    if family == "llava":
        cfg.vision_config.num_hidden_layers = 2
        cfg.vision_feature_layer = spec["vision_feature_layer"]
    else:
        cfg.vision_config.depth = 2
    if "tie_word_embeddings" in spec:
        cfg.tie_word_embeddings = spec["tie_word_embeddings"]
    # the tiny config carries its own head_dim (16); all three real models use 128
    cfg.text_config.head_dim = 128
    cls = {
        "qwen2_5_vl": transformers.Qwen2_5_VLForConditionalGeneration,
        "qwen3_vl": transformers.Qwen3VLForConditionalGeneration,
        "llava": transformers.LlavaForConditionalGeneration,
    }[family]
    torch.manual_seed(0)
    model = cls(cfg)
    n = sum(p.numel() for p in model.parameters())
    model.save_pretrained(dest)
    if family == "llava":  # the processor must match CLIP-336: 24x24 patches of 14
        proc = transformers.AutoProcessor.from_pretrained(dest)
        proc.image_processor.size = {"shortest_edge": 336}
        proc.image_processor.crop_size = {"height": 336, "width": 336}
        proc.patch_size = 14
        proc.save_pretrained(dest)
    return n


def _child(family: str, stage: str, model: str, data: str, out: str, init_from: str) -> None:
    import torch
    from transformers import TrainerCallback

    import trainers
    from trainers.api import train
    from trainers.models import FAMILIES

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    cfg_dir = Path(trainers.__file__).parent / "configs" / "tiny"
    rec: dict = {}

    class Probe(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kw):
            rec["trainable"] = sorted(n for n, p in model.named_parameters() if p.requires_grad)
            rec["trainable_n"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
            rec["trainable_dtypes"] = sorted({str(p.dtype) for p in model.parameters() if p.requires_grad})
            rec["before"] = {
                n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad and stage == "visual"
            }
            rec["t0"] = time.perf_counter()

        def on_step_end(self, args, state, control, model=None, **kw):
            rec["step_s"] = time.perf_counter() - rec["t0"]
            rec["changed"] = all(
                not torch.equal(p.detach(), rec["before"][n]) for n, p in model.named_parameters() if n in rec["before"]
            )

    overrides = [
        f"model.name_or_path={model}",
        f"data.path={data}",
        f"train.output_dir={out}",
        "train.max_steps=1",
        "train.save_steps=0",
        "train.batch_size=1",
        "train.per_device_batch_size=1",
        "model.max_pixels=200704",
        "model.min_pixels=200704",
        # SFT: the image's tokens (LLaVA-336: 576) + prompt + report must fit untruncated
        "train.max_length=1024",
        # the stage configs' LoRA (rank 16, alpha 32), not the tiny tests' rank 4
        "lora.r=16",
        "lora.alpha=32",
    ]
    if stage != "sft":
        overrides += [
            "grpo.num_generations=2",
            "grpo.max_completion_length=16",
            "grpo.max_prompt_length=1024",
            "grpo.beta=0.0",
            "train.per_device_batch_size=2",
        ]
    if stage == "visual":
        overrides.append("rewards.visual_reward=benchmarks.bench_trainer_real_size:ids_similarity")
    if init_from != "-":
        overrides.append(f"model.init_from={init_from}")
    res = train(stage, cfg_dir / f"{stage}.yaml", overrides, callbacks=[Probe()])
    losses = [h["loss"] for h in res.log_history if "loss" in h]
    proj = FAMILIES[family][0]
    if stage == "visual":
        ok_set = all(proj in n or "deepstack_merger" in n for n in rec["trainable"])
    else:
        ok_set = all("lora_" in n and ".language_model." in n for n in rec["trainable"])
    result = {
        "stage": stage,
        "step_s": rec["step_s"],
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "trainable_n": rec["trainable_n"],
        "trainable_dtypes": rec["trainable_dtypes"],
        "trainable_set_ok": ok_set,
        "losses_finite": bool(losses) and all(math.isfinite(x) for x in losses),
        "projector_changed": rec.get("changed") if stage == "visual" else None,
        "final": str(res.final_dir),
    }
    print("RESULT " + json.dumps(result))


def _bf16_check(family: str, model_dir: str) -> dict:
    """bf16 load; stage visual's and stage text's trainable sets and dtypes; fwd + bwd on 16 tokens."""
    import torch
    from peft import LoraConfig, get_peft_model

    from trainers.config import LM_PROJECTIONS
    from trainers.models import freeze_all_but, load_model, lora_target_regex, projector_parts
    from trainers.precision import upcast_trainable

    t = time.perf_counter()
    model, processor = load_model(model_dir, dtype="bfloat16", use_cpu=True)
    load_s = time.perf_counter() - t
    parts = projector_parts(model)
    freeze_all_but(model, parts)
    upcast_trainable(model, parts)
    visual = {
        "trainable_n": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "trainable_dtypes": sorted({str(p.dtype) for p in model.parameters() if p.requires_grad}),
        "frozen_dtypes": sorted({str(p.dtype) for p in model.parameters() if not p.requires_grad}),
    }
    for p in model.parameters():
        p.requires_grad = False
    lora = LoraConfig(
        r=16, lora_alpha=32, target_modules=lora_target_regex(model, LM_PROJECTIONS), task_type="CAUSAL_LM"
    )
    model = get_peft_model(model, lora)
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    tok = getattr(processor, "tokenizer", processor)
    ids = tok("FINDINGS: The lungs are clear. IMPRESSION: Normal.", return_tensors="pt")["input_ids"][:, :16]
    t = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(input_ids=ids, labels=ids)
    out.loss.backward()
    return {
        "load_s": load_s,
        "fwd_bwd_s": time.perf_counter() - t,
        "tokens": int(ids.shape[1]),
        "visual": visual,
        "text_trainable_n": sum(p.numel() for p in trainable.values()),
        "text_trainable_dtypes": sorted({str(p.dtype) for p in trainable.values()}),
        "text_all_lora_on_lm": all("lora_" in n and ".language_model." in n for n in trainable),
        "loss_finite": bool(torch.isfinite(out.loss)),
        "grads_finite": all(p.grad is not None and bool(torch.isfinite(p.grad).all()) for p in trainable.values()),
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--family", choices=sorted(REAL), required=True)
    ap.add_argument("--bf16", action="store_true", help="only the bf16 load / dtype / fwd+bwd check")
    ap.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    ap.add_argument("--bf16-child", nargs=1, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(*args.child)
        return 0
    if args.bf16_child:
        print("RESULT " + json.dumps(_bf16_check(args.family, args.bf16_child[0])))
        return 0
    root = Path(tempfile.mkdtemp(prefix=f"radeval-realsize-{args.family}-"))
    try:
        t = time.perf_counter()
        n_params = build(args.family, root / "model")
        from PIL import Image

        from trainers.tiny import write_tiny_dataset

        data = write_tiny_dataset(root, 3, n_test=1)
        for p in (root / "images").iterdir():  # one 448x448 image per record
            Image.open(p).convert("RGB").resize((448, 448)).save(p)
        print(f"{args.family}: built {n_params / 1e9:.2f} B parameters in {time.perf_counter() - t:.0f} s", flush=True)
        runs = []
        init = "-"
        env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
        if args.bf16:
            cmd = [sys.executable, __file__, "--family", args.family, "--bf16-child", str(root / "model")]
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
            if not line:
                print(proc.stderr[-4000:], file=sys.stderr)
                return 1
            print(f"| {args.family} | {n_params / 1e9:.2f} B | bf16 | " + line[-1][7:] + " |")
            return 0
        for stage in ("sft", "text", "visual"):
            cmd = [
                sys.executable,
                __file__,
                "--family",
                args.family,
                "--child",
                args.family,
                stage,
                str(root / "model"),
                str(data),
                str(root / stage),
                init,
            ]
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
            if proc.returncode or not line:
                print(proc.stderr[-4000:], file=sys.stderr)
                return 1
            res = json.loads(line[-1][7:])
            runs.append(res)
            init = res["final"]
            print(f"  {stage}: {res}", flush=True)
        print("\n| model | params (as built) | stage | step time (s) | peak RSS (GB) | trainable params | checks |")
        print("|---|---:|---|---:|---:|---:|---|")
        for r in runs:
            checks = (
                f"set ok={r['trainable_set_ok']}, finite loss={r['losses_finite']}, {','.join(r['trainable_dtypes'])}"
            )
            if r["projector_changed"] is not None:
                checks += f", projector changed={r['projector_changed']}"
            print(
                f"| {args.family} | {n_params / 1e9:.2f} B | {r['stage']} | {r['step_s']:.1f} | "
                f"{r['peak_rss_gb']:.1f} | {r['trainable_n']:,} | {checks} |"
            )
        bad = [r for r in runs if not (r["trainable_set_ok"] and r["losses_finite"] and r["peak_rss_gb"] <= 18)]
        bad += [r for r in runs if r["stage"] == "visual" and not r["projector_changed"]]
        return 1 if bad else 0
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
