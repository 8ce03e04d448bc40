"""``radeval cider-df``: a fixed CIDEr-D document-frequency table from a reference corpus.

Rewards (and evaluations that must be comparable across test sets) score CIDEr-D against one
named DF table instead of the references of each evaluated set: ``make_reward("cider",
metric_options={"df_corpus": "df.json"})`` or ``radeval score -m cider -O
cider.df_corpus=df.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def cider_df(
    references: Annotated[
        Path,
        typer.Argument(
            help="References: JSONL with a 'reference' field, or text with one per line", show_default=False
        ),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="DF table to write (JSON)")],
    tokenize: Annotated[
        str, typer.Option("--tokenize", help="r2gen-mimic | r2gen-iu | whitespace | ptb (must match the metric's)")
    ] = "r2gen-mimic",
) -> None:
    """Count CIDEr-D document frequencies on REFERENCES (pycocoevalcap's definition) into a table."""
    from radeval.evaluation import atomic_write
    from radeval.metrics.cider import build_df_table, read_references
    from radeval.tokenize import check_mode

    check_mode(tokenize)  # a usage error before reading anything
    refs = read_references(references)
    table = build_df_table(refs, tokenize)
    output.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(output, json.dumps(table, ensure_ascii=False, separators=(",", ":")) + "\n")
    typer.echo(
        f"{output}: {table['n_refs']} references, {len(table['df'])} n-grams, tokenize={tokenize}, sha={table['sha']}"
    )
