"""Leaderboard specs: a YAML file per table, validated into frozen dataclasses.

A spec says *what* a table shows (datasets, metric columns with their scale, direction and
convention) and *where each number comes from*: a ``reported`` number copied from a paper
(with its ``source``) or a ``predictions`` JSONL that radeval scores. Every problem is raised
as :class:`radeval.errors.ConfigError` naming the file and the field path, e.g.
``valor_table1.yaml: rows[3].reported.iu_xray.bleu_mean: expected a number, got 'n/a'``.

Shape (see leaderboards/specs/ for full examples)::

    id: valor_table1
    title: "Table 1: ..."
    layout: stacked            # stacked: one block of rows per dataset; side_by_side: datasets as column groups
    datasets: [{id: iu_xray, label: IU-Xray, split: test}]
    columns:
      - {key: bleu_mean, label: BLEU, scale: 100, decimals: 2, direction: higher,
         convention: "mean of BLEU-1..4 ...", signature: "bleu|impl:...|tok:r2gen-iu|..."}
    groups: {base: Base model, ours: Ours}
    rows:
      - {system: LLaVA-Med v1.5, group: base, dataset: iu_xray, reported: {bleu_mean: 8.55}, source: "..."}
      - {system: Mine, group: ours, dataset: iu_xray, predictions: preds.jsonl}
    baseline: LLaVA-Med v1.5   # measured rows are tested against it (paired, same records)

Reported numbers are in the table's scale as printed; measured scores (radeval's own scale,
mostly [0, 1]) are multiplied by the column's ``scale``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radeval.errors import ConfigError

LAYOUTS = ("stacked", "side_by_side")
TESTS = ("paired_bootstrap", "approx_randomization")
PLOT_KINDS = ("sweep", "per_label")

# labels of the group ids valor_tables.json uses; a spec may add or override them
DEFAULT_GROUP_LABELS = {
    "base": "Base model",
    "baseline": "Baselines",
    "advancing": "Advancing",
    "ours": "Ours",
    "general": "General VLM",
    "medical": "Medical VLM",
}


@dataclass(frozen=True)
class Dataset:
    id: str
    label: str
    split: str | None = None


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    convention: str
    scale: float = 1.0
    decimals: int = 2
    higher_is_better: bool | None = True  # None: informational, never ranked (e.g. report length)
    signature: str | None = None  # the radeval signature measured values must carry
    latex: str | None = None  # label for LaTeX when it needs math (e.g. $\lambda$)

    @property
    def arrow(self) -> str:
        return {True: "↑", False: "↓", None: ""}[self.higher_is_better]

    @property
    def heading(self) -> str:
        return f"{self.label} {self.arrow}".rstrip()


@dataclass(frozen=True)
class Entry:
    """One row's numbers on one dataset: reported (copied) or measured (a predictions file)."""

    origin: str  # "reported" | "measured"
    values: dict[str, float | None] = field(default_factory=dict)
    predictions: Path | None = None
    status: str | None = None  # why reported values are missing ("non-convergence")
    conventions: dict[str, str] = field(default_factory=dict)  # key -> a different convention
    signatures: dict[str, str] = field(default_factory=dict)  # key -> signature of a reported value


@dataclass(frozen=True)
class Row:
    system: str
    group: str | None
    entries: dict[str, Entry]  # dataset id -> entry
    source: str | None = None
    note: str | None = None
    chosen: bool = False  # highlighted (the paper's shaded row)


@dataclass(frozen=True)
class PaperMark:
    """A cell the paper itself marks as best, with the basis for saying so."""

    dataset: str
    column: str
    system: str
    basis: str


@dataclass(frozen=True)
class Plot:
    kind: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Spec:
    id: str
    title: str
    path: Path
    layout: str
    datasets: tuple[Dataset, ...]
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]
    groups: dict[str, str]
    row_header: str = "Model"
    row_header_latex: str | None = None
    source: str | None = None
    notes: tuple[str, ...] = ()
    baseline: str | None = None
    test: str = "paired_bootstrap"
    alpha: float = 0.05
    metrics: tuple[tuple[str, dict[str, Any]], ...] = ()  # radeval metrics that score the files
    bootstrap: int = 1000
    seed: int = 0
    show_ci: bool = True
    paper_best: tuple[PaperMark, ...] = ()
    plots: tuple[Plot, ...] = ()

    def dataset(self, dataset_id: str) -> Dataset:
        return next(d for d in self.datasets if d.id == dataset_id)

    def column(self, key: str) -> Column:
        return next(c for c in self.columns if c.key == key)

    @property
    def has_measured(self) -> bool:
        return any(e.origin == "measured" for r in self.rows for e in r.entries.values())


# ----- validation helpers ----------------------------------------------------------------------
class _Ctx:
    """Carries the file name so every message says where the problem is."""

    def __init__(self, path: Path):
        self.path = path

    def fail(self, where: str, msg: str) -> ConfigError:
        return ConfigError(f"{self.path}: {where}: {msg}" if where else f"{self.path}: {msg}")

    def mapping(self, obj: Any, where: str) -> dict:
        if not isinstance(obj, dict):
            raise self.fail(where, f"expected a mapping, got {type(obj).__name__}")
        return obj

    def seq(self, obj: Any, where: str, *, nonempty: bool = True) -> list:
        if not isinstance(obj, list):
            raise self.fail(where, f"expected a list, got {type(obj).__name__}")
        if nonempty and not obj:
            raise self.fail(where, "must not be empty")
        return obj

    def text(self, obj: Any, where: str) -> str:
        # YAML turns 0.5 or dense into float/str: row labels of sweeps may be numbers
        if isinstance(obj, bool) or obj is None or not isinstance(obj, (str, int, float)):
            raise self.fail(where, f"expected a string, got {obj!r}")
        s = str(obj).strip()
        if not s:
            raise self.fail(where, "must not be empty")
        return s

    def number(self, obj: Any, where: str, *, allow_none: bool = False) -> float | None:
        if obj is None and allow_none:
            return None
        if isinstance(obj, bool) or not isinstance(obj, (int, float)) or not math.isfinite(obj):
            raise self.fail(where, f"expected a number, got {obj!r}")
        return float(obj)

    def known(self, obj: dict, allowed: set[str], where: str) -> None:
        extra = sorted(set(obj) - allowed)
        if extra:
            raise self.fail(
                where, f"unknown field(s) {', '.join(map(str, extra))}; allowed: {', '.join(sorted(allowed))}"
            )


_TOP = {
    "id",
    "title",
    "layout",
    "datasets",
    "columns",
    "rows",
    "groups",
    "row_header",
    "row_header_latex",
    "source",
    "notes",
    "baseline",
    "test",
    "alpha",
    "metrics",
    "bootstrap",
    "seed",
    "show_ci",
    "paper_best",
    "plots",
}
_COL = {"key", "label", "scale", "decimals", "direction", "convention", "signature", "latex"}
_ROW = {
    "system",
    "group",
    "dataset",
    "reported",
    "predictions",
    "source",
    "note",
    "chosen",
    "status",
    "conventions",
    "signatures",
}


def _scale(ctx: _Ctx, obj: Any, where: str) -> float:
    if isinstance(obj, str):
        s = obj.strip().lower()
        if s.startswith("x"):
            s = s[1:]
        try:
            obj = float(s)
        except ValueError:
            raise ctx.fail(where, f"expected a number or 'x100', got {obj!r}") from None
    value = ctx.number(obj, where)
    if value <= 0:
        raise ctx.fail(where, f"must be positive, got {obj!r}")
    return value


def _column(ctx: _Ctx, obj: Any, where: str) -> Column:
    obj = ctx.mapping(obj, where)
    ctx.known(obj, _COL, where)
    for req in ("key", "label", "convention"):
        if req not in obj:
            raise ctx.fail(where, f"missing field {req!r}")
    direction = obj.get("direction", "higher")
    if direction not in ("higher", "lower", "none"):
        raise ctx.fail(f"{where}.direction", f"expected 'higher', 'lower' or 'none', got {direction!r}")
    decimals = obj.get("decimals", 2)
    if isinstance(decimals, bool) or not isinstance(decimals, int) or not 0 <= decimals <= 6:
        raise ctx.fail(f"{where}.decimals", f"expected an integer 0..6, got {decimals!r}")
    signature = obj.get("signature")
    return Column(
        key=ctx.text(obj["key"], f"{where}.key"),
        label=ctx.text(obj["label"], f"{where}.label"),
        convention=ctx.text(obj["convention"], f"{where}.convention"),
        scale=_scale(ctx, obj.get("scale", 1), f"{where}.scale"),
        decimals=decimals,
        higher_is_better=None if direction == "none" else direction == "higher",
        signature=None if signature is None else ctx.text(signature, f"{where}.signature"),
        latex=None if obj.get("latex") is None else ctx.text(obj["latex"], f"{where}.latex"),
    )


def _values(ctx: _Ctx, obj: Any, where: str, columns: dict[str, Column]) -> dict[str, float | None]:
    obj = ctx.mapping(obj, where)
    out: dict[str, float | None] = {}
    for k, v in obj.items():
        if k not in columns:
            raise ctx.fail(f"{where}.{k}", f"not a column of this table (columns: {', '.join(columns)})")
        out[k] = ctx.number(v, f"{where}.{k}", allow_none=True)
    return out


def _str_map(ctx: _Ctx, obj: Any, where: str, columns: dict[str, Column]) -> dict[str, str]:
    obj = ctx.mapping(obj, where)
    for k in obj:
        if k not in columns:
            raise ctx.fail(f"{where}.{k}", f"not a column of this table (columns: {', '.join(columns)})")
    return {k: ctx.text(v, f"{where}.{k}") for k, v in obj.items()}


def _row(
    ctx: _Ctx, obj: Any, where: str, datasets: dict[str, Dataset], columns: dict[str, Column], base_dir: Path
) -> Row:
    obj = ctx.mapping(obj, where)
    ctx.known(obj, _ROW, where)
    if "system" not in obj:
        raise ctx.fail(where, "missing field 'system'")
    system = ctx.text(obj["system"], f"{where}.system")
    has_rep, has_pred = "reported" in obj, "predictions" in obj
    if has_rep == has_pred:
        raise ctx.fail(where, f"row {system!r} needs exactly one of 'reported' or 'predictions'")
    conventions = _str_map(ctx, obj.get("conventions", {}), f"{where}.conventions", columns)
    signatures = _str_map(ctx, obj.get("signatures", {}), f"{where}.signatures", columns)
    status = None if obj.get("status") is None else ctx.text(obj["status"], f"{where}.status")
    if has_pred and (signatures or status):
        raise ctx.fail(where, "'signatures' and 'status' are for reported rows (measured rows carry their own)")

    field_name = "reported" if has_rep else "predictions"
    payload = obj[field_name]
    # one dataset per row (dataset: X) or a mapping dataset -> payload
    if "dataset" in obj:
        ds = ctx.text(obj["dataset"], f"{where}.dataset")
        per_ds = {ds: payload}
        prefix = f"{where}.{field_name}"
        paths = {ds: prefix}
    else:
        if len(datasets) == 1 and not (isinstance(payload, dict) and set(payload) <= set(datasets)):
            only = next(iter(datasets))
            per_ds, paths = {only: payload}, {only: f"{where}.{field_name}"}
        else:
            per_ds = ctx.mapping(payload, f"{where}.{field_name}")
            paths = {d: f"{where}.{field_name}.{d}" for d in per_ds}
    entries: dict[str, Entry] = {}
    for ds, value in per_ds.items():
        if ds not in datasets:
            raise ctx.fail(paths[ds], f"unknown dataset {ds!r} (datasets: {', '.join(datasets)})")
        if has_rep:
            if value is None:  # a whole row missing (e.g. training collapsed)
                if status is None:
                    raise ctx.fail(paths[ds], "null values need a 'status' saying why they are missing")
                vals: dict[str, float | None] = {k: None for k in columns}
            else:
                vals = _values(ctx, value, paths[ds], columns)
            if any(v is None for v in vals.values()) and status is None:
                raise ctx.fail(paths[ds], "null values need a 'status' saying why they are missing")
            entries[ds] = Entry("reported", vals, status=status, conventions=conventions, signatures=signatures)
        else:
            p = Path(ctx.text(value, paths[ds]))
            if not p.is_absolute():
                p = (base_dir / p).resolve()
            if not p.is_file():
                raise ctx.fail(paths[ds], f"predictions file not found: {p}")
            entries[ds] = Entry("measured", predictions=p, conventions=conventions)
    chosen = obj.get("chosen", False)
    if not isinstance(chosen, bool):
        raise ctx.fail(f"{where}.chosen", f"expected true/false, got {chosen!r}")
    return Row(
        system=system,
        group=None if obj.get("group") is None else ctx.text(obj["group"], f"{where}.group"),
        entries=entries,
        source=None if obj.get("source") is None else ctx.text(obj["source"], f"{where}.source"),
        note=None if obj.get("note") is None else ctx.text(obj["note"], f"{where}.note"),
        chosen=chosen,
    )


def _metrics(ctx: _Ctx, obj: Any) -> tuple[tuple[str, dict[str, Any]], ...]:
    out = []
    for i, m in enumerate(ctx.seq(obj, "metrics")):
        where = f"metrics[{i}]"
        if isinstance(m, str):
            out.append((m, {}))
            continue
        m = ctx.mapping(m, where)
        ctx.known(m, {"name", "options"}, where)
        if "name" not in m:
            raise ctx.fail(where, "missing field 'name'")
        options = ctx.mapping(m.get("options", {}), f"{where}.options")
        out.append((ctx.text(m["name"], f"{where}.name"), dict(options)))
    names = [n for n, _ in out]
    if len(set(names)) != len(names):
        raise ctx.fail("metrics", "a metric is listed twice")
    return tuple(out)


def parse_spec(data: Any, path: Path) -> Spec:
    """Validate a loaded YAML/JSON document into a :class:`Spec`."""
    ctx = _Ctx(path)
    data = ctx.mapping(data, "")
    ctx.known(data, _TOP, "top level")
    for req in ("id", "title", "datasets", "columns", "rows"):
        if req not in data:
            raise ctx.fail("", f"missing top-level field {req!r}")
    spec_id = ctx.text(data["id"], "id")
    if not spec_id.replace("_", "").replace("-", "").isalnum():
        raise ctx.fail("id", f"use letters, digits, '-' and '_' only (it names the output files), got {spec_id!r}")
    layout = data.get("layout", "stacked")
    if layout not in LAYOUTS:
        raise ctx.fail("layout", f"expected one of {', '.join(LAYOUTS)}, got {layout!r}")

    datasets: dict[str, Dataset] = {}
    for i, d in enumerate(ctx.seq(data["datasets"], "datasets")):
        where = f"datasets[{i}]"
        d = ctx.mapping(d, where)
        ctx.known(d, {"id", "label", "split"}, where)
        if "id" not in d:
            raise ctx.fail(where, "missing field 'id'")
        ds = Dataset(
            id=ctx.text(d["id"], f"{where}.id"),
            label=ctx.text(d.get("label", d["id"]), f"{where}.label"),
            split=None if d.get("split") is None else ctx.text(d["split"], f"{where}.split"),
        )
        if ds.id in datasets:
            raise ctx.fail(f"{where}.id", f"duplicate dataset {ds.id!r}")
        datasets[ds.id] = ds

    columns: dict[str, Column] = {}
    for i, c in enumerate(ctx.seq(data["columns"], "columns")):
        col = _column(ctx, c, f"columns[{i}]")
        if col.key in columns:
            raise ctx.fail(f"columns[{i}].key", f"duplicate column {col.key!r}")
        columns[col.key] = col

    groups = dict(DEFAULT_GROUP_LABELS)
    if data.get("groups") is not None:
        g = ctx.mapping(data["groups"], "groups")
        groups = {ctx.text(k, "groups"): ctx.text(v, f"groups.{k}") for k, v in g.items()}

    base_dir = path.parent
    rows = [
        _row(ctx, r, f"rows[{i}]", datasets, columns, base_dir) for i, r in enumerate(ctx.seq(data["rows"], "rows"))
    ]
    seen: set[tuple[str, str]] = set()
    for i, r in enumerate(rows):
        if r.group is not None and r.group not in groups:
            raise ctx.fail(f"rows[{i}].group", f"unknown group {r.group!r} (groups: {', '.join(groups)})")
        for ds in r.entries:
            if (r.system, ds) in seen:
                raise ctx.fail(f"rows[{i}]", f"system {r.system!r} appears twice on dataset {ds!r}")
            seen.add((r.system, ds))

    baseline = None if data.get("baseline") is None else ctx.text(data["baseline"], "baseline")
    if baseline is not None and baseline not in {r.system for r in rows}:
        raise ctx.fail("baseline", f"{baseline!r} is not the system of any row")
    test = data.get("test", "paired_bootstrap")
    if test not in TESTS:
        raise ctx.fail("test", f"expected one of {', '.join(TESTS)}, got {test!r}")
    alpha = ctx.number(data.get("alpha", 0.05), "alpha")
    if not 0 < alpha < 1:
        raise ctx.fail("alpha", f"must be in (0, 1), got {alpha}")
    bootstrap = data.get("bootstrap", 1000)
    seed = data.get("seed", 0)
    for name, v in (("bootstrap", bootstrap), ("seed", seed)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ctx.fail(name, f"expected a non-negative integer, got {v!r}")
    show_ci = data.get("show_ci", True)
    if not isinstance(show_ci, bool):
        raise ctx.fail("show_ci", f"expected true/false, got {show_ci!r}")

    notes = tuple(
        ctx.text(n, f"notes[{i}]") for i, n in enumerate(ctx.seq(data.get("notes", []), "notes", nonempty=False))
    )

    marks = []
    for i, m in enumerate(ctx.seq(data.get("paper_best", []), "paper_best", nonempty=False)):
        where = f"paper_best[{i}]"
        m = ctx.mapping(m, where)
        ctx.known(m, {"dataset", "column", "system", "basis"}, where)
        for req in ("dataset", "column", "system", "basis"):
            if req not in m:
                raise ctx.fail(where, f"missing field {req!r}")
        mark = PaperMark(*(ctx.text(m[k], f"{where}.{k}") for k in ("dataset", "column", "system", "basis")))
        if mark.dataset not in datasets:
            raise ctx.fail(f"{where}.dataset", f"unknown dataset {mark.dataset!r}")
        if mark.column not in columns:
            raise ctx.fail(f"{where}.column", f"unknown column {mark.column!r}")
        if (mark.system, mark.dataset) not in seen:
            raise ctx.fail(f"{where}.system", f"no row {mark.system!r} on {mark.dataset!r}")
        marks.append(mark)

    plots = []
    for i, p in enumerate(ctx.seq(data.get("plots", []), "plots", nonempty=False)):
        where = f"plots[{i}]"
        p = ctx.mapping(p, where)
        kind = p.get("kind")
        if kind not in PLOT_KINDS:
            raise ctx.fail(f"{where}.kind", f"expected one of {', '.join(PLOT_KINDS)}, got {kind!r}")
        plots.append(Plot(kind=kind, options={k: v for k, v in p.items() if k != "kind"}))

    metrics = _metrics(ctx, data["metrics"]) if data.get("metrics") is not None else ()

    return Spec(
        id=spec_id,
        title=ctx.text(data["title"], "title"),
        path=path,
        layout=layout,
        datasets=tuple(datasets.values()),
        columns=tuple(columns.values()),
        rows=tuple(rows),
        groups=groups,
        row_header=ctx.text(data.get("row_header", "Model"), "row_header"),
        row_header_latex=None
        if data.get("row_header_latex") is None
        else ctx.text(data["row_header_latex"], "row_header_latex"),
        source=None if data.get("source") is None else ctx.text(data["source"], "source"),
        notes=notes,
        baseline=baseline,
        test=test,
        alpha=alpha,
        metrics=metrics,
        bootstrap=bootstrap,
        seed=seed,
        show_ci=show_ci,
        paper_best=tuple(marks),
        plots=tuple(plots),
    )


def load_spec(path: str | Path) -> Spec:
    """Read and validate a YAML (or JSON, which is YAML) spec file."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: spec file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from e
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text ({e})") from e
    return parse_spec(data, path)
