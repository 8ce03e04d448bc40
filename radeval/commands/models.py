"""``radeval models list|download|verify|path``: the model manager's command-line face.

``download`` is the only radeval command that touches the network. Errors are
:class:`~radeval.errors.RadevalError` subclasses; the main CLI prints their message and exits.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

models_app = typer.Typer(
    name="models",
    help="List, download, verify and locate the models that model-based metrics use.",
    no_args_is_help=True,
    add_completion=False,
)


def _echo_table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    for c in columns:
        table.add_column(c, overflow="fold")
    for r in rows:
        table.add_row(*r)
    Console().print(table)


def _echo_blocks(rows: list[dict], width: int) -> None:
    import textwrap

    width = max(40, width)
    for r in rows:
        head = f"{r['name']}  [{r['status']}]  {r['hub_id'] or '-'}"
        typer.echo(textwrap.fill(head, width, subsequent_indent="    ", break_on_hyphens=False))
        fields = [
            ("revision", r["revision"] + (f" @ {r['commit']}" if r["commit"] else "")),
            ("size", r["size"]),
            ("licence", r["licence"]),
            ("used by", ", ".join(r["used_by"]) or "-"),
        ]
        if r["where"]:
            fields.append(("where", r["where"]))
        for label, value in fields:
            typer.echo(textwrap.fill(
                f"{label}: {value}", width, initial_indent="  ", subsequent_indent="    ",
                break_long_words=True, break_on_hyphens=False,
            ))
    typer.echo("")


@models_app.command("list")
def list_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print rows as JSON.")] = False,
) -> None:
    """Every model any metric can use: hub id, revision, size, licence, present/missing and where."""
    from radeval import models

    rows = models.list_models()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    import shutil

    width = shutil.get_terminal_size((100, 24)).columns
    if width >= 140:
        _echo_table(
            "radeval models",
            ["name", "hub id", "revision", "size", "licence", "status", "where", "used by"],
            [
                [
                    r["name"],
                    r["hub_id"] or "-",
                    r["revision"] + (f"\n@ {r['commit']}" if r["commit"] else ""),
                    r["size"],
                    r["licence"],
                    r["status"],
                    r["where"] or "-",
                    ", ".join(r["used_by"]),
                ]
                for r in rows
            ],
        )
    else:  # eight columns do not fit a narrow terminal: one block per model, wrapped to fit
        _echo_blocks(rows, width)
    import textwrap

    typer.echo(textwrap.fill(
        "Unpinned revisions: the commit in use is the snapshot's (HF cache) or the one recorded "
        "by `radeval models download`; `radeval models verify` checks file hashes.",
        max(40, min(width, 120)),
    ))


@models_app.command("download")
def download_cmd(
    names: Annotated[list[str], typer.Argument(help="Model names (see `radeval models list`).")],
) -> None:
    """Download models (the only command that uses the network); records commit and sha256."""
    from radeval import models

    for name in names:
        models.get_spec(name)  # fail on a typo before fetching anything
    for name in names:
        path = models.download(name)
        typer.echo(f"{name}: {path}")


@models_app.command("verify")
def verify_cmd(
    names: Annotated[list[str] | None, typer.Argument(help="Model names; default: every present model.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print rows as JSON.")] = False,
) -> None:
    """Check file hashes of present models (known, recorded at download, or HF blob name).

    Exit code 1 when a hash mismatches or a named model is missing."""
    from radeval import models

    if names:
        for n in names:
            models.get_spec(n)
        rows = [r for n in names for r in models.verify(n)]
    else:
        rows = [r for m in models.list_models() if m["status"] == "present" for r in models.verify(m["name"])]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    elif not rows:
        typer.echo("no model is present; nothing to verify (see `radeval models list`)")
    else:
        _echo_table(
            "radeval models verify",
            ["model", "file", "status", "sha256", "checked against"],
            [
                [
                    r["model"],
                    r["file"],
                    r["status"],
                    r["actual"] or "-",
                    r["source"] or ("-" if r["status"] != "unverified" else "no reference hash"),
                ]
                for r in rows
            ],
        )
    if any(r["status"] in ("mismatch", "missing") for r in rows):
        raise typer.Exit(1)


@models_app.command("path")
def path_cmd(
    name: Annotated[str, typer.Argument(help="Model name.")],
) -> None:
    """Print the local directory of a model (exit code 4 and the search list when missing)."""
    from radeval import models

    typer.echo(str(models.resolve(name)))
