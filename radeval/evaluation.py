"""``radeval.evaluate``: score records with registered metrics into a :class:`Result`.

The Result holds per-sample values (input order), corpus scores, bootstrap CIs, signatures and
details, and writes the output contract:

* ``summary.json`` = ``{"radeval_version", "n_records", "metrics": {KEY: {"score", "ci95",
  "higher_is_better", "signature"}}, "skipped": [...], "settings": {...}}``
* ``per_sample.jsonl`` (+ ``per_sample.csv``): one line per scored record ``{"id", KEY: value|null}``
* ``details.json``: per-metric breakdowns (per-label F1, error counts, ...)
* ``summary.md``: the summary as a Markdown table

Scores keep their native scale (mostly [0, 1]); ×100 is a presentation choice of tables.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from radeval import __version__
from radeval.data import Record, Records, as_records, records_from_lists
from radeval.errors import ConfigError, InputError
from radeval.metric import Metric, exact_column_sums
from radeval.registry import get_metric, preset_options, resolve
from radeval.stats import DEFAULT_BOOTSTRAP, DEFAULT_TRIALS, PairedResult, bootstrap_ci, paired_tests

# records are scored in chunks so long runs can show progress and memory stays bounded
CHUNK_SIZE = 2048


@dataclass
class MetricRun:
    metric: Metric
    stats: np.ndarray  # input order
    sample: dict[str, np.ndarray]


@dataclass
class Result:
    ids: list[str]
    runs: dict[str, MetricRun]
    corpus: dict[str, float]
    ci95: dict[str, tuple[float, float] | None]
    signatures: dict[str, str]
    higher_is_better: dict[str, bool]
    details: dict[str, Any]
    skipped: list[dict[str, Any]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def keys(self) -> list[str]:
        return list(self.corpus)

    @property
    def n_records(self) -> int:
        return len(self.ids)

    @property
    def per_sample(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for run in self.runs.values():
            out.update(run.sample)
        return out

    def sorted_stats(self, metric_name: str) -> np.ndarray:
        order = np.argsort(np.array(self.ids, dtype=object), kind="stable")
        return self.runs[metric_name].stats[order]

    # ----- output contract ---------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        metrics = {}
        for k in self.keys:
            ci = self.ci95.get(k)
            metrics[k] = {
                "score": _num(self.corpus[k]),
                "ci95": [_num(ci[0]), _num(ci[1])] if ci else None,
                "higher_is_better": self.higher_is_better[k],
                "signature": self.signatures[k],
            }
        return {
            "radeval_version": __version__,
            "n_records": self.n_records,
            "metrics": metrics,
            "skipped": self.skipped,
            "settings": self.settings,
        }

    def per_sample_rows(self) -> list[dict[str, Any]]:
        sample = self.per_sample
        keys = self.keys
        return [{"id": rid, **{k: _num(sample[k][i]) for k in keys}} for i, rid in enumerate(self.ids)]

    def per_sample_jsonl(self) -> str:
        sample, keys = self.per_sample, self.keys
        return "".join(per_sample_line(rid, keys, sample, i) for i, rid in enumerate(self.ids))

    def to_markdown(self) -> str:
        lines = ["| metric | score | 95% CI | better |", "| --- | ---: | --- | --- |"]
        for k in self.keys:
            ci = self.ci95.get(k)
            ci_s = f"[{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "–"
            lines.append(
                f"| {k} | {self.corpus[k]:.4f} | {ci_s} | {'higher' if self.higher_is_better[k] else 'lower'} |"
            )
        lines.append("")
        lines.append(f"{self.n_records} records scored" + (f", {len(self.skipped)} skipped" if self.skipped else ""))
        lines.append("")
        lines.append("Signatures:")
        lines.append("")
        for sig in dict.fromkeys(self.signatures.values()):
            lines.append(f"- `{sig}`")
        return "\n".join(lines) + "\n"

    def write(self, out_dir: str | Path) -> list[Path]:
        """Write summary.json, per_sample.jsonl, per_sample.csv, details.json, summary.md atomically."""
        out = Path(out_dir)
        if out.exists() and not out.is_dir():
            raise InputError(f"--output {out} exists and is not a directory")
        out.mkdir(parents=True, exist_ok=True)
        rows = self.per_sample_rows()
        per_sample_jsonl = self.per_sample_jsonl()
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=["id", *self.keys], lineterminator="\n")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in r.items()})
        files = {
            "per_sample.jsonl": per_sample_jsonl,
            "per_sample.csv": buf.getvalue(),
            "details.json": _dumps(self.details),
            "summary.md": self.to_markdown(),
            # written last: its presence marks a finished run
            "summary.json": _dumps(self.summary()),
        }
        written = []
        for name, text in files.items():
            written.append(atomic_write(out / name, text))
        return written

    def compare(self, other: Result, **kw: Any) -> dict[str, dict[str, Any]]:
        return compare(self, other, **kw)


def per_sample_line(rid: str, keys: Sequence[str], sample: Mapping[str, np.ndarray], i: int) -> str:
    """One line of per_sample.jsonl; the single serialiser every writer uses (byte-identical outputs)."""
    row = {"id": rid, **{k: _num(sample[k][i]) for k in keys}}
    return json.dumps(row, ensure_ascii=False, allow_nan=False) + "\n"


def _num(x: Any) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def _clean_json(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _clean_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean_json(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return _num(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.ndarray):
        return _clean_json(obj.tolist())
    return obj


def _dumps(obj: Any) -> str:
    return json.dumps(_clean_json(obj), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def file_mode() -> int:
    """Permissions of a new regular file under the current umask (mkstemp alone gives 0600)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def ensure_output_dir(path: Path, option: str = "--output") -> Path:
    """Create ``path`` (a directory) and check it is writable, before any work is paid for."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"{option} {path} exists and is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".radeval-write-check.")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise InputError(
            f"{option} {path}: cannot write there ({e.strerror or e}); choose a directory you can write to"
        ) from None
    return path


def atomic_write(path: Path, text: str) -> Path:
    """Write via a temp file in the same directory + rename, so a reader never sees half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            os.fchmod(f.fileno(), file_mode())  # honour the umask like open() would
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def build_metrics(
    metrics: str | Sequence[str | Metric], options: Mapping[str, Mapping[str, Any]] | None = None
) -> list[Metric]:
    """Metric objects from names/presets/instances; ``options`` maps metric name -> kwargs."""
    options = dict(options or {})
    if isinstance(metrics, str):
        metrics = [metrics]
    out: list[Metric] = []
    names: list[str] = []
    implied: dict[str, dict[str, Any]] = {}
    for m in metrics:
        if isinstance(m, Metric):
            out.append(m)
            continue
        for metric, opts in preset_options(m).items():
            implied.setdefault(metric, {}).update(opts)
        for name in resolve(m):
            if name not in names:
                names.append(name)
    unknown = set(options) - set(names) - {m.name for m in out}
    if unknown:
        raise ConfigError(f"options given for metric(s) not selected: {', '.join(sorted(unknown))}")
    from radeval.preflight import check_models

    check_models(names, options)  # every missing model in one message, before any is loaded
    for name in names:
        out.append(get_metric(name, **{**implied.get(name, {}), **options.get(name, {})}))
    seen: dict[str, str] = {}
    for m in out:
        for k in m.keys:
            if k in seen:
                raise ConfigError(f"metrics {seen[k]!r} and {m.name!r} both produce key {k!r}")
            seen[k] = m.name
    return out


def evaluate(
    records: Sequence[Record] | Sequence[Mapping[str, Any]] | Any | None = None,
    metrics: str | Sequence[str | Metric] = "default",
    *,
    predictions: Sequence[str] | None = None,
    references: Sequence[str] | None = None,
    ids: Sequence[str] | None = None,
    images: Sequence[str | None] | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    bootstrap: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
    confidence: float = 0.95,
    progress: Any = None,
) -> Result:
    """Score records (or parallel prediction/reference lists) with metrics and presets.

    ``progress`` is an optional callable ``(metric_name, done, total)`` for progress bars.
    """
    if records is None:
        if predictions is None or references is None:
            raise InputError("give records, or predictions and references")
        records = records_from_lists(predictions, references, ids=ids, images=images)
    else:
        records = as_records(records)  # plain dicts, a DataFrame or a datasets.Dataset work too
    if not records:
        raise InputError("no records to score")
    if not (0 < confidence < 1):
        raise ConfigError(f"confidence must be in (0, 1), got {confidence}")
    if bootstrap < 0:
        raise ConfigError(f"bootstrap must be >= 0, got {bootstrap}")
    metric_objs = build_metrics(metrics, options)
    ids_list = [r.id for r in records]
    if len(set(ids_list)) != len(ids_list):
        raise InputError("record ids must be unique")
    hyps = [r.prediction for r in records]
    refs = [r.reference for r in records]
    imgs = [r.image for r in records]

    runs: dict[str, MetricRun] = {}
    n = len(records)
    check_images(metric_objs, imgs, ids_list)
    fit_corpus_settings(metric_objs, refs)
    # chunk by chunk, every metric on a chunk before the next: metrics that read the same
    # encoder (CheXbert for CheXbert F1, SembScore and RadCliQ) find a chunk's features still
    # in its bounded recent-texts cache, so each text is encoded once
    chunks: dict[str, list[np.ndarray]] = {m.name: [] for m in metric_objs}
    for start in range(0, n, CHUNK_SIZE):
        end = min(n, start + CHUNK_SIZE)
        for metric in metric_objs:
            rows = metric.stats(hyps[start:end], refs[start:end], imgs[start:end])
            chunks[metric.name].append(np.asarray(rows, dtype=np.float64))
            if progress:
                progress(metric.name, end, n)
    for metric in metric_objs:
        parts = chunks.pop(metric.name)
        stats = np.concatenate(parts) if parts else np.zeros((0, len(metric.stat_names)))
        sample = {k: np.asarray(v, dtype=np.float64) for k, v in metric.sample_values(stats).items()}
        runs[metric.name] = MetricRun(metric, stats, sample)
    skipped = list(records.skipped) if isinstance(records, Records) else []
    return summarise(ids_list, runs, bootstrap=bootstrap, seed=seed, confidence=confidence, skipped=skipped)


def check_images(metrics: Sequence[Metric], images: Sequence[str | None], ids: Sequence[str]) -> None:
    """Before any scoring, let image metrics name every record whose image is missing or unreadable."""
    for metric in metrics:
        if getattr(metric, "needs_images", False) and hasattr(metric, "check_images"):
            metric.check_images(list(images), ids=list(ids))


def fit_corpus_settings(metrics: Sequence[Metric], references: Sequence[str]) -> None:
    """Freeze corpus-level settings (RadCliQ's BERTScore IDF) on *all* references before scoring,
    so per-sample values never depend on how the records are chunked or batched."""
    for metric in metrics:
        fit = getattr(metric, "fit_references", None)
        if fit is not None:
            fit(list(references))


def summarise(
    ids: list[str],
    runs: dict[str, MetricRun],
    *,
    bootstrap: int,
    seed: int,
    confidence: float,
    skipped: Sequence[Any] = (),
) -> Result:
    """Corpus scores, CIs (rows in sorted-id order), signatures and details from per-record stats."""
    order = np.argsort(np.array(ids, dtype=object), kind="stable")
    corpus: dict[str, float] = {}
    ci95: dict[str, tuple[float, float] | None] = {}
    signatures: dict[str, str] = {}
    directions: dict[str, bool] = {}
    details: dict[str, Any] = {}
    for run in runs.values():
        metric, stats = run.metric, run.stats
        values = metric.corpus(stats)
        intervals = bootstrap_ci(metric, stats[order], n_resamples=bootstrap, seed=seed, confidence=confidence)
        if len(stats):
            det = metric.details(exact_column_sums(stats))
            if det is not None:
                details[metric.name] = det
        for k in metric.keys:
            corpus[k] = values[k]
            ci95[k] = intervals[k]
            signatures[k] = metric.signature
            directions[k] = metric.higher_is_better(k)
    skipped_dicts = [s.as_dict() if hasattr(s, "as_dict") else dict(s) for s in skipped]
    settings = {"bootstrap": bootstrap, "seed": seed, "confidence": confidence, "ci": "percentile"}
    return Result(list(ids), runs, corpus, ci95, signatures, directions, details, skipped_dicts, settings)


def compare(
    a: Result,
    b: Result,
    *,
    n_resamples: int = DEFAULT_BOOTSTRAP,
    n_trials: int = DEFAULT_TRIALS,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """Paired bootstrap + approximate randomization of two systems scored on the same records."""
    if sorted(a.ids) != sorted(b.ids):
        missing = set(a.ids) ^ set(b.ids)
        raise InputError(
            f"the two systems were scored on different records ({len(missing)} ids differ, "
            f"e.g. {sorted(missing)[:3]}); paired tests need the same ids"
        )
    out: dict[str, dict[str, Any]] = {}
    for name, run_a in a.runs.items():
        run_b = b.runs.get(name)
        if run_b is None:
            continue
        if run_a.metric.signature != run_b.metric.signature:
            raise ConfigError(f"metric {name!r} was computed with different settings on the two systems")
        res: dict[str, PairedResult] = paired_tests(
            run_a.metric,
            a.sorted_stats(name),
            b.sorted_stats(name),
            n_resamples=n_resamples,
            n_trials=n_trials,
            seed=seed,
        )
        for k, r in res.items():
            out[k] = r.as_dict()
    return out
