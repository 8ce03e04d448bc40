"""Figures: hyper-parameter sweeps (the VALOR paper's Fig. 6), metric-vs-step curves from a
training log (Fig. 7) and per-label CheXpert/CheXbert F1 bars comparing systems.

Figures are drawn on ``matplotlib.figure.Figure`` objects (no pyplot, no global backend
state, works headless) and written as PNG + SVG with fixed metadata, so the same inputs give
the same files.
"""

from __future__ import annotations

import json
import math
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from radeval.errors import InputError

# colour-blind-safe (Okabe-Ito) palette, fixed order so a system keeps its colour across figures
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


PLOTS_HINT = "figures need matplotlib: pip install 'radeval-toolkit[leaderboard]'"


def plots_available() -> bool:
    """Whether matplotlib can be imported (it is an extra; tables never need it)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def save(fig, out_base: str | Path) -> list[Path]:
    """Write ``out_base.png`` and ``out_base.svg`` (deterministic metadata)."""
    import matplotlib

    out_base = Path(out_base)
    out_base.parent.mkdir(parents=True, exist_ok=True)
    png, svg = out_base.with_suffix(".png"), out_base.with_suffix(".svg")
    fig.savefig(png, dpi=150, metadata={"Software": None})
    with matplotlib.rc_context({"svg.hashsalt": "radeval-leaderboards", "svg.fonttype": "path"}):
        fig.savefig(svg, metadata={"Date": None, "Creator": None})
    return [png, svg]


# ----- sweeps (Fig. 6) ---------------------------------------------------------------------------
def plot_sweep(table, out_base: str | Path, *, parameter: str | None = None) -> list[Path]:
    """One panel per metric column, one line per dataset, x = the sweep settings in spec order.

    Settings whose run produced no number (non-convergence, reward collapse) are drawn as red
    crosses on the axis with their reason, rather than dropped, and the setting the paper
    uses is shaded.
    """
    spec = table.spec
    settings = table.systems
    parameter = parameter or spec.row_header
    n = len(spec.columns)
    fig = _figure(4.2 * n, 3.7)
    axes = fig.subplots(1, n, squeeze=False)[0]
    xs = list(range(len(settings)))
    for ax, col in zip(axes, spec.columns):
        for j, ds in enumerate(spec.datasets):
            pts = []
            for x, system in zip(xs, settings):
                rows = [r for r in table.rows if r.system == system and r.dataset == ds.id]
                v = rows[0].cells[col.key].value if rows else None
                if v is not None:
                    pts.append((x, v))
            if pts:
                ax.plot(
                    [p[0] for p in pts],
                    [p[1] for p in pts],
                    marker=MARKERS[j % len(MARKERS)],
                    color=PALETTE[j % len(PALETTE)],
                    label=ds.label,
                )
                for x, v in pts:
                    ax.annotate(
                        f"{v:.{col.decimals}f}",
                        (x, v),
                        textcoords="offset points",
                        xytext=(0, 6),
                        ha="center",
                        fontsize=7,
                        color=PALETTE[j % len(PALETTE)],
                    )
        lo, hi = ax.get_ylim()
        pad = (hi - lo) * 0.25 or 1.0
        ax.set_ylim(lo - pad, hi + pad * 0.5)
        for x, system in zip(xs, settings):
            rows = [r for r in table.rows if r.system == system]
            reasons = sorted({r.cells[col.key].missing for r in rows if r.cells[col.key].missing})
            if reasons:
                ax.plot([x], [lo - pad * 0.6], marker="x", color="#C00000", markersize=9, linestyle="none")
                text = "\n".join(textwrap.fill(r, 16) for r in reasons)
                ax.annotate(
                    text,
                    (x, lo - pad * 0.6),
                    textcoords="offset points",
                    xytext=(0, 8),
                    ha="center",
                    va="bottom",
                    fontsize=7,
                    color="#C00000",
                )
            if any(r.chosen for r in rows):
                ax.axvspan(x - 0.3, x + 0.3, color="#DDE8F6", zorder=0)
        ax.set_xticks(xs, settings)
        ax.set_xlim(-0.5, len(settings) - 0.5)
        ax.set_xlabel(parameter)
        scale = f" (×{col.scale:g})" if col.scale != 1 else ""
        ax.set_ylabel(f"{col.label}{scale}")
        ax.set_title(f"{col.label} vs {parameter}", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=max(1, len(labels)), fontsize=8, frameon=False)
    fig.suptitle(spec.title, fontsize=10)
    return save(fig, out_base)


# ----- training curves (Fig. 7) ------------------------------------------------------------------
def read_log(path: str | Path) -> list[dict[str, Any]]:
    """JSONL lines ``{"step": int, KEY: number, ...}`` (other fields, e.g. ``stage``, kept)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such training log")
    rows = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"{path}:{i}: not valid JSON ({e.msg})") from None
        if (
            not isinstance(obj, dict)
            or isinstance(obj.get("step"), bool)
            or not isinstance(obj.get("step"), (int, float))
        ):
            raise InputError(f"{path}:{i}: each line needs a numeric 'step' field")
        rows.append(obj)
    if not rows:
        raise InputError(f"{path}: the training log is empty")
    return rows


def _numeric_keys(rows: list[dict[str, Any]]) -> list[str]:
    keys: dict[str, None] = {}
    for r in rows:
        for k, v in r.items():
            if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool):
                keys[k] = None
    return list(keys)


def plot_training_curves(
    log: str | Path | list[dict[str, Any]],
    out_base: str | Path,
    *,
    keys: Sequence[str] | None = None,
    marks: Mapping[str, float] | None = None,
    title: str = "Metrics over policy updates",
) -> list[Path]:
    """One panel per key against ``step``; stage changes (a ``stage`` field) and ``marks``
    (label -> step, e.g. the first clinical-reward step) are drawn as dashed vertical lines."""
    rows = read_log(log) if not isinstance(log, list) else log
    keys = list(keys) if keys else _numeric_keys(rows)
    missing = [k for k in keys if not any(k in r for r in rows)]
    if missing:
        raise InputError(f"key(s) {', '.join(missing)} not in the training log (has: {', '.join(_numeric_keys(rows))})")
    if not keys:
        raise InputError("the training log has no numeric fields besides 'step'")
    lines: dict[str, float] = {}
    prev = None
    for r in sorted(rows, key=lambda r: r["step"]):
        stage = r.get("stage")
        if stage is not None and prev is not None and stage != prev:
            lines[f"start of {stage}"] = r["step"]
        prev = stage if stage is not None else prev
    lines.update(marks or {})
    n = len(keys)
    ncols = min(n, 3)
    nrows = math.ceil(n / ncols)
    fig = _figure(4.0 * ncols, 3.0 * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for i, (ax, key) in enumerate(zip(axes, keys)):
        pts = sorted(
            (r["step"], r[key])
            for r in rows
            if isinstance(r.get(key), (int, float)) and not isinstance(r.get(key), bool)
        )
        ax.plot(
            [p[0] for p in pts],
            [p[1] for p in pts],
            color=PALETTE[i % len(PALETTE)],
            marker="." if len(pts) < 60 else None,
        )
        for j, (label, step) in enumerate(sorted(lines.items(), key=lambda kv: kv[1])):
            ax.axvline(step, color="#555555", linestyle="--", linewidth=0.9)
            if i == 0:
                ax.annotate(
                    label,
                    (step, 1.0),
                    xycoords=("data", "axes fraction"),
                    xytext=(3, -10 - 10 * j),
                    textcoords="offset points",
                    fontsize=7,
                    color="#333333",
                    bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none", "alpha": 0.8},
                )
        ax.set_title(key, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    for ax in axes[n:]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=10)
    return save(fig, out_base)


# ----- per-label F1 bars ---------------------------------------------------------------------------
def per_label_f1(details: Mapping[str, Any], metric: str | None = None, field: str = "f1") -> dict[str, float]:
    """{label: F1} (or another per-label ``field``, e.g. ``support``) from a Result's details.

    Accepts ``details[metric]["per_label"]`` as ``{label: F1}`` or ``{label: {"f1": F1, ...}}``.
    """
    names = [metric] if metric else sorted(details)
    for name in names:
        d = details.get(name)
        if isinstance(d, Mapping) and isinstance(d.get("per_label"), Mapping):
            out = {}
            for label, v in d["per_label"].items():
                x = v.get(field) if isinstance(v, Mapping) else (v if field == "f1" else None)
                if isinstance(x, (int, float)) and not isinstance(x, bool):
                    out[str(label)] = float(x)
            if out:
                return out
    raise InputError(
        f"no per-label F1 in the details of {metric or 'any metric'} "
        f"(have: {', '.join(sorted(details)) or 'none'}); score with a clinical metric such as chexpert_rules"
    )


def plot_per_label(
    systems: Mapping[str, Mapping[str, float]],
    out_base: str | Path,
    *,
    title: str = "Per-label F1",
    scale: float = 100.0,
    support: Mapping[str, float] | None = None,
) -> list[Path]:
    """Grouped horizontal bars: one group per label (in the first system's order), one bar per system.

    ``support`` (label -> number of reference positives) is printed with each label, so an F1
    of 0 on a label with no positives in the references reads as such.
    """
    if not systems:
        raise InputError("no systems to plot")
    labels = list(dict.fromkeys(lab for per in systems.values() for lab in per))
    names = list(systems)
    fig = _figure(7.5, 0.32 * len(labels) * max(1, len(names)) * 0.55 + 1.6)
    ax = fig.subplots()
    h = 0.8 / len(names)
    for j, name in enumerate(names):
        ys = [i + (j - (len(names) - 1) / 2) * h for i in range(len(labels))]
        vals = [systems[name].get(lab, math.nan) * scale for lab in labels]
        ax.barh(ys, vals, height=h, color=PALETTE[j % len(PALETTE)], label=name)
        # print each value so a zero F1 (a visible "0") is not confused with an undefined one ("n/a")
        for y, v in zip(ys, vals):
            ax.text(0 if math.isnan(v) else v, y, " n/a" if math.isnan(v) else f" {v:.0f}", va="center", fontsize=6)
    ticks = [f"{lab} (n={support[lab]:g})" if support and lab in support else lab for lab in labels]
    ax.set_yticks(range(len(labels)), ticks, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"F1 (×{scale:g})" if scale != 1 else "F1")
    ax.set_xlim(0, scale * 1.06)
    ax.grid(axis="x", alpha=0.3)
    fig.legend(loc="outside lower center", ncols=min(len(names), 4), fontsize=8, frameon=False)
    ax.set_title(title, fontsize=10)
    return save(fig, out_base)


# ----- plots a spec asks for ------------------------------------------------------------------------
def spec_plots(table, out_dir: Path) -> list[Path]:
    written: list[Path] = []
    spec = table.spec
    for i, plot in enumerate(spec.plots):
        suffix = "" if i == 0 else f"_{i}"
        if plot.kind == "sweep":
            written += plot_sweep(table, out_dir / f"{spec.id}_sweep{suffix}", parameter=plot.options.get("parameter"))
        elif plot.kind == "per_label":
            metric = plot.options.get("metric")
            dataset = plot.options.get("dataset", spec.datasets[0].id)
            measured = [r for r in table.rows if r.dataset == dataset and (r.system, r.dataset) in table.details]
            if not measured:
                raise InputError(f"{spec.path}: plots[{i}]: per_label needs measured rows on dataset {dataset!r}")
            per = {r.system: per_label_f1(table.details[(r.system, r.dataset)], metric) for r in measured}
            try:  # reference positives are the same for every system on one dataset
                support = per_label_f1(table.details[(measured[0].system, dataset)], metric, field="support")
            except InputError:
                support = None
            written += plot_per_label(
                per,
                out_dir / f"{spec.id}_per_label{suffix}",
                title=plot.options.get("title", f"Per-label F1 ({metric or 'clinical'})"),
                support=support,
            )
    return written
