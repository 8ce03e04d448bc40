"""The ``radeval`` command. Sub-commands live in radeval/commands/; heavy imports happen inside them.

Errors: any RadevalError is printed as one message (no traceback) and the process exits with
the error's code (2 bad input/config, 3 missing dependency, 4 missing model, 1 other).
``--debug`` (anywhere on the command line) or RADEVAL_DEBUG=1 shows the traceback instead.
"""

from __future__ import annotations

import os
import sys

import typer

from radeval import __version__
from radeval.commands import score as score_cmd

app = typer.Typer(
    name="radeval",
    help="Metrics and GRPO rewards for chest X-ray report generation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

app.command("score")(score_cmd.score)
app.command("compare")(score_cmd.compare)


@app.command("metrics")
def metrics_cmd() -> None:
    """List registered metrics, their keys, and the presets."""
    from rich.console import Console
    from rich.table import Table

    from radeval.registry import PRESETS, specs

    table = Table(title="metrics")
    for col in ("name", "keys", "extra", "offline", "what"):
        table.add_column(col)
    for name, spec in sorted(specs().items()):
        table.add_row(name, ", ".join(spec.keys), spec.extra or "core", "yes" if spec.offline else "needs model", spec.summary)
    console = Console(width=max(120, Console().width))
    console.print(table)
    for preset, names in PRESETS.items():
        console.print(f"preset [bold]{preset}[/bold]: {', '.join(names)}")
    console.print("preset [bold]all[/bold]: every metric above")


@app.command("version")
def version_cmd() -> None:
    """Print the radeval version."""
    typer.echo(__version__)


def _mount_optional() -> None:
    """Wire the commands whose modules exist in this build (each imports its heavy parts lazily)."""
    import importlib

    for module, attr, kind, name in (
        ("radeval.commands.label", "label", "command", "label"),
        ("radeval.commands.models", "models_app", "group", "models"),
        ("radeval.commands.leaderboard", "leaderboard_app", "group", "leaderboard"),
        ("radeval.commands.train", "train", "command", "train"),
        ("radeval.commands.train", "generate", "command", "generate"),
        ("radeval.commands.bench", "bench_app", "group", "bench"),
        ("radeval.commands.bench_human", "human", "bench", "human"),
        ("radeval.commands.data", "data_app", "group", "data"),
        ("radeval.commands.cider_df", "cider_df", "command", "cider-df"),
        ("radeval.commands.serve", "serve_app", "group", "serve"),
    ):
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name == module:
                continue  # not part of this build
            raise
        obj = getattr(mod, attr, None)
        if obj is None:
            continue
        if kind == "command":
            app.command(name)(obj)
        elif kind == "bench":  # a sub-command of `radeval bench`
            importlib.import_module("radeval.commands.bench").bench_app.command(name)(obj)
        else:
            app.add_typer(obj, name=name)


_mount_optional()


def main(argv: list[str] | None = None) -> int:
    from radeval.errors import RadevalError

    argv = list(sys.argv[1:] if argv is None else argv)
    debug = os.environ.get("RADEVAL_DEBUG") == "1"
    if "--debug" in argv:
        argv.remove("--debug")
        debug = True
    try:
        app(args=argv, prog_name="radeval", standalone_mode=False)
    except RadevalError as e:
        if debug:
            raise
        typer.echo(f"radeval: error: {e}", err=True)
        return e.exit_code
    except KeyboardInterrupt:
        typer.echo("radeval: interrupted", err=True)
        return 130
    except Exception as e:  # click usage errors and the like
        import click

        if isinstance(e, click.exceptions.Exit):
            return e.exit_code
        if isinstance(e, click.ClickException):
            e.show()
            return e.exit_code
        if isinstance(e, click.exceptions.Abort):
            return 1
        if debug:
            raise
        typer.echo(f"radeval: internal error: {type(e).__name__}: {e} (rerun with --debug for the traceback)", err=True)
        return 1
    return 0


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
