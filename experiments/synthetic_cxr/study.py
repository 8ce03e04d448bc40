"""Issue 14's study, one command: does every GRPO stage raise its own reward, and the F1?

    python -m experiments.synthetic_cxr.study                      # the full study -> results/
    python -m experiments.synthetic_cxr.study --smoke --out DIR    # the same pipeline, tiny (CI)

Per seed (``configs/study.yaml``): a random tiny Qwen2.5-VL → SFT on the under-reported reports
until validation F1 plateaus → (pre-flight: G samples of the SFT model on training images,
reward variance and within-group correlation with the true-label F1) → the arms, all from
that SFT checkpoint: the oracle positive control, stage text, stage visual λ_vis 0.5 and 0 (from
the seed's stage-text checkpoint), plain GRPO → greedy predictions on the held-out split.
Then ``study_report`` scores everything against the generator's truth and writes ``results/``.

Seeded (data, expert, model init, SFT order, sampling) with torch's thread count fixed; the
frozen expert and the data are shared by all seeds. Work files go to ``--work`` (default a
folder beside ``--out``); only the small result files go to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from experiments.synthetic_cxr import numerics

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
numerics.pin_cpu_kernels()  # before torch loads (here and in the spawned seed workers): same numbers on Intel x86 CPUs with AVX2

HERE = Path(__file__).resolve().parent
CONFIGS = HERE / "configs"
RESULTS = HERE / "results"


def _cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _cpu_all() -> float:
    s = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def load_study(path: Path) -> dict[str, Any]:
    import yaml

    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))


def _threads(n: int) -> None:
    import torch

    torch.set_num_threads(int(n))
    os.environ["OMP_NUM_THREADS"] = str(n)


# ----- data and expert --------------------------------------------------------------------------------


def prepare_data(work: Path, study: dict) -> tuple[Path, Path]:
    """cases.jsonl (train / val / test) and expert.jsonl (the expert's own images)."""
    from experiments.synthetic_cxr import data

    d = study["data"]
    root = work / "data"
    cases = data.write_split(
        root, "cases", {"train": (d["n_train"], 1), "val": (d["n_val"], 5), "test": (d["n_test"], 2)}, omit=d["omit"]
    )
    exp = data.write_split(
        root, "expert", {"train": (d["n_expert"], 3), "test": (min(300, d["n_test"]), 4)}, omit=d["omit"]
    )
    return cases, exp


def prepare_expert(work: Path, study: dict, exp_path: Path) -> tuple[Path, dict, dict]:
    from experiments.synthetic_cxr import data, expert, pipeline

    pipeline.ensure_grounding_registered()
    exp_dir = work / "expert"
    info = expert.train_expert(data.read(exp_path, "train"), exp_path.parent, exp_dir, steps=study["expert"]["steps"])
    checks = expert.expert_checks(exp_dir, data.read(exp_path, "test"), exp_path.parent)
    return exp_dir, info, checks


# ----- one seed --------------------------------------------------------------------------------------


def _common(cases: Path, field_: str, seed: int, out: Path) -> list[str]:
    from experiments.synthetic_cxr.vlm import PROMPT

    return [
        f"data.path={cases}",
        f"data.report_field={field_}",
        "data.split=train",
        "data.eval_split=test",
        f"data.prompt={PROMPT}",
        f"train.seed={seed}",
        f"train.output_dir={out}",
    ]


def _log_entry(stage: str, res: Any, t0: float, c0: float) -> dict[str, Any]:
    return {
        "stage": stage,
        "steps": res.global_step,
        "wall_s": round(time.time() - t0, 1),
        "cpu_s": round(_cpu_self() - c0, 1),
        "last_k": res.last_k,
    }


def anneal_min_steps(sft: dict) -> int:
    """The step before which the plateau rules may not stop SFT's first phase.

    With a hold, never: the anneal runs its cosine schedule to the end and only the hold (the last
    20% of all steps) is judged. Stopping the anneal when a rule happened to be met mid-decay left the
    hold to start from an unannealed model (clean regime at 0e5d785, seed 1: stopped at step 700 with
    the lr still ~20% of its peak; its loss then fell 3.2% over the hold). Without a hold, ``min_steps``.
    """
    return int(sft["max_steps"]) + 1 if sft.get("hold") else int(sft["min_steps"])


def anneal_every(sft: dict) -> int:
    """How often the anneal is evaluated: ``anneal_every`` with a hold, else ``every``.

    With a hold nothing is decided during the anneal (:func:`anneal_min_steps`), so its validation is
    only the learning curve and can be sparse; the hold, which the plateau rules judge, keeps
    ``every``. Evaluation is greedy and uses no random numbers, so its schedule leaves training unchanged.
    """
    return int(sft.get("anneal_every", sft["every"])) if sft.get("hold") else int(sft["every"])


def with_diagnostics(study: dict, on: bool) -> dict:
    """The study with its ``diagnostic_arms`` run as arms (``--diagnostics``), or without them."""
    arms = dict(study["arms"])
    if on:
        arms.update(study.get("diagnostic_arms") or {})
    return {**study, "arms": arms}


def train_sft(cases: Path, field_: str, seed: int, run: Path, base: Path, sft: dict) -> tuple[Path, dict]:
    """SFT with the plateau callback; returns (final dir, log with the validation history).

    Two phases when ``sft["hold"]`` is set: the stage config's cosine decay over ``max_steps`` (the
    anneal), then ``hold.fraction`` × the anneal's steps more at the constant ``hold.learning_rate``
    from the annealed model (a fresh adapter over it, fresh optimizer). The anneal always runs to
    ``max_steps`` (:func:`anneal_min_steps`); with fraction 0.25 the hold is then exactly the last 20%
    of all SFT steps, so the plateau rules judge training that goes on rather than a learning rate
    decayed to 0; the hold's last model is the SFT checkpoint.
    """
    from experiments.synthetic_cxr import oracle, plateau
    from trainers.api import train
    from trainers.config import load_config

    truth = oracle.load_truth(cases)

    def phase(out: Path, extra: list[str], every: int, **cb_kw):
        ov = [*_common(cases, field_, seed, out), f"model.name_or_path={base}", *extra]
        # validation: the val split's complete reports; greedy
        val_cfg = load_config(
            CONFIGS / sft["config"], [*ov, "data.eval_split=val", "generate.do_sample=false"], stage="sft"
        )
        out.mkdir(parents=True, exist_ok=True)
        cb = plateau.make_callback(
            val_cfg,
            truth,
            out / "plateau.json",
            every=every,
            tol=sft["tol_points"],
            nll_tol=sft.get("nll_tol_relative"),
            **cb_kw,
        )
        return train("sft", CONFIGS / sft["config"], ov, callbacks=[cb]), cb

    t0, c0 = time.time(), _cpu_self()
    hold = sft.get("hold")
    res, cb = phase(
        run / "sft", [f"train.max_steps={sft['max_steps']}"], anneal_every(sft), min_steps=anneal_min_steps(sft)
    )
    anneal_steps, final = res.global_step, res.final_dir
    hold_steps = max(1, round(hold["fraction"] * anneal_steps)) if hold else 0
    if hold_steps:
        res, cb = phase(
            run / "sft-hold",
            [
                f"model.init_from={final}",
                f"train.max_steps={hold_steps}",
                f"train.learning_rate={hold['learning_rate']}",
                "train.lr_scheduler=constant",
            ],
            int(sft["every"]),
            min_steps=anneal_steps + hold_steps + 1,  # the hold always runs to its end
            history=cb.history,
            nll=cb.nll,
            step_offset=anneal_steps,
        )
        final = res.final_dir
    elif (run / "sft-hold").exists():
        import shutil

        shutil.rmtree(run / "sft-hold")  # an earlier run's hold must not stand for this SFT (checkpoint_dir)
    log = _log_entry("sft", res, t0, c0)
    log.update(
        steps=anneal_steps + hold_steps,
        anneal_steps=anneal_steps,
        hold_steps=hold_steps,
        hold_learning_rate=f"{float(hold['learning_rate']):g}"
        if hold_steps
        else None,  # a string: results round floats
        val_f1=cb.history,
        val_nll=cb.nll,
        plateau_reached=cb.reached,
        f1_plateau_reached=cb.f1_reached,
        plateau_span=cb.span,
        nll_plateau_reached=cb.nll_reached,
        nll_rel_span=cb.nll_span,
    )
    return final, log


def checkpoint_dir(run: Path, name: str) -> Path:
    """A seed's final checkpoint of ``name`` (an arm, or "sft": the hold's model when SFT had one)."""
    if name == "sft" and (run / "sft-hold" / "final").is_dir():
        return run / "sft-hold" / "final"
    return run / name / "final"


def train_arm(
    name: str, spec: dict, cases: Path, field_: str, seed: int, run: Path, base: Path, init: Path, expert_dir: Path
):
    """One GRPO arm; the oracle arm is stage text with its R_text replaced by the oracle reward."""
    from experiments.synthetic_cxr.pipeline import REWARD_FACTORY
    from trainers.config import load_config

    out = run / name
    ov = [
        *_common(cases, field_, seed, out),
        f"model.name_or_path={base}",
        f"model.init_from={init}",
        f"train.max_steps={spec['steps']}",
        *spec.get("overrides", []),
    ]
    cfg_path = CONFIGS / spec["config"]
    stage = load_study_stage(cfg_path)
    if stage == "visual":
        ov += [
            f"rewards.visual_reward={REWARD_FACTORY}",
            "rewards.visual_reward_kwargs=" + json.dumps({"expert_dir": str(expert_dir)}),
        ]
    t0, c0 = time.time(), _cpu_self()
    if spec.get("reward") == "oracle":
        res = _train_oracle(load_config(cfg_path, ov), cases)
    else:
        from trainers.api import train

        res = train(None, cfg_path, ov)
    log = _log_entry(stage, res, t0, c0)
    res.trainer = None
    return res.final_dir, log


def load_study_stage(cfg_path: Path) -> str:
    import yaml

    return yaml.safe_load(Path(cfg_path).read_text(encoding="utf-8"))["stage"]


def _train_oracle(cfg, cases: Path):
    """Stage text's trainer (same trainable set, hyperparameters, RankNorm) with the oracle reward.

    The trainer is built by the stage code, then its first reward (R_text) is swapped for
    :class:`oracle.OracleF1Reward`; the format reward stays, as in stage text.
    """
    from experiments.synthetic_cxr.oracle import OracleF1Reward
    from trainers.stages import _finish, build_grpo_trainer, resolve_resume

    trainer, step_offset = build_grpo_trainer(cfg)
    if trainer.reward_func_names[0] not in ("valor_text", "valor_ver"):
        raise RuntimeError(f"oracle arm: unexpected first reward {trainer.reward_func_names[0]!r}")
    trainer.reward_funcs[0] = OracleF1Reward(cases)
    trainer.reward_func_names[0] = "oracle_f1"
    trainer.train(resume_from_checkpoint=resolve_resume(cfg))
    return _finish(cfg, trainer, step_offset, trainer.valor_ref_model)


def predict(ck: dict[str, Path], cases: Path, seed: int, run: Path, n_test: int, sft_config: str) -> dict[str, str]:
    """Greedy predictions of every checkpoint on the held-out split (complete reports as reference)."""
    from trainers.api import generate

    out = {}
    for name, final in ck.items():
        path = run / "preds" / f"{name}-greedy.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        ov = [*_common(cases, "report", seed, run / name), f"data.max_samples={n_test}", "generate.do_sample=false"]
        generate(CONFIGS / sft_config, ov, checkpoint=final, split="test", output=path)
        out[name] = str(path)
    return out


def run_seed(work: Path, study: dict, seed: int, cases: Path, expert_dir: Path) -> dict[str, Any]:
    """Everything of one seed; returns a JSON-able summary (paths relative to ``work``)."""
    _threads(study.get("threads", 1))
    from experiments.synthetic_cxr import pipeline
    from experiments.synthetic_cxr.vlm import build_policy

    pipeline.ensure_grounding_registered()
    field_ = "report" if study["regime"] == "clean" else "report_under"
    run = work / "runs" / f"s{seed}"
    run.mkdir(parents=True, exist_ok=True)
    base = build_policy(run / "base", seed=seed)
    log: dict[str, Any] = {}
    ck: dict[str, Path] = {}
    ck["sft"], log["sft"] = train_sft(cases, field_, seed, run, base, study["sft"])
    if seed in study["preflight"]["seeds"]:
        from experiments.synthetic_cxr import preflight

        t0, c0 = time.time(), _cpu_self()
        pf = preflight.run_preflight(
            ck["sft"],
            cases,
            expert_dir,
            run / "preflight",
            seed=seed,
            field_=field_,
            **{k: study["preflight"][k] for k in ("n_images", "G")},
        )
        pf["wall_s"], pf["cpu_s"] = round(time.time() - t0, 1), round(_cpu_self() - c0, 1)
        (run / "preflight.json").write_text(json.dumps(pf, indent=1) + "\n")
        log["preflight"] = {"wall_s": pf["wall_s"], "cpu_s": pf["cpu_s"]}
    for name, spec in study["arms"].items():
        init = ck[spec.get("from", "sft")]
        ck[name], log[name] = train_arm(name, spec, cases, field_, seed, run, base, init, expert_dir)
    if study.get("probe"):
        from experiments.synthetic_cxr import probe

        t0, c0 = time.time(), _cpu_self()
        probe.run_probe(
            {n: ck[n] for n in ("sft", *study["arms"])},
            cases,
            expert_dir,
            run / "probe",
            seed=seed,
            field_=field_,
            **{k: study["probe"][k] for k in ("n_images", "G")},
        )
        log["probe"] = {"wall_s": round(time.time() - t0, 1), "cpu_s": round(_cpu_self() - c0, 1)}
    t0, c0 = time.time(), _cpu_self()
    preds = predict(ck, cases, seed, run, study["eval"]["n_test"], study["sft"]["config"])
    log["predict"] = {"wall_s": round(time.time() - t0, 1), "cpu_s": round(_cpu_self() - c0, 1)}
    return {
        "seed": seed,
        "log": log,
        "predictions": {k: str(Path(v).relative_to(work)) for k, v in preds.items()},
        "curves": {k: str((run / k / "metrics.jsonl").relative_to(work)) for k in ck},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def seed_worker(args: tuple) -> dict[str, Any]:
    """Process-pool entry point: one seed, errors reported rather than raised."""
    work, study, seed, cases, expert_dir = args
    import traceback
    import warnings

    warnings.filterwarnings("ignore")
    t0, c0 = time.time(), _cpu_self()
    try:
        res = run_seed(Path(work), study, seed, Path(cases), Path(expert_dir))
        res["ok"] = True
    except Exception as exc:  # one failed seed is reported in the results, not fatal to the others
        res = {"seed": seed, "ok": False, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
    res["wall_s"] = round(time.time() - t0, 1)
    res["cpu_s"] = round(_cpu_self() - c0, 1)
    (Path(work) / "runs" / f"s{seed}").mkdir(parents=True, exist_ok=True)
    (Path(work) / "runs" / f"s{seed}" / "seed.json").write_text(json.dumps(res, indent=1, default=str) + "\n")
    return res


# ----- the command -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--config", type=Path, default=CONFIGS / "study.yaml")
    ap.add_argument("--smoke", action="store_true", help="configs/smoke.yaml: the same pipeline at tiny sizes")
    ap.add_argument("--out", type=Path, default=RESULTS, help="result files (default: the committed results/)")
    ap.add_argument("--work", type=Path, help="checkpoints, data, predictions (default: <out>/../work-<name>)")
    ap.add_argument("--seeds", help="comma list overriding the config's seeds (partial runs)")
    ap.add_argument("--box-task", action="store_true", help="also the box-grounding task (outside the main budget)")
    ap.add_argument("--attention", action="store_true", help="also the attention/pointing-game analysis (ditto)")
    ap.add_argument(
        "--diagnostics", action="store_true", help="also the config's diagnostic_arms (outside the main budget)"
    )
    ap.add_argument("--report-only", action="store_true", help="rescore an existing --work folder (no training)")
    args = ap.parse_args(argv)
    cfg_path = CONFIGS / "smoke.yaml" if args.smoke else args.config
    study = load_study(cfg_path)
    if args.seeds:
        study["seeds"] = [int(s) for s in args.seeds.split(",")]
    _threads(study.get("threads", 1))
    out = args.out.resolve()
    work = (args.work or out.parent / f"work-{out.name}").resolve()
    state = work / "run_state.json"
    # --report-only: the run's saved state (a run cut short has none); rescoring keeps the arms it trained
    saved = json.loads(state.read_text()) if args.report_only and state.is_file() else None
    if saved:
        args.diagnostics = args.diagnostics or "--diagnostics" in saved.get("argv", [])
    study = with_diagnostics(study, args.diagnostics)
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    t_start, c_start = time.time(), _cpu_all()
    timings: dict[str, Any] = {}
    # the command as typed (python -m puts the module's file path in sys.argv[0])
    argv_used = ["python", "-m", "experiments.synthetic_cxr.study", *(sys.argv[1:] if argv is None else argv)]
    from experiments.synthetic_cxr import study_report

    # provenance at the start: the commit and config files the run actually used
    prov = study_report.provenance(cfg_path, study, argv_used)

    if args.report_only:
        # a run cut short has no run_state.json: rescore the seeds that finished, and say so
        prev = saved or {
            "expert_info": {},
            "expert_checks": {},
            "timings": {"note": "run cut short; report-only"},
            "argv": ["(report-only on a partial run)"],
        }
        expert_info, expert_checks, timings = prev["expert_info"], prev["expert_checks"], dict(prev["timings"])
        from experiments.synthetic_cxr import study_report

        # the run's own totals (its training) plus this rescoring; the rescoring commit is recorded
        timings["rescored_by_report_only_at"] = study_report.git_output("rev-parse", "HEAD")
        before_w = timings.get("total_wall_s_before_report", 0.0)
        before_c = timings.get("total_cpu_s_before_report", 0.0)
        seeds = []
        for s in study["seeds"]:
            f = work / "runs" / f"s{s}" / "seed.json"
            seeds.append(
                json.loads(f.read_text()) if f.is_file() else {"seed": s, "ok": False, "error": "did not finish"}
            )
        study_report.write_results(
            out,
            work,
            study,
            cfg_path,
            seeds,
            expert_info=expert_info,
            expert_checks=expert_checks,
            timings=timings,
            argv=prev["argv"],
            extras=prev.get("extras", {}),
            t_start=time.time() - before_w,
            c_start=_cpu_all() - before_c,
            prov=prev.get("provenance"),
        )
        return 0
    t = time.time()
    cases, exp_path = prepare_data(work, study)
    timings["data_s"] = round(time.time() - t, 1)
    t = time.time()
    expert_dir, expert_info, expert_checks = prepare_expert(work, study, exp_path)
    timings["expert_s"] = round(time.time() - t, 1)
    print(f"expert: {expert_checks}", flush=True)

    jobs = [(str(work), study, s, str(cases), str(expert_dir)) for s in study["seeds"]]
    t = time.time()
    workers = min(int(study.get("workers", 1)), len(jobs))
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
            seeds = list(pool.map(seed_worker, jobs))
    else:
        seeds = [seed_worker(j) for j in jobs]
    timings["seeds_s"] = round(time.time() - t, 1)
    for s in seeds:
        print(f"seed {s['seed']}: {'ok' if s.get('ok') else 'FAILED ' + s.get('error', '')}", flush=True)

    extras: dict[str, Any] = {}
    if args.attention or args.box_task:
        extras = run_extras(work, study, seeds, cases, args)

    timings["total_wall_s_before_report"] = round(time.time() - t_start, 1)
    timings["total_cpu_s_before_report"] = round(_cpu_all() - c_start, 1)
    # what --report-only needs to rescore this work folder without training again
    state.write_text(
        json.dumps(
            {
                "expert_info": expert_info,
                "expert_checks": expert_checks,
                "timings": timings,
                "argv": argv_used,
                "extras": extras,
                "provenance": prov,
            },
            indent=1,
            default=str,
        )
        + "\n"
    )
    study_report.write_results(
        out,
        work,
        study,
        cfg_path,
        seeds,
        expert_info=expert_info,
        expert_checks=expert_checks,
        timings=timings,
        argv=argv_used,
        prov=prov,
        extras=extras,
        t_start=t_start,
        c_start=c_start,
    )
    return 0 if all(s.get("ok") for s in seeds) else 1


def run_extras(work: Path, study: dict, seeds: list[dict], cases: Path, args) -> dict[str, Any]:
    """Box task and attention analysis (behind flags, outside the main budget), first seed only."""
    out: dict[str, Any] = {}
    first = next((s for s in seeds if s.get("ok")), None)
    if first is None:
        return out
    if args.attention:
        from experiments.synthetic_cxr import attention

        run = work / "runs" / f"s{first['seed']}"
        cks = {k: str(checkpoint_dir(run, k)) for k in first["predictions"]}
        out["attention"] = attention.analyse(cks, cases, work / "plots", study["regime"], n=8 if args.smoke else 200)
    if args.box_task:
        from experiments.synthetic_cxr.grounding_task import run_box_task

        # (SFT steps, GRPO steps, eval images): issue 8's sizes, tiny under --smoke
        out["box_task"] = run_box_task(work, first["seed"], *((3, 2, 8) if args.smoke else (150, 20, 200)))
    return out


if __name__ == "__main__":
    sys.exit(main())
