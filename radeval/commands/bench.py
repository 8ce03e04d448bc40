"""``radeval bench rewards``: the reward benchmark (how metrics react to errors, paraphrases, hacks)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

bench_app = typer.Typer(help="Benchmarks of what metrics and rewards pay for.", no_args_is_help=True)


@bench_app.command("rewards")
def rewards(
    reports: Annotated[Path | None, typer.Argument(help="JSONL of reference reports (field 'reference'); default: the shipped set")] = None,
    metrics: Annotated[str | None, typer.Option("--metrics", "-m", help="Comma-separated reward keys / VALOR composites (valor_ver, valor_text need their models; valor_ver_offline, valor_text_offline use offline stand-ins; valor_format)")] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Directory for bench.json, report.md/.html, heatmap.png/.svg")] = Path("reward-bench"),
    human: Annotated[Path | None, typer.Option("--human", help="JSONL of judged pairs (prediction, reference, errors|rating) for Kendall's tau")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    bootstrap: Annotated[int, typer.Option("--bootstrap")] = 1000,
    strict: Annotated[bool, typer.Option("--strict", help="Fail if a reward cannot run instead of skipping it")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Score controlled perturbations of reference reports with every reward; write tables and a heatmap."""
    from radeval.bench.report import ranking, write
    from radeval.bench.rewards_bench import DEFAULT_REWARDS, REWARD_NOTES, read_reports, reward_metrics, run_benchmark
    from radeval.preflight import check_models

    names = [m.strip() for m in metrics.split(",") if m.strip()] if metrics else list(DEFAULT_REWARDS)
    check_models(reward_metrics(names))  # every missing model in one message, before torch loads
    from radeval.evaluation import ensure_output_dir

    ensure_output_dir(output)  # an unwritable folder fails before the benchmark runs
    t0 = time.perf_counter()
    res = run_benchmark(read_reports(reports), names, seed=seed, bootstrap=bootstrap, human=human, strict=strict)
    files = write(res, output)
    if quiet:
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"reward benchmark — {res.reports} reports, {time.perf_counter() - t0:.0f} s")
    for col in ("reward", "clinical sensitivity", "95% CI", "worst hack", "exposure"):
        table.add_column(col)
    for row in ranking(res):
        ci = row["sensitivity_ci95"]
        table.add_row(
            row["reward"],
            "–" if row["sensitivity"] is None else f"{row['sensitivity']:.3f}",
            "–" if not ci else f"[{ci[0]:.2f}, {ci[1]:.2f}]",
            row["worst_hack"] or "–",
            "–" if row["worst_exposure"] is None else f"{row['worst_exposure']:.2f}",
        )
    console = Console(width=max(100, Console().width))
    console.print(table)
    from rich.markup import escape

    for name in res.rewards:
        if name in REWARD_NOTES:  # substitutes say so next to their numbers
            console.print(f"  {escape(name)}: {escape(REWARD_NOTES[name])}", highlight=False)
    for name, why in res.skipped_rewards.items():
        # escape: an install hint's "[extra]" is not rich markup
        console.print(f"[yellow]skipped {escape(name)}[/yellow]: {escape(why)}", highlight=False)
    typer.echo(f"wrote {', '.join(str(f) for f in files)}", err=True)
