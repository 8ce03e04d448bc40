"""Scaling of `radeval score --output` with the number of records: wall time and peak RSS.

Runs the CLI in a fresh subprocess per size (so peak RSS is that run's own), on synthetic files
made by recombining the sentences of examples/preds.jsonl, and prints a table plus a plot
(benchmarks/out/scaling.png/.svg). Memory should stay flat and time grow linearly.

    python benchmarks/bench_scaling.py --sizes 1000 10000 100000 1000000 --metrics default
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from peers import run_and_record

ROOT = Path(__file__).resolve().parent.parent


def make_file(path: Path, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    sentences = []
    for line in (ROOT / "examples" / "preds.jsonl").read_text().splitlines():
        rec = json.loads(line)
        for text in (rec["prediction"], rec["reference"]):
            sentences += [s.strip() + "." for s in text.split(".") if s.strip()]
    with open(path, "w") as f:
        for i in range(n):
            pred = " ".join(rng.sample(sentences, rng.randint(1, 5)))
            ref = " ".join(rng.sample(sentences, rng.randint(2, 6)))
            f.write(json.dumps({"id": f"r{i:08d}", "prediction": pred, "reference": ref}) + "\n")


def run(n: int, metrics: str, workdir: Path, workers: int) -> dict:
    src = workdir / f"in-{n}.jsonl"
    make_file(src, n)
    out = workdir / f"out-{n}"
    cmd = [sys.executable, "-m", "radeval.cli", "score", str(src), "-m", metrics, "-o", str(out), "-q",
           "--workers", str(workers)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    # a wrapper that reports its own peak RSS, so each size is measured alone
    wrapper = (
        "import resource, runpy, sys; sys.argv = sys.argv[1:]; "
        "\ntry:\n    runpy.run_module('radeval.cli', run_name='__main__')\nexcept SystemExit as e:\n    code = e.code\n"
        "else:\n    code = 0\n"
        "ru = resource.getrusage(resource.RUSAGE_SELF)\n"
        "print(ru.ru_utime + ru.ru_stime, ru.ru_maxrss, file=sys.stderr)\nsys.exit(code)"
    )
    proc = subprocess.run([sys.executable, "-c", wrapper, *cmd[2:]], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"radeval failed for n={n}: {proc.stderr[-2000:]}")
    cpu_s, peak_kb = proc.stderr.strip().splitlines()[-1].split()
    cpu_s, peak_kb = float(cpu_s), int(peak_kb)
    del before
    summary = json.loads((out / "summary.json").read_text())
    return {"n": n, "wall_s": wall, "cpu_s": cpu_s, "peak_rss_mb": peak_kb / 1024, "records_per_s": n / wall,
            "n_records": summary["n_records"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    ap.add_argument("--metrics", default="default")
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            row = run(n, args.metrics, Path(tmp), args.workers)
            rows.append(row)
            print(f"n={n:>9,}  wall={row['wall_s']:8.1f}s  cpu={row['cpu_s']:8.1f}s  peak RSS={row['peak_rss_mb']:7.1f} MB  "
                  f"{row['records_per_s']:9,.0f} records/s", flush=True)
    out_dir = ROOT / "benchmarks" / "out"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "scaling.json").write_text(json.dumps({"metrics": args.metrics, "rows": rows}, indent=2))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5))
    ns = [r["n"] for r in rows]
    a.loglog(ns, [r["wall_s"] for r in rows], "o-", label="wall")
    a.loglog(ns, [r["cpu_s"] for r in rows], "s-", label="CPU (user+sys)")
    a.loglog(ns, [rows[-1]["cpu_s"] * n / ns[-1] for n in ns], "--", color="grey", label="linear")
    a.set_xlabel("records")
    a.set_ylabel("time (s)")
    a.legend()
    b.semilogx(ns, [r["peak_rss_mb"] for r in rows], "o-")
    b.set_ylim(0, max(r["peak_rss_mb"] for r in rows) * 1.3)
    b.set_xlabel("records")
    b.set_ylabel("peak RSS (MB)")
    fig.suptitle(f"radeval score --output, metrics={args.metrics}")
    fig.tight_layout()
    for ext in ("png", "svg"):
        fig.savefig(out_dir / f"scaling.{ext}")


if __name__ == "__main__":
    run_and_record(main, "bench_scaling")
