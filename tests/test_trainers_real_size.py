"""Real-size dry runs (benchmarks/bench_trainer_real_size.py): out of the default run.

Each family at its published widths with 2 decoder + 2 vision layers, random weights: one fp32 step
per stage (trainable sets, finite losses, projector changed, peak RSS <= 18 GB) and the bf16
load / dtype / forward+backward check. Run with RADEVAL_REAL_SIZE=1 (one family at a time is
what the benchmark script does; this test runs them in turn).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.real_size,
    pytest.mark.skipif(
        os.environ.get("RADEVAL_REAL_SIZE") != "1", reason="real-size dry runs: set RADEVAL_REAL_SIZE=1"
    ),
]


@pytest.mark.parametrize("family", ["qwen2_5_vl", "llava", "qwen3_vl"])
@pytest.mark.parametrize("mode", ["fp32", "bf16"])
def test_real_size_dry_run(family, mode):
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_trainer_real_size.py"), "--family", family]
    if mode == "bf16":
        cmd.append("--bf16")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    if mode == "bf16":
        assert '"trainable_dtypes": ["torch.float32"]' in proc.stdout and '"grads_finite": true' in proc.stdout
