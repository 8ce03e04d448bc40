"""--output: complete results of another run are never replaced silently; umask; unwritable paths."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from radeval.cli import main

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "preds.jsonl"


def score(src, out, *extra):
    return main(["score", str(src), "-m", "bleu", "-o", str(out), "-q", "--bootstrap", "0", *extra])


def snapshot(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir()) if p.is_file()}


@pytest.fixture
def other(tmp_path):
    f = tmp_path / "b.jsonl"
    f.write_text("".join(EXAMPLE.read_text().splitlines(keepends=True)[:5]))
    return f


def test_complete_results_of_another_input_are_kept(tmp_path, other, capsys):
    out = tmp_path / "out"
    assert score(EXAMPLE, out) == 0
    before = snapshot(out)
    for extra in ((), ("--resume",)):
        assert score(other, out, *extra) == 2
        err = capsys.readouterr().err
        assert "complete results of another run (a different input file)" in err and "--overwrite" in err
        assert snapshot(out) == before
    # different settings: also kept
    assert main(["score", str(EXAMPLE), "-m", "bleu,rouge_l", "-o", str(out), "-q", "--bootstrap", "0"]) == 2
    assert "metrics or their settings" in capsys.readouterr().err
    # same input and settings: said to be complete, nothing rescored
    assert score(EXAMPLE, out) == 0
    assert "already holds the complete results of this input" in capsys.readouterr().err
    assert snapshot(out) == before
    # --overwrite replaces them
    assert score(other, out, "--overwrite") == 0
    assert snapshot(out)["summary.json"] != before["summary.json"]


def test_results_without_a_run_record_are_kept(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.json").write_text("{}")
    assert score(EXAMPLE, out) == 2
    assert "unknown input and settings" in capsys.readouterr().err


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_output_files_honour_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        assert score(EXAMPLE, tmp_path / "out") == 0
    finally:
        os.umask(old)
    for p in (tmp_path / "out").iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == mode, p.name


def test_unwritable_output_is_a_clear_error(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for out in (blocker, blocker / "sub"):
        assert score(EXAMPLE, out) == 2
        err = capsys.readouterr().err
        assert f"--output {out}" in err and "internal error" not in err
    assert main(["bench", "rewards", "-m", "bleu_4", "-o", str(blocker / "sub"), "-q"]) == 2
    assert "cannot write there" in capsys.readouterr().err
