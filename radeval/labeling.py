"""Label a file of reports with a CheXpert-style labeler (``radeval label``'s library side).

Input: JSONL or CSV records, each with an id and one report field (default ``report``), read
with :func:`radeval.data.iter_objects` and checked like ``radeval score`` checks its input:
every line is validated first; a bad line (malformed, missing id or field, not a string,
duplicate id, over ``max_chars``) stops the run with one error listing the bad lines, unless
``skip_invalid`` (then each skipped line is reported). An empty report is valid (the rule
labeler gives it No Finding = 1; CheXbert labels it like f1chexbert does).

Output: one JSON line per record, in input order::

    {"id": "...", "labeler": "rules", "labels": {"No Finding": 1, "Cardiomegaly": null, ...}}

with the 14 observations as the CheXpert labeler spells them, 1 positive, 0 negative,
-1 uncertain, null not mentioned.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from radeval.data import (
    DEFAULT_MAX_CHARS,
    MAX_ERRORS_SHOWN,
    Skipped,
    check_id,
    check_object,
    check_text,
    iter_objects,
)
from radeval.errors import ConfigError, InputError
from radeval.labels import CHEXPERT_OBSERVATIONS

LABELERS = ("rules", "chexbert")
CHUNK = 2048  # reports per labeler call (progress granularity; labels do not depend on it)


@dataclass
class LabelRun:
    """What :func:`label_file` did: counts per observation and value, and skipped lines."""

    labeler: str
    settings: dict[str, Any]
    n_records: int
    counts: dict[str, dict[str, int]]
    skipped: list[Skipped] = field(default_factory=list)
    output: str = ""


def make_labeler(name: str, *, model_path: str | None = None, device: str = "cpu", batch_size: int = 32) -> Any:
    """``rules`` -> :class:`RuleLabeler`; ``chexbert`` -> ``CheXbertLabeler`` (needs the model)."""
    if name == "rules":
        from radeval.metrics.chexpert_rules import RuleLabeler

        return RuleLabeler()
    if name == "chexbert":
        from radeval.metrics.chexbert import CheXbertLabeler

        return CheXbertLabeler(model_path=model_path, device=device, batch_size=batch_size)
    raise ConfigError(f"unknown labeler {name!r}; use one of {', '.join(LABELERS)}")


def read_reports(
    path: str | Path,
    *,
    report_field: str = "report",
    id_field: str = "id",
    skip_invalid: bool = False,
    max_chars: int = DEFAULT_MAX_CHARS,
    fmt: str | None = None,
) -> tuple[list[tuple[str, str]], list[Skipped]]:
    """``[(id, report)]`` of a JSONL/CSV file, validated (see the module docstring)."""
    good: list[tuple[str, str]] = []
    bad: list[Skipped] = []
    first_line: dict[str, int] = {}
    for lineno, obj in iter_objects(path, fmt):
        rid = obj.get(id_field) if isinstance(obj, dict) else None
        rid = str(rid) if isinstance(rid, (str, int)) and not isinstance(rid, bool) else None
        try:
            rec = _check(obj, id_field, report_field, max_chars)
            if rec[0] in first_line:
                raise ValueError(f"duplicate id {rec[0]!r} (first seen on line {first_line[rec[0]]})")
        except ValueError as e:
            bad.append(Skipped(lineno, rid, str(e)))
            continue
        first_line[rec[0]] = lineno
        good.append(rec)
    if bad and not skip_invalid:
        shown = "\n".join(f"  {path}:{s.line}: {s.reason}" for s in bad[:MAX_ERRORS_SHOWN])
        more = f"\n  … and {len(bad) - MAX_ERRORS_SHOWN} more" if len(bad) > MAX_ERRORS_SHOWN else ""
        raise InputError(
            f"{len(bad)} invalid record(s) in {path}; nothing was labelled:\n{shown}{more}\n"
            "Fix them, or pass --skip-invalid to label the valid records and list the skipped ones."
        )
    if not good:
        raise InputError(f"{path}: no valid records to label")
    return good, bad


def _check(obj: Any, id_field: str, report_field: str, max_chars: int) -> tuple[str, str]:
    if isinstance(obj, Exception):
        raise ValueError(str(obj))
    obj = check_object(obj)
    return check_id(obj, id_field), check_text(obj, report_field, "report", "--field", max_chars)


def labels_to_json(row: np.ndarray) -> dict[str, int | None]:
    """One ``(14,)`` label row -> ``{observation: 1 | 0 | -1 | None}``."""
    return {obs: (None if math.isnan(v) else int(v)) for obs, v in zip(CHEXPERT_OBSERVATIONS, row)}


def count_labels(labels: np.ndarray) -> dict[str, dict[str, int]]:
    """Per observation: how many reports are positive / negative / uncertain / blank."""
    out = {}
    for j, obs in enumerate(CHEXPERT_OBSERVATIONS):
        col = labels[:, j] if len(labels) else np.zeros(0)
        out[obs] = {
            "positive": int((col == 1).sum()),
            "negative": int((col == 0).sum()),
            "uncertain": int((col == -1).sum()),
            "blank": int(np.isnan(col).sum()),
        }
    return out


def label_texts(labeler: Any, texts: Sequence[str], progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Labels of many reports, in chunks (so a progress bar can move)."""
    out = np.empty((len(texts), len(CHEXPERT_OBSERVATIONS)))
    for start in range(0, len(texts), CHUNK):
        chunk = list(texts[start : start + CHUNK])
        out[start : start + len(chunk)] = labeler.label(chunk, cache=False)
        if progress:
            progress(start + len(chunk), len(texts))
    return out


def label_file(
    path: str | Path,
    output: str | Path,
    *,
    labeler: str = "rules",
    report_field: str = "report",
    id_field: str = "id",
    skip_invalid: bool = False,
    max_chars: int = DEFAULT_MAX_CHARS,
    fmt: str | None = None,
    model_path: str | None = None,
    device: str = "cpu",
    batch_size: int = 32,
    progress: Callable[[int, int], None] | None = None,
) -> LabelRun:
    """Label every report of ``path`` and write ``output`` (JSONL, replaced atomically)."""
    if labeler not in LABELERS:
        raise ConfigError(f"unknown labeler {labeler!r}; use one of {', '.join(LABELERS)}")
    output = Path(output)
    if output.is_dir():
        raise InputError(f"{output}: is a directory; --output names the JSONL file to write")
    records, skipped = read_reports(
        path, report_field=report_field, id_field=id_field, skip_invalid=skip_invalid, max_chars=max_chars, fmt=fmt
    )
    model = make_labeler(labeler, model_path=model_path, device=device, batch_size=batch_size)
    labels = label_texts(model, [text for _, text in records], progress)
    from radeval.evaluation import file_mode

    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=output.name + ".", suffix=".tmp", dir=output.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), file_mode())  # mkstemp's 0600 would ignore the umask
            for (rid, _), row in zip(records, labels):
                line = {"id": rid, "labeler": labeler, "labels": labels_to_json(row)}
                f.write(json.dumps(line, ensure_ascii=False) + "\n")
        os.replace(tmp, output)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return LabelRun(
        labeler=labeler,
        settings=dict(model.settings()),
        n_records=len(records),
        counts=count_labels(labels),
        skipped=list(skipped),
        output=str(output),
    )
