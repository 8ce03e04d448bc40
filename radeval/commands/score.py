"""``radeval score`` and ``radeval compare``: the evaluator's command-line face."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from radeval.errors import ConfigError

OPTION_HELP = "Metric option as metric.option=value (repeatable), e.g. -O bleu.tokenize=ptb"


def parse_options(pairs: list[str] | None, tokenize: str | None, metric_names: list[str]) -> dict[str, dict[str, Any]]:
    """``-O bleu.tokenize=ptb`` style options → {metric: {option: value}}; values parsed as JSON if they can be."""
    options: dict[str, dict[str, Any]] = {}
    if tokenize:
        from radeval.tokenize import check_mode

        check_mode(tokenize)
        for name in metric_names:
            if name in ("bleu", "rouge_l", "meteor", "cider"):
                options.setdefault(name, {})["tokenize"] = tokenize
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        metric, dot, opt = key.partition(".")
        if not sep or not dot or not metric or not opt:
            raise ConfigError(f"bad -O value {pair!r}: expected metric.option=value, e.g. bleu.tokenize=ptb")
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        options.setdefault(metric, {})[opt] = value
    return options


def _progress(quiet: bool):
    """A rich progress bar on stderr (one task per metric), or nothing when quiet."""
    if quiet:
        return None, None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    tasks: dict[str, Any] = {}

    def update(name: str, done: int, total: int) -> None:
        if name not in tasks:
            tasks[name] = bar.add_task(name, total=total)
        bar.update(tasks[name], completed=done)

    return bar, update


def _report_skipped(path: Path, skipped: list[dict]) -> None:
    if not skipped:
        return
    typer.echo(f"skipped {len(skipped)} invalid record(s) of {path}:", err=True)
    for s in skipped[:50]:
        typer.echo(f"  line {s['line']}: {s['reason']}", err=True)
    if len(skipped) > 50:
        typer.echo(f"  … {len(skipped) - 50} more (all listed in summary.json)", err=True)


def _load(path: Path, fields, skip_invalid: bool, max_chars: int, fmt: str | None):
    from radeval.data import read_records

    records = read_records(path, fields=fields, skip_invalid=skip_invalid, max_chars=max_chars, fmt=fmt)
    _report_skipped(path, [s.as_dict() for s in records.skipped])
    empty = sum(1 for r in records if not r.prediction.strip())
    if empty:
        typer.echo(f"note: {empty} record(s) have an empty prediction; they are scored (as a system output)", err=True)
    return records


def _print_table(result, title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("metric")
    table.add_column("score", justify="right")
    table.add_column("95% CI", justify="right")
    table.add_column("better")
    for k in result.keys:
        ci = result.ci95.get(k)
        table.add_row(
            k,
            f"{result.corpus[k]:.4f}",
            f"[{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "–",
            "↑" if result.higher_is_better[k] else "↓",
        )
    console = Console(width=max(100, Console().width))
    console.print(table)
    for sig in dict.fromkeys(result.signatures.values()):
        console.print(f"  [dim]{sig}[/dim]", highlight=False, soft_wrap=True)


FileArg = Annotated[Path, typer.Argument(help="Records: JSONL (one object per line), CSV or TSV (detected from the content)", show_default=False)]
MetricsOpt = Annotated[str, typer.Option("--metrics", "-m", help="Metric and preset names, comma-separated (default, valor, radvlm, all)")]
OutputOpt = Annotated[Path | None, typer.Option("--output", "-o", help="Directory for summary.json, per_sample.jsonl/.csv, details.json, summary.md")]
IdOpt = Annotated[str, typer.Option("--id-field", help="Field holding the record id")]
PredOpt = Annotated[str, typer.Option("--prediction-field", help="Field holding the generated report")]
RefOpt = Annotated[str, typer.Option("--reference-field", help="Field holding the reference report")]
ImgOpt = Annotated[str, typer.Option("--image-field", help="Field holding the image path")]
TokOpt = Annotated[str | None, typer.Option("--tokenize", help="Text normalisation for bleu/rouge_l/meteor/cider: r2gen-mimic (default), r2gen-iu, whitespace, ptb")]
OptOpt = Annotated[list[str] | None, typer.Option("--option", "-O", help=OPTION_HELP)]
BootOpt = Annotated[int, typer.Option("--bootstrap", help="Bootstrap resamples for the 95% CIs (0 disables)")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of the bootstrap")]
SkipOpt = Annotated[bool, typer.Option("--skip-invalid", help="Skip invalid lines (each reported) instead of failing")]
MaxOpt = Annotated[int, typer.Option("--max-report-chars", help="Reject reports longer than this")]
FmtOpt = Annotated[str | None, typer.Option("--input-format", help="jsonl, csv or tsv (default: detected from the content, then the extension)")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar and no table")]


def score(
    file: FileArg,
    metrics: MetricsOpt = "default",
    output: OutputOpt = None,
    id_field: IdOpt = "id",
    prediction_field: PredOpt = "prediction",
    reference_field: RefOpt = "reference",
    image_field: ImgOpt = "image",
    tokenize: TokOpt = None,
    option: OptOpt = None,
    bootstrap: BootOpt = 1000,
    seed: SeedOpt = 0,
    skip_invalid: SkipOpt = False,
    max_report_chars: MaxOpt = 100_000,
    input_format: FmtOpt = None,
    quiet: QuietOpt = False,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run in --output")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace complete results already in --output")] = False,
    workers: Annotated[int, typer.Option("--workers", help="Processes for CPU metrics")] = 1,
    chunk_size: Annotated[int, typer.Option("--chunk-size", help="Records per chunk (streaming/resume unit)")] = 2048,
    green_endpoint: Annotated[str | None, typer.Option("--green-endpoint", help="OpenAI-compatible server of the GREEN model (e.g. vllm serve), for metric green")] = None,
) -> None:
    """Score a file of predictions against references; print a table, write the output contract.

    With --output the file is streamed in chunks (memory flat in the number of records), results
    are appended durably, and an interrupted run continues with --resume (identical outputs).
    """
    from radeval.data import FieldMap
    from radeval.evaluation import evaluate
    from radeval.registry import preset_options, resolve

    names = resolve(metrics)
    options = parse_options(option, tokenize, names)
    for m, implied in preset_options(metrics).items():  # e.g. rexrank: RadCliQ without IDF
        options[m] = {**implied, **options.get(m, {})}
    if green_endpoint:
        if "green" not in names:
            raise ConfigError("--green-endpoint is for metric green; add it to --metrics")
        options.setdefault("green", {})["endpoint"] = green_endpoint
    from radeval.preflight import check_models

    check_models(names, options)  # all missing models at once, before records are read or torch imported
    from radeval.registry import validate_options

    validate_options(options)  # a misspelt -O fails before the input is read
    fields = FieldMap(id_field, prediction_field, reference_field, image_field)
    if output is not None:
        from radeval.runner import score_file

        bar, update = _progress(quiet)
        kwargs = dict(
            fields=fields, options=options, skip_invalid=skip_invalid, max_chars=max_report_chars, fmt=input_format,
            bootstrap=bootstrap, seed=seed, chunk_size=chunk_size, workers=workers, resume=resume,
            overwrite=overwrite,
        )
        from radeval.runner import OutputComplete

        try:
            if bar:
                with bar:
                    result = score_file(file, names, output, progress=update, **kwargs)
            else:
                result = score_file(file, names, output, **kwargs)
        except OutputComplete as done:
            typer.echo(f"radeval: {done}", err=True)
            return
        if result is None:
            return  # a non-zero rank of a torchrun/accelerate launch: rank 0 writes the outputs
        _report_skipped(file, result.skipped)
        if not quiet:
            _print_table(result, f"{file} — {result.n_records} records")
            typer.echo(f"wrote {output}/summary.json, per_sample.jsonl, per_sample.csv, details.json, summary.md", err=True)
        return
    if resume or workers != 1 or overwrite:
        raise ConfigError("--resume, --workers and --overwrite need --output DIR (they work on the streamed, durable run)")
    records = _load(file, fields, skip_invalid, max_report_chars, input_format)
    bar, update = _progress(quiet)
    if bar:
        with bar:
            result = evaluate(records, names, options=options, bootstrap=bootstrap, seed=seed, progress=update)
    else:
        result = evaluate(records, names, options=options, bootstrap=bootstrap, seed=seed)
    if not quiet:
        _print_table(result, f"{file} — {result.n_records} records")
    else:
        json.dump(result.summary(), sys.stdout, indent=2)
        sys.stdout.write("\n")


def compare(
    file_a: Annotated[Path, typer.Argument(help="System A records (JSONL/CSV)")],
    file_b: Annotated[Path, typer.Argument(help="System B records, same ids")],
    metrics: MetricsOpt = "default",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write comparison.json here")] = None,
    tokenize: TokOpt = None,
    option: OptOpt = None,
    bootstrap: BootOpt = 1000,
    trials: Annotated[int, typer.Option("--trials", help="Approximate-randomization trials")] = 10_000,
    seed: SeedOpt = 0,
    id_field: IdOpt = "id",
    prediction_field: PredOpt = "prediction",
    reference_field: RefOpt = "reference",
    quiet: QuietOpt = False,
) -> None:
    """Paired comparison of two systems on the same records (paired bootstrap + approximate randomization)."""
    from radeval.data import FieldMap
    from radeval.evaluation import compare as compare_results
    from radeval.evaluation import evaluate
    from radeval.registry import preset_options, resolve

    names = resolve(metrics)
    options = parse_options(option, tokenize, names)
    for m, implied in preset_options(metrics).items():  # e.g. rexrank: RadCliQ without IDF
        options[m] = {**implied, **options.get(m, {})}
    fields = FieldMap(id_field, prediction_field, reference_field)
    results = []
    for f in (file_a, file_b):
        records = _load(f, fields, False, 100_000, None)
        results.append(evaluate(records, names, options=options, bootstrap=0, seed=seed))
    table = compare_results(results[0], results[1], n_resamples=bootstrap, n_trials=trials, seed=seed)
    if output:
        from radeval.evaluation import _dumps, atomic_write, ensure_output_dir

        ensure_output_dir(output)
        atomic_write(output / "comparison.json", _dumps({"a": str(file_a), "b": str(file_b), "metrics": table}))
    if quiet:
        json.dump(table, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"A = {file_a}  vs  B = {file_b}")
    for col in ("metric", "A", "B", "A − B", "95% CI of A − B", "p (bootstrap)", "p (rand.)"):
        t.add_column(col, justify="left" if col == "metric" else "right")
    for k, r in table.items():
        ci = r["ci95"]
        t.add_row(
            k,
            f"{r['score_a']:.4f}",
            f"{r['score_b']:.4f}",
            f"{r['delta']:+.4f}",
            f"[{ci[0]:+.4f}, {ci[1]:+.4f}]" if ci else "–",
            f"{r['p_bootstrap']:.4f}" if r["p_bootstrap"] is not None else "–",
            f"{r['p_randomization']:.4f}" if r["p_randomization"] is not None else "–",
        )
    Console(width=max(110, Console().width)).print(t)
