"""Streaming/resumable/parallel scoring gives byte-identical outputs however the run is cut."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from radeval.data import read_records
from radeval.errors import InputError
from radeval.evaluation import evaluate
from radeval.runner import STATE_DIR, OutputComplete, score_file

ROOT = Path(__file__).resolve().parent.parent
METRICS = ["bleu", "rouge_l"]
FILES = ("summary.json", "per_sample.jsonl", "per_sample.csv", "details.json", "summary.md")


def make_input(path: Path, n: int = 300) -> Path:
    recs = read_records(ROOT / "examples" / "preds.jsonl")
    with open(path, "w") as f:
        for i in range(n):
            r = recs[(i * 7) % len(recs)]
            pred = r.prediction if i % 3 else r.prediction + " No pneumothorax."
            f.write(json.dumps({"id": f"s{(i * 37) % n:05d}", "prediction": pred, "reference": r.reference}) + "\n")
    return path


def outputs(d: Path) -> dict[str, bytes]:
    return {name: (d / name).read_bytes() for name in FILES}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    base = tmp_path_factory.mktemp("runner")
    src = make_input(base / "in.jsonl")
    ref = base / "ref"
    score_file(src, METRICS, ref, bootstrap=200, chunk_size=64)
    return src, outputs(ref)


def test_streamed_equals_in_memory(tmp_path, data):
    src, expected = data
    result = evaluate(read_records(src), METRICS, bootstrap=200)
    result.write(tmp_path)
    assert outputs(tmp_path) == expected


@pytest.mark.parametrize("chunk", [1, 7, 1000])
def test_chunk_size_does_not_change_bytes(tmp_path, data, chunk):
    src, expected = data
    score_file(src, METRICS, tmp_path, bootstrap=200, chunk_size=chunk)
    assert outputs(tmp_path) == expected
    assert not (tmp_path / STATE_DIR).exists()


def test_workers_equal_single_process(tmp_path, data):
    src, expected = data
    score_file(src, METRICS, tmp_path, bootstrap=200, chunk_size=32, workers=2)
    assert outputs(tmp_path) == expected


def _run_killed(src: Path, out: Path, kill_after: int) -> int:
    code = (
        "import sys; from radeval.runner import score_file; "
        f"score_file({str(src)!r}, {METRICS!r}, {str(out)!r}, bootstrap=200, chunk_size=64, "
        f"resume=True, _kill_after_chunks={kill_after})"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return proc.returncode


@pytest.mark.parametrize("kill_points", [[1], [2, 1], [4, 1, 1]])
def test_kill9_then_resume_is_byte_identical(tmp_path, data, kill_points):
    """SIGKILL after a chunk's data is appended but before it is committed (a torn state)."""
    src, expected = data
    out = tmp_path / "out"
    for k in kill_points:
        assert _run_killed(src, out, k) == -signal.SIGKILL
        assert (out / STATE_DIR).exists() and not (out / "summary.json").exists()
    score_file(src, METRICS, out, bootstrap=200, chunk_size=64, resume=True)
    assert outputs(out) == expected


def test_kill9_at_random_times(tmp_path, data):
    src, expected = data
    big = make_input(tmp_path / "big.jsonl", n=10000)  # long enough that the kills land mid-run
    ref_dir = tmp_path / "ref"
    score_file(big, METRICS, ref_dir, bootstrap=50, chunk_size=16)
    out = tmp_path / "out"
    code = (
        "from radeval.runner import score_file; "
        f"score_file({str(big)!r}, {METRICS!r}, {str(out)!r}, bootstrap=50, chunk_size=16, resume=True)"
    )
    for delay in (0.8, 1.2):
        p = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        p.wait()
    try:
        score_file(big, METRICS, out, bootstrap=50, chunk_size=16, resume=True)
    except OutputComplete:
        pass  # on an idle machine a run can finish before its kill: its files are checked all the same
    assert outputs(out) == outputs(ref_dir)


def test_unfinished_run_needs_resume_and_same_settings(tmp_path, data):
    src, _ = data
    out = tmp_path / "out"
    assert _run_killed(src, out, 1) == -signal.SIGKILL
    with pytest.raises(InputError, match="pass --resume"):
        score_file(src, METRICS, out, bootstrap=200, chunk_size=64)
    with pytest.raises(InputError, match="different input file or settings"):
        score_file(src, ["bleu"], out, bootstrap=200, chunk_size=64, resume=True)


def test_cli_resume_flag(tmp_path, data):
    from radeval.cli import main

    src, expected = data
    out = tmp_path / "out"
    assert _run_killed(src, out, 2) == -signal.SIGKILL
    assert main(["score", str(src), "-m", ",".join(METRICS), "-o", str(out), "--bootstrap", "200",
                 "--chunk-size", "64", "--resume", "-q"]) == 0
    assert outputs(out) == expected


def test_torchrun_two_ranks_equal_single_process(tmp_path, data):
    """Sharded by rank under torchrun (gloo on CPU), gathered in record order: byte-identical."""
    pytest.importorskip("torch")
    src, expected = data
    out = tmp_path / "dist"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29531",
           "-m", "radeval.cli", "score", str(src), "-m", ",".join(METRICS), "-o", str(out),
           "--bootstrap", "200", "--chunk-size", "64", "-q"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert outputs(out) == expected
    assert not (out / STATE_DIR).exists()


def test_kill_after_per_sample_written_but_before_summary(tmp_path, data, monkeypatch):
    """A kill between the final per-sample file and summary.json leaves a resumable state."""
    import radeval.runner as runner

    src, expected = data
    out = tmp_path / "out"

    def die(*a, **k):
        raise KeyboardInterrupt  # stands in for a kill at this point

    monkeypatch.setattr(runner, "_write_per_sample_csv", die)
    with pytest.raises(KeyboardInterrupt):
        score_file(src, METRICS, out, bootstrap=200, chunk_size=64)
    monkeypatch.undo()
    assert (out / STATE_DIR).exists() and not (out / "summary.json").exists()
    score_file(src, METRICS, out, bootstrap=200, chunk_size=64, resume=True)
    assert outputs(out) == expected
