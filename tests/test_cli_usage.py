"""Usage errors through the installed console script: one line, click's suggestion, exit 2.

These run the ``radeval`` script of the venv running pytest (what ``pip install`` made), with
PYTHONPATH pointing at this checkout, so the check covers typer and click exactly as installed.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(sys.executable).parent / ("radeval.exe" if os.name == "nt" else "radeval")


def radeval(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    if not SCRIPT.exists():
        pytest.skip(f"no console script at {SCRIPT} (package not installed in this venv)")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "COLUMNS": "80"}
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=120)


@pytest.mark.parametrize(
    "args, expected",
    [
        (["scor"], "No such command 'scor'. Did you mean 'score'?"),
        (["score"], "Missing argument 'file'"),
        (["score", "x.jsonl", "--workers", "abc"], "Invalid value for '--workers'"),
        (["score", "x.jsonl", "--bogus"], "No such option: --bogus"),
        (["score", "x.jsonl", "--tokenise", "ptb"], "--tokenize"),
        (["models", "download"], "Missing argument 'names'"),
        (["models", "lst"], "No such command 'lst'"),
    ],
)
def test_usage_errors_exit_2_with_one_line(args, expected):
    p = radeval(*args)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert expected in lines[0] and "--help'" in lines[0]
    assert "internal error" not in p.stderr and "Traceback" not in p.stderr


def test_version():
    from radeval import __version__

    p = radeval("--version")
    assert p.returncode == 0 and p.stdout.strip() == f"radeval {__version__}"


def test_error_handling_recognises_the_installed_click():
    """Whatever click typer raises through (its vendored copy or the installed package) is caught."""
    from radeval.cli import _click_exception_types

    errors, exits, aborts = _click_exception_types()
    for name in ("click.exceptions", "typer._click.exceptions"):
        try:
            mod = importlib.import_module(name)
        except ImportError:
            continue
        assert isinstance(mod.UsageError("x"), errors), name
        assert isinstance(mod.BadParameter("x"), errors), name
        if hasattr(mod, "Exit"):
            assert isinstance(mod.Exit(0), exits), name
    # and the class typer actually raises for a usage error is among them
    from radeval.cli import app

    with pytest.raises(Exception) as e:
        app(args=["no-such-command"], prog_name="radeval", standalone_mode=False)
    assert isinstance(e.value, errors) and e.value.exit_code == 2


def test_models_list_fits_80_columns():
    p = radeval("models", "list")
    assert p.returncode == 0, p.stderr
    too_long = [line for line in p.stdout.splitlines() if len(line) > 80]
    assert not too_long and "chexbert" in p.stdout


def test_metric_and_preset_typos_suggest_the_name():
    p = radeval("score", str(ROOT / "examples" / "preds.jsonl"), "-m", "defualt")
    assert p.returncode == 2 and "Did you mean 'default'?" in p.stderr
    p = radeval("score", str(ROOT / "examples" / "preds.jsonl"), "-m", "bleu", "-O", "bleu.tokenise=ptb")
    assert p.returncode == 2 and "no option 'tokenise'. Did you mean 'tokenize'?" in p.stderr
    assert "Its options: tokenize" in p.stderr and "TypeError" not in p.stderr
