"""The README's offline training quickstart, through the installed console script.

`radeval train --build-tiny DIR` builds a tiny model + toy data + configs (nothing downloaded), then
sft → text → visual → `radeval generate` → `radeval score` run end to end.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("trl")
pytest.importorskip("peft")

ROOT = Path(__file__).resolve().parents[1]


def _radeval() -> str:
    exe = Path(sys.executable).parent / "radeval"
    return (
        str(exe) if exe.is_file() else (shutil.which("radeval") or pytest.skip("radeval console script not installed"))
    )


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    return subprocess.run([_radeval(), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_offline_quickstart_end_to_end(tmp_path):
    t0 = time.perf_counter()
    steps = [
        ["train", "--build-tiny", "quick"],
        ["train", "--stage", "sft", "-c", "quick/sft.yaml"],
        ["train", "--stage", "text", "-c", "quick/text.yaml"],
        ["train", "--stage", "visual", "-c", "quick/visual.yaml"],
        ["generate", "-c", "quick/visual.yaml", "--split", "test", "-o", "quick/preds.jsonl"],
        ["score", "quick/preds.jsonl", "-o", "quick/scores", "--quiet"],
    ]
    for args in steps:
        proc = _run(args, tmp_path)
        assert proc.returncode == 0, (args, proc.stdout[-2000:], proc.stderr[-4000:])
    print(f"\nquickstart wall time: {time.perf_counter() - t0:.1f} s")
    preds = [json.loads(x) for x in (tmp_path / "quick" / "preds.jsonl").read_text().splitlines()]
    assert len(preds) == 4 and all({"id", "prediction", "reference"} <= set(p) for p in preds)
    assert any((tmp_path / "quick" / "scores").iterdir())
    state = json.loads((tmp_path / "quick" / "runs" / "visual" / "final" / "valor_state.json").read_text())
    assert state["stage"] == "visual" and state["last_k"] == 4  # text's 2 steps + visual's 2
    # the reference policy of stage visual is the SFT model (Algorithm 1), recorded absolutely
    assert Path(state["ref_model"]["path"]) == (tmp_path / "quick" / "runs" / "sft" / "final").resolve()


def test_train_without_stage_is_a_usage_error(tmp_path):
    proc = _run(["train"], tmp_path)
    assert proc.returncode == 2 and "--stage" in proc.stderr
