"""Start / stop a reward service through `radeval serve rewards` for tests (any venv with litserve)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(*args, env=None, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "radeval.cli", *args], capture_output=True, text=True, env=env, timeout=timeout
    )


@contextmanager
def running_service(state_dir: Path, rewards: list[str], token: str | None = None, extra: tuple[str, ...] = ()):
    """Yield {port, url, env, pid} of a detached service; stop it (and check its group is gone) after."""
    port = free_port()
    env = {**os.environ, "RADEVAL_STATE_DIR": str(state_dir), "PYTHONPATH": str(ROOT)}
    env.pop("RADEVAL_SERVICE_TOKEN", None)
    if token:
        env["RADEVAL_SERVICE_TOKEN"] = token
    args = ["serve", "rewards", "start", "--port", str(port), "--detach", *extra]
    for r in rewards:
        args += ["--reward", r]
    r = cli(*args, env=env)
    assert r.returncode == 0, r.stderr + r.stdout
    pid = json.loads((state_dir / f"serve-rewards-{port}.json").read_text())["pid"]
    try:
        yield {"port": port, "url": f"http://127.0.0.1:{port}/get_reward", "env": env, "pid": pid}
    finally:
        r = cli("serve", "rewards", "stop", "--port", str(port), env=env)
        assert r.returncode == 0, r.stderr
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            pass
        else:
            raise AssertionError("the service's process group is still alive after stop")
