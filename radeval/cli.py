"""The ``radeval`` command. Sub-commands live in radeval/commands/; heavy imports happen inside them.

Errors: any RadevalError is printed as one message (no traceback) and the process exits with
the error's code (2 bad input/config, 3 missing dependency, 4 missing model, 1 other).
``--debug`` (anywhere on the command line) or RADEVAL_DEBUG=1 shows the traceback instead.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

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

def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"radeval {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", "-V", callback=_version_callback, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Metrics and GRPO rewards for chest X-ray report generation."""


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


def _click_exception_types() -> tuple[tuple[type, ...], tuple[type, ...], tuple[type, ...]]:
    """(ClickException-likes, Exit-likes, Abort-likes) of every click typer may raise through.

    typer >= 0.29 carries its own copy of click (``typer._click``) whose exceptions are not
    subclasses of the separately installed ``click``'s, and older typer raises the installed
    click's. An ``isinstance`` against one of them alone misses the other, so collect both
    (and typer's own Exit/Abort); tests/test_cli_usage.py fails if this stops matching.
    """
    import importlib

    errors: list[type] = []
    exits: list[type] = [typer.Exit]
    aborts: list[type] = [typer.Abort]
    for name in ("typer._click.exceptions", "click.exceptions"):
        try:
            mod = importlib.import_module(name)
        except ImportError:
            continue
        errors.append(mod.ClickException)
        exits.append(getattr(mod, "Exit", typer.Exit))
        aborts.append(getattr(mod, "Abort", typer.Abort))
    return tuple(errors), tuple(exits), tuple(aborts)


def _suggest_option(e: Exception) -> str:
    """click suggests a close option only when its parser collected candidates; fill the gap."""
    name = getattr(e, "option_name", None)
    ctx = getattr(e, "ctx", None)
    if not name or ctx is None or getattr(e, "possibilities", None) or "Did you mean" in e.format_message():
        return ""
    import difflib

    opts = [o for p in ctx.command.params for o in (*getattr(p, "opts", ()), *getattr(p, "secondary_opts", ()))]
    close = difflib.get_close_matches(name, [o for o in opts if o.startswith("-")], n=1, cutoff=0.6)
    return f" Did you mean {close[0]}?" if close else ""


def usage_error_line(e: Exception) -> str:
    """One line: the problem (with click's suggestion) and where to look for the fix."""
    message = " ".join(e.format_message().split())  # click may wrap; keep one line
    message += _suggest_option(e)
    ctx = getattr(e, "ctx", None)
    path = ctx.command_path if ctx is not None else "radeval"
    return f"radeval: usage error: {message} (see '{path} --help')"


def main(argv: list[str] | None = None) -> int:
    from radeval.errors import RadevalError

    argv = list(sys.argv[1:] if argv is None else argv)
    debug = os.environ.get("RADEVAL_DEBUG") == "1"
    if "--debug" in argv:
        argv.remove("--debug")
        debug = True
    click_errors, click_exits, click_aborts = _click_exception_types()
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
    except click_exits as e:
        return e.exit_code
    except click_aborts:
        typer.echo("radeval: aborted", err=True)
        return 1
    except click_errors as e:
        if debug:
            raise
        if type(e).__name__ == "NoArgsIsHelpError":
            return e.exit_code  # typer has already printed the help
        if getattr(e, "exit_code", 1) == 2:  # UsageError and subclasses
            typer.echo(usage_error_line(e), err=True)
        else:  # e.g. click's FileError
            typer.echo(f"radeval: error: {' '.join(e.format_message().split())}", err=True)
        return e.exit_code
    except Exception as e:
        if debug:
            raise
        typer.echo(f"radeval: internal error: {type(e).__name__}: {e} (rerun with --debug for the traceback)", err=True)
        return 1
    return 0


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
