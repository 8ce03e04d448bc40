"""The README's leaderboard "try this" on the core install: tables written, plots named as the extra."""

from __future__ import annotations

import sys
from pathlib import Path

from radeval.cli import main

ROOT = Path(__file__).resolve().parent.parent


def test_leaderboard_without_matplotlib_writes_tables_and_names_the_extra(tmp_path, monkeypatch, capsys):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    out = tmp_path / "lb"
    code = main(["leaderboard", "build", str(ROOT / "examples" / "leaderboard" / "spec.yaml"), "-o", str(out),
                 "--no-cache", "--no-show"])
    err = capsys.readouterr().err
    assert code == 0, err
    names = {p.suffix for p in out.iterdir()}
    assert {".md", ".tex", ".html", ".csv"} <= names and ".png" not in names
    assert "pip install 'radeval-toolkit[leaderboard]'" in err and "internal error" not in err
    assert main(["leaderboard", "curves", str(tmp_path / "log.jsonl")]) == 3
