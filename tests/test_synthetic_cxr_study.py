"""Issue 14's study (experiments/synthetic_cxr/study.py): oracle target, plateau rule, intervals, smoke run."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from experiments.synthetic_cxr import generator as G  # noqa: E402
from experiments.synthetic_cxr import oracle  # noqa: E402
from experiments.synthetic_cxr import study_stats as SS  # noqa: E402
from experiments.synthetic_cxr.plateau import plateau_reached  # noqa: E402


def test_oracle_f1_is_one_on_complete_reports_and_penalises_omissions(tmp_path):
    cases = G.make_cases(120, seed=21)
    true = oracle.truth_matrix([c.findings for c in cases])
    full = oracle.f1_per_report(oracle.label_matrix([c.report for c in cases]), true)
    assert np.all(full == 1.0)
    under = oracle.f1_per_report(oracle.label_matrix([c.report_under for c in cases]), true)
    omitted = np.array([set(c.reported) != set(c.findings) for c in cases])
    assert omitted.any() and np.all(under[omitted] < 1.0) and np.all(under[~omitted] == 1.0)
    # micro-F1 pools counts: the complete reports score 100, under-reported ones less
    assert oracle.micro_f1(oracle.counts(oracle.label_matrix([c.report for c in cases]), true)) == 1.0

    # the TRL reward reads ids; unknown ids are unscored (None), tags are stripped
    path = tmp_path / "cases.jsonl"
    path.write_text("\n".join(json.dumps({"id": c.id, "findings": sorted(c.findings)}) for c in cases[:3]) + "\n")
    r = oracle.OracleF1Reward(path)
    comps = [f"<report>{cases[0].report}</report>", "<report>No acute abnormality.</report>", "x"]
    out = r(None, comps, id=[cases[0].id, cases[1].id, "nope"])
    assert out[0] == 1.0 and out[2] is None
    assert out[1] == (1.0 if not cases[1].findings else 0.0)


def test_plateau_rule_needs_three_points_in_last_fifth():
    assert plateau_reached([(0, 0.0), (100, 10.0)]) == (False, pytest.approx(float("nan"), nan_ok=True))
    ok, span = plateau_reached([(0, 0.0), (160, 30.0), (180, 30.4), (200, 30.9)])
    assert ok and span == pytest.approx(0.9)
    ok, span = plateau_reached([(0, 0.0), (160, 30.0), (180, 31.5), (200, 30.9)])
    assert not ok and span == pytest.approx(1.5)


def test_hierarchical_bootstrap_is_paired_and_in_range():
    rng = np.random.default_rng(0)
    a = [np.stack([rng.integers(0, 3, 50), rng.integers(0, 2, 50), rng.integers(0, 2, 50)], 1) for _ in range(5)]
    b = [x.copy() for x in a]
    for x in b:
        x[:, 0] += 1  # one more TP per image in every seed: b is better everywhere
    res = SS.hier_boot(
        {"a": a, "b": b, "a2": [x.copy() for x in a]}, SS.micro_f1_rows, [("b", "a"), ("a2", "a")], B=300
    )
    for s in res["systems"].values():
        assert 0.0 <= s["ci"][0] <= s["value"] <= s["ci"][1] <= 100.0
    assert res["differences"]["a2 - a"]["ci"] == [0.0, 0.0]  # identical systems: the pairing cancels
    assert res["differences"]["b - a"]["ci"][0] > 0 and res["differences"]["b - a"]["seeds_positive"] == 5


def test_rise_and_seed_bootstrap():
    assert SS.rise([0, 0, 0, 0, 0, 1, 1, 1, 1, 1]) == pytest.approx(1.0)
    assert SS.rise(list(range(10))) == pytest.approx(8.5 - 0.5)
    r = SS.seed_boot([0.1, 0.2, 0.15, 0.12, 0.18])
    assert r["ci"][0] > 0 and r["n"] == 5
    assert SS.seed_boot([])["mean"] is None


def test_probe_own_reward_and_paired_change(tmp_path):
    """The probe's own reward per arm and its start-vs-end summary on hand-made probe files."""
    from experiments.synthetic_cxr import probe, study_report

    cols = {"R_ver": 1.0, "R_clin": 0.5, "R_text": 1.5, "format": 0.2, "S": 0.4, "oracle": 0.6}
    arr = {k: np.array([v]) for k, v in cols.items()}
    assert probe.own_reward("oracle", arr, 0.5)[0] == pytest.approx(0.8)
    assert probe.own_reward("grpo", arr, 0.5)[0] == pytest.approx(1.2)
    assert probe.own_reward("text", arr, 0.5)[0] == pytest.approx(1.7)
    assert probe.own_reward("visual_l0", arr, 0.0)[0] == pytest.approx(1.7)
    assert probe.own_reward("visual", arr, 0.5)[0] == pytest.approx(0.5 * 1.7 + 0.5 * 0.4)
    study = {
        "arms": {"text": {}, "visual": {"from": "text"}},
        "probe": {"n_images": 3, "G": 2},
        "eval": {"bootstrap": 200, "seed": 0},
    }
    rng = np.random.default_rng(0)
    for seed in range(3):
        base = {k: rng.uniform(0, 1, 3).tolist() for k in probe.COLUMNS}
        up = {k: [x + (0.3 if k in ("R_ver", "R_text") else 0.0) for x in v] for k, v in base.items()}
        doc = {"seed": seed, "n_images": 3, "G": 2, "checkpoints": {"sft": base, "text": up, "visual": up}}
        d = tmp_path / "runs" / f"s{seed}" / "probe"
        d.mkdir(parents=True)
        (d / "probe.json").write_text(json.dumps(doc))
    res = study_report.probe_summary(tmp_path, study, [{"seed": s} for s in range(3)], 0.5)
    text, vis = res["arms"]["text"], res["arms"]["visual"]
    assert text["change"]["value"] == pytest.approx(0.3) and text["rises"] and text["change"]["seeds_positive"] == 3
    assert text["component_change"]["R_ver"] == pytest.approx(0.3) and text["component_change"]["S"] == 0
    assert vis["start_checkpoint"] == "text" and vis["change"]["value"] == pytest.approx(0.0) and not vis["rises"]


def test_provenance_takes_a_config_outside_the_repository(tmp_path):
    """`study --config FILE` with FILE anywhere: provenance names it by its own path (it crashed before)."""
    from experiments.synthetic_cxr import study, study_report

    cfg = tmp_path / "my_study.yaml"
    cfg.write_bytes((study.CONFIGS / "smoke.yaml").read_bytes())
    prov = study_report.provenance(cfg, study.load_study(cfg), ["python", "-m", "x"])
    assert str(cfg.resolve()) in prov["config_sha256"]
    assert "experiments/synthetic_cxr/configs/text.yaml" in prov["config_sha256"]


@pytest.mark.slow
def test_study_smoke_end_to_end(tmp_path):
    """The committed command at smoke sizes (CI): every stage runs, results/ gets its files."""
    pytest.importorskip("trl")
    pytest.importorskip("open_clip")
    from experiments.synthetic_cxr import study

    out = tmp_path / "results"
    rc = study.main(["--smoke", "--diagnostics", "--out", str(out), "--work", str(tmp_path / "work")])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    assert res["seeds_ok"] == [0, 1]
    assert set(res["training_reward"]["arms"]) == {"oracle", "text", "visual", "visual_l0", "grpo", "visual_l0_sft"}
    for arm, t in res["training_reward"]["arms"].items():
        assert t["steps"] == 2, arm  # logged every step
    assert set(res["metrics"]["micro_f1_5"]["systems"]) == {
        "sft",
        "oracle",
        "text",
        "visual",
        "visual_l0",
        "grpo",
        "visual_l0_sft",
    }
    assert "oracle - sft" in res["metrics"]["micro_f1_5"]["differences"]
    pf = res["preflight"]["0"]["components"]
    assert set(pf) == {"R_ver", "R_clin", "R_text", "format", "S", "oracle"}
    prov = res["provenance"]
    assert prov["git_commit"] and prov["config_sha256"] and prov["packages"]["torch"]
    assert set(prov["cpu"]) >= {"cpu_model", "torch_cpu_capability", "env"}  # what the float math ran on
    assert (out / "SUMMARY.md").is_file() and (out / "curves.csv").is_file() and (out / "per_image.csv").is_file()
    # the plateau log exists for every seed, with the step-0 evaluation
    assert all(v["val_f1"][0][0] == 0 for v in res["sft_plateau"].values())
    # SFT = anneal (4 steps) + hold (fraction 0.5: 2 steps at the hold lr); one history over both
    # phases (the anneal evaluated every anneal_every = 4 steps, the hold every 2), and the hold's
    # model is the checkpoint every arm starts from
    for v in res["sft_plateau"].values():
        assert (v["steps"], v["anneal_steps"], v["hold_steps"], v["hold_learning_rate"]) == (6, 4, 2, "3e-05")
        assert [s for s, _ in v["val_f1"]] == [0, 4, 6] and [s for s, _ in v["val_nll"]] == [0, 4, 6]
    assert (
        study.checkpoint_dir(tmp_path / "work" / "runs" / "s0", "sft")
        == tmp_path / "work" / "runs" / "s0" / "sft-hold" / "final"
    )
    assert "4 + 2 (3e-05)" in (out / "SUMMARY.md").read_text()
    # the probe: every arm scored at its start and end checkpoint on the same images
    assert set(res["probe"]["arms"]) == {"oracle", "text", "visual", "visual_l0", "grpo", "visual_l0_sft"}
    assert res["probe"]["arms"]["visual_l0"]["start_checkpoint"] == "text"
    assert res["probe"]["n_images"] == 4 and "probe set" in (out / "SUMMARY.md").read_text()
    # --report-only rescores the work folder: the same numbers (the run's arms, diagnostic ones
    # included, without naming --diagnostics again), the run's provenance and timings
    out2 = tmp_path / "rescored"
    assert study.main(["--smoke", "--out", str(out2), "--work", str(tmp_path / "work"), "--report-only"]) == 0
    res2 = json.loads((out2 / "results.json").read_text())
    assert res2["metrics"] == res["metrics"] and res2["training_reward"] == res["training_reward"]
    assert res2["provenance"] == res["provenance"]
    assert res2["timings"]["total_wall_s"] >= res["timings"]["total_wall_s_before_report"]
    assert res2["timings"]["rescored_by_report_only_at"] and "--report-only" in (out2 / "SUMMARY.md").read_text()
    # the pilot command (how the settings were chosen) on that work folder
    from experiments.synthetic_cxr import pilot

    smoke_cfg = str(study.CONFIGS / "smoke.yaml")
    common = ["--src", str(tmp_path / "work"), "--out", str(tmp_path / "pilots"), "--config", smoke_cfg]
    assert pilot.main(["arm", *common, "--arm", "visual_l0", "--from", "sft", "--steps", "2", "--probe", "2"]) == 0
    assert (tmp_path / "pilots" / "s0" / "visual_l0" / "probe" / "probe.json").is_file()
    assert pilot.main(["sft", *common, "--steps", "2", "--hold-lr", "1e-4"]) == 0
    pilot_run = tmp_path / "pilots" / "sft2" / "s0"
    assert study.checkpoint_dir(pilot_run, "sft") == pilot_run / "sft-hold" / "final"
    # the same SFT again without a hold: the earlier hold's model must not stand for it
    assert pilot.main(["sft", *common, "--steps", "2", "--hold-lr", "0"]) == 0
    assert study.checkpoint_dir(pilot_run, "sft") == pilot_run / "sft" / "final"
    with pytest.raises(SystemExit) as e:
        pilot.main(["arm", *common, "--steps", "2"])
    assert e.value.code == 2


def test_provenance_dirty_flag_ignores_the_study_outputs():
    """A previous run's results/ and README table are outputs, not inputs: they do not make a run dirty."""
    from experiments.synthetic_cxr.study_report import _dirty_inputs

    porcelain = "\n".join(
        [
            " M experiments/synthetic_cxr/results/results.json",
            " M experiments/synthetic_cxr/README.md",
            "?? experiments/synthetic_cxr/work-results/",
            " M experiments/synthetic_cxr/configs/visual.yaml",
            " M probe.py",
        ]
    )
    assert _dirty_inputs(porcelain) == ["experiments/synthetic_cxr/configs/visual.yaml", "probe.py"]
    assert _dirty_inputs("") == []


def test_own_reward_curve_reads_the_last_run_of_a_log(tmp_path):
    """A metrics.jsonl written by two runs end to end (before the trainers replaced old logs): the last run's rows."""
    from experiments.synthetic_cxr.study_report import own_reward_curve

    p = tmp_path / "metrics.jsonl"
    rows = [{"step": s, "reward": r} for s, r in [(1, 9.0), (2, 9.0), (1, 1.0), (2, 2.0), (3, 3.0)]]
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert [(c["step"], c["own_reward"]) for c in own_reward_curve(p, "text", 0.5)] == [(1, 1.0), (2, 2.0), (3, 3.0)]


def test_expert_retrained_into_its_own_folder_starts_from_scratch(tmp_path):
    """A rerun into the same work folder must not start from the weights the last run left there."""
    pytest.importorskip("open_clip")
    from experiments.synthetic_cxr import data, expert

    path = data.write_split(tmp_path / "data", "expert", {"train": (16, 3)}, omit=0.6)
    rows = data.read(path, "train")
    first = expert.train_expert(rows, path.parent, tmp_path / "expert", steps=2, batch=8)
    again = expert.train_expert(rows, path.parent, tmp_path / "expert", steps=2, batch=8)
    assert again["first_loss"] == first["first_loss"] and again["final_loss"] == first["final_loss"]


def test_pin_cpu_kernels_sets_defaults_keeps_user_values_and_native_opts_out(monkeypatch):
    """The study's kernel pins are defaults: a value the user set wins, RADEVAL_CPU_KERNELS=native skips them."""
    from experiments.synthetic_cxr import numerics

    monkeypatch.setattr(numerics.platform, "machine", lambda: "x86_64")
    for key in numerics.PINNED:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx512")
    numerics.pin_cpu_kernels()
    assert os.environ["ATEN_CPU_CAPABILITY"] == "avx512"
    assert os.environ["MKL_CBWR"] == "COMPATIBLE,STRICT" and os.environ["ONEDNN_MAX_CPU_ISA"] == "AVX2"
    for key in numerics.PINNED:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("RADEVAL_CPU_KERNELS", "native")
    numerics.pin_cpu_kernels()
    assert not any(key in os.environ for key in numerics.PINNED)


def _has_avx2() -> bool:
    from experiments.synthetic_cxr import numerics

    return "avx2" in numerics.cpuinfo().get("flags", "").split()


@pytest.mark.skipif(not _has_avx2(), reason="the pins name x86 AVX2; this machine lacks it")
def test_numerics_check_runs_the_pinned_kernels_and_repeats_bit_for_bit(tmp_path):
    """The installed command, as a user runs it: a fresh process takes torch's AVX2 path and MKL's
    COMPATIBLE branch (not the machine's best), trains with the fused AdamW the study's trainers get
    (the unfused one's sqrt is MKL vector math, which differs across processors), and two runs give the
    same fingerprint to the last bit."""
    import subprocess
    import sys
    from pathlib import Path

    from experiments.synthetic_cxr import numerics

    # the study's own defaults, not a value this test process inherited (nor a native opt-out)
    env = {k: v for k, v in os.environ.items() if k not in (*numerics.PINNED, "RADEVAL_CPU_KERNELS")}
    runs = []
    for i in range(2):
        out = tmp_path / f"fp{i}.json"
        cmd = [sys.executable, "-m", "experiments.synthetic_cxr.numerics_check", "--steps", "2", "--out", str(out)]
        subprocess.run(cmd, check=True, env=env, capture_output=True, timeout=300, cwd=Path(__file__).parents[1])
        runs.append(json.loads(out.read_text()))
    assert runs[0]["torch_cpu_capability"] == "AVX2"
    assert runs[0]["env"]["MKL_CBWR"] == "COMPATIBLE,STRICT"
    assert runs[0]["optimizer"].startswith("AdamW(") and "fused=True" in runs[0]["optimizer"]
    assert len(runs[0]["losses"]) == 2 and runs[0]["losses"] == runs[1]["losses"]
    assert len(runs[0]["grpo_losses"]) == 2 and runs[0]["grpo_losses"] == runs[1]["grpo_losses"]
    for key in ("weights_sha256", "sampled_sha256", "grpo_weights_sha256"):
        assert runs[0][key] == runs[1][key]


def test_replicates_table_flags_verdicts_that_change_between_runs(tmp_path):
    """The committed replicate runs through the command a user types: a verdict both runs share is named,
    one that flips (stage text's F1 vs SFT: below 0 on one CPU, includes 0 on the other) is flagged."""
    from pathlib import Path

    from experiments.synthetic_cxr import replicates

    here = Path(replicates.__file__).parent / "replicates"
    out = tmp_path / "table.md"
    assert (
        replicates.main([f"a={here / 'cpu-a-native.json'}", f"b={here / 'cpu-b-native.json'}", "--out", str(out)]) == 0
    )
    lines = {line.split(" | ")[0]: line for line in out.read_text().splitlines() if line.startswith("| ")}
    assert lines["| own reward, probe: oracle"].endswith("| above 0 |")
    assert lines["| micro-F1: text - sft"].endswith("| **no** |")
    assert "-12.5 [-17.8, -7.3]" in lines["| micro-F1: text - sft"]
    assert replicates.verdict([0.1, 0.2]) == "above 0" and replicates.verdict([-0.1, 0.2]) == "includes 0"
    with pytest.raises(SystemExit) as exc:
        replicates.main([f"a={here / 'cpu-a-native.json'}"])
    assert exc.value.code == 2  # a usage error


def test_with_a_hold_the_plateau_rules_never_stop_the_anneal(tmp_path, monkeypatch):
    # The rules met mid-anneal (a flat val F1 from the start) used to stop SFT's cosine decay early,
    # leaving the hold to start from an unannealed model. With a hold the anneal runs to max_steps;
    # without one, min_steps still lets a plateau stop SFT.
    from types import SimpleNamespace

    from experiments.synthetic_cxr import plateau
    from experiments.synthetic_cxr.study import anneal_min_steps

    monkeypatch.setattr(plateau, "val_f1", lambda *a, **k: 50.0)
    monkeypatch.setattr(plateau, "val_nll", lambda *a, **k: 1.0)
    base = {"max_steps": 100, "min_steps": 60}

    def stopped_at(sft):
        cb = plateau.make_callback(
            None, {}, tmp_path / "plateau.json", every=5, min_steps=anneal_min_steps(sft), nll_tol=0.01
        )
        cb.on_train_begin(None, SimpleNamespace(global_step=0), None)
        for step in range(5, sft["max_steps"] + 1, 5):
            control = cb.on_step_end(
                None, SimpleNamespace(global_step=step), SimpleNamespace(should_training_stop=False)
            )
            if control.should_training_stop:
                return step
        return None

    assert stopped_at(base) == 60  # flat from the start: met once the last fifth holds 3 points (step 50)
    assert stopped_at({**base, "hold": {"fraction": 0.25, "learning_rate": 3e-5}}) is None


def test_diagnostic_arms_run_only_when_asked_and_the_anneal_is_evaluated_sparsely():
    from experiments.synthetic_cxr import study

    cfg = study.load_study(study.CONFIGS / "study.yaml")
    assert list(study.with_diagnostics(cfg, False)["arms"]) == ["oracle", "text", "visual", "visual_l0", "grpo"]
    assert "visual_l0_sft" in study.with_diagnostics(cfg, True)["arms"]
    assert "visual_l0_sft" not in cfg["arms"]  # the loaded config itself is left as it was
    assert study.anneal_every(cfg["sft"]) == 100 and cfg["sft"]["every"] == 25
    no_hold = {k: v for k, v in cfg["sft"].items() if k != "hold"}
    assert study.anneal_every(no_hold) == 25  # without a hold the anneal is judged: every step counts


@pytest.mark.slow
def test_sft_weights_do_not_depend_on_how_often_validation_runs(tmp_path):
    """Validation is greedy and draws no random numbers, so a sparser schedule trains the same model
    bit for bit (what lets the study evaluate its anneal every 100 steps instead of every 25)."""
    pytest.importorskip("trl")
    from experiments.synthetic_cxr import study
    from experiments.synthetic_cxr.vlm import build_policy

    cfg = study.load_study(study.CONFIGS / "smoke.yaml")
    cases, _ = study.prepare_data(tmp_path / "work", cfg)
    base = build_policy(tmp_path / "base", seed=0)
    sft = {**cfg["sft"], "max_steps": 4, "every": 1}
    finals, logs = [], []
    for anneal in (1, 4):
        run = tmp_path / f"every{anneal}"
        final, log = study.train_sft(cases, "report_under", 0, run, base, {**sft, "anneal_every": anneal})
        finals.append(final)
        logs.append(log)
    assert [s for s, _ in logs[0]["val_f1"]] == [0, 1, 2, 3, 4, 5, 6]
    assert [s for s, _ in logs[1]["val_f1"]] == [0, 4, 5, 6]
    assert dict(logs[1]["val_nll"]) == {s: v for s, v in logs[0]["val_nll"] if s in (0, 4, 5, 6)}
    weights = [sorted(p.name for p in Path(f).glob("*.safetensors")) for f in finals]
    assert weights[0] and weights[0] == weights[1]
    for name in weights[0]:
        assert (Path(finals[0]) / name).read_bytes() == (Path(finals[1]) / name).read_bytes(), name


def test_compare_runs_matches_shared_numbers_and_lists_the_rest():
    """Two runs agree on what both computed; validation steps and arms only one has are listed, not counted."""
    from experiments.synthetic_cxr import compare_runs

    def run(val_steps, arms, f1_text=40.0):
        per = {"value": 1.0, "ci": [0, 2], "per_seed": [1.0]}
        return {
            "seeds_ok": [0],
            "sft_plateau": {"0": {"steps": 1250, "val_f1": [[s, 10.0 + s] for s in val_steps], "val_nll": []}},
            "preflight": {},
            "training_reward": {"arms": {a: {k: per for k in ("start", "end", "rise")} for a in arms}},
            "metrics": {
                "micro_f1_5": {"systems": {"sft": per, "text": {**per, "per_seed": [f1_text]}}, "differences": {}}
            },
        }

    dense, sparse = run(range(0, 1251, 25), ["text", "visual_l0_sft"]), run([0, 100, 1000, 1025, 1250], ["text"])
    diffs, n, only = compare_runs.compare(dense, sparse)
    assert diffs == [] and n == 5 + 1 + 1 + 3 + 2  # 5 shared val steps, SFT record, pre-flight, text curve, 2 F1s
    assert "A: sft:val_f1 at some steps" in only and "A: train:visual_l0_sft:rise" in only
    diffs, _, _ = compare_runs.compare(dense, run([0], ["text"], f1_text=41.0))
    assert diffs == ["seed 0 micro_f1_5:text: 40.0 != 41.0"]
    assert compare_runs.main(["a"]) == 2


@pytest.mark.slow
@pytest.mark.skipif(not _has_avx2(), reason="the pins name x86 AVX2; this machine lacks it")
def test_kernel_cost_times_the_study_steps_under_each_setting(tmp_path, capsys):
    """The pin-cost benchmark runs the study's own expert, SFT and stage-text steps in a child per setting
    and says whether each setting trained the pinned run's very weights."""
    pytest.importorskip("trl")
    pytest.importorskip("open_clip")
    from experiments.synthetic_cxr import kernel_cost

    out = tmp_path / "cost.json"
    args = ["--sft-steps", "1", "--grpo-steps", "1", "--expert-steps", "1", "--settings", "pinned,mkl-avx2"]
    assert kernel_cost.main([*args, "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    rows = record["rows"]
    assert record["argv"] == [*args, "--out", str(out)] and record["packages"]["torch"]
    assert rows["pinned"]["kernels"]["env"]["MKL_CBWR"] == "COMPATIBLE,STRICT"
    assert rows["mkl-avx2"]["kernels"]["env"]["MKL_CBWR"] == "AVX2,STRICT"
    assert all(r[f"{p}_cpu_s"] > 0 for r in rows.values() for p in ("expert", "sft", "grpo"))
    assert all(len(r["weights_sha256"]) == 64 for r in rows.values())
    printed = capsys.readouterr().out
    assert "mkl-avx2 |" in printed and "weights = pinned" in printed  # the pinned row against itself
    with pytest.raises(SystemExit) as exc:
        kernel_cost.main(["--settings", "avx512"])
    assert exc.value.code == 2


def test_weights_fingerprint_covers_every_weight_file_and_its_name(tmp_path):
    """kernel_cost's `weights = pinned` rests on this: equal folders agree, one changed byte or name does not."""
    from experiments.synthetic_cxr.kernel_cost import weights_fingerprint

    def folder(name: str, files: dict[str, bytes]) -> Path:
        root = tmp_path / name
        for rel, data in files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(data)
        return root

    files = {"sft/final/model.safetensors": b"abc", "text/final/adapter/adapter_model.safetensors": b"xyz"}
    a = weights_fingerprint(folder("a", files))
    assert a == weights_fingerprint(folder("b", {**files, "sft/final/notes.txt": b"not a weight file"}))
    assert a != weights_fingerprint(folder("c", {**files, "sft/final/model.safetensors": b"abd"}))
    renamed = {"oracle/final/model.safetensors": b"abc", "text/final/adapter/adapter_model.safetensors": b"xyz"}
    assert a != weights_fingerprint(folder("d", renamed))
    assert len(a) == 64
