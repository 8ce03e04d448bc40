"""``radeval serve rewards start|stop|status``: the reward service's command-line face.

``start`` runs the LitServe reward service (:mod:`radeval.rewards.service`) in the foreground, or
with ``--detach`` in its own session (a process group with LitServe's workers) and returns once
``/health`` answers; a state file (``<state dir>/serve-rewards-<port>.json``) records the group.
``stop`` sends that group SIGTERM (SIGKILL after ``--grace`` seconds) — LitServe's worker
processes go with it. ``status`` asks ``/health``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Annotated

import typer

from radeval.errors import ConfigError, RadevalError

serve_app = typer.Typer(name="serve", help="Run radeval services.", no_args_is_help=True, add_completion=False)
rewards_app = typer.Typer(
    name="rewards",
    help="The reward service: radeval rewards over HTTP with dynamic batching (LitServe).",
    no_args_is_help=True,
    add_completion=False,
)
serve_app.add_typer(rewards_app, name="rewards")

HostOpt = Annotated[str, typer.Option("--host", help="Address to listen on; beyond loopback needs a token.")]
PortOpt = Annotated[int, typer.Option("--port", help="Port.")]
StateOpt = Annotated[
    Path | None, typer.Option("--state-dir", help="Where --detach keeps its state file (default ~/.cache/radeval).")
]


def _state_file(state_dir: Path | None, port: int) -> Path:
    base = state_dir or Path(os.environ.get("RADEVAL_STATE_DIR", Path.home() / ".cache" / "radeval"))
    return Path(base) / f"serve-rewards-{port}.json"


def health(host: str, port: int, token: str | None = None, timeout: float = 2.0) -> bool:
    """Whether the service at host:port answers its health check."""
    h = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    req = urllib.request.Request(f"http://{h}:{port}/health")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


@rewards_app.command("start")
def start(
    reward: Annotated[
        list[str],
        typer.Option("--reward", help="Reward name[=weight] (a metric key or a radeval.rewards name); repeatable."),
    ],
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8300,
    token: Annotated[
        str | None, typer.Option("--token", envvar="RADEVAL_SERVICE_TOKEN", help="Shared token clients must send.")
    ] = None,
    max_batch_size: Annotated[
        int, typer.Option("--max-batch-size", help="Requests batched into one scoring call.")
    ] = 32,
    batch_timeout: Annotated[
        float, typer.Option("--batch-timeout", help="Seconds to wait for a batch to fill.")
    ] = 0.01,
    max_items: Annotated[int, typer.Option("--max-items", help="Completions per request, at most.")] = 1024,
    max_chars: Annotated[
        int, typer.Option("--max-chars", help="Characters per completion or reference, at most.")
    ] = 32000,
    detach: Annotated[
        bool, typer.Option("--detach", help="Run in the background; stop with `radeval serve rewards stop`.")
    ] = False,
    wait: Annotated[float, typer.Option("--wait", help="Seconds --detach waits for the health check.")] = 300.0,
    state_dir: StateOpt = None,
) -> None:
    """Start the reward service (OpenRLHF /get_reward, verl and TRL clients)."""
    from radeval.rewards.service import check_host_token, parse_reward_spec

    if max_batch_size < 1 or batch_timeout < 0 or max_items < 1 or max_chars < 1:
        raise ConfigError("--max-batch-size, --max-items and --max-chars must be >= 1 and --batch-timeout >= 0")
    check_host_token(host, token)
    for spec in reward:
        parse_reward_spec(spec)  # a bad name fails here, with the reason, not inside a worker
    cmd = [sys.executable, "-m", "radeval.rewards.service", "--host", host, "--port", str(port)]
    cmd += ["--max-batch-size", str(max_batch_size), "--batch-timeout", str(batch_timeout)]
    cmd += ["--max-items", str(max_items), "--max-chars", str(max_chars)]
    for spec in reward:
        cmd += ["--reward", spec]
    env = dict(os.environ)
    if token:
        env["RADEVAL_SERVICE_TOKEN"] = token  # never on the command line (visible in `ps`)
    if not detach:
        raise typer.Exit(subprocess.call(cmd, env=env))
    state = _state_file(state_dir, port)
    if state.exists() and health(host, port, token):
        raise RadevalError(f"a reward service already answers on port {port} ({state})")
    state.parent.mkdir(parents=True, exist_ok=True)
    log = state.with_suffix(".log")
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + wait
    while not health(host, port, token):
        if proc.poll() is not None:
            raise RadevalError(f"the reward service exited with code {proc.returncode}; see {log}")
        if time.monotonic() > deadline:
            _kill_group(proc.pid, grace=5)
            raise RadevalError(f"the reward service did not answer {wait:g} s after starting; see {log}")
        time.sleep(0.5)
    state.write_text(json.dumps({"pid": proc.pid, "host": host, "port": port, "log": str(log)}))
    typer.echo(f"radeval reward service on http://{host}:{port}/get_reward (pid {proc.pid}; log {log})")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_group(pid: int, grace: float) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _ours(pid: int) -> bool:
    try:
        return b"radeval.rewards.service" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return _alive(pid)  # no /proc (macOS): trust the state file


@rewards_app.command("stop")
def stop(
    port: PortOpt = 8300,
    grace: Annotated[float, typer.Option("--grace", help="Seconds to wait after SIGTERM before SIGKILL.")] = 20.0,
    state_dir: StateOpt = None,
) -> None:
    """Stop a service started with --detach (its whole process group)."""
    state = _state_file(state_dir, port)
    if not state.exists():
        raise RadevalError(f"no reward service started with --detach on port {port} (no {state})")
    pid = int(json.loads(state.read_text())["pid"])
    if _alive(pid) and _ours(pid):
        _kill_group(pid, grace)
    state.unlink(missing_ok=True)
    typer.echo(f"stopped the reward service on port {port}")


@rewards_app.command("status")
def status(
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8300,
    token: Annotated[str | None, typer.Option("--token", envvar="RADEVAL_SERVICE_TOKEN", help="Shared token.")] = None,
) -> None:
    """Exit 0 when the service answers its health check, 1 otherwise."""
    ok = health(host, port, token)
    typer.echo(f"reward service on {host}:{port}: {'ok' if ok else 'not answering'}")
    raise typer.Exit(0 if ok else 1)
