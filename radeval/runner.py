"""Streaming, resumable, parallel scoring of a file into an output directory.

Used by ``radeval score FILE --output DIR``. Memory stays flat in the number of records: texts
are read chunk by chunk and dropped once scored; what is kept per record is its id and its
rows of sufficient statistics (a few dozen float64), which are appended to files on disk.

Layout while running (``DIR/.radeval-partial/``):
* ``manifest.json``: input sha256, metric signatures, options — a resumed run must match it;
* ``ids.jsonl``, ``per_sample.jsonl``, ``stats-<metric>.f64``: appended per chunk, fsync'd;
* ``progress.json``: records done and the byte length of every file above, replaced atomically
  *after* the chunk's data is on disk. A run killed at any point leaves files whose committed
  prefix is consistent; ``--resume`` truncates them to the committed lengths and carries on.
On completion the final files are written atomically (summary.json last) and the state is removed.
Outputs are byte-identical however the run was cut: per-record values never depend on the
chunking, corpus sums are exactly rounded (math.fsum), and CIs use rows in sorted-id order.

``workers > 1`` scores chunks in a process pool (CPU metrics); results are written in record order.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from radeval import __version__
from radeval.data import (
    DEFAULT_MAX_CHARS,
    FieldMap,
    Record,
    Skipped,
    Validator,
    invalid_records_error,
    iter_objects,
    required_fields,
)
from radeval.errors import InputError, RadevalError
from radeval.evaluation import (
    MetricRun,
    Result,
    _dumps,
    atomic_write,
    build_metrics,
    check_images,
    ensure_output_dir,
    file_mode,
    fit_corpus_settings,
    per_sample_line,
    summarise,
)
from radeval.metric import Metric

STATE_DIR = ".radeval-partial"
#: the manifest of the run whose results DIR holds (written just before summary.json)
RUN_FILE = ".radeval-run.json"


class OutputComplete(RadevalError):
    """``--output`` already holds the complete results of this input and settings (not a failure)."""

    exit_code = 0


def _manifest_diff(old: dict[str, Any], new: dict[str, Any]) -> str:
    names = {"input_sha256": "input file", "signatures": "metrics or their settings", "fields": "field mapping"}
    keys = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    return ", ".join(dict.fromkeys(names.get(k, k) for k in keys)) or "unknown"


def check_complete_output(out: Path, manifest: dict[str, Any], overwrite: bool) -> None:
    """Refuse to replace complete results of another run; say so when they are this run's."""
    summary = out / "summary.json"
    if not summary.exists():
        return
    try:
        old = json.loads((out / RUN_FILE).read_text())
    except (OSError, ValueError):
        old = None  # results written by an older radeval or by hand: their settings are unknown
    if old == manifest and not overwrite:
        raise OutputComplete(
            f"{out} already holds the complete results of this input with these settings "
            f"({summary}); nothing was rescored. Pass --overwrite to score again."
        )
    if not overwrite:
        what = "unknown input and settings" if old is None else f"a different {_manifest_diff(old, manifest)}"
        raise InputError(
            f"{out} holds the complete results of another run ({what}); they were left as they are. "
            "Choose another --output, or pass --overwrite to replace them."
        )
    # replacing: the folder stops claiming to be complete before anything new is written
    summary.unlink()
    (out / RUN_FILE).unlink(missing_ok=True)
DEFAULT_CHUNK = 2048


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fsync_append(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


# ----- worker side ---------------------------------------------------------------------------
_WORKER_METRICS: list[Metric] | None = None


def _init_worker(names: list[str], options: Mapping[str, Mapping[str, Any]]) -> None:
    global _WORKER_METRICS
    _WORKER_METRICS = build_metrics(names, options)


def _score_chunk_in_worker(chunk: list[tuple[str, str, str, str | None]]) -> list[np.ndarray]:
    assert _WORKER_METRICS is not None
    return score_chunk(_WORKER_METRICS, chunk)


def score_chunk(metrics: Sequence[Metric], chunk: Sequence[tuple[str, str, str, str | None]]) -> list[np.ndarray]:
    """Stats rows of one chunk for every metric: [(n, d_m) array per metric]."""
    hyps = [c[1] for c in chunk]
    refs = [c[2] for c in chunk]
    imgs = [c[3] for c in chunk]
    return [np.asarray(m.stats(hyps, refs, imgs), dtype=np.float64).reshape(len(chunk), -1) for m in metrics]


# ----- driver ---------------------------------------------------------------------------------
def _valid_records(path: Path, fields: FieldMap, max_chars: int, fmt: str | None) -> Iterator[Record | Skipped]:
    validator = Validator(fields, max_chars)
    for lineno, obj in iter_objects(path, fmt, required_fields(fields)):
        yield validator.check(lineno, obj)


def _chunks(items: Iterator[Record], size: int) -> Iterator[list[tuple[str, str, str, str | None]]]:
    buf: list[tuple[str, str, str, str | None]] = []
    for r in items:
        buf.append((r.id, r.prediction, r.reference, r.image))
        if len(buf) == size:
            yield buf
            buf = []
    if buf:
        yield buf


class _State:
    def __init__(self, out_dir: Path, metrics: Sequence[Metric], rank_dir: str | None = None):
        self.dir = out_dir / STATE_DIR / rank_dir if rank_dir else out_dir / STATE_DIR
        self.metrics = metrics
        self.files = {"ids": self.dir / "ids.jsonl", "per_sample": self.dir / "per_sample.jsonl"}
        for m in metrics:
            self.files[f"stats-{m.name}"] = self.dir / f"stats-{m.name}.f64"

    def start(self, manifest: dict[str, Any], resume: bool) -> int:
        """Create or reopen the state; returns how many records are already done."""
        mpath = self.dir / "manifest.json"
        if self.dir.exists():
            if not resume:
                raise InputError(
                    f"{self.dir} holds an unfinished run; pass --resume to continue it, or delete that directory"
                )
            try:
                old = json.loads(mpath.read_text())
            except (OSError, json.JSONDecodeError):
                old = None
            if old != manifest:
                raise InputError(
                    f"the unfinished run in {self.dir} was started with a different input file or settings; "
                    "delete that directory to start over"
                )
            progress = json.loads((self.dir / "progress.json").read_text())
            for key, path in self.files.items():
                size = progress["sizes"][key]
                with open(path, "ab") as f:  # create if absent, then cut any torn append
                    f.truncate(size)
            return int(progress["records_done"])
        self.dir.mkdir(parents=True)
        for path in self.files.values():
            path.write_bytes(b"")
        atomic_write(mpath, json.dumps(manifest, sort_keys=True))
        self.commit(0)
        return 0

    def commit(self, done: int) -> None:
        sizes = {k: p.stat().st_size for k, p in self.files.items()}
        atomic_write(self.dir / "progress.json", json.dumps({"records_done": done, "sizes": sizes}))

    def append_chunk(self, ids: Sequence[str], rows: Sequence[np.ndarray], lines: str) -> None:
        _fsync_append(self.files["ids"], "".join(json.dumps(i, ensure_ascii=False) + "\n" for i in ids).encode())
        for m, r in zip(self.metrics, rows):
            _fsync_append(self.files[f"stats-{m.name}"], np.ascontiguousarray(r, dtype="<f8").tobytes())
        _fsync_append(self.files["per_sample"], lines.encode("utf-8"))

    def load(self) -> tuple[list[str], dict[str, np.ndarray]]:
        with open(self.files["ids"], encoding="utf-8") as f:
            ids = [json.loads(line) for line in f]
        stats = {}
        for m in self.metrics:
            flat = np.fromfile(self.files[f"stats-{m.name}"], dtype="<f8")
            stats[m.name] = flat.reshape(len(ids), -1) if len(ids) else flat.reshape(0, len(m.stat_names))
        return ids, stats


def score_file(
    path: str | Path,
    metrics: str | Sequence[str],
    out_dir: str | Path,
    *,
    fields: FieldMap | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    skip_invalid: bool = False,
    max_chars: int = DEFAULT_MAX_CHARS,
    fmt: str | None = None,
    bootstrap: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    chunk_size: int = DEFAULT_CHUNK,
    workers: int = 1,
    resume: bool = False,
    overwrite: bool = False,
    progress: Any = None,
    _kill_after_chunks: int | None = None,
) -> Result | None:
    """Score ``path`` into ``out_dir`` (streaming, resumable); returns the Result (without per-sample arrays).

    Under ``torchrun`` / ``accelerate launch`` (WORLD_SIZE > 1) each rank scores every W-th record
    into its own state directory; rank 0 gathers the rows in record order, writes the outputs
    and returns the Result, the other ranks return None.
    """
    path, out = Path(path), Path(out_dir)
    fields = fields or FieldMap()
    options = dict(options or {})
    if chunk_size < 1:
        raise InputError(f"chunk size must be >= 1, got {chunk_size}")
    if workers < 1:
        raise InputError(f"--workers must be >= 1, got {workers}")
    metric_objs = build_metrics(metrics, options)
    ensure_output_dir(out)  # an unwritable --output fails now, not after scoring
    names = [m.name for m in metric_objs]
    if workers > 1:
        # a fitted setting can go to the workers only if the metric can hand it over as options
        fitted = [m.name for m in metric_objs if hasattr(m, "fit_references") and not hasattr(m, "worker_options")]
        if fitted:
            raise InputError(
                f"--workers is for CPU metrics; {', '.join(fitted)} fit corpus-level settings in the main process "
                "(use one process, or accelerate launch for model metrics)"
            )

    # pass 1: validate every line (memory: the ids) so bad input fails before any scoring
    bad: list[Skipped] = []
    n_valid = 0
    needs_images = any(getattr(m, "needs_images", False) for m in metric_objs)
    # a corpus-level setting (RadCliQ's IDF) is fitted on every reference of the file in this
    # first pass; only metrics that declare one make us hold the references
    needs_refs = any(hasattr(m, "fit_references") for m in metric_objs)
    all_refs: list[str] = []
    image_ids: list[str] = []
    image_paths: list[str | None] = []
    for item in _valid_records(path, fields, max_chars, fmt):
        if isinstance(item, Skipped):
            bad.append(item)
        else:
            n_valid += 1
            if needs_refs:
                all_refs.append(item.reference)
            if needs_images:  # paths only (small); image metrics check them before scoring
                image_ids.append(item.id)
                image_paths.append(item.image)
    if bad and not skip_invalid:
        raise invalid_records_error(bad, str(path))
    if n_valid == 0:
        raise InputError(f"{path}: no valid records to score")
    if needs_images:
        check_images(metric_objs, image_paths, image_ids)
        del image_ids, image_paths
    if needs_refs:
        fit_corpus_settings(metric_objs, all_refs)
        del all_refs

    manifest = {
        "radeval_version": __version__,
        "input_sha256": file_sha256(path),
        "signatures": [m.signature for m in metric_objs],
        "fields": [fields.id, fields.prediction, fields.reference, fields.image],
        "skip_invalid": skip_invalid,
        "max_chars": max_chars,
        "format": fmt,
        "bootstrap": bootstrap,
        "seed": seed,
        "confidence": confidence,
    }
    rank, world = distributed_rank()
    if rank == 0:
        check_complete_output(out, manifest, overwrite)
    shutil.rmtree(out / (STATE_DIR + ".done"), ignore_errors=True)  # leftover of a kill during cleanup
    if world > 1:
        if workers > 1:
            raise InputError("--workers cannot be combined with a multi-process launch (torchrun/accelerate)")
        manifest["world_size"] = world
        _select_local_gpu()
    state = _State(out, metric_objs, f"rank-{rank}" if world > 1 else None)
    done = state.start(manifest, resume)

    keys = [k for m in metric_objs for k in m.keys]
    records = (r for r in _valid_records(path, fields, max_chars, fmt) if isinstance(r, Record))
    if world > 1:  # records are dealt round-robin: rank r scores records r, r + W, r + 2W, ...
        records = (r for i, r in enumerate(records) if i % world == rank)
    for _ in range(done):  # skip what a killed run already committed
        next(records)
    if workers > 1:  # workers rebuild the metrics: give them the settings fitted in the first pass
        for m in metric_objs:
            if hasattr(m, "worker_options"):
                options[m.name] = {**options.get(m.name, {}), **m.worker_options()}
    executor = ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(names, options)) if workers > 1 else None
    try:
        chunks = _chunks(records, chunk_size)
        results: Iterator[tuple[list, list[np.ndarray]]]
        if executor:
            pending = []

            def gen():
                # bounded look-ahead keeps memory flat while the pool stays busy
                for chunk in chunks:
                    pending.append((chunk, executor.submit(_score_chunk_in_worker, chunk)))
                    if len(pending) > 2 * workers:
                        c, fut = pending.pop(0)
                        yield c, fut.result()
                while pending:
                    c, fut = pending.pop(0)
                    yield c, fut.result()

            results = gen()
        else:
            results = ((c, score_chunk(metric_objs, c)) for c in chunks)
        n_chunks = 0
        for chunk, rows in results:
            ids = [c[0] for c in chunk]
            samples = {}
            for m, r in zip(metric_objs, rows):
                samples.update(m.sample_values(r))
            lines = "".join(per_sample_line(rid, keys, samples, i) for i, rid in enumerate(ids))
            state.append_chunk(ids, rows, lines)
            n_chunks += 1
            if _kill_after_chunks is not None and n_chunks == _kill_after_chunks:
                os.kill(os.getpid(), 9)  # test hook: die after the data, before the commit
            done += len(chunk)
            state.commit(done)
            if progress:
                progress("scoring", done, n_valid)
    finally:
        if executor:
            executor.shutdown(cancel_futures=True)

    if world > 1:
        _barrier()
        if rank != 0:
            return None  # rank 0 gathers every rank's rows in record order and writes the outputs
        ids, stats = _gather_ranks(out, metric_objs, world)
    else:
        ids, stats = state.load()
    runs = {m.name: MetricRun(m, stats[m.name], {}) for m in metric_objs}
    result = summarise(ids, runs, bootstrap=bootstrap, seed=seed, confidence=confidence, skipped=bad)
    # final files: per-sample first, summary.json last (its presence marks a finished run)
    if world > 1:
        _interleave_lines([_State(out, metric_objs, f"rank-{r}").files["per_sample"] for r in range(world)],
                          out / "per_sample.jsonl")
        state.dir = out / STATE_DIR  # remove every rank's state below
    else:
        # a copy, not a move: a kill before summary.json must leave the state resumable
        _interleave_lines([state.files["per_sample"]], out / "per_sample.jsonl")
    _write_per_sample_csv(out / "per_sample.jsonl", out / "per_sample.csv", keys)
    atomic_write(out / "details.json", _dumps(result.details))
    atomic_write(out / "summary.md", result.to_markdown())
    atomic_write(out / RUN_FILE, json.dumps(manifest, sort_keys=True))
    atomic_write(out / "summary.json", _dumps(result.summary()))
    # retire the state in one atomic rename, then delete it: a kill during the delete leaves only
    # a ".done" leftover, which the next run removes, never a half-deleted resumable state
    done_dir = state.dir.with_name(state.dir.name + ".done")
    shutil.rmtree(done_dir, ignore_errors=True)
    os.replace(state.dir, done_dir)
    shutil.rmtree(done_dir)
    return result


def distributed_rank() -> tuple[int, int]:
    """(rank, world size) under torchrun / accelerate launch (their RANK / WORLD_SIZE), else (0, 1)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
    except ValueError as e:
        raise InputError(f"bad RANK/WORLD_SIZE in the environment: {e}") from e
    if world < 1 or not 0 <= rank < world:
        raise InputError(f"bad RANK={rank} / WORLD_SIZE={world} in the environment")
    return rank, world


def _select_local_gpu() -> None:
    """One GPU per rank: make cuda:LOCAL_RANK the current device, so metrics on "cuda" use it."""
    try:
        import torch
    except ImportError:
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())


def _barrier() -> None:
    """Wait for every rank (torch.distributed over gloo, as torchrun/accelerate set it up)."""
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo")
    dist.barrier()


def _gather_ranks(out: Path, metrics: Sequence[Metric], world: int) -> tuple[list[str], dict[str, np.ndarray]]:
    """Every rank's ids and stats rows, interleaved back into record order (record i: rank i % W)."""
    parts = [_State(out, metrics, f"rank-{r}").load() for r in range(world)]
    n = sum(len(p[0]) for p in parts)
    ids: list[str] = [""] * n
    stats = {m.name: np.empty((n, parts[0][1][m.name].shape[1] if n else 0)) for m in metrics}
    for r, (rids, rstats) in enumerate(parts):
        ids[r::world] = rids
        for m in metrics:
            stats[m.name][r::world] = rstats[m.name]
    return ids, stats


def _interleave_lines(sources: Sequence[Path], dest: Path) -> None:
    """Merge per-rank per_sample files round-robin into dest (temp file + rename)."""
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    handles = [open(p, "rb") for p in sources]
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), file_mode())
            while True:
                wrote = False
                for h in handles:
                    line = h.readline()
                    if line:
                        f.write(line)
                        wrote = True
                if not wrote:
                    break
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        for h in handles:
            h.close()


def _write_per_sample_csv(jsonl: Path, dest: Path, keys: Sequence[str]) -> None:
    """per_sample.csv from per_sample.jsonl, streamed line by line, then renamed into place."""
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f, open(jsonl, encoding="utf-8") as src:
            os.fchmod(f.fileno(), file_mode())
            writer = csv.DictWriter(f, fieldnames=["id", *keys], lineterminator="\n")
            writer.writeheader()
            for line in src:
                row = json.loads(line)
                writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in ["id", *keys]})
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
