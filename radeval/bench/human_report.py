"""Render a ``radeval bench human`` result: JSON, Markdown, HTML and a τ-with-CI plot."""

from __future__ import annotations

import html
from pathlib import Path

from radeval.bench.human import HumanResult, display_name, human_table_rows, ranking
from radeval.evaluation import _dumps, atomic_write

TITLES = {"rexval": "ReXVal", "radpref": "RadPref", "radjudge": "RadJudge"}


def to_markdown(res: HumanResult, images: list[str]) -> str:
    out = [f"# Agreement with radiologists — {TITLES.get(res.dataset, res.dataset)}", ""]
    out.append(f"{res.candidates} candidate reports in {res.cases} cases from `{res.source}`; "
               f"{res.seconds:.1f} s.")  # fmt: skip
    if res.dataset != "radjudge":
        out.append(f"95% CIs: percentile bootstrap over cases (B = {res.settings['bootstrap']}, "
                   f"seed {res.settings['seed']}).")  # fmt: skip
    for n in res.notes:
        out.append(f"- {n}")
    if res.skipped:
        out += ["", "Not run: " + "; ".join(f"`{k}` ({v})" for k, v in res.skipped.items())]
    cols, rows = human_table_rows(res)
    out += ["", "## Ranking", "", "| " + " | ".join(cols) + " |", "| --- |" + " ---: |" * (len(cols) - 1)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    if res.dataset == "radjudge":
        cases = sorted({c for v in res.metrics.values() for c in v["cases"]})
        out += ["", "## Per case", "", "| case | " + " | ".join(res.metrics) + " |", "| --- |" + " :-: |" * len(res.metrics)]
        for c in cases:
            cells = [{True: "✓", False: "✗", None: "–"}[v["cases"].get(c)] for v in res.metrics.values()]
            out.append(f"| {c} | " + " | ".join(cells) + " |")
    for img in images:
        out += ["", f"![Kendall tau with 95% CIs]({img})"]
    return "\n".join(out) + "\n"


def to_html(res: HumanResult, svg: str | None) -> str:
    cols, rows = human_table_rows(res)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(x)}</td>" for x in r) + "</tr>" for r in rows)
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in res.notes)
    title = TITLES.get(res.dataset, res.dataset)
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>radeval bench human — {html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:3px 6px;text-align:right}}</style>
</head><body><h1>Agreement with radiologists — {html.escape(title)}</h1>
<p>{res.candidates} candidate reports in {res.cases} cases from <code>{html.escape(res.source)}</code>.</p><ul>{notes}</ul>
<h2>Ranking</h2><table><tr>{head}</tr>{body}</table>{svg or ''}</body></html>
"""


def plot(res: HumanResult, out_dir: Path) -> list[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    rows = ranking(res)
    if not rows:
        return []
    fig, ax = plt.subplots(figsize=(6, 1.0 + 0.4 * len(rows)))
    names = [display_name(r) for r in rows][::-1]
    if res.dataset == "radjudge":
        vals = [r["passed"] / r["total"] for r in rows][::-1]
        ax.barh(names, vals, color="#4a7")
        ax.set_xlim(0, 1)
        ax.set_xlabel("share of RadJudge cases passed")
    else:
        import numpy as np

        rev = rows[::-1]
        vals = np.array([np.nan if r["tau_b"] is None else r["tau_b"] for r in rev])
        # percentile CIs need not contain the point estimate (few cases): draw them as intervals
        for y, r in enumerate(rev):
            if r["tau_b_ci95"]:
                ax.hlines(y, *r["tau_b_ci95"], color="#36c", lw=2)
        ax.plot(vals, range(len(rev)), "o", color="#123")
        ax.set_yticks(range(len(rev)), names)
        ax.axvline(0, color="grey", lw=0.8)
        ax.set_xlabel("Kendall τ-b with radiologists (95% CI)")
    ax.set_title(TITLES.get(res.dataset, res.dataset), fontsize=10)
    fig.tight_layout()
    paths = []
    for ext in ("png", "svg"):
        p = out_dir / f"tau.{ext}"
        fig.savefig(p, dpi=130, metadata={"Date": None} if ext == "svg" else None)
        paths.append(p)
    plt.close(fig)
    return paths


def write(res: HumanResult, out_dir: str | Path) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    images = plot(res, out)
    svg = (out / "tau.svg").read_text() if (out / "tau.svg").exists() else None
    return [
        atomic_write(out / "bench-human.json", _dumps(res.as_dict())),
        atomic_write(out / "report.md", to_markdown(res, [p.name for p in images if p.suffix == ".png"])),
        atomic_write(out / "report.html", to_html(res, svg)),
        *images,
    ]
