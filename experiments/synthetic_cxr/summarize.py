"""Turn the chains' prediction files into numbers, leaderboard tables, plots and SUMMARY.md."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from experiments.synthetic_cxr import report as R


def _signatures(path: Path, expert_dir: Path) -> dict[str, str]:
    """Each column's radeval signature, from scoring one record (the leaderboard checks them)."""
    import radeval
    from radeval.data import read_records

    ms = R.metrics_spec(expert_dir)
    res = radeval.evaluate(
        read_records(path)[:1], metrics=[n for n, _ in ms], options={n: o for n, o in ms if o}, bootstrap=0
    )
    return {k: v["signature"] for k, v in res.summary()["metrics"].items()}


def _per_seed(scored, expert_dir: Path) -> dict[int, dict[str, float]]:
    """Per-seed corpus scores from the pooled file's per-record statistic rows (exact: sums of rows)."""
    from radeval.registry import get_metric

    opts = dict(R.metrics_spec(expert_dir))
    seeds = np.array([int(i.split("-", 1)[0][1:]) for i in scored.ids])
    out: dict[int, dict[str, float]] = {}
    for name, rows in scored.stats.items():
        metric = get_metric(name, **opts.get(name, {}))
        arr = np.asarray(rows, dtype=np.float64).reshape(len(rows), len(metric.stat_names))
        for seed in sorted(set(seeds.tolist())):
            tot = arr[seeds == seed].sum(0)
            vals = metric.from_totals(tot)
            row = out.setdefault(seed, {})
            for k in R.METRIC_KEYS:
                if k in vals:
                    row[k] = float(np.asarray(vals[k]))
            if name == "chexpert_rules":
                row.update({f"f1:{k}": v for k, v in R.per_finding({name: metric.details(tot) or {}}).items()})
    return out


def build(
    out: Path,
    chains: list[dict],
    regimes: list[str],
    expert_dir: Path,
    budget,
    attn: dict,
    expert_checks: dict,
    expert_info: dict,
) -> dict[str, Any]:
    from leaderboards.build import _scorer
    from leaderboards.build import build as build_board
    from leaderboards.spec import load_spec

    ok = [c for c in chains if c.get("ok")]
    seeds = sorted({c["seed"] for c in ok})
    modes = ["greedy", "sampled"] if budget.sampled else ["greedy"]
    tables_dir = out / "tables"
    tables_dir.mkdir(parents=True, exist_ok=True)
    # pool the seeds (ids prefixed "s<seed>-"): one file per (mode, regime, system)
    pooled: dict[str, dict[str, dict[str, Path]]] = {}
    for mode in modes:
        for regime in regimes:
            for sysid, _, _ in R.SYSTEMS:
                files = [
                    (c["seed"], Path(c["predictions"][sysid][mode]))
                    for c in ok
                    if c["regime"] == regime and sysid in c["predictions"]
                ]
                if files:
                    pooled.setdefault(mode, {}).setdefault(regime, {})[sysid] = R.pool(
                        files, out / "pooled" / mode / regime / f"{sysid}.jsonl"
                    )
    if not pooled:
        raise RuntimeError("no chain finished: nothing to score")
    first = next(iter(next(iter(pooled.values())).values()))["sft"]
    signatures = _signatures(first, expert_dir)
    cache = out / ".cache"
    board_md: dict[str, str] = {}
    per_seed: dict[str, Any] = {}
    paired: dict[str, Any] = {}
    for mode in modes:
        spec_path = R.leaderboard_spec(
            tables_dir,
            [r for r in regimes if r in pooled.get(mode, {})],
            pooled.get(mode, {}),
            signatures,
            expert_dir,
            mode,
            len(seeds),
            budget.n_test,
        )
        build_board(spec_path, tables_dir, cache_dir=cache)
        board_md[mode] = (tables_dir / f"synthetic_cxr_table1_{mode}.md").read_text(encoding="utf-8")
        scorer = _scorer(load_spec(spec_path), cache)  # same settings: every score below is a cache hit
        for regime, files in pooled.get(mode, {}).items():
            scored = {sysid: scorer.score(p) for sysid, p in files.items()}
            for sysid, sc in scored.items():
                per_seed.setdefault(regime, {}).setdefault(mode, {})[sysid] = _per_seed(sc, expert_dir)
            for a, b in R.COMPARISONS:
                if a in scored and b in scored:
                    cmp = scorer.compare(scored[a], scored[b])
                    paired.setdefault(mode, {}).setdefault(regime, {})[f"{a} vs {b}"] = {
                        k: cmp[k] for k in R.METRIC_KEYS if k in cmp
                    }
    seed_level: dict[str, Any] = {}
    for regime, by_mode in per_seed.items():
        for mode, by_sys in by_mode.items():
            for sysid, by_seed in by_sys.items():
                keys = sorted({k for r in by_seed.values() for k in r})
                seed_level.setdefault(regime, {}).setdefault(mode, {})[sysid] = {
                    k: R.t_interval([by_seed[s][k] for s in sorted(by_seed) if k in by_seed[s]]) for k in keys
                }
    boxes = {}
    for p in sorted((out / "runs").glob("boxes-s*/boxes_result.json")):
        boxes[p.parent.name] = json.loads(p.read_text())
    curves = plot_curves(out, ok)
    sweep = plot_sweep(out, seed_level)
    return {
        "seeds": seeds,
        "regimes": regimes,
        "per_seed": per_seed,
        "seed_level": seed_level,
        "paired": paired,
        "leaderboard_md": board_md,
        "signatures": signatures,
        "attention": attn,
        "expert": expert_info,
        "expert_checks": expert_checks,
        "curves": curves,
        "box_task": boxes,
        "sweep_plot": sweep,
        "chains": [
            {k: c.get(k) for k in ("regime", "seed", "ok", "error", "log", "wall_s", "cpu_s", "peak_rss_mb")}
            for c in chains
        ],
        "budget": budget.__dict__,
    }


def rebuild(out: Path) -> Path:
    """Re-run scoring, tables and SUMMARY.md from a finished run's chain.json files (no training)."""
    from experiments.synthetic_cxr.pipeline import Budget, ensure_grounding_registered

    ensure_grounding_registered()
    chains = [json.loads(p.read_text()) for p in sorted((out / "runs").glob("*-s*/chain.json"))]
    prev = json.loads((out / "results.json").read_text()) if (out / "results.json").is_file() else {}
    regimes = [r for r in ("clean", "under") if any(c["regime"] == r for c in chains)]
    b = prev.get("budget") or {}
    budget = Budget(**{k: v for k, v in b.items() if k in Budget.__dataclass_fields__})
    attn = {}
    for p in sorted((out / "plots").glob("pointing_*.json")):
        attn[p.stem.split("_", 1)[1]] = json.loads(p.read_text())
    exp = out / "expert"
    info = json.loads((exp / "training.json").read_text()) if (exp / "training.json").is_file() else {}
    res = build(out, chains, regimes, exp, budget, attn, prev.get("expert_checks", {}), info)
    res["timings"] = prev.get("timings", {})
    (out / "results.json").write_text(json.dumps(res, indent=2, default=str) + "\n")
    return write_summary(out, res)


def plot_curves(out: Path, chains: list[dict]) -> list[str]:
    """Fig. 7 in miniature: reward terms over optimizer steps, one seed per regime."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from leaderboards.plots import read_log

    written = []
    for c in chains:
        if c["seed"] != min(x["seed"] for x in chains):
            continue
        fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
        for ax, (name, keys) in zip(
            axes,
            [
                ("text", ["rewards/valor_text/mean", "valor/r_clin"]),
                ("visual", ["rewards/valor_text/mean", "rewards/valor_visual_similarity/mean", "valor/ranked_reward"]),
                ("grpo", ["rewards/valor_ver/mean", "rewards/valor_format/mean"]),
            ],
        ):
            path = Path(c["curves"].get(name, ""))
            if not path.is_file():
                continue
            rows = read_log(path)
            for k in keys:
                pts = [(r["step"], r[k]) for r in rows if isinstance(r.get(k), (int, float))]
                if pts:
                    ax.plot(*zip(*pts), marker=".", label=k.replace("rewards/", ""))
            ax.set_title(f"{c['regime']} s{c['seed']}: stage {name}", fontsize=9)
            ax.set_xlabel("optimizer step")
            ax.legend(fontsize=6)
            ax.grid(alpha=0.3)
        fig.tight_layout()
        p = out / "plots" / f"curves_{c['regime']}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(p, dpi=110)
        plt.close(fig)
        written.append(str(p))
    return written


def plot_sweep(out: Path, seed_level: dict) -> str | None:
    """Fig. 6a in miniature: λ_vis ∈ {0, 0.5} (stage visual) with stage text as reference."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = ["chexpert_rules_f1_micro_14", "bleu_mean", "grounding_similarity"]
    fig, axes = plt.subplots(1, len(keys), figsize=(11, 3.2))
    drew = False
    for ax, k in zip(axes, keys):
        for regime, by_mode in seed_level.items():
            g = by_mode.get("greedy", {})
            pts = [
                (lv, g[s][k])
                for lv, s in ((0.0, "visual_l0"), (0.5, "visual"), (1.0, "visual_l1"))
                if s in g and k in g[s]
            ]
            if not pts:
                continue
            xs = [p[0] for p in pts]
            ms = [p[1][0] for p in pts]
            err = [
                [0 if math.isnan(p[1][1]) else p[1][0] - p[1][1] for p in pts],
                [0 if math.isnan(p[1][2]) else p[1][2] - p[1][0] for p in pts],
            ]
            ax.errorbar(xs, ms, yerr=err, marker="o", capsize=3, label=regime)
            if "text" in g and k in g["text"]:
                ax.axhline(g["text"][k][0], ls=":", lw=1, color=ax.lines[-1].get_color())
            drew = True
        ax.set_xlabel("λ_vis")
        ax.set_title(R.LABELS[k], fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("λ_vis sweep (greedy; mean ± t-CI over seeds; dotted = stage text before visual)", fontsize=9)
    fig.tight_layout()
    p = out / "plots" / "sweep_lambda_vis.png"
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p, dpi=110)
    plt.close(fig)
    return str(p) if drew else None


def _fmt(t: Any, scale: float = 100) -> str:
    if not isinstance(t, (list, tuple)):
        return "–"
    m, lo, hi = t
    if math.isnan(lo):
        return f"{m * scale:.1f}"
    return f"{m * scale:.1f} [{lo * scale:.1f}, {hi * scale:.1f}]"


def write_summary(out: Path, res: dict[str, Any]) -> Path:
    L = []
    L.append("# Synthetic CXR benchmark: does VALOR's stage chain learn?\n")
    t = res.get("timings", {})
    L.append(f"Seeds: {res['seeds']}; regimes: {res['regimes']}; budget: `{json.dumps(res['budget'])}`.")
    L.append(
        f"Wall time {t.get('total_wall_s')} s, CPU time {t.get('total_cpu_s')} s (all processes), peak RSS "
        f"main {t.get('peak_rss_mb_main')} MB / largest chain process {t.get('peak_rss_mb_largest_child')} MB.\n"
    )
    L.append(
        "R_clin (Eq. 4) and every CheXpert F1 here use radeval's **rule-based CheXpert labeler** "
        "(`chexpert_rules`), not CheXbert; BERTScore and RadGraph are off (λ_sem = λ_rg = 0).\n"
    )
    L.append("## Frozen expert\n")
    L.append(
        f"Training: `{json.dumps(res['expert'])}`  \nChecks on its held-out images: "
        f"`{json.dumps(res['expert_checks'])}`\n"
    )
    for mode in ("greedy", "sampled"):
        for regime in res["regimes"]:
            sl = res["seed_level"].get(regime, {}).get(mode)
            if not sl:
                continue
            L.append(f"## Seed level, {regime} regime, {mode} decoding (mean [95% t-interval over seeds], ×100)\n")
            keys = R.METRIC_KEYS + [f"f1:{f}" for f in R.FINDING_LABELS]
            L.append("| system | " + " | ".join(R.LABELS.get(k, k.replace("f1:", "F1 ")) for k in keys) + " |")
            L.append("|---" * (len(keys) + 1) + "|")
            for sysid, label, _ in R.SYSTEMS:
                if sysid in sl:
                    L.append(f"| {label} | " + " | ".join(_fmt(sl[sysid].get(k)) for k in keys) + " |")
            L.append("")
    L.append("## Per seed, greedy (CheXpert-rules F1 micro-14 / BLEU mean / grounding sim., ×100)\n")
    L.append(
        "Pooled p-values below treat records as independent and ignore seed-to-seed variance: read them "
        "together with this table.\n"
    )
    for regime in res["regimes"]:
        g = res["per_seed"].get(regime, {}).get("greedy", {})
        seeds = sorted({int(s) for by in g.values() for s in by})
        L.append(f"**{regime}**\n")
        L.append("| system | " + " | ".join(f"seed {s}" for s in seeds) + " |")
        L.append("|---" * (len(seeds) + 1) + "|")
        for sysid, label, _ in R.SYSTEMS:
            if sysid in g:
                by = {int(k): v for k, v in g[sysid].items()}
                cells = [
                    f"{by[s]['chexpert_rules_f1_micro_14'] * 100:.1f} / {by[s]['bleu_mean'] * 100:.1f} / "
                    f"{by[s]['grounding_similarity'] * 100:.1f}"
                    if s in by
                    else "–"
                    for s in seeds
                ]
                L.append(f"| {label} | " + " | ".join(cells) + " |")
        L.append("")
    L.append("## Paired comparisons on pooled records (Δ = A − B ×100; p: paired bootstrap / approx. randomization)\n")
    for mode, by_regime in res["paired"].items():
        for regime, comps in by_regime.items():
            L.append(f"**{regime}, {mode}**\n")
            L.append("| A vs B | " + " | ".join(R.LABELS[k] for k in R.METRIC_KEYS) + " |")
            L.append("|---" * (len(R.METRIC_KEYS) + 1) + "|")
            for name, d in comps.items():
                cells = []
                for k in R.METRIC_KEYS:
                    v = d.get(k)
                    if not v:
                        cells.append("–")
                        continue
                    delta, pb, pa = v.get("delta"), v.get("p_bootstrap"), v.get("p_randomization")
                    cells.append(f"{_num(delta, 100)} (p {_num(pb)}/{_num(pa)})")
                L.append(f"| {name} | " + " | ".join(cells) + " |")
            L.append("")
    L.append("## Leaderboards (project leaderboard code; pooled seeds)\n")
    for md in res["leaderboard_md"].values():
        L.append(md)
        L.append("")
    L.append("## Attention maps and pointing game (seed 0; chance = random cell)\n")
    for regime, a in res.get("attention", {}).items():
        parts = [
            f"{k}: {v['pointing_game']:.3f} (n={v['n']})"
            for k, v in a.items()
            if isinstance(v, dict) and v.get("pointing_game") is not None
        ]
        L.append(
            f"- {regime}: " + "; ".join(parts) + f"; chance {a.get('chance'):.3f}  ![](plots/attention_{regime}.png)"
        )
    L.append("\n## Visual-grounding (box) task: per-sample AP@0.5, greedy, held-out images with findings\n")
    for name, b in res.get("box_task", {}).items():
        L.append(
            f"- {name}: SFT {b['steps']['sft']} steps → AP@0.5 {b['before_rl']['ap50']:.3f} "
            f"{[round(x, 3) for x in b['before_rl']['ci95']]}; + GRPO with the box reward {b['steps']['rl']} steps → "
            f"{b['after_rl']['ap50']:.3f} {[round(x, 3) for x in b['after_rl']['ci95']]}; paired Δ "
            f"{b['delta']['mean']:+.3f} {[round(x, 3) for x in b['delta']['ci95']]} (n={b['after_rl']['n']}); "
            f"reward curve {[round(x, 2) for x in b['reward_curve']]}"
        )
    if not res.get("box_task"):
        L.append("- not run")
    L.append("\n## Training time per stage (seed/regime: wall s / CPU s)\n")
    for c in res["chains"]:
        if c.get("log"):
            L.append(
                f"- {c['regime']}-s{c['seed']}: "
                + ", ".join(
                    f"{k} {v.get('steps', '')} steps {v.get('wall_s')}/{v.get('cpu_s')}"
                    for k, v in c["log"].items()
                    if isinstance(v, dict) and "wall_s" in v
                )
                + f"; sft_more matching {c['log'].get('sft_more_matching')}"
            )
        if not c.get("ok"):
            L.append(f"- {c['regime']}-s{c['seed']}: FAILED {c.get('error')}")
    L.append(
        "\nPlots: `plots/curves_*.png` (Fig. 7), `plots/sweep_lambda_vis.png` (Fig. 6a), "
        "`plots/attention_*.png` (Fig. 5), `tables/*_per_label*.png`.\n"
    )
    p = out / "SUMMARY.md"
    p.write_text("\n".join(L) + "\n", encoding="utf-8")
    return p


def _num(v: Any, scale: float = 1) -> str:
    if isinstance(v, (int, float)) and not (isinstance(v, float) and math.isnan(v)):
        return f"{v * scale:.3g}" if scale == 1 else f"{v * scale:+.2f}"
    return "–"


if __name__ == "__main__":  # python -m experiments.synthetic_cxr.summarize OUT
    import sys

    print(rebuild(Path(sys.argv[1]).resolve()))
