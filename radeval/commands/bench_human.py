"""``radeval bench human``: Kendall's τ-b and pairwise accuracy of metrics against radiologists."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer


def human(
    dataset: Annotated[str, typer.Argument(help="rexval | radpref | radjudge")],
    data: Annotated[Path | None, typer.Option("--data", "-d", help="Folder of the data set (ReXVal: required; RadPref/RadJudge: default the `radeval data download` folder)")] = None,
    metrics: Annotated[str, typer.Option("--metrics", "-m", help="Comma-separated metrics or presets; METRIC:KEY picks a key (default: the metric's first)")] = "default",
    output: Annotated[Path, typer.Option("--output", "-o", help="Directory for bench-human.json, report.md/.html, tau.png/.svg")] = Path("human-bench"),
    bootstrap: Annotated[int, typer.Option("--bootstrap", help="Bootstrap resamples of cases for the 95% CIs")] = 1000,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    option: Annotated[list[str] | None, typer.Option("--option", "-O", help="Metric option as metric.option=value (repeatable), e.g. -O crimson.endpoint=http://host:8000")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Fail if a metric cannot run instead of skipping it")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Agreement of each metric with radiologist judgements (ReXVal, RadPref, RadJudge)."""
    from radeval.bench import human as H
    from radeval.bench.human_data import load
    from radeval.bench.human_report import TITLES, write
    from radeval.commands.score import parse_options
    from radeval.registry import resolve

    labels = []
    for item in (m.strip() for m in metrics.split(",") if m.strip()):
        name, key = H.parse_metric(item)
        labels += [f"{n}:{key}" if key else n for n in resolve([name])]
    t0 = time.perf_counter()
    opts = parse_options(option, None, [H.parse_metric(x)[0] for x in labels])
    res = H.run(load(dataset, data), labels, bootstrap=bootstrap, seed=seed, strict=strict, options=opts)
    H.check_result(res)
    files = write(res, output)
    if quiet:
        return
    from rich.console import Console
    from rich.table import Table

    cols, rows = H.human_table_rows(res)
    table = Table(title=f"{TITLES.get(res.dataset, res.dataset)} — {res.candidates} candidates, {res.cases} cases, "
                  f"{time.perf_counter() - t0:.1f} s")  # fmt: skip
    for c in cols:
        table.add_column(c)
    for r in rows:
        table.add_row(*r)
    console = Console(width=max(100, Console().width))
    console.print(table)
    for name, why in res.skipped.items():
        console.print(f"[yellow]skipped {name}[/yellow]: {why}")
    typer.echo(f"wrote {', '.join(str(f) for f in files)}", err=True)
