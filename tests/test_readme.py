"""The README's two set-up commands stay true: CI runs the same test command, the example exists."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    return [b.strip() for b in blocks[:2]]


def test_ci_runs_the_readme_test_command():
    score_cmd, test_cmd = readme_commands()
    assert "radeval score examples/preds.jsonl" in score_cmd
    assert "pytest" in test_cmd
    # both install commands use the lock (tests/test_lock.py checks the lock itself)
    assert "-c constraints.txt" in score_cmd and "-c constraints.txt" in test_cmd
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_cmd in ci


def test_example_file_is_valid_and_realistic():
    from radeval.data import read_records

    recs = read_records(ROOT / "examples" / "preds.jsonl")
    assert len(recs) >= 30
    assert all(r.reference.strip() for r in recs)
    lines = (ROOT / "examples" / "preds.jsonl").read_text().splitlines()
    assert all(json.loads(line)["id"] for line in lines)
