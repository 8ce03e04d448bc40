"""``radeval data download``: fetch public human-judgement data at a pinned commit (explicit only)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

data_app = typer.Typer(name="data", help="Public evaluation data that radeval can fetch on request.", no_args_is_help=True)


@data_app.command("download")
def download_cmd(
    names: Annotated[list[str], typer.Argument(help="radpref | radjudge")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Folder (default: $RADEVAL_DATA_DIR or ~/.cache/radeval/data, one folder per data set)")] = None,
) -> None:
    """Fetch RadPref / RadJudge (rajpurkarlab/CRIMSON, MIT) at a pinned commit; every file's sha256 is checked."""
    from radeval.bench.human_data import DOWNLOADS, NOTES, download
    from radeval.errors import InputError

    for n in names:
        if n not in DOWNLOADS:
            raise InputError(f"unknown data set {n!r}; downloadable: {', '.join(sorted(DOWNLOADS))} "
                             "(ReXVal is on PhysioNet: download it there and pass its folder)")  # fmt: skip
    for n in names:
        path = download(n, None if output is None else output / n)
        typer.echo(f"{n}: {path}  ({NOTES[n]})")
