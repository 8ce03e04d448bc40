"""The computed table: every cell's value, how it is shown, its rank and its flags.

Ranking rules (one place, so every output format agrees):

* best (**bold**) and second best (*italic*) are chosen per dataset and column, by the
  column's direction, among the values *as displayed* (rounded to the column's decimals), so
  two cells that print the same number always get the same mark; ties share the mark, and
  "second" is the next distinct value;
* a value whose convention differs from the column's declared one is flagged (‡ and a note)
  and left out of the ranking: numbers computed under different conventions are never ranked
  against each other silently;
* missing values (a training run that collapsed, a metric that was not measured) print "–"
  with a note saying why.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from leaderboards.spec import Column, Spec

SIG_MARK = "†"  # significantly different from the baseline (paired test, measured rows)
FLAG_MARK = "‡"  # convention differs from the column's declared convention
DASH = "–"


def strip_version(signature: str) -> str:
    """A signature without its ``radeval:X`` part: a release that does not change a metric's
    numbers (its ``impl`` version is unchanged) must not make old and new rows unrankable."""
    return "|".join(p for p in signature.split("|") if not p.startswith("radeval:"))


@dataclass
class Cell:
    value: float | None  # in the table's scale (reported as printed; measured x column scale)
    text: str  # the number as displayed, or "–"
    origin: str  # reported | measured
    convention: str  # the convention this value was computed under (signature or text)
    ci: tuple[float, float] | None = None
    ci_text: str | None = None
    p_value: float | None = None
    significant: bool = False
    rank: int | None = None  # 1 best, 2 second
    flag: str | None = None  # why this value is not ranked with the column
    missing: str | None = None  # why there is no value


@dataclass
class TableRow:
    system: str
    group: str | None
    dataset: str
    origin: str
    source: str | None
    chosen: bool
    note: str | None
    cells: dict[str, Cell] = field(default_factory=dict)


@dataclass
class Table:
    spec: Spec
    rows: list[TableRow]  # in spec order, dataset-major for the stacked layout
    notes: list[str]  # spec notes + generated notes, in a fixed order
    cache_hits: int = 0
    cache_misses: int = 0
    # (system, dataset) -> radeval details of measured rows (per-label F1 for the bar charts)
    details: dict[tuple[str, str], dict] = field(default_factory=dict)

    def rows_for(self, dataset: str) -> list[TableRow]:
        return [r for r in self.rows if r.dataset == dataset]

    def row(self, system: str, dataset: str) -> TableRow:
        return next(r for r in self.rows if r.system == system and r.dataset == dataset)

    def cell(self, system: str, dataset: str, key: str) -> Cell:
        return self.row(system, dataset).cells[key]

    @property
    def systems(self) -> list[str]:
        return list(dict.fromkeys(r.system for r in self.rows))

    @property
    def mixed_origin(self) -> bool:
        return len({r.origin for r in self.rows}) > 1


def fmt(value: float, decimals: int) -> str:
    s = f"{value:.{decimals}f}"
    return s[1:] if s.startswith("-") and float(s) == 0 else s  # no "-0.00"


def rank_cells(table: Table) -> None:
    """Set ``rank`` on every cell (see the module doc)."""
    spec = table.spec
    for ds in spec.datasets:
        for col in spec.columns:
            if col.higher_is_better is None:
                continue  # informational column
            cells = [
                r.cells[col.key]
                for r in table.rows_for(ds.id)
                if col.key in r.cells and r.cells[col.key].value is not None and r.cells[col.key].flag is None
            ]
            shown = sorted({float(c.text) for c in cells}, reverse=col.higher_is_better)
            for c in cells:
                v = float(c.text)
                if shown and v == shown[0]:
                    c.rank = 1
                elif len(shown) > 1 and v == shown[1]:
                    c.rank = 2


def paper_mark_notes(table: Table) -> list[str]:
    """Notes where the computed best differs from the cell the paper itself marks as best."""
    notes = []
    spec = table.spec
    for m in spec.paper_best:
        col: Column = spec.column(m.column)
        ds_label = spec.dataset(m.dataset).label
        marked = table.cell(m.system, m.dataset, m.column)
        best = [r for r in table.rows_for(m.dataset) if col.key in r.cells and r.cells[col.key].rank == 1]
        if marked.rank == 1:
            continue
        others = ", ".join(f"{r.system} ({r.cells[col.key].text})" for r in best) or "no ranked value"
        notes.append(
            f"{ds_label} {col.label}: the paper marks {m.system} ({marked.text}) as best ({m.basis}); "
            f"by value the best is {others}, which this table bolds."
        )
    return notes
