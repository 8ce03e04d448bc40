"""``build(spec_path, out_dir)``: score the system rows, merge the reported ones, write the table.

Outputs, named by the spec id: ``<id>.md``, ``<id>.tex`` (booktabs), ``<id>.html``
(self-contained, sortable), ``<id>.csv`` (one line per cell, every convention and source), and
the plots the spec asks for (PNG + SVG). Nothing in them depends on the time, the machine or
the absolute path of the spec, so two builds of the same inputs are byte-identical.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from leaderboards.render import to_csv, to_html, to_latex, to_markdown
from leaderboards.scoring import Scored, Scorer, default_cache_dir, metrics_for_columns
from leaderboards.spec import Column, Entry, Row, Spec, load_spec
from leaderboards.table import (
    DASH,
    FLAG_MARK,
    SIG_MARK,
    Cell,
    Table,
    TableRow,
    fmt,
    paper_mark_notes,
    rank_cells,
    strip_version,
)


def _describe(conv: str) -> str:
    """A convention id for a note: signatures in `code` so Markdown/HTML/LaTeX show them verbatim."""
    return f"signature `{conv[10:]}`" if conv.startswith("signature ") else conv


def _column_convention(col: Column) -> str:
    return f"signature {strip_version(col.signature)}" if col.signature else f"convention: {col.convention}"


def _reported_cell(col: Column, entry: Entry) -> Cell:
    value = entry.values.get(col.key)
    if col.key in entry.signatures:
        conv = f"signature {strip_version(entry.signatures[col.key])}"
    elif col.key in entry.conventions:
        conv = f"convention: {entry.conventions[col.key]}"
    else:
        conv = _column_convention(col)  # the spec author asserts the column's convention
    cell = Cell(
        value=value, text=DASH if value is None else fmt(value, col.decimals), origin="reported", convention=conv
    )
    if value is None:
        cell.missing = entry.status or "not reported"
    elif conv != _column_convention(col):
        cell.flag = f"reported under a different {_describe(conv)}"
    return cell


def _measured_cell(col: Column, scored: Scored) -> Cell:
    m = scored.summary["metrics"].get(col.key)
    if m is None:
        return Cell(
            None, DASH, "measured", _column_convention(col), missing="not measured (no metric in the spec produces it)"
        )
    conv = f"signature {strip_version(m['signature'])}"
    if m["score"] is None:
        return Cell(None, DASH, "measured", conv, missing="undefined on these records")
    value = m["score"] * col.scale
    cell = Cell(value=value, text=fmt(value, col.decimals), origin="measured", convention=conv)
    if m["ci95"] is not None:
        lo, hi = (x * col.scale for x in m["ci95"])
        cell.ci = (lo, hi)
        cell.ci_text = f"[{fmt(lo, col.decimals)}, {fmt(hi, col.decimals)}]"
    if col.signature is None:
        cell.flag = f"measured with {_describe(conv)}; the column declares no signature, only a text convention"
    elif conv != _column_convention(col):
        cell.flag = f"measured with {_describe(conv)}, not the column's declared {_describe(_column_convention(col))}"
    return cell


def _scorer(spec: Spec, cache_dir: Path | None) -> Scorer:
    metrics = spec.metrics or metrics_for_columns([c.key for c in spec.columns])
    return Scorer(metrics=metrics, bootstrap=spec.bootstrap, seed=spec.seed, cache_dir=cache_dir)


def _row_entries(spec: Spec) -> list[tuple[Row, str, Entry]]:
    """(row, dataset, entry) dataset-major: the stacked layout prints one block per dataset."""
    return [(r, ds.id, r.entries[ds.id]) for ds in spec.datasets for r in spec.rows if ds.id in r.entries]


def compute(spec: Spec, *, cache_dir: Path | None = None) -> Table:
    """Score what needs scoring and compute every cell, rank and note (no files written)."""
    scorer = _scorer(spec, cache_dir) if spec.has_measured else None
    scored: dict[tuple[str, str], Scored] = {}
    for row, ds, entry in _row_entries(spec):
        if entry.origin == "measured":
            assert scorer is not None and entry.predictions is not None
            scored[(row.system, ds)] = scorer.score(entry.predictions)

    rows: list[TableRow] = []
    for row, ds, entry in _row_entries(spec):
        trow = TableRow(row.system, row.group, ds, entry.origin, row.source, row.chosen, row.note)
        for col in spec.columns:
            if entry.origin == "reported":
                trow.cells[col.key] = _reported_cell(col, entry)
            else:
                trow.cells[col.key] = _measured_cell(col, scored[(row.system, ds)])
        rows.append(trow)
    table = Table(spec=spec, rows=rows, notes=[], details={k: s.details for k, s in scored.items()})
    gen_notes = _significance(table, scorer, scored)
    rank_cells(table)
    table.notes = _notes(table, gen_notes)
    if scorer is not None:
        table.cache_hits, table.cache_misses = scorer.hits, scorer.misses
    return table


def _significance(table: Table, scorer: Scorer | None, scored: dict[tuple[str, str], Scored]) -> list[str]:
    spec = table.spec
    if spec.baseline is None or scorer is None:
        return []
    notes = []
    p_key = "p_bootstrap" if spec.test == "paired_bootstrap" else "p_randomization"
    for ds in spec.datasets:
        measured = [r for r in table.rows_for(ds.id) if r.origin == "measured" and r.system != spec.baseline]
        if not measured:
            continue
        base = scored.get((spec.baseline, ds.id))
        if base is None:
            notes.append(
                f"{ds.label}: no significance test, because the baseline {spec.baseline} is not measured "
                "there (paired tests need per-record scores on the same records)."
            )
            continue
        for r in measured:
            mine = scored[(r.system, ds.id)]
            if sorted(mine.ids) != sorted(base.ids):
                notes.append(
                    f"{ds.label}: {r.system} is not tested against {spec.baseline}: "
                    "the two files hold different record ids."
                )
                continue
            if mine.sha256 == base.sha256:
                continue  # identical predictions: nothing to test
            comparison: dict[str, Any] = scorer.compare(mine, base)
            for key, cell in r.cells.items():
                res = comparison.get(key)
                if res is None or cell.value is None or cell.flag:
                    continue
                cell.p_value = res[p_key]
                cell.significant = cell.p_value is not None and cell.p_value < spec.alpha
    return notes


def _notes(table: Table, generated: list[str]) -> list[str]:
    spec = table.spec
    notes: list[str] = []
    origins = {r.origin for r in table.rows}
    if origins == {"reported"}:
        notes.append(f"All numbers are reported values, as printed in {spec.source or 'their sources'}.")
    elif "reported" in origins:
        notes.append(
            "Rows marked 'reported' are copied from their source; rows marked 'measured' were scored with radeval."
        )
    for col in spec.columns:
        scale = f" (×{col.scale:g})" if col.scale != 1 else ""
        direction = {True: "higher is better", False: "lower is better", None: "not ranked"}[col.higher_is_better]
        notes.append(f"{col.label}{scale}, {direction}: {col.convention}")
        if col.signature:
            notes.append(f"{col.label} signature: `{col.signature}`")
    for ds in spec.datasets:
        if ds.split:
            notes.append(f"{ds.label}: {ds.split}")
    notes.extend(spec.notes)
    notes.append("Bold = best, italic = second best, per dataset and column, computed from the values as shown.")
    notes.extend(paper_mark_notes(table))
    # flagged and missing cells, one note each, in table order
    for r in table.rows:
        ds_label = spec.dataset(r.dataset).label
        for key, cell in r.cells.items():
            label = spec.column(key).label
            if cell.flag:
                notes.append(f"{FLAG_MARK} {ds_label} {r.system} {label}: {cell.flag}; not ranked with the column.")
    # why -> system -> datasets, so a whole missing row reads "dense (IU-Xray, MIMIC-CXR)"
    missing: dict[str, dict[str, list[str]]] = {}
    for r in table.rows:
        for cell in r.cells.values():
            if cell.missing:
                where = missing.setdefault(cell.missing, {}).setdefault(r.system, [])
                if spec.dataset(r.dataset).label not in where:
                    where.append(spec.dataset(r.dataset).label)
    for why, systems in missing.items():
        where = "; ".join(f"{system} ({', '.join(ds)})" for system, ds in systems.items())
        notes.append(f"{DASH} {why}: {where}.")
    if any(r.origin == "measured" for r in table.rows):
        if spec.show_ci:
            notes.append(
                f"Measured values show the {spec.bootstrap}-resample percentile bootstrap 95% interval "
                f"over records (seed {spec.seed})."
            )
        if spec.baseline:
            test = "paired bootstrap" if spec.test == "paired_bootstrap" else "approximate randomization"
            notes.append(
                f"{SIG_MARK} differs from {spec.baseline} at p < {spec.alpha:g} ({test}, two-sided, same records)."
            )
    notes.extend(generated)
    for r in table.rows:
        if r.note:
            notes.append(f"{spec.dataset(r.dataset).label} {r.system}: {r.note}")
    for r in table.rows:
        if r.chosen:
            notes.append(f"{spec.row_header} = {r.system} is the setting the paper uses (its shaded row).")
            break
    return notes


def atomic_write(path: Path, text: str) -> Path:
    """Write via a temp file + rename, so a reader (or a crashed build) never leaves half a table."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    os.replace(tmp, path)
    return path


def write_outputs(table: Table, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    sid = table.spec.id
    files = {
        f"{sid}.md": to_markdown(table),
        f"{sid}.tex": to_latex(table),
        f"{sid}.html": to_html(table),
        f"{sid}.csv": to_csv(table),
    }
    written = [atomic_write(out_dir / name, text) for name, text in files.items()]
    if table.spec.plots:
        from leaderboards.plots import plots_available, spec_plots

        # without matplotlib (the core install) the tables are still complete; the caller
        # says which extra adds the figures (see PLOTS_HINT)
        if plots_available():
            written.extend(spec_plots(table, out_dir))
    return written


def build(spec_path: str | Path, out_dir: str | Path, *, cache_dir: str | Path | None = None) -> Table:
    """Build one leaderboard: validate the spec, score, rank, and write every output format.

    ``cache_dir`` defaults to :func:`leaderboards.scoring.default_cache_dir`.
    """
    spec = load_spec(spec_path)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    table = compute(spec, cache_dir=cache)
    write_outputs(table, Path(out_dir))
    if table.spec.plots:
        from leaderboards.plots import PLOTS_HINT, plots_available

        if not plots_available():
            import warnings

            warnings.warn(f"{table.spec.id}: plots not drawn; {PLOTS_HINT}", stacklevel=2)
    return table
