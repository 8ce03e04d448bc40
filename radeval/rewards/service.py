"""The reward service: radeval rewards behind LitServe, with dynamic batching across requests.

Why LitServe (measured in ``benchmarks/reward_service_load.py``; numbers in the README): it is
a thin layer over FastAPI/uvicorn (19 small wheels, seconds to install) whose inference loop
collects up to ``max_batch_size`` concurrent requests for ``batch_timeout`` seconds and hands
them to one ``predict`` call — exactly the "many rollout workers, one GPU metric" shape. Ray
Serve batches the same way and scales across a Ray cluster, but installs Ray (a ~70 MB wheel
plus its dependencies) into the reward environment; when training already runs on Ray (verl,
OpenRLHF), run this service beside it, or several services behind Ray's or any HTTP load
balancer (each holds its own models and caches). Both engines are on PyPI; we ship one.

What one process holds: the metric models, loaded once in ``setup`` (GPU when present — the
metrics pick CUDA themselves), the per-pair value cache and each metric's reference-feature
cache, shared by every client. A batch of requests is scored as one call per reward over all
their completions, so a GPU metric sees the whole batch, references repeated across requests
are featurised once, and identical pairs are scored once.

Contract (``POST /get_reward``), two request forms:

* OpenRLHF (``--remote_rm_url http://host:port/get_reward``)::

      {"query": [prompt+response, ...], "prompts": [...], "labels": [reference, ...]}

  the response is the query minus its prompt prefix (when it starts with the prompt).
* radeval (the TRL client :class:`radeval.rewards.client.RemoteReward`, verl's entry
  :func:`radeval.rewards.verl.compute_score_remote`)::

      {"completions": [...], "references": [...], "images": [path, ...]?,
       "global_step": k?, "rewards": [reward name, ...]?}

Answer: ``{"rewards": [...], "scores": [...], "extra_logs": {reward name: [...]}, "batch": {...}}``
(``batch``: how many requests and completions were scored together with this one).
``rewards`` (= ``scores``) is the weighted sum of the configured rewards over the ones that
scored each sample; ``extra_logs`` has each reward's own values. A sample no reward could score
is ``null`` — per sample: a failing reward is retried request by request, and what still fails
is ``null``; a batch is never dropped. A malformed request gets HTTP 400 with the reason before
it joins a batch (one bad client never fails the others), an oversized one 413, a missing or
wrong token 401.

Security: listens on 127.0.0.1 by default. Any other host needs a shared token (``--token`` or
``RADEVAL_SERVICE_TOKEN``); clients send ``Authorization: Bearer <token>`` or, for clients that
cannot set headers (OpenRLHF), ``?token=<token>`` in the URL. Bounds: body bytes, completions per
request and characters per text (:class:`Limits`).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs

from radeval.errors import ConfigError

LOOPBACK = ("127.0.0.1", "localhost", "::1")
TOKEN_ENV = "RADEVAL_SERVICE_TOKEN"
API_PATH = "/get_reward"
HEALTH_PATH = "/health"


@dataclass(frozen=True)
class Limits:
    """Request bounds: body bytes, completions per request, characters per completion/reference."""

    max_body_bytes: int = 8 * 1024 * 1024
    max_items: int = 1024
    max_chars: int = 32_000


# ----- request parsing (shared by the service, the load-test baseline and tests) ---------------------


def _strings(name: str, value: Any, n: int | None, limits: Limits, allow_none: bool) -> list[str | None]:
    if not isinstance(value, list):
        raise ValueError(f"'{name}' must be a list")
    if n is not None and len(value) != n:
        raise ValueError(f"'{name}' has {len(value)} entries for {n} completions")
    out: list[str | None] = []
    for i, v in enumerate(value):
        if v is None and allow_none:
            out.append(None)
            continue
        if isinstance(v, list) and v and all(isinstance(x, str) for x in v):
            v = v[0]  # one reference per record
        if not isinstance(v, str):
            raise ValueError(f"'{name}'[{i}] must be a string")
        if len(v) > limits.max_chars:
            raise ValueError(f"'{name}'[{i}] has {len(v)} characters; the limit is {limits.max_chars}")
        out.append(v)
    return out


def responses_from(queries: Sequence[str], prompts: Sequence[Any] | None) -> list[str]:
    """OpenRLHF's queries are prompt + response: strip the prompt prefix where it is one."""
    out = []
    for i, q in enumerate(queries):
        p = prompts[i] if prompts is not None and i < len(prompts) else None
        out.append(q[len(p) :] if isinstance(p, str) and p and q.startswith(p) else q)
    return out


def parse_request(payload: Any, limits: Limits = Limits(), known: Sequence[str] | None = None) -> dict[str, Any]:
    """Validate one request (either form) into ``{completions, references, images, global_step, rewards}``.

    Raises ValueError naming the field for anything malformed.
    """
    if not isinstance(payload, dict):
        raise ValueError("request body must be a JSON object")
    if "query" in payload or "queries" in payload:  # OpenRLHF
        queries = _strings("query", payload.get("query", payload.get("queries")), None, limits, False)
        n = len(queries)
        prompts = payload.get("prompts")
        if prompts is not None:
            prompts = _strings("prompts", prompts, n, limits, True)
        if "labels" not in payload:
            raise ValueError("request needs 'labels' (the reference reports; OpenRLHF --label_key)")
        refs = _strings("labels", payload["labels"], n, limits, True)
        completions = responses_from(queries, prompts)  # type: ignore[arg-type]
    elif "completions" in payload:
        completions = _strings("completions", payload["completions"], None, limits, False)  # type: ignore[assignment]
        n = len(completions)
        if "references" not in payload:
            raise ValueError("request needs 'references' (one reference report per completion)")
        refs = _strings("references", payload["references"], n, limits, True)
    else:
        raise ValueError("request needs 'completions' + 'references' (radeval) or 'query' + 'labels' (OpenRLHF)")
    if n > limits.max_items:
        raise ValueError(f"request has {n} completions; the limit is {limits.max_items}")
    images = payload.get("images")
    if images is not None:
        images = _strings("images", images, n, limits, True)
    step = payload.get("global_step")
    if step is not None and (isinstance(step, bool) or not isinstance(step, int) or step < 0):
        raise ValueError(f"'global_step' must be an integer >= 0, got {step!r}")
    wanted = payload.get("rewards")
    if wanted is not None:
        if not isinstance(wanted, list) or not wanted or not all(isinstance(w, str) for w in wanted):
            raise ValueError("'rewards' must be a non-empty list of reward names")
        if known is not None:
            unknown = [w for w in wanted if w not in known]
            if unknown:
                raise ValueError(f"unknown reward(s) {unknown}; this service has {list(known)}")
    return {"completions": completions, "references": refs, "images": images, "global_step": step, "rewards": wanted}


# ----- scoring (engine-independent) ------------------------------------------------------------------


def parse_reward_spec(spec: str) -> tuple[Callable, float]:
    """``name`` or ``name=weight`` → (reward from :mod:`radeval.rewards`, weight)."""
    import radeval.rewards as rewards

    name, _, w = spec.partition("=")
    try:
        weight = float(w) if w else 1.0
    except ValueError:
        raise ConfigError(f"bad reward weight in {spec!r}") from None
    if not math.isfinite(weight):
        raise ConfigError(f"bad reward weight in {spec!r}")
    try:
        fn = getattr(rewards, name.strip())
    except AttributeError:
        raise ConfigError(f"unknown radeval reward {name!r}: use a metric key or a radeval.rewards name") from None
    if not callable(fn):
        raise ConfigError(f"radeval.rewards.{name} is not a reward")
    return fn, weight


def _clean(values: Any, n: int) -> list[float | None]:
    if not isinstance(values, (list, tuple)) or len(values) != n:
        raise ValueError(f"reward returned {values!r} for {n} completions")
    out: list[float | None] = []
    for v in values:
        try:
            f = float(v) if v is not None else None
        except (TypeError, ValueError):
            f = None
        out.append(f if f is not None and math.isfinite(f) else None)
    return out


class BatchScorer:
    """Weighted rewards scored over a batch of parsed requests (the body of the service's predict)."""

    def __init__(self, rewards: Sequence[tuple[Callable, float]]):
        if not rewards:
            raise ConfigError("the reward service needs at least one reward")
        self.rewards = list(rewards)
        self.names = [getattr(f, "__name__", type(f).__name__) for f, _ in self.rewards]
        if len(set(self.names)) != len(self.names):
            raise ConfigError(f"reward names must differ: {self.names}")

    def _call(self, fn: Callable, completions: list[str], refs: list, images, step) -> list[float | None]:
        kwargs: dict[str, Any] = {getattr(fn, "reference_column", None) or "ground_truth": refs}
        if images is not None:
            kwargs["images"] = images
        if step is not None:
            kwargs["trainer_state"] = SimpleNamespace(global_step=step)
        out = fn(prompts=[""] * len(completions), completions=completions, **kwargs)
        if asyncio.iscoroutine(out):
            out = asyncio.run(out)
        return _clean(out, len(completions))

    def score(self, requests: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """One answer per parsed request; requests sharing a step and image use are scored together."""
        per_reward: list[list[list[float | None]]] = [[[] for _ in requests] for _ in self.rewards]
        groups: dict[tuple, list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault((r["global_step"], r["images"] is not None), []).append(i)
        for (step, has_images), idx in groups.items():
            completions = [c for i in idx for c in requests[i]["completions"]]
            refs = [x for i in idx for x in requests[i]["references"]]
            images = [x for i in idx for x in requests[i]["images"]] if has_images else None
            bounds = []
            start = 0
            for i in idx:
                bounds.append((i, start, start + len(requests[i]["completions"])))
                start = bounds[-1][2]
            for k, (fn, _w) in enumerate(self.rewards):
                if not any(requests[i]["rewards"] is None or self.names[k] in requests[i]["rewards"] for i in idx):
                    for i, a, b in bounds:
                        per_reward[k][i] = [None] * (b - a)
                    continue
                try:
                    vals = self._call(fn, completions, refs, images, step)
                    for i, a, b in bounds:
                        per_reward[k][i] = vals[a:b]
                except Exception:  # isolate the failing request: retry one request at a time
                    for i, a, b in bounds:
                        r = requests[i]
                        try:
                            per_reward[k][i] = self._call(fn, r["completions"], r["references"], r["images"], step)
                        except Exception:
                            per_reward[k][i] = [None] * (b - a)
        total = sum(len(r["completions"]) for r in requests)
        answers = [
            self._answer(r, [per_reward[k][i] for k in range(len(self.rewards))]) for i, r in enumerate(requests)
        ]
        for a in answers:  # how this request was batched (tests and the load test read it)
            a["batch"] = {"requests": len(requests), "completions": total}
        return answers

    def _answer(self, request: dict[str, Any], values: list[list[float | None]]) -> dict[str, Any]:
        n = len(request["completions"])
        wanted = request["rewards"]
        chosen = [k for k, name in enumerate(self.names) if wanted is None or name in wanted]
        total: list[float | None] = []
        for j in range(n):
            parts = [(self.rewards[k][1], values[k][j]) for k in chosen if values[k][j] is not None]
            total.append(sum(w * v for w, v in parts) if parts else None)
        return {"rewards": total, "scores": total, "extra_logs": {self.names[k]: values[k] for k in chosen}}


# ----- LitServe ---------------------------------------------------------------------------------------


def check_host_token(host: str, token: str | None) -> None:
    """Loopback without a token is fine; any other address needs one."""
    if host not in LOOPBACK and not token:
        raise ConfigError(
            f"listening on {host} exposes the reward service beyond this machine: set a shared token "
            f"(--token or {TOKEN_ENV}); clients send it as 'Authorization: Bearer <token>'"
        )


class GuardMiddleware:
    """ASGI middleware: token check, body-size bound and request validation before batching.

    Validation happens here, in the HTTP server, because LitServe's batched loop answers an
    exception raised in ``decode_request`` to *every* request of the batch; a malformed request
    must fail alone.
    """

    def __init__(self, app, token: str | None = None, limits: Limits = Limits(), known: Sequence[str] = ()):
        self.app = app
        self.token = token
        self.limits = limits
        self.known = list(known)

    async def _reply(self, send, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": data})

    def _authorized(self, scope) -> bool:
        if not self.token:
            return True
        headers = dict(scope.get("headers") or [])
        auth = headers.get(b"authorization", b"").decode(errors="replace")
        given = auth[7:] if auth.startswith("Bearer ") else None
        if given is None:
            q = parse_qs((scope.get("query_string") or b"").decode(errors="replace")).get("token")
            given = q[0] if q else None
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if not self._authorized(scope):
            return await self._reply(send, 401, {"error": "missing or wrong service token"})
        if scope.get("path") != API_PATH or scope.get("method") != "POST":
            return await self.app(scope, receive, send)
        chunks, size = [], 0
        more = True
        while more:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return None
            body = msg.get("body", b"")
            size += len(body)
            if size > self.limits.max_body_bytes:
                return await self._reply(send, 413, {"error": f"request body over {self.limits.max_body_bytes} bytes"})
            chunks.append(body)
            more = msg.get("more_body", False)
        raw = b"".join(chunks)
        try:
            parse_request(json.loads(raw), self.limits, self.known)
        except (ValueError, json.JSONDecodeError) as e:
            return await self._reply(send, 400, {"error": str(e)})
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": raw, "more_body": False}
            return await receive()

        # the body is JSON (just parsed): say so, whatever the client sent, so LitServe reads it as JSON
        headers = [(k, v) for k, v in scope.get("headers") or [] if k != b"content-type"]
        scope = {**scope, "headers": [*headers, (b"content-type", b"application/json")]}
        return await self.app(scope, replay, send)


def build_server(
    specs: Sequence[str],
    *,
    max_batch_size: int = 32,
    batch_timeout: float = 0.01,
    limits: Limits = Limits(),
    token: str | None = None,
    timeout: float = 300.0,
    accelerator: str = "auto",
):
    """A configured (not started) ``litserve.LitServer`` for the given reward specs."""
    try:
        import litserve as ls
    except ImportError as e:
        from radeval.errors import DependencyError

        raise DependencyError(f"the reward service needs LitServe: pip install 'radeval-toolkit[serve]' ({e})") from e
    from radeval.rewards.service_lit import RewardAPI

    names = [getattr(f, "__name__", "?") for f, _ in (parse_reward_spec(s) for s in specs)]
    api = RewardAPI(specs, names, limits, max_batch_size=max_batch_size, batch_timeout=batch_timeout, api_path=API_PATH)
    return ls.LitServer(
        api,
        accelerator=accelerator,
        devices=1,
        workers_per_device=1,
        timeout=timeout,
        healthcheck_path=HEALTH_PATH,
        # GuardMiddleware bounds the body itself (LitServe's max_payload_size raises inside
        # `receive`, which surfaces as a 500 rather than a 413)
        middlewares=[(GuardMiddleware, {"token": token, "limits": limits, "known": names})],
    )


def serve(
    specs: Sequence[str],
    *,
    host: str = "127.0.0.1",
    port: int = 8300,
    token: str | None = None,
    **kw: Any,
) -> None:
    """Run the service in the foreground (``radeval serve rewards start``)."""
    token = token or os.environ.get(TOKEN_ENV) or None
    check_host_token(host, token)
    server = build_server(specs, token=token, **kw)
    server.run(host=host, port=port, generate_client_file=False, log_level="warning", num_api_servers=1)


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m radeval.rewards.service`` — what ``radeval serve rewards start`` runs (foreground)."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m radeval.rewards.service", description=__doc__.split("\n")[0])
    ap.add_argument("--reward", action="append", required=True, help="reward name[=weight]; repeatable")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8300)
    ap.add_argument("--max-batch-size", type=int, default=32)
    ap.add_argument("--batch-timeout", type=float, default=0.01)
    ap.add_argument("--max-items", type=int, default=Limits.max_items)
    ap.add_argument("--max-chars", type=int, default=Limits.max_chars)
    ap.add_argument("--max-body-bytes", type=int, default=Limits.max_body_bytes)
    args = ap.parse_args(argv)
    # the token comes from the environment only, never the command line (visible in `ps`)
    serve(
        args.reward,
        host=args.host,
        port=args.port,
        max_batch_size=args.max_batch_size,
        batch_timeout=args.batch_timeout,
        limits=Limits(max_body_bytes=args.max_body_bytes, max_items=args.max_items, max_chars=args.max_chars),
    )


if __name__ == "__main__":
    main()
