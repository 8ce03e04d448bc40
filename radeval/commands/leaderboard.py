"""``radeval leaderboard``: build leaderboard tables and figures (the ``leaderboards`` package).

The package is imported inside the commands, so ``radeval --help`` works without it; when it
is missing the error names the extra to install.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from radeval.errors import ConfigError, DependencyError

leaderboard_app = typer.Typer(
    help="Build leaderboard tables (Markdown, LaTeX, HTML, CSV) and figures from YAML specs.",
    no_args_is_help=True,
)


def _leaderboards():
    try:
        import leaderboards
    except ModuleNotFoundError as e:
        if e.name in ("leaderboards", "yaml"):
            raise DependencyError(
                f"radeval leaderboard needs the [leaderboard] extra ({e.name} is missing): "
                "pip install 'radeval-toolkit[leaderboard]'"
            ) from e
        raise
    return leaderboards


def _resolve_spec(spec: str) -> Path:
    """A spec path, or the name of a bundled spec (e.g. valor_table1)."""
    path = Path(spec)
    if path.exists():
        return path
    lb = _leaderboards()
    bundled = lb.SPECS_DIR / f"{spec}.yaml"
    if bundled.is_file():
        return bundled
    names = ", ".join(sorted(p.stem for p in lb.SPECS_DIR.glob("*.yaml")))
    raise ConfigError(f"{spec}: no such spec file, and not a bundled spec (bundled: {names})")


@leaderboard_app.command("build")
def build(
    specs: Annotated[list[str], typer.Argument(help="Spec YAML file(s), or bundled spec names (see `list`).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Directory for the tables and figures.")] = Path(
        "leaderboard-out"
    ),
    cache_dir: Annotated[
        Path | None,
        typer.Option(help="Score cache (default $RADEVAL_CACHE_DIR/leaderboards or ~/.cache/radeval/leaderboards)."),
    ] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Score every predictions file again.")] = False,
    show: Annotated[bool, typer.Option("--show/--no-show", help="Print each table's Markdown.")] = True,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")] = False,
) -> None:
    """Score the system rows of each spec, merge reported rows, and write <id>.md/.tex/.html/.csv."""
    lb = _leaderboards()
    from leaderboards.build import compute, write_outputs
    from leaderboards.plots import PLOTS_HINT, plots_available
    from leaderboards.render import to_markdown
    from leaderboards.scoring import default_cache_dir

    cache = None if no_cache else (cache_dir or default_cache_dir())
    for spec_name in specs:
        spec = lb.load_spec(_resolve_spec(spec_name))
        table = compute(spec, cache_dir=cache)
        written = write_outputs(table, output)
        if spec.plots and not plots_available():  # our choice: the tables, and say what adds plots
            typer.echo(f"note: {spec.id}: {len(spec.plots)} plot(s) not drawn; {PLOTS_HINT}", err=True)
        if quiet:
            continue
        if show:
            typer.echo(to_markdown(table))
        scored = f", scored {table.cache_misses} / cached {table.cache_hits}" if spec.has_measured else ""
        typer.echo(f"{spec.id}: wrote {', '.join(p.name for p in written)} to {output}{scored}", err=True)


@leaderboard_app.command("list")
def list_specs() -> None:
    """List the bundled specs (VALOR Tables 1-4, RadVLM-GRPO, MMedPO)."""
    lb = _leaderboards()
    for p in sorted(lb.SPECS_DIR.glob("*.yaml")):
        spec = lb.load_spec(p)
        typer.echo(f"{p.stem:24s} {spec.title}")


@leaderboard_app.command("curves")
def curves(
    log: Annotated[Path, typer.Argument(help='Training log: JSONL lines {"step": N, KEY: value, "stage"?: name}.')],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Output path without suffix; .png and .svg are written.")
    ] = Path("training_curves"),
    key: Annotated[
        list[str] | None, typer.Option("--key", "-k", help="Keys to plot (default: every numeric field).")
    ] = None,
    mark: Annotated[
        list[str] | None, typer.Option("--mark", "-m", help="Vertical marker LABEL=STEP, e.g. 'k_clin onset=50'.")
    ] = None,
    title: Annotated[str, typer.Option(help="Figure title.")] = "Metrics over policy updates",
) -> None:
    """Plot metric-vs-step curves from a training log (the VALOR paper's Fig. 7)."""
    _leaderboards()
    from leaderboards.plots import PLOTS_HINT, plot_training_curves, plots_available

    if not plots_available():
        raise DependencyError(f"radeval leaderboard curves draws figures only; {PLOTS_HINT}")

    marks: dict[str, float] = {}
    for m in mark or []:
        label, sep, step = m.rpartition("=")
        try:
            marks[label] = float(step)
        except ValueError:
            sep = ""
        if not sep or not label:
            raise ConfigError(f"bad --mark {m!r}: expected LABEL=STEP, e.g. 'stage visual=120'")
    written = plot_training_curves(log, output, keys=key, marks=marks, title=title)
    typer.echo(f"wrote {', '.join(str(p) for p in written)}", err=True)
