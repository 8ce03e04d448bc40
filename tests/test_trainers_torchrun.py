"""Stage text and stage visual under a 2-rank torchrun (gloo, CPU) with groups split across ranks.

TRL calls reward functions per process on slices that cut a group of G=4 completions in two
(2 per rank per pass). The ranking (Eq. 7), mixing (Eq. 8) and RankNorm (Eq. 9) happen on the
gathered matrix, so the advantages each rank's loss receives must equal the single-process ones
computed from that matrix with radeval.rewards.valor's functions.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("trl")
torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "trainers" / "configs" / "tiny"


def _torchrun(stage: str, model_dir: Path, data: Path, out: Path, init_from: str) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--standalone",
        str(ROOT / "tests" / "torchrun_stages.py"),
        stage,
        str(CONFIGS / f"{stage}.yaml"),
        str(model_dir),
        str(data),
        str(out),
        init_from,
    ]
    # own session: on a timeout the whole group (launcher + both ranks) is killed, no orphans
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        _, err = proc.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    assert proc.returncode == 0, err[-4000:]


def _expected(call: dict) -> np.ndarray:
    from radeval.rewards.valor import per_group, rank_norm, visual_rank_reward, visual_reward

    r = np.asarray(call["rewards"], dtype=np.float64)
    w = np.asarray(call["weights"], dtype=np.float64)
    vi, g = call["visual_index"], call["group"]
    text_cols = [j for j in range(r.shape[1]) if j != vi]
    total = (r[:, text_cols] * w[text_cols]).sum(axis=1)
    if vi is not None:
        total = visual_reward(total, per_group(visual_rank_reward, r[:, vi], g), 0.5)
    return per_group(rank_norm, total, g)


@pytest.mark.slow
def test_two_rank_advantages_equal_single_process(tmp_path):
    from tests.tiny_vlm import build_tiny_qwen25vl
    from trainers.tiny import write_tiny_dataset

    t0 = time.perf_counter()
    model_dir = build_tiny_qwen25vl(tmp_path / "model")
    data = write_tiny_dataset(tmp_path)
    _torchrun("text", model_dir, data, tmp_path, "-")
    text_final = (tmp_path / "final-text.txt").read_text()
    _torchrun("visual", model_dir, data, tmp_path, text_final)
    print(f"\n2-rank torchrun, stage text + stage visual: {time.perf_counter() - t0:.1f} s")
    for stage in ("text", "visual"):
        ranks = [json.loads((tmp_path / f"adv-{stage}-rank{r}.json").read_text()) for r in (0, 1)]
        assert len(ranks[0]) == len(ranks[1]) >= 1
        for c0, c1 in zip(*ranks):
            assert (c0["process_index"], c1["process_index"], c0["num_processes"]) == (0, 1, 2)
            # both ranks ranked the same gathered matrix (whole groups)
            np.testing.assert_array_equal(c0["rewards"], c1["rewards"])
            expected = _expected(c0)
            n = len(c0["advantages"])
            assert n == len(c1["advantages"]) and 2 * n == len(expected)
            # each rank holds half of the one group: the group is split across ranks
            assert n < c0["group"] == 2 * n
            np.testing.assert_allclose(c0["advantages"], expected[:n], atol=1e-6)
            np.testing.assert_allclose(c1["advantages"], expected[n:], atol=1e-6)
            assert not np.allclose(expected, 0.0)
