"""One chain per (regime, seed): the three VALOR stages, their controls, and their evaluation.

Checkpoints of a chain (all with the project's trainers, ``trainers.train``):

* ``sft``        SFT warm-up on the regime's targets;
* ``sft_more``   control: SFT continued for the CPU time stages text + visual took;
* ``grpo``       control: plain GRPO (TRL advantages, no clinical term) from ``sft``, as many
                 optimizer steps as text + visual together;
* ``text``       stage text (R_text with the rule-based CheXpert term, RankNorm);
* ``text_more``  control: stage text continued for as many steps as stage visual takes;
* ``visual``     stage visual (projector only, λ_vis = 0.5, expert similarity ranks);
* ``visual_l0``  sweep: stage visual with λ_vis = 0 (projector-only RL on R_text alone);
* ``visual_l1``, ``text_k1``, ``text_k20`` (``Budget.full_sweeps``): λ_vis = 1 and k_clin = 1 / 20.

Regimes: ``clean`` trains on complete reports; ``under`` trains SFT and the text reward on
reports that omit a share of the present findings (``report_under``). Evaluation always uses
the complete reports of the held-out split.
"""

from __future__ import annotations

import json
import os
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CONFIGS = HERE / "configs"
GROUNDING_KEY = "grounding_similarity"
REWARD_FACTORY = "experiments.synthetic_cxr.expert:make_similarity_reward"


def ensure_grounding_registered() -> None:
    """Register radeval's grounding metric if the registry lacks it (a runtime register(), not an edit)."""
    from radeval import registry

    if "grounding" not in registry.specs():
        registry.register(
            registry.MetricSpec(
                "grounding",
                "radeval.metrics.grounding:Grounding",
                (GROUNDING_KEY,),
                "cosine similarity of image and report in a frozen open_clip expert",
                extra="grounding",
            )
        )


@dataclass
class Budget:
    """Step counts of one chain (``smoke`` shrinks everything)."""

    sft_steps: int = 150
    text_steps: int = 40
    visual_steps: int = 40
    n_test: int = 500
    sampled: bool = True
    sweep_lambda0: bool = True
    #: the sweeps cut for time in the default run: λ_vis = 1.0 and k_clin ∈ {1, 20} (5 is stage text)
    full_sweeps: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def _cpu() -> float:
    """CPU seconds of this process and its finished children (wall time is inflated on a shared box)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _common(data_path: Path, report_field: str, seed: int, out: Path) -> list[str]:
    from experiments.synthetic_cxr.vlm import PROMPT

    return [
        f"data.path={data_path}",
        f"data.report_field={report_field}",
        "data.split=train",
        "data.eval_split=test",
        f"data.prompt={PROMPT}",
        f"train.seed={seed}",
        f"train.output_dir={out}",
    ]


def _stage(stage: str, config: str, overrides: list[str], log: dict, name: str, visual=None) -> Path:
    from trainers.api import train

    t0, c0 = time.time(), _cpu()
    res = train(stage, CONFIGS / config, overrides, visual_reward=visual)
    log[name] = {
        "stage": stage,
        "steps": res.global_step,
        "wall_s": round(time.time() - t0, 1),
        "cpu_s": round(_cpu() - c0, 1),
        "last_k": res.last_k,
    }
    res.trainer = None
    return res.final_dir


def run_chain(root: Path, regime: str, seed: int, budget: Budget, expert_dir: Path) -> dict[str, Any]:
    """Train every checkpoint of one chain and evaluate it; returns a JSON-able summary."""
    import torch

    torch.set_num_threads(1)
    ensure_grounding_registered()
    from experiments.synthetic_cxr.vlm import build_policy

    data_path = root / "data" / "cases.jsonl"
    run_dir = root / "runs" / f"{regime}-s{seed}"
    run_dir.mkdir(parents=True, exist_ok=True)
    field_ = "report" if regime == "clean" else "report_under"
    log: dict[str, Any] = {}
    base = build_policy(run_dir / "base", seed=seed)
    ck: dict[str, Path] = {}

    def ov(name: str, init: Path, steps: int, *extra: str) -> list[str]:
        return [
            *_common(data_path, field_, seed, run_dir / name),
            f"model.name_or_path={base}",
            f"model.init_from={init}",
            f"train.max_steps={steps}",
            *extra,
        ]

    ck["sft"] = _stage("sft", "sft.yaml", ov("sft", base, budget.sft_steps), log, "sft")
    ck["text"] = _stage("text", "text.yaml", ov("text", ck["sft"], budget.text_steps), log, "text")
    reward = [
        f"rewards.visual_reward={REWARD_FACTORY}",
        "rewards.visual_reward_kwargs=" + json.dumps({"expert_dir": str(expert_dir)}),
    ]
    ck["visual"] = _stage(
        "visual", "visual.yaml", ov("visual", ck["text"], budget.visual_steps, *reward), log, "visual"
    )
    # controls, matched in optimizer steps (GRPO) or CPU time (SFT)
    ck["text_more"] = _stage("text", "text.yaml", ov("text_more", ck["text"], budget.visual_steps), log, "text_more")
    ck["grpo"] = _stage(
        "grpo", "grpo.yaml", ov("grpo", ck["sft"], budget.text_steps + budget.visual_steps), log, "grpo"
    )
    sft_cpu_per_step = log["sft"]["cpu_s"] / max(1, log["sft"]["steps"])
    rl_cpu = log["text"]["cpu_s"] + log["visual"]["cpu_s"]
    more = max(1, round(rl_cpu / sft_cpu_per_step))
    log["sft_more_matching"] = {
        "rl_cpu_s": round(rl_cpu, 1),
        "sft_cpu_s_per_step": round(sft_cpu_per_step, 3),
        "steps": more,
    }
    ck["sft_more"] = _stage("sft", "sft.yaml", ov("sft_more", ck["sft"], more), log, "sft_more")
    if budget.sweep_lambda0:
        ck["visual_l0"] = _stage(
            "visual",
            "visual.yaml",
            ov("visual_l0", ck["text"], budget.visual_steps, "rewards.lambda_vis=0.0", *reward),
            log,
            "visual_l0",
        )
    if budget.full_sweeps:
        ck["visual_l1"] = _stage(
            "visual",
            "visual.yaml",
            ov("visual_l1", ck["text"], budget.visual_steps, "rewards.lambda_vis=1.0", *reward),
            log,
            "visual_l1",
        )
        for kc in (1, 20):
            ck[f"text_k{kc}"] = _stage(
                "text",
                "text.yaml",
                ov(f"text_k{kc}", ck["sft"], budget.text_steps, f"rewards.k_clin={kc}"),
                log,
                f"text_k{kc}",
            )
    preds = evaluate_chain(root, run_dir, ck, data_path, seed, budget)
    curves = {name: str(Path(p).parent / "metrics.jsonl") for name, p in ck.items()}
    return {
        "regime": regime,
        "seed": seed,
        "checkpoints": {k: str(v) for k, v in ck.items()},
        "log": log,
        "predictions": preds,
        "curves": curves,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def evaluate_chain(
    root: Path, run_dir: Path, ck: dict[str, Path], data_path: Path, seed: int, budget: Budget
) -> dict[str, dict[str, str]]:
    """Greedy (and sampled) predictions of every checkpoint on the held-out split, complete references."""
    # the API module holds the function (trainers.generate re-exports it)
    from trainers.api import generate

    out: dict[str, dict[str, str]] = {}
    for name, final in ck.items():
        out[name] = {}
        modes = [("greedy", ["generate.do_sample=false"])]
        if budget.sampled:
            modes.append(("sampled", ["generate.do_sample=true"]))
        for mode, extra in modes:
            path = run_dir / "preds" / f"{name}-{mode}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            overrides = [
                *_common(data_path, "report", seed, run_dir / name),
                f"data.max_samples={budget.n_test}",
                *extra,
            ]
            generate(CONFIGS / "sft.yaml", overrides, checkpoint=final, split="test", output=path)
            out[name][mode] = str(path)
    return out


def chain_worker(args: tuple) -> dict[str, Any]:
    """Process-pool entry point (spawned process): run one chain, never raise."""
    root, regime, seed, budget, expert_dir = args
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    t0, c0 = time.time(), _cpu()
    import traceback
    import warnings

    warnings.filterwarnings("ignore")
    try:
        res = run_chain(Path(root), regime, seed, budget, Path(expert_dir))
        res["ok"] = True
    except Exception as exc:  # reported in the summary instead of killing the other chains
        res = {
            "regime": regime,
            "seed": seed,
            "ok": False,
            "error": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc(),
        }
    res["wall_s"] = round(time.time() - t0, 1)
    res["cpu_s"] = round(_cpu() - c0, 1)
    path = Path(root) / "runs" / f"{regime}-s{seed}" / "chain.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(res, indent=2, default=str) + "\n")
    return res
