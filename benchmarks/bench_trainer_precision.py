"""Do bf16-loaded models actually train at the paper's lr 1e-6? (issue 13, "Precision")

Builds the tiny Qwen2.5-VL, loads it in bfloat16 (``model.dtype=bfloat16``), and runs 3 optimizer
steps of stage visual (projector) and of stage text (LoRA) at lr 1e-6. Prints, per stage, the share
of trained elements that changed

* in the parameters the optimizer holds (its ``param_groups``) against the values at train begin,
* in the saved checkpoint (stage visual: the projector in ``final/model.safetensors``; stage text:
  the fp32 adapter in ``final/adapter`` when present, and the merged LoRA-targeted weights)
  against the start model.

An Adam step moves each element by ~lr, below bf16's resolution (2^-8 relative) for weights of
magnitude > ~1e-4: trained in bf16, almost nothing changes. Runs against any checkout (it only uses
``trainers.api.train``), so the same script measures the code before and after the fix:

    PYTHONPATH=$PWD HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 python benchmarks/bench_trainer_precision.py
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _tiny():
    try:  # this branch: the builder lives in the package
        from trainers import tiny

        return tiny.build_tiny_qwen25vl, tiny.tiny_records, "trainers.tiny:toy_similarity"
    except ImportError:  # older checkouts: the test helper
        from tests import tiny_vlm

        return tiny_vlm.build_tiny_qwen25vl, tiny_vlm.tiny_records, "tests.tiny_vlm:toy_similarity"


def _snapshot_callback(store: dict):
    import torch
    from transformers import TrainerCallback

    class Snap(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kw):
            store["before"] = {n: p.detach().float().clone() for n, p in model.named_parameters() if p.requires_grad}

        def on_train_end(self, args, state, control, model=None, optimizer=None, **kw):
            names = {id(p): n for n, p in model.named_parameters()}
            held = {}
            for group in optimizer.param_groups:
                for p in group["params"]:
                    held[names.get(id(p), f"?{id(p)}")] = p.detach().clone()
            store["optimizer"] = held
            store["dtypes"] = sorted({str(p.dtype) for p in held.values()})
            store["torch"] = torch

    return Snap()


def _share(before: dict, after: dict, keep=lambda n: True) -> tuple[float, int]:
    changed = total = 0
    for n, b in before.items():
        if not keep(n) or n not in after:
            continue
        a = after[n].float()
        changed += int((a != b).sum())
        total += b.numel()
    return (changed / total if total else float("nan")), total


def _strip(name: str) -> str:
    """peft/transformers runtime names → checkpoint keys (Qwen2.5-VL hub layout)."""
    name = name.replace("base_model.model.", "")
    name = name.replace("model.language_model.", "model.").replace("model.visual.", "visual.")
    return name


def main() -> int:
    import torch
    from safetensors.torch import load_file

    from trainers.api import train

    torch.set_num_threads(1)
    build, records, sim = _tiny()
    tmp = Path(tempfile.mkdtemp(prefix="radeval-prec-"))
    model_dir = build(tmp / "model")
    (tmp / "images").mkdir()
    lines = []
    for r in records(8, seed=1):
        r["image"].save(tmp / "images" / f"{r['id']}.png")
        lines.append(json.dumps({"id": r["id"], "image": f"images/{r['id']}.png", "report": r["report"][:60]}))
    (tmp / "data.jsonl").write_text("\n".join(lines) + "\n")
    base = load_file(model_dir / "model.safetensors")
    import trainers

    # the configs of the checkout under test (PYTHONPATH decides which)
    cfg_dir = Path(trainers.__file__).parent / "configs" / "tiny"
    common = [
        f"model.name_or_path={model_dir}",
        f"data.path={tmp / 'data.jsonl'}",
        "model.dtype=bfloat16",
        "train.learning_rate=1e-6",
        "train.max_steps=3",
        "train.save_steps=0",
    ]
    rows = []
    for stage in ("visual", "text"):
        store: dict = {}
        extra = [f"train.output_dir={tmp / stage}"]
        if stage == "visual":
            extra.append(f"rewards.visual_reward={sim}")
        res = train(stage, cfg_dir / f"{stage}.yaml", common + extra, callbacks=[_snapshot_callback(store)])
        before, held = store["before"], store["optimizer"]
        opt_share, n = _share(before, held)
        saved_final = res.final_dir
        saved = load_file(saved_final / "model.safetensors")
        if stage == "visual":
            keys = {n: _strip(n) for n in before}
            ckpt = {n: saved[k] for n, k in keys.items() if k in saved}
            # against the values at train begin (the start model as loaded, bf16-rounded)
            ck_share, ck_n = _share(before, ckpt)
            ck_dtype = sorted({str(t.dtype) for t in ckpt.values()})
            what = "projector in final/model.safetensors"
        else:
            adapter = saved_final / "adapter" / "adapter_model.safetensors"
            if adapter.is_file():
                ad = load_file(adapter)
                # adapter keys: base_model.model.<module>.lora_X.weight (no adapter name)
                ad_by = {
                    k.replace(".weight", ".default.weight").replace("base_model.model.", ""): v for k, v in ad.items()
                }
                ckpt = {
                    n: ad_by[n.replace("base_model.model.", "")]
                    for n in before
                    if n.replace("base_model.model.", "") in ad_by
                }
                ck_share, ck_n = _share(before, ckpt) if ckpt else (float("nan"), 0)
                # lora_B starts at 0 and lora_A is random: compare to the values at train begin
                ck_dtype = sorted({str(t.dtype) for t in ckpt.values()})
                what = "LoRA tensors in final/adapter"
            else:
                ck_share, ck_n, ck_dtype, what = float("nan"), 0, [], "no adapter saved"
            # merged checkpoint: every LoRA-targeted base weight should have moved
            targets = {_strip(n.split(".lora_")[0]) + ".weight" for n in before if ".lora_" in n}
            targets = {t.replace(".base_layer", "") for t in targets}
            # the start model as stage text loaded it (rounded to bf16)
            m_start = {t: base[t].to(torch.bfloat16).float() for t in targets if t in base}
            m_after = {t: saved[t] for t in targets if t in saved}
            m_share, m_n = _share(m_start, m_after)
            rows.append(
                (
                    stage,
                    "merged LoRA-targeted weights in final/model.safetensors",
                    m_share,
                    m_n,
                    sorted({str(t.dtype) for t in m_after.values()}),
                )
            )
        rows.append((stage, f"optimizer params ({', '.join(store['dtypes'])})", opt_share, n, store["dtypes"]))
        rows.append((stage, what, ck_share, ck_n, ck_dtype))
    print("\n| stage | where | elements | changed share | dtype |\n|---|---|---:|---:|---|")
    for stage, what, share, n, dt in rows:
        print(f"| {stage} | {what} | {n} | {share:.2%} | {', '.join(dt)} |")
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
