"""``radeval train`` and ``radeval generate``: the VALOR trainers' command-line face.

The trainers live in the ``trainers`` package and need the ``[train]`` extra (torch, transformers,
trl, peft, datasets, accelerate); both are imported only when a command runs, so the core CLI
stays light. Scale-out: ``accelerate launch -m radeval.cli train ...`` (see trainers/README.md).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Annotated

import typer

from radeval.errors import ConfigError, DependencyError

TRAIN_DEPS = ("torch", "transformers", "trl", "peft", "datasets", "accelerate", "PIL")
INSTALL_HINT = "pip install 'radeval-toolkit[train]'"


def _require_train_extra():
    """Import the trainers package, or say which extra to install."""
    missing = [m for m in TRAIN_DEPS if importlib.util.find_spec(m) is None]
    if missing:
        raise DependencyError(f"training needs {', '.join(missing)}: {INSTALL_HINT}")
    try:
        import trainers.api as api
    except ModuleNotFoundError as exc:
        raise DependencyError(f"the trainers package cannot load ({exc}): {INSTALL_HINT}") from None
    return api


def _preflight(stage: str, config: Path | None, overrides: list[str]) -> None:
    """Every model the stage's rewards need, all missing ones in one message, before torch loads
    (after the cheap check that the [train] extra is there: without it nothing could run)."""
    missing = [m for m in TRAIN_DEPS if importlib.util.find_spec(m) is None]
    if missing:
        raise DependencyError(f"training needs {', '.join(missing)}: {INSTALL_HINT}")
    try:
        from trainers.config import load_config
    except ModuleNotFoundError:
        return  # no trainers package in this build: _require_train_extra says so
    from radeval.preflight import check_models, stage_metrics

    check_models(stage_metrics(load_config(config, overrides, stage=stage)))


def train(
    stage: Annotated[str | None, typer.Option("--stage", "-s", help="sft | text | visual | dpo | grpo")] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="Stage config (YAML or TOML).")] = None,
    overrides: Annotated[
        list[str] | None, typer.Argument(help="Overrides as section.key=value, e.g. train.learning_rate=1e-5")
    ] = None,
    build_tiny: Annotated[
        Path | None,
        typer.Option(
            "--build-tiny",
            help="Build a tiny random model, toy data and sft/text/visual configs in this folder (offline "
            "quickstart; shows the pipeline, trains nothing useful), then exit.",
        ),
    ] = None,
    family: Annotated[
        str, typer.Option("--family", help="With --build-tiny: qwen2_5_vl, qwen2_vl, qwen3_vl or llava.")
    ] = "qwen2_5_vl",
) -> None:
    """Train one VALOR stage (or a baseline) from a config file plus key=value overrides."""
    if build_tiny is not None:
        _require_train_extra()
        from trainers.quickstart import build_quickstart
        from trainers.tiny import BUILDERS

        if family not in BUILDERS:
            raise ConfigError(f"--family must be one of {sorted(BUILDERS)}, got {family!r}")
        paths = build_quickstart(build_tiny, family=family)
        typer.echo(f"tiny {family} model, toy data and configs written to {build_tiny}; next:")
        for st in ("sft", "text", "visual"):
            typer.echo(f"  radeval train --stage {st} -c {paths[st]}")
        return
    if stage is None:
        raise ConfigError("--stage is required (sft, text, visual, dpo or grpo), or --build-tiny DIR")
    _preflight(stage, config, overrides or [])  # every missing reward model named before torch loads
    api = _require_train_extra()
    result = api.train(stage, config, overrides or [])
    typer.echo(
        f"stage {result.stage}: {result.global_step} optimizer steps, last k = {result.last_k}; "
        f"model saved to {result.final_dir}"
    )


def generate(
    config: Annotated[Path, typer.Option("--config", "-c", help="The stage config the model was trained with.")],
    checkpoint: Annotated[
        Path | None, typer.Option("--checkpoint", help="Model folder (default: <train.output_dir>/final).")
    ] = None,
    split: Annotated[str | None, typer.Option("--split", help="Data split (default: data.eval_split).")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Predictions JSONL to write.")] = None,
    overrides: Annotated[list[str] | None, typer.Argument(help="Overrides as section.key=value")] = None,
) -> None:
    """Generate reports for a split and write the JSONL that `radeval score` reads."""
    api = _require_train_extra()
    path = api.generate(config, overrides or [], checkpoint=checkpoint, split=split, output=output)
    typer.echo(f"predictions written to {path}")
