"""Score prediction files with radeval, with an on-disk cache so a rebuild is instant.

Cache entries are JSON files named by a hash of everything that can change the numbers: the
predictions file's sha256, the metric names and options, the radeval version, the bootstrap
size and seed. An entry keeps the summary, the details and the per-record statistic rows (in
input order, with the ids), so paired tests against a baseline can be run later without
re-scoring texts; paired-test results are cached too, keyed by both files' hashes.
Floats round-trip exactly through JSON (Python writes the shortest repr), so a cached table is
byte-identical to a freshly scored one.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import radeval
from radeval.errors import ConfigError

CACHE_FORMAT = "1"  # bump when the entry layout changes


def default_cache_dir() -> Path:
    """$RADEVAL_CACHE_DIR/leaderboards, else $XDG_CACHE_HOME (or ~/.cache)/radeval/leaderboards."""
    root = os.environ.get("RADEVAL_CACHE_DIR")
    if root:
        return Path(root) / "leaderboards"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "radeval" / "leaderboards"


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _key(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


@dataclass
class Scored:
    """One system's scores on one predictions file, from radeval or from the cache."""

    path: Path
    sha256: str
    summary: dict[str, Any]
    details: dict[str, Any]
    ids: list[str]
    stats: dict[str, list[list[float]]]  # metric name -> rows in input order
    from_cache: bool
    result: Any = field(default=None, repr=False)  # the radeval Result when scored in this process

    def metric(self, key: str) -> dict[str, Any]:
        return self.summary["metrics"][key]


@dataclass
class Scorer:
    """Scores files with a fixed metric list; counts cache hits so tests and the CLI can tell."""

    metrics: tuple[tuple[str, dict[str, Any]], ...]
    bootstrap: int = 1000
    seed: int = 0
    cache_dir: Path | None = None
    hits: int = 0
    misses: int = 0

    def _settings(self) -> dict[str, Any]:
        return {
            "format": CACHE_FORMAT,
            "radeval": radeval.__version__,
            "metrics": [[n, o] for n, o in self.metrics],
            "bootstrap": self.bootstrap,
            "seed": self.seed,
        }

    def _read(self, name: str) -> dict | None:
        if self.cache_dir is None:
            return None
        p = self.cache_dir / name
        if not p.is_file():
            return None
        try:
            return json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None  # a torn or foreign file is a miss, and is overwritten below

    def _write(self, name: str, obj: dict) -> None:
        if self.cache_dir is None:
            return
        from leaderboards.build import atomic_write

        self.cache_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(self.cache_dir / name, json.dumps(obj, allow_nan=False))  # keeps dict order (label order)

    def score(self, path: Path) -> Scored:
        sha = file_sha256(path)
        name = f"score-{_key({**self._settings(), 'sha256': sha})}.json"
        entry = self._read(name)
        if entry is not None:
            self.hits += 1
            return Scored(path, sha, entry["summary"], entry["details"], entry["ids"], entry["stats"], True)
        self.misses += 1
        from radeval.data import read_records
        from radeval.evaluation import _clean_json

        records = read_records(path)
        result = radeval.evaluate(
            records,
            metrics=[n for n, _ in self.metrics],
            options={n: o for n, o in self.metrics if o},
            bootstrap=self.bootstrap,
            seed=self.seed,
        )
        summary = _clean_json(result.summary())
        details = _clean_json(result.details)
        stats = {n: run.stats.tolist() for n, run in result.runs.items()}
        self._write(name, {"summary": summary, "details": details, "ids": result.ids, "stats": stats})
        return Scored(path, sha, summary, details, list(result.ids), stats, False, result)

    def _result(self, s: Scored):
        """A radeval Result for paired tests: the live one, or rebuilt from cached statistic rows."""
        if s.result is not None:
            return s.result
        from radeval.evaluation import MetricRun, Result
        from radeval.registry import get_metric

        options = dict(self.metrics)
        runs = {}
        for name, rows in s.stats.items():
            metric = get_metric(name, **options.get(name, {}))
            arr = np.asarray(rows, dtype=np.float64).reshape(len(rows), len(metric.stat_names))
            runs[name] = MetricRun(metric, arr, metric.sample_values(arr))
        m = s.summary["metrics"]
        s.result = Result(
            ids=list(s.ids),
            runs=runs,
            corpus={k: v["score"] for k, v in m.items()},
            ci95={k: tuple(v["ci95"]) if v["ci95"] else None for k, v in m.items()},
            signatures={k: v["signature"] for k, v in m.items()},
            higher_is_better={k: v["higher_is_better"] for k, v in m.items()},
            details=s.details,
        )
        return s.result

    def compare(self, a: Scored, b: Scored) -> dict[str, dict[str, Any]]:
        """radeval.compare(a, b): paired bootstrap + approximate randomization per key (cached)."""
        name = f"compare-{_key({**self._settings(), 'a': a.sha256, 'b': b.sha256})}.json"
        entry = self._read(name)
        if entry is not None:
            self.hits += 1
            return entry["compare"]
        self.misses += 1
        from radeval.evaluation import _clean_json, compare

        out = _clean_json(compare(self._result(a), self._result(b), n_resamples=self.bootstrap, seed=self.seed))
        self._write(name, {"compare": out})
        return out


def metrics_for_columns(keys: list[str]) -> tuple[tuple[str, dict[str, Any]], ...]:
    """The registered metrics that produce the given keys (when a spec does not list them)."""
    from radeval.registry import specs

    out: list[str] = []
    for k in keys:
        owners = sorted(n for n, s in specs().items() if k in s.keys)
        if not owners:
            raise ConfigError(
                f"no registered metric produces column {k!r}; list the metrics in the spec's 'metrics' field"
            )
        if owners[0] not in out:
            out.append(owners[0])
    return tuple((n, {}) for n in out)
