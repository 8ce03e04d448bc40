"""Render a reward-benchmark result: JSON, Markdown, HTML and a metric × perturbation heatmap."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np

from radeval.bench.perturb import KINDS
from radeval.bench.rewards_bench import DEGENERATE, ERRORS, PARAPHRASE, REWARD_NOTES, BenchResult
from radeval.evaluation import _dumps, atomic_write, ensure_output_dir


def _f(x: float | None, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _ci(ci: list[float] | None) -> str:
    return "" if not ci else f" [{ci[0]:.2f}, {ci[1]:.2f}]"


def relative_matrix(res: BenchResult) -> tuple[list[str], list[str], np.ndarray]:
    """Mean score of each kind divided by the mean paraphrase score of the same reward."""
    kinds = [k.name for k in KINDS]
    m = np.full((len(res.rewards), len(kinds)), np.nan)
    for i, r in enumerate(res.rewards):
        para = [res.mean[r][p] for p in PARAPHRASE if res.mean[r][p] is not None]
        base = float(np.mean(para)) if para else None
        for j, k in enumerate(kinds):
            v = res.mean[r][k]
            if v is not None and base:
                m[i, j] = v / base
    return res.rewards, kinds, m


def ranking(res: BenchResult) -> list[dict[str, Any]]:
    rows = []
    for r in res.rewards:
        exp = {d: res.exposure[r][d]["value"] for d in DEGENERATE}
        worst = max(((v, d) for d, v in exp.items() if v is not None), default=(None, None))
        rows.append({
            "reward": r,
            "sensitivity": res.sensitivity[r]["value"],
            "sensitivity_ci95": res.sensitivity[r]["ci95"],
            "worst_hack": worst[1],
            "worst_exposure": worst[0],
        })
    rows.sort(key=lambda x: (-(x["sensitivity"] or 0), x["reward"]))
    return rows


def to_markdown(res: BenchResult, images: list[str]) -> str:
    out = ["# Reward benchmark", ""]
    out.append(f"{res.reports} reference reports; every perturbation scored against its unperturbed reference "
               f"(seed {res.settings['seed']}, 95% bootstrap CIs over references).")
    out.append("")
    if res.skipped_rewards:
        out.append("Not run on this machine: " + "; ".join(f"`{k}` ({v})" for k, v in res.skipped_rewards.items()))
        out.append("")
    for r in res.rewards:
        if r in REWARD_NOTES:
            out.append(f"- `{r}`: {REWARD_NOTES[r]}")
    out += ["", "## Ranking", "", "Clinical sensitivity = share of (error, paraphrase) pairs of a report where the error scores lower (ties ½); "
            "hack exposure = a degenerate output's mean score / the paraphrases' mean score.", "",
            "| reward | clinical sensitivity [95% CI] | worst hack | its exposure |", "| --- | --- | --- | ---: |"]
    for row in ranking(res):
        out.append(f"| {row['reward']} | {_f(row['sensitivity'])}{_ci(row['sensitivity_ci95'])} | {row['worst_hack'] or '–'} | {_f(row['worst_exposure'], 2)} |")
    out += ["", "## Sensitivity per error kind", "", "| reward | " + " | ".join(ERRORS) + " |", "| --- |" + " ---: |" * len(ERRORS)]
    for r in res.rewards:
        out.append(f"| {r} | " + " | ".join(_f(res.sensitivity_by_error[r][e], 2) for e in ERRORS) + " |")
    out += ["", "## Hack exposure", "", "| reward | " + " | ".join(DEGENERATE) + " |", "| --- |" + " ---: |" * len(DEGENERATE)]
    for r in res.rewards:
        out.append(f"| {r} | " + " | ".join(_f(res.exposure[r][d]["value"], 2) for d in DEGENERATE) + " |")
    out += ["", "## Mean score per perturbation", ""]
    out.append("| kind | family | applies to | " + " | ".join(res.rewards) + " |")
    out.append("| --- | --- | ---: |" + " ---: |" * len(res.rewards))
    for k in KINDS:
        out.append(f"| {k.name} | {k.family} | {res.applicable[k.name]} | " + " | ".join(_f(res.mean[r][k.name]) for r in res.rewards) + " |")
    out += ["", "Perturbations and their expected effect:", ""]
    for k in KINDS:
        out.append(f"- `{k.name}` ({k.family}): {k.effect}")
    if res.human:
        out += ["", "## Agreement with radiologists", "", f"{res.human['pairs']} judged pairs from `{res.human['file']}`.", "",
                "| reward | Kendall τ-b [95% CI] |", "| --- | --- |"]
        for r in res.rewards:
            h = res.human.get(r)
            if h:
                out.append(f"| {r} | {_f(h['tau_b'])}{_ci(h['ci95'])} |")
    for img in images:
        out += ["", f"![heatmap]({img})"]
    return "\n".join(out) + "\n"


def to_html(res: BenchResult, svg: str | None) -> str:
    md_rows = []
    for row in ranking(res):
        md_rows.append(
            f"<tr><td>{html.escape(row['reward'])}</td><td>{_f(row['sensitivity'])}{_ci(row['sensitivity_ci95'])}</td>"
            f"<td>{html.escape(row['worst_hack'] or '–')}</td><td>{_f(row['worst_exposure'], 2)}</td></tr>"
        )
    kinds = [k.name for k in KINDS]
    mean_rows = []
    for r in res.rewards:
        cells = "".join(f"<td>{_f(res.mean[r][k])}</td>" for k in kinds)
        mean_rows.append(f"<tr><th>{html.escape(r)}</th>{cells}</tr>")
    head = "".join(f"<th>{html.escape(k)}</th>" for k in kinds)
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>radeval reward benchmark</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:3px 6px;text-align:right}}</style>
</head><body><h1>Reward benchmark</h1><p>{res.reports} reference reports.</p>
<h2>Ranking</h2><table><tr><th>reward</th><th>clinical sensitivity [95% CI]</th><th>worst hack</th><th>exposure</th></tr>{''.join(md_rows)}</table>
<h2>Score relative to paraphrases</h2>{svg or ''}
<h2>Mean score per perturbation</h2><table><tr><th></th>{head}</tr>{''.join(mean_rows)}</table>
</body></html>
"""


def heatmap(res: BenchResult, out_dir: Path) -> list[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    rewards, kinds, m = relative_matrix(res)
    fig, ax = plt.subplots(figsize=(1.0 + 0.45 * len(kinds), 1.5 + 0.4 * len(rewards)))
    masked = np.ma.masked_invalid(m)
    im = ax.imshow(masked, cmap="RdYlGn_r", vmin=0.0, vmax=1.5, aspect="auto")
    ax.set_xticks(range(len(kinds)), kinds, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(rewards)), rewards, fontsize=8)
    for i in range(len(rewards)):
        for j in range(len(kinds)):
            if not np.isnan(m[i, j]):
                ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=6)
    bounds = [0]
    for fam in ("paraphrase", "error"):
        bounds.append(bounds[-1] + sum(1 for k in KINDS if k.family == fam))
    for b in bounds[1:]:
        ax.axvline(b - 0.5, color="black", lw=1)
    ax.set_title("mean score ÷ mean paraphrase score (red: pays as much as a faithful paraphrase)", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.03)
    fig.tight_layout()
    paths = []
    for ext in ("png", "svg"):
        p = out_dir / f"heatmap.{ext}"
        fig.savefig(p, dpi=130, metadata={"Date": None} if ext == "svg" else None)
        paths.append(p)
    plt.close(fig)
    return paths


def write(res: BenchResult, out_dir: str | Path) -> list[Path]:
    out = ensure_output_dir(Path(out_dir))
    images = heatmap(res, out)
    svg = (out / "heatmap.svg").read_text() if (out / "heatmap.svg").exists() else None
    files = [
        atomic_write(out / "bench.json", _dumps(res.as_dict())),
        atomic_write(out / "report.md", to_markdown(res, [p.name for p in images if p.suffix == ".png"])),
        atomic_write(out / "report.html", to_html(res, svg)),
    ]
    return files + images
