"""The visual-grounding task of RadVLM-GRPO in miniature: write the findings' boxes, RL on AP@0.5.

The trainers take one instruction per config, so the task is "give the boxes of the findings"
(every finding of the image, in a fixed order) rather than one named finding per prompt; the
box reward's per-sample AP@0.5 handles several reference boxes. Steps:

1. SFT (trainers' ``sft`` stage) on box strings ``[x1, y1, x2, y2] ...`` (normalised, 2 decimals);
2. plain GRPO with the project's box reward (``radeval.rewards.boxes.box_ap50_reward``) through
   ``trainers.grpo.ValorGRPOTrainer(advantage="trl")`` + LoRA, built from the trainers' helpers;
3. per-sample AP@0.5 on held-out images with findings, greedy, before and after RL.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from experiments.synthetic_cxr import generator
from experiments.synthetic_cxr.pipeline import CONFIGS

PROMPT = "Give the boxes of the findings as [x1, y1, x2, y2]."


def box_text(boxes: dict[str, list[float]]) -> str:
    return " ".join("[" + ", ".join(f"{v:.2f}" for v in boxes[k]) + "]" for k in generator.ORDER if k in boxes)


def write_box_data(cases_path: Path, dest: Path) -> Path:
    rows = [json.loads(line) for line in Path(cases_path).read_text().splitlines() if line.strip()]
    root = Path(cases_path).parent
    with dest.open("w", encoding="utf-8") as fh:
        for r in rows:
            if r["boxes"]:
                ordered = [r["boxes"][k] for k in generator.ORDER if k in r["boxes"]]
                fh.write(
                    json.dumps(
                        {
                            "id": r["id"],
                            "image": str(root / r["image"]),
                            "report": box_text(r["boxes"]),
                            "boxes": ordered,
                            "split": r["split"],
                        }
                    )
                    + "\n"
                )
    return dest


def ap_of(pred_path: Path, box_path: Path) -> dict[str, Any]:
    from radeval.rewards.boxes import average_precision, parse_boxes

    refs = {}
    for line in box_path.read_text().splitlines():
        r = json.loads(line)
        refs[r["id"]] = [tuple(b) for b in r["boxes"]]
    aps = []
    for line in pred_path.read_text().splitlines():
        p = json.loads(line)
        aps.append(average_precision(parse_boxes(p["completion"]), refs[p["id"]], 0.5))
    a = np.asarray(aps)
    rng = np.random.default_rng(0)
    boots = [a[rng.integers(0, a.size, a.size)].mean() for _ in range(1000)]
    return {
        "ap50": float(a.mean()),
        "ci95": [float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))],
        "n": int(a.size),
        "per_sample": aps,
    }


def run_box_task(root: Path, seed: int, sft_steps: int, rl_steps: int, n_eval: int) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    from trl import GRPOConfig

    from experiments.synthetic_cxr.vlm import build_policy
    from radeval.rewards.boxes import box_ap50_reward
    from trainers.api import generate, train
    from trainers.config import load_config
    from trainers.data import grpo_rows, load_records, to_dataset
    from trainers.grpo import ValorGRPOTrainer
    from trainers.models import load_model
    from trainers.stages import _finish, common_args, lora_config

    t0 = time.time()
    work = root / "runs" / f"boxes-s{seed}"
    work.mkdir(parents=True, exist_ok=True)
    box_path = write_box_data(root / "data" / "cases.jsonl", work / "boxes.jsonl")
    base = build_policy(work / "base", seed=seed)
    common = [
        f"data.path={box_path}",
        f"data.prompt={PROMPT}",
        f"train.seed={seed}",
        f"model.name_or_path={base}",
        "data.eval_split=test",
        f"data.max_samples={n_eval}",
    ]
    sft = train(
        "sft",
        CONFIGS / "sft.yaml",
        [*common, f"train.output_dir={work / 'sft'}", f"train.max_steps={sft_steps}", "data.max_samples=null"],
    )
    out: dict[str, Any] = {}
    pred = generate(
        CONFIGS / "sft.yaml",
        [*common, f"train.output_dir={work / 'sft'}"],
        checkpoint=sft.final_dir,
        split="test",
        output=work / "pred-sft.jsonl",
    )
    out["before_rl"] = ap_of(Path(pred), box_path)
    cfg = load_config(
        CONFIGS / "grpo.yaml",
        [
            *common,
            f"train.output_dir={work / 'rl'}",
            f"model.init_from={sft.final_dir}",
            f"train.max_steps={rl_steps}",
            "data.max_samples=null",
        ],
        stage="grpo",
    )
    records = load_records(cfg.data)
    by_id = {json.loads(x)["id"]: json.loads(x)["boxes"] for x in box_path.read_text().splitlines()}
    rows = list(grpo_rows(records, cfg.data.prompt))
    for r in rows:
        r["boxes"] = by_id[r["id"]]
    model, processor = load_model(str(sft.final_dir), dtype="float32", use_cpu=True)
    g = cfg.grpo
    args = GRPOConfig(
        **common_args(cfg, model),
        num_generations=g.num_generations,
        beta=g.beta,
        epsilon=g.epsilon,
        loss_type=g.loss_type,
        scale_rewards="group",
        temperature=g.temperature,
        max_completion_length=g.max_completion_length,
        log_completions=False,
    )
    trainer = ValorGRPOTrainer(
        model=model,
        reward_funcs=[box_ap50_reward],
        args=args,
        train_dataset=to_dataset(rows),
        processing_class=processor,
        peft_config=lora_config(cfg, model),
        advantage="trl",
    )
    trainer.train()
    rl = _finish(cfg, trainer, 0)
    pred = generate(
        CONFIGS / "sft.yaml",
        [*common, f"train.output_dir={work / 'rl'}"],
        checkpoint=rl.final_dir,
        split="test",
        output=work / "pred-rl.jsonl",
    )
    out["after_rl"] = ap_of(Path(pred), box_path)
    a, b = np.asarray(out["before_rl"]["per_sample"]), np.asarray(out["after_rl"]["per_sample"])
    rng = np.random.default_rng(0)
    d = b - a
    boots = [d[rng.integers(0, d.size, d.size)].mean() for _ in range(2000)]
    out["delta"] = {
        "mean": float(d.mean()),
        "ci95": [float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))],
    }
    rewards = [h.get("rewards/radeval_box_ap50/mean") for h in trainer.state.log_history]
    out["reward_curve"] = [x for x in rewards if x is not None]
    out["steps"] = {"sft": sft_steps, "rl": rl_steps}
    out["wall_s"] = round(time.time() - t0, 1)
    for k in ("before_rl", "after_rl"):
        out[k].pop("per_sample")
    (work / "boxes_result.json").write_text(json.dumps(out, indent=2) + "\n")
    return out


if __name__ == "__main__":  # python -m experiments.synthetic_cxr.grounding_task OUT [sft_steps rl_steps n_eval]
    import sys

    from experiments.synthetic_cxr.pipeline import ensure_grounding_registered

    ensure_grounding_registered()
    a = sys.argv[1:]
    print(json.dumps(run_box_task(Path(a[0]).resolve(), 0, *(int(x) for x in (a[1:4] or [150, 30, 200])))))
