"""``radeval label``: CheXpert-style labels for every report of a file."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer


def _progress(quiet: bool):
    if quiet:
        return None, None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("[bold]labelling"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    task = bar.add_task("label", total=None)

    def update(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    return bar, update


def _print_counts(run, title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("observation")
    for col in ("positive (1)", "negative (0)", "uncertain (-1)", "blank"):
        table.add_column(col, justify="right")
    for obs, c in run.counts.items():
        table.add_row(obs, str(c["positive"]), str(c["negative"]), str(c["uncertain"]), str(c["blank"]))
    console = Console(width=max(90, Console().width))
    console.print(table)
    sig = "|".join(f"{k}:{v}" for k, v in run.settings.items())
    console.print(f"  [dim]{sig}[/dim]", highlight=False, soft_wrap=True)


def label(
    file: Annotated[Path, typer.Argument(help="Reports: JSONL (one object per line) or CSV", show_default=False)],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="JSONL file to write: one {id, labeler, labels} line per record")
    ],
    labeler: Annotated[
        str, typer.Option("--labeler", "-l", help="rules (offline, pure Python) or chexbert (needs chexbert.pth)")
    ] = "rules",
    field: Annotated[str, typer.Option("--field", "-f", help="Field holding the report text")] = "report",
    id_field: Annotated[str, typer.Option("--id-field", help="Field holding the record id")] = "id",
    model_path: Annotated[
        str | None, typer.Option("--model-path", help="chexbert.pth (or its folder) for --labeler chexbert")
    ] = None,
    device: Annotated[str, typer.Option("--device", help="Torch device for --labeler chexbert")] = "cpu",
    batch_size: Annotated[int, typer.Option("--batch-size", help="Reports per forward pass (chexbert)")] = 32,
    skip_invalid: Annotated[
        bool, typer.Option("--skip-invalid", help="Skip invalid lines (each reported) instead of failing")
    ] = False,
    max_report_chars: Annotated[
        int, typer.Option("--max-report-chars", help="Reject reports longer than this")
    ] = 100_000,
    input_format: Annotated[
        str | None, typer.Option("--input-format", help="jsonl or csv (default: from the file extension)")
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bar; print the counts as JSON instead of a table")
    ] = False,
) -> None:
    """Label each report with the 14 CheXpert observations (1 positive, 0 negative, -1 uncertain, null blank)."""
    from radeval.labeling import label_file

    bar, update = _progress(quiet)
    kwargs = dict(
        labeler=labeler,
        report_field=field,
        id_field=id_field,
        skip_invalid=skip_invalid,
        max_chars=max_report_chars,
        fmt=input_format,
        model_path=model_path,
        device=device,
        batch_size=batch_size,
    )
    if bar:
        with bar:
            run = label_file(file, output, progress=update, **kwargs)
    else:
        run = label_file(file, output, **kwargs)
    if run.skipped:
        typer.echo(f"skipped {len(run.skipped)} invalid record(s) of {file}:", err=True)
        for s in run.skipped[:50]:
            typer.echo(f"  line {s.line}: {s.reason}", err=True)
        if len(run.skipped) > 50:
            typer.echo(f"  … {len(run.skipped) - 50} more", err=True)
    if quiet:
        summary = {"n_records": run.n_records, "labeler": run.labeler, "settings": run.settings, "counts": run.counts}
        json.dump(summary, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    _print_counts(run, f"{file} — {run.n_records} reports, labeler {run.labeler}")
    typer.echo(f"wrote {output}", err=True)
