"""RETIRED: the old standard-library reward server, kept only as the load test's baseline.

Use the reward service instead (``radeval serve rewards start``, :mod:`radeval.rewards.service`):
it batches concurrent requests, answers ``None`` per unscored sample, bounds requests and
requires a token beyond loopback. This module scores one request at a time under a global lock
(``benchmarks/reward_service_load.py`` measures the difference).

A small HTTP reward server for trainers that call a remote reward model (OpenRLHF).

OpenRLHF (``--remote_rm_url http://host:port/get_reward``) POSTs JSON::

    {"query": [prompt+response, ...], "prompts": [prompt, ...], "labels": [label, ...]}

(``labels`` from ``--label_key``: here, the reference report) and reads ``"rewards"`` from the
JSON answer; recent versions also read ``"scores"`` (for dynamic filtering) and ``"extra_logs"``
(per-sample metrics to log). This server answers::

    {"rewards": [...], "scores": [...], "extra_logs": {"<reward name>": [...], ...}}

``rewards`` (= ``scores``) is the weighted sum of the configured radeval rewards; each reward's own
values go to ``extra_logs``. The response is the query with the prompt prefix removed when the
query starts with the prompt (OpenRLHF's queries are prompt + response), else the whole query.
Bad requests get HTTP 400 with ``{"error": ...}``; a reward that cannot run (a missing model)
gives HTTP 500 with the message. Standard library only; scoring is serialised by a lock because
metric models are not thread-safe.

Run: ``python -m radeval.rewards.server --reward bleu_4 --reward valor_format_reward=0.5 --port 5000``.
"""

from __future__ import annotations

import argparse
import json
import math
import threading
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_BODY = 256 * 1024 * 1024


def responses_from(queries: Sequence[Any], prompts: Sequence[Any] | None) -> list[str]:
    out = []
    for i, q in enumerate(queries):
        q = q if isinstance(q, str) else ("" if q is None else str(q))
        p = prompts[i] if prompts is not None and i < len(prompts) else None
        out.append(q[len(p) :] if isinstance(p, str) and p and q.startswith(p) else q)
    return out


class RewardService:
    """Weighted radeval rewards behind OpenRLHF's request/response shape."""

    def __init__(self, rewards: Sequence[tuple[Callable, float]], reference_column: str = "ground_truth"):
        if not rewards:
            from radeval.errors import ConfigError

            raise ConfigError("the reward server needs at least one reward")
        self.rewards = list(rewards)
        self.reference_column = reference_column
        self._lock = threading.Lock()

    def __call__(self, payload: dict[str, Any]) -> dict[str, Any]:
        queries = payload.get("query", payload.get("queries"))
        if not isinstance(queries, list):
            raise ValueError("request JSON needs a list under 'query'")
        prompts = payload.get("prompts")
        labels = payload.get("labels")
        n = len(queries)
        if prompts is not None and (not isinstance(prompts, list) or len(prompts) != n):
            raise ValueError(f"'prompts' must be a list of {n} strings")
        if labels is None:
            raise ValueError("request JSON needs 'labels' (the reference reports; OpenRLHF --label_key)")
        if not isinstance(labels, list) or len(labels) != n:
            raise ValueError(f"'labels' must be a list of {n} entries")
        completions = responses_from(queries, prompts)
        total = [0.0] * n
        logs: dict[str, list[float]] = {}
        with self._lock:
            for fn, weight in self.rewards:
                column = getattr(fn, "reference_column", None) or self.reference_column
                vals = fn(prompts=prompts or [""] * n, completions=completions, **{column: labels})
                vals = [v if v is not None and math.isfinite(v) else 0.0 for v in vals]
                logs[getattr(fn, "__name__", "reward")] = vals
                total = [t + weight * v for t, v in zip(total, vals)]
        return {"rewards": total, "scores": total, "extra_logs": logs}


def _handler(service: RewardService):
    class Handler(BaseHTTPRequestHandler):
        def _send(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # health check
            self._send(200, {"status": "ok", "rewards": [getattr(f, "__name__", "?") for f, _ in service.rewards]})

        def do_POST(self) -> None:
            try:
                length = int(self.headers.get("Content-Length", "0"))
                if length <= 0 or length > MAX_BODY:
                    raise ValueError("missing or oversized request body")
                payload = json.loads(self.rfile.read(length))
                if not isinstance(payload, dict):
                    raise ValueError("request body must be a JSON object")
            except (ValueError, json.JSONDecodeError) as e:
                self._send(400, {"error": str(e)})
                return
            try:
                self._send(200, service(payload))
            except ValueError as e:
                self._send(400, {"error": str(e)})
            except Exception as e:  # a reward that cannot run: say why, keep serving
                self._send(500, {"error": f"{type(e).__name__}: {e}"})

        def log_message(self, format: str, *args: Any) -> None:  # quiet by default
            pass

    return Handler


def make_server(
    rewards: Sequence[tuple[Callable, float]], host: str = "127.0.0.1", port: int = 5000, **kw: Any
) -> ThreadingHTTPServer:
    """An (unstarted) HTTP server; ``port=0`` picks a free port (``server.server_address``)."""
    return ThreadingHTTPServer((host, port), _handler(RewardService(rewards, **kw)))


def parse_reward_spec(spec: str) -> tuple[Callable, float]:
    """``name`` or ``name=weight`` → (reward from :mod:`radeval.rewards`, weight)."""
    import radeval.rewards as rewards
    from radeval.errors import ConfigError

    name, _, w = spec.partition("=")
    try:
        weight = float(w) if w else 1.0
    except ValueError:
        raise ConfigError(f"bad reward weight in {spec!r}") from None
    if not math.isfinite(weight):
        raise ConfigError(f"bad reward weight in {spec!r}")
    try:
        return getattr(rewards, name.strip()), weight
    except AttributeError:
        raise ConfigError(f"unknown radeval reward {name!r}") from None


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m radeval.rewards.server", description=__doc__.split("\n")[0])
    ap.add_argument("--reward", action="append", required=True, help="reward name[=weight]; repeatable")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=5000)
    args = ap.parse_args(argv)
    import warnings

    warnings.warn(
        "radeval.rewards.server is retired (kept as the load-test baseline): use `radeval serve rewards start`",
        FutureWarning,
        stacklevel=2,
    )
    server = make_server([parse_reward_spec(s) for s in args.reward], args.host, args.port)
    print(f"radeval reward server on http://{args.host}:{server.server_address[1]}/get_reward")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
