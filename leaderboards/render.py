"""Markdown, LaTeX (booktabs), HTML (self-contained, sortable) and CSV from a computed Table.

All four read the same cells (value text, rank, flags, CI, significance) so they never
disagree. Layouts: ``stacked`` prints one block of rows per dataset (the paper's Table 1);
``side_by_side`` prints one row per system with a column group per dataset (Tables 2–4).
"""

from __future__ import annotations

import csv
import html
import io

from leaderboards.table import DASH, FLAG_MARK, SIG_MARK, Cell, Table, TableRow


# ----- shared layout helpers --------------------------------------------------------------------
def _group_label(table: Table, group: str | None) -> str:
    return "" if group is None else table.spec.groups.get(group, group)


def _side_rows(table: Table) -> list[tuple[str, str | None, dict[str, TableRow]]]:
    """(system, group, {dataset: row}) in order of first appearance."""
    out: dict[str, tuple[str, str | None, dict[str, TableRow]]] = {}
    for r in table.rows:
        out.setdefault(r.system, (r.system, r.group, {}))[2][r.dataset] = r
    return list(out.values())


def _origin(rows: list[TableRow]) -> str:
    return "/".join(dict.fromkeys(r.origin for r in rows))


def _missing_cell() -> Cell:
    return Cell(value=None, text=DASH, origin="", convention="", missing="no row for this dataset")


def _show_ci(table: Table, cell: Cell) -> bool:
    return table.spec.show_ci and cell.ci_text is not None


# ----- Markdown -------------------------------------------------------------------------------------
def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("*", "\\*").replace("_", "\\_")


def _md_cell(table: Table, cell: Cell) -> str:
    if cell.value is None:
        return DASH
    s = cell.text
    if cell.rank == 1:
        s = f"**{s}**"
    elif cell.rank == 2:
        s = f"*{s}*"
    if cell.significant:
        s += SIG_MARK
    if cell.flag:
        s += FLAG_MARK
    if _show_ci(table, cell):
        s += f" {cell.ci_text}"
    return s


def _md_row(values: list[str]) -> str:
    return "| " + " | ".join(values) + " |"


def to_markdown(table: Table) -> str:
    spec = table.spec
    mixed = table.mixed_origin
    has_groups = any(r.group for r in table.rows)
    lines = [f"## {_md_escape(spec.title)}", ""]
    if spec.layout == "stacked":
        head = ["Dataset"] + (["Group"] if has_groups else []) + [_md_escape(spec.row_header)]
        head += [c.heading for c in spec.columns] + (["Origin"] if mixed else [])
        lines.append(_md_row(head))
        lines.append(
            _md_row(["---"] * (len(head) - len(spec.columns) - mixed) + ["---:"] * len(spec.columns) + ["---"] * mixed)
        )
        for ds in spec.datasets:
            prev_group: object = object()
            for i, r in enumerate(table.rows_for(ds.id)):
                vals = [ds.label if i == 0 else ""]
                if has_groups:
                    vals.append(_group_label(table, r.group) if r.group != prev_group else "")
                    prev_group = r.group
                vals.append(_md_escape(r.system))
                vals += [_md_cell(table, r.cells[c.key]) for c in spec.columns]
                if mixed:
                    vals.append(r.origin)
                lines.append(_md_row(vals))
    else:
        head = (["Group"] if has_groups else []) + [_md_escape(spec.row_header)]
        head += [f"{ds.label} {c.heading}" for ds in spec.datasets for c in spec.columns]
        head += ["Origin"] if mixed else []
        n_num = len(spec.datasets) * len(spec.columns)
        lines.append(_md_row(head))
        lines.append(_md_row(["---"] * (len(head) - n_num - mixed) + ["---:"] * n_num + ["---"] * mixed))
        prev_group = object()
        for system, group, by_ds in _side_rows(table):
            vals = []
            if has_groups:
                vals.append(_group_label(table, group) if group != prev_group else "")
                prev_group = group
            vals.append(_md_escape(system))
            for ds in spec.datasets:
                r = by_ds.get(ds.id)
                vals += [_md_cell(table, r.cells[c.key] if r else _missing_cell()) for c in spec.columns]
            if mixed:
                vals.append(_origin(list(by_ds.values())))
            lines.append(_md_row(vals))
    lines.append("")
    lines.append("Notes:")
    lines.append("")
    lines += [f"- {n}" for n in table.notes]
    return "\n".join(lines) + "\n"


# ----- LaTeX (booktabs) ---------------------------------------------------------------------------
_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "–": "--",
    "—": "---",
    "↑": r"$\uparrow$",
    "↓": r"$\downarrow$",
    "†": r"$^\dagger$",
    "‡": r"$^\ddagger$",
    "×": r"$\times$",
    "λ": r"$\lambda$",
    "≈": r"$\approx$",
    "…": r"\ldots{}",
    "≥": r"$\geq$",
    "∈": r"$\in$",
    "→": r"$\rightarrow$",
    "§": r"\S{}",
    "≤": r"$\leq$",
    "<": r"$<$",
    ">": r"$>$",
    "·": r"$\cdot$",
}


def tex(text: str) -> str:
    """Escape text for LaTeX (the few non-ASCII symbols our tables use become math)."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def _tex_inline(text: str) -> str:
    """Escape a note but keep `code` spans as \\texttt."""
    parts = text.split("`")
    return "".join(tex(p) if i % 2 == 0 else r"\texttt{" + tex(p) + "}" for i, p in enumerate(parts))


def _tex_cell(table: Table, cell: Cell) -> str:
    if cell.value is None:
        return "--"
    s = cell.text
    if cell.rank == 1:
        s = rf"\textbf{{{s}}}"
    elif cell.rank == 2:
        s = rf"\textit{{{s}}}"
    marks = ("\\dagger" if cell.significant else "") + ("\\ddagger" if cell.flag else "")
    if marks:
        s += f"$^{{{marks}}}$"
    if _show_ci(table, cell):
        s += rf"\,{{\scriptsize {cell.ci_text}}}"
    return s


def _col_tex(c) -> str:
    arrow = {True: r" $\uparrow$", False: r" $\downarrow$", None: ""}[c.higher_is_better]
    return (c.latex if c.latex else tex(c.label)) + arrow


def to_latex(table: Table) -> str:
    spec = table.spec
    mixed = table.mixed_origin
    has_groups = any(r.group for r in table.rows)
    head_tex = spec.row_header_latex or tex(spec.row_header)
    lead = (["Group"] if has_groups else []) + [head_tex]
    n_lead = len(lead)
    out = [
        "% generated by radeval leaderboards; needs \\usepackage{booktabs}",
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{tex(spec.title)}}}",
        rf"\label{{tab:{spec.id}}}",
    ]
    if spec.layout == "stacked":
        ncols = n_lead + len(spec.columns) + mixed
        out.append(r"\begin{tabular}{" + "l" * n_lead + "r" * len(spec.columns) + "l" * mixed + "}")
        out.append(r"\toprule")
        out.append(" & ".join(lead + [_col_tex(c) for c in spec.columns] + (["Origin"] if mixed else [])) + r" \\")
        for ds in spec.datasets:
            out.append(r"\midrule")
            out.append(rf"\multicolumn{{{ncols}}}{{l}}{{\textit{{{tex(ds.label)}}}}} \\")
            prev_group: object = object()
            for r in table.rows_for(ds.id):
                vals = []
                if has_groups:
                    vals.append(tex(_group_label(table, r.group)) if r.group != prev_group else "")
                    prev_group = r.group
                vals.append(tex(r.system))
                vals += [_tex_cell(table, r.cells[c.key]) for c in spec.columns]
                if mixed:
                    vals.append(r.origin)
                out.append(" & ".join(vals) + r" \\")
    else:
        nc = len(spec.columns)
        out.append(r"\begin{tabular}{" + "l" * n_lead + ("r" * nc) * len(spec.datasets) + "l" * mixed + "}")
        out.append(r"\toprule")
        top = (
            [""] * n_lead
            + [rf"\multicolumn{{{nc}}}{{c}}{{{tex(ds.label)}}}" for ds in spec.datasets]
            + ([""] if mixed else [])
        )
        out.append(" & ".join(top) + r" \\")
        rules = [rf"\cmidrule(lr){{{n_lead + 1 + i * nc}-{n_lead + (i + 1) * nc}}}" for i in range(len(spec.datasets))]
        out.append(" ".join(rules))
        out.append(
            " & ".join(
                lead + [_col_tex(c) for _ in spec.datasets for c in spec.columns] + (["Origin"] if mixed else [])
            )
            + r" \\"
        )
        out.append(r"\midrule")
        prev_group = object()
        for system, group, by_ds in _side_rows(table):
            vals = []
            if has_groups:
                vals.append(tex(_group_label(table, group)) if group != prev_group else "")
                prev_group = group
            vals.append(tex(system))
            for ds in spec.datasets:
                r = by_ds.get(ds.id)
                vals += [_tex_cell(table, r.cells[c.key] if r else _missing_cell()) for c in spec.columns]
            if mixed:
                vals.append(_origin(list(by_ds.values())))
            out.append(" & ".join(vals) + r" \\")
    out.append(r"\bottomrule")
    out.append(r"\end{tabular}")
    out.append(r"\par\smallskip")
    out.append(r"{\footnotesize\raggedright")
    out += [_tex_inline(n) + r"\par" for n in table.notes]
    out.append("}")
    out.append(r"\end{table}")
    return "\n".join(out) + "\n"


# ----- HTML -------------------------------------------------------------------------------------------
_CSS = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}th,td{padding:.3em .7em;border-bottom:1px solid #ddd}
th{cursor:pointer;border-bottom:2px solid #444;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.ours,tr.chosen{background:#eef5ff}.ci{color:#777;font-size:.8em}.flag{color:#b00}
th.sorted-asc::after{content:" \\25B2"}th.sorted-desc::after{content:" \\25BC"}ul.notes{font-size:.9em;max-width:60em}"""

# click a header to sort the rows of that table by the column (numbers by value; "–" last)
_JS = """document.querySelectorAll("table.lb th").forEach(function(th){th.addEventListener("click",function(){
var tb=th.closest("table").tBodies[0],i=th.cellIndex,d=th.classList.contains("sorted-desc")?1:-1;
th.parentNode.querySelectorAll("th").forEach(function(h){h.classList.remove("sorted-asc","sorted-desc")});
th.classList.add(d<0?"sorted-desc":"sorted-asc");
var key=function(tr){var c=tr.cells[i],v=c.getAttribute("data-v");return v===null?c.textContent:(v===""?null:parseFloat(v))};
Array.from(tb.rows).sort(function(a,b){var x=key(a),y=key(b);if(x===null)return 1;if(y===null)return -1;
return (typeof x==="number"?x-y:String(x).localeCompare(String(y)))*d}).forEach(function(r){tb.appendChild(r)})})});"""


def _html_cell(table: Table, cell: Cell) -> str:
    if cell.value is None:
        title = f' title="{html.escape(cell.missing)}"' if cell.missing else ""
        return f'<td class="n" data-v=""{title}>{DASH}</td>'
    s = html.escape(cell.text)
    if cell.rank == 1:
        s = f"<strong>{s}</strong>"
    elif cell.rank == 2:
        s = f"<em>{s}</em>"
    if cell.significant:
        s += f'<sup title="p = {cell.p_value:.4g}">{SIG_MARK}</sup>'
    if cell.flag:
        s += f'<sup class="flag" title="{html.escape(cell.flag)}">{FLAG_MARK}</sup>'
    if _show_ci(table, cell):
        s += f' <span class="ci">{html.escape(cell.ci_text or "")}</span>'
    return f'<td class="n" data-v="{cell.value!r}">{s}</td>'


def _tr_class(group: str | None, chosen: bool) -> str:
    classes = [c for c in ("ours" if group == "ours" else "", "chosen" if chosen else "") if c]
    return f' class="{" ".join(classes)}"' if classes else ""


def to_html(table: Table) -> str:
    spec = table.spec
    mixed = table.mixed_origin
    has_groups = any(r.group for r in table.rows)
    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(spec.title)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h2>{e(spec.title)}</h2>",
    ]
    lead = (["Group"] if has_groups else []) + [spec.row_header]

    def head(cols: list[str]) -> str:
        return "<thead><tr>" + "".join(f"<th>{e(c)}</th>" for c in cols) + "</tr></thead>"

    if spec.layout == "stacked":
        for ds in spec.datasets:
            parts.append(f"<h3>{e(ds.label)}</h3>")
            parts.append('<table class="lb">')
            parts.append(head(lead + [c.heading for c in spec.columns] + (["Origin"] if mixed else [])))
            parts.append("<tbody>")
            for r in table.rows_for(ds.id):
                cells = ([f"<td>{e(_group_label(table, r.group))}</td>"] if has_groups else []) + [
                    f"<td>{e(r.system)}</td>"
                ]
                cells += [_html_cell(table, r.cells[c.key]) for c in spec.columns]
                cells += [f"<td>{r.origin}</td>"] if mixed else []
                parts.append(f"<tr{_tr_class(r.group, r.chosen)}>" + "".join(cells) + "</tr>")
            parts.append("</tbody></table>")
    else:
        parts.append('<table class="lb">')
        parts.append(
            head(
                lead
                + [f"{ds.label} {c.heading}" for ds in spec.datasets for c in spec.columns]
                + (["Origin"] if mixed else [])
            )
        )
        parts.append("<tbody>")
        for system, group, by_ds in _side_rows(table):
            cells = ([f"<td>{e(_group_label(table, group))}</td>"] if has_groups else []) + [f"<td>{e(system)}</td>"]
            for ds in spec.datasets:
                r = by_ds.get(ds.id)
                cells += [_html_cell(table, r.cells[c.key] if r else _missing_cell()) for c in spec.columns]
            cells += [f"<td>{_origin(list(by_ds.values()))}</td>"] if mixed else []
            chosen = any(r.chosen for r in by_ds.values())
            parts.append(f"<tr{_tr_class(group, chosen)}>" + "".join(cells) + "</tr>")
        parts.append("</tbody></table>")
    parts.append('<ul class="notes">')
    for n in table.notes:
        segs = n.split("`")
        parts.append(
            "<li>" + "".join(e(s) if i % 2 == 0 else f"<code>{e(s)}</code>" for i, s in enumerate(segs)) + "</li>"
        )
    parts.append("</ul>")
    parts.append(f"<script>{_JS}</script>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


# ----- CSV (one line per cell) ----------------------------------------------------------------------
CSV_FIELDS = (
    "table",
    "dataset",
    "group",
    "system",
    "origin",
    "metric",
    "label",
    "scale",
    "direction",
    "value",
    "text",
    "ci95_low",
    "ci95_high",
    "p_value",
    "significant",
    "rank",
    "flag",
    "missing",
    "convention",
    "source",
)


def _num(x: float | None) -> str:
    return "" if x is None else repr(float(x))


def to_csv(table: Table) -> str:
    spec = table.spec
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_FIELDS)
    for r in table.rows:
        for c in spec.columns:
            cell = r.cells[c.key]
            w.writerow(
                [
                    spec.id,
                    r.dataset,
                    r.group or "",
                    r.system,
                    r.origin,
                    c.key,
                    c.label,
                    f"{c.scale:g}",
                    {True: "higher", False: "lower", None: "none"}[c.higher_is_better],
                    _num(cell.value),
                    "" if cell.value is None else cell.text,
                    _num(cell.ci[0]) if cell.ci else "",
                    _num(cell.ci[1]) if cell.ci else "",
                    _num(cell.p_value),
                    "yes" if cell.significant else "no",
                    {1: "best", 2: "second"}.get(cell.rank or 0, ""),
                    cell.flag or "",
                    cell.missing or "",
                    cell.convention,
                    r.source or ("radeval" if r.origin == "measured" else ""),
                ]
            )
    return buf.getvalue()
