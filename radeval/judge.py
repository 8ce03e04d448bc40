"""One LLM-judge backend for every judge metric (GREEN, CRIMSON, ...).

A judge metric builds *requests* (a text prompt, chat messages, or pre-tokenised ids when the
reference fixes the exact ids), hands them to a :class:`Judge`, and parses the replies. The
judge owns everything that is not the metric's business:

* **backends**: local ``transformers`` (batched greedy generation, left padding), ``vllm``
  (offline engine) and ``endpoint`` (any OpenAI-compatible server, ``/v1/completions`` or
  ``/v1/chat/completions``);
* **requests to servers**: a list of prompts per completions request, or one prompt per request
  (``batching="auto"`` tries a list and falls back for good to one per request when the server
  answers a list with the wrong number of choices, as many servers do); chat is always one
  conversation per request; a concurrency limit, a per-request timeout, retries with exponential
  backoff (and ``Retry-After``) on connection errors, 429 and 5xx;
* **a response cache on disk** (sqlite, keyed by the sha256 of backend identity + model +
  request + sampling settings), so a resumed or repeated run sends nothing it has sent before;
* **usage**: requests sent, cache hits, prompt/completion tokens and, when the user gives
  prices (per million tokens), the cost.

Replies carry ``finish_reason`` so metrics can count truncated answers; parse failures are the
metric's to count (it knows its format) and it reports them in its details.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import re
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radeval.errors import ConfigError, DependencyError, RadevalError

ENV_CACHE = "RADEVAL_JUDGE_CACHE"
ENDPOINT_DEFAULT_MAX_TOKENS = 1024


# ----- requests and replies ------------------------------------------------------------------
@dataclass(frozen=True)
class Request:
    """One judge call. Exactly one of ``text`` (completions prompt), ``messages`` (chat) or
    ``ids`` (token ids for a local model) is the input; ``text`` may accompany ``ids`` as what
    a server would be sent for the same input."""

    text: str | None = None
    messages: tuple[tuple[str, str], ...] | None = None  # ((role, content), ...)
    ids: tuple[int, ...] | None = None
    #: local backends: return the decode of prompt ids + answer ids (as some references do)
    echo: bool = False

    def payload(self) -> Any:
        if self.messages is not None:
            return [{"role": r, "content": c} for r, c in self.messages]
        if self.ids is not None and self.text is None:
            return list(self.ids)
        return self.text


@dataclass(frozen=True)
class Sampling:
    """Decoding settings (part of the cache key). ``max_tokens`` None: the backend's default
    (local backends: fill ``max_total`` ids in all)."""

    max_tokens: int | None = None
    max_total: int | None = None
    temperature: float = 0.0
    seed: int | None = None
    extra: tuple[tuple[str, Any], ...] = ()  # extra request fields (e.g. response_format)


@dataclass
class Reply:
    text: str
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = False

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"


@dataclass
class Usage:
    requests: int = 0
    replies: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retries: int = 0
    batching_fallbacks: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **kw: int) -> None:
        with self.lock:
            for k, v in kw.items():
                setattr(self, k, getattr(self, k) + int(v))

    def as_dict(self, prices: tuple[float, float] | None = None) -> dict[str, Any]:
        out = {
            k: getattr(self, k)
            for k in ("requests", "replies", "cache_hits", "prompt_tokens", "completion_tokens", "retries")
        }
        out["batching_fallbacks"] = self.batching_fallbacks
        out["cost"] = None if prices is None else cost(self.prompt_tokens, self.completion_tokens, prices)
        return out


def cost(prompt_tokens: float, completion_tokens: float, prices: tuple[float, float]) -> float:
    """Cost in the user's currency; ``prices`` = (per million prompt tokens, per million completion tokens)."""
    return (prompt_tokens * prices[0] + completion_tokens * prices[1]) / 1e6


def parse_prices(value: Any) -> tuple[float, float] | None:
    """``None``, ``(in, out)`` or ``"in,out"`` (per million tokens) -> a checked pair."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        parts = value.split(",")
    else:
        parts = list(value)
    try:
        pair = tuple(float(p) for p in parts)
    except (TypeError, ValueError):
        raise ConfigError(f"judge prices must be 'PROMPT,COMPLETION' per million tokens, got {value!r}") from None
    if len(pair) != 2 or any(p < 0 for p in pair):
        raise ConfigError(f"judge prices must be two non-negative numbers, got {value!r}")
    return pair  # type: ignore[return-value]


# ----- disk cache ----------------------------------------------------------------------------
def default_cache_path() -> Path:
    v = os.environ.get(ENV_CACHE)
    if v:
        return Path(v).expanduser() / "judge-cache.sqlite"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "radeval" / "judge-cache.sqlite"


class ResponseCache:
    """sqlite key -> reply JSON; safe across threads and processes (sqlite's own locking)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._local = threading.local()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._conn() as c:
                c.execute("CREATE TABLE IF NOT EXISTS replies (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        except (OSError, sqlite3.Error) as e:
            raise ConfigError(
                f"judge response cache {self.path} cannot be used ({e}); set ${ENV_CACHE} to a writable folder "
                "or pass judge_cache=false"
            ) from e

    def _conn(self) -> sqlite3.Connection:
        c = getattr(self._local, "conn", None)
        if c is None:
            c = sqlite3.connect(self.path, timeout=60)
            self._local.conn = c
        return c

    @staticmethod
    def key(identity: str, request: Request, sampling: Sampling) -> str:
        blob = json.dumps(
            {"id": identity, "req": request.payload(), "echo": request.echo, "ids": request.ids,
             "s": [sampling.max_tokens, sampling.max_total, sampling.temperature, sampling.seed,
                   [list(e) for e in sampling.extra]]},
            sort_keys=True, ensure_ascii=False, default=str,
        )  # fmt: skip
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def get(self, key: str) -> Reply | None:
        row = self._conn().execute("SELECT value FROM replies WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        d = json.loads(row[0])
        return Reply(d["text"], d.get("finish_reason"), 0, 0, cached=True)

    def put(self, key: str, reply: Reply) -> None:
        c = self._conn()
        with c:
            c.execute(
                "INSERT OR REPLACE INTO replies (key, value) VALUES (?, ?)",
                (key, json.dumps({"text": reply.text, "finish_reason": reply.finish_reason})),
            )


# ----- backends ------------------------------------------------------------------------------
def _torch():
    try:
        import torch
        import transformers  # noqa: F401
    except ImportError as e:  # pragma: no cover - depends on the install
        raise DependencyError(f"local judge backends need torch and transformers: {e}") from e
    return torch


def resolve_dtype(dtype: str, device: str, gpu_default: str = "float16") -> str:
    if dtype == "auto":
        # float16/bfloat16 matmuls on CPU are slow or unsupported: float32 there
        return gpu_default if str(device).startswith("cuda") else "float32"
    if dtype not in ("float16", "bfloat16", "float32"):
        raise ConfigError(f"judge dtype must be auto, float16, bfloat16 or float32, got {dtype!r}")
    return dtype


class TransformersBackend:
    """Batched greedy generation with transformers: left padding with EOS, longest first.

    A request with ``ids`` is generated from exactly those ids; ``messages`` go through the
    tokenizer's chat template (generation prompt on); ``text`` is tokenised with special
    tokens. ``finish_reason`` is "length" when the answer stopped at its budget without EOS.
    """

    name = "transformers"

    def __init__(
        self, path: str, *, device: str | None, dtype: str, batch_size: int,
        trust_remote_code: bool, gpu_dtype: str = "float16",
    ) -> None:  # fmt: skip
        torch = _torch()
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.dtype = resolve_dtype(dtype, self.device, gpu_dtype)
        self.tokenizer = AutoTokenizer.from_pretrained(path, padding_side="left", trust_remote_code=trust_remote_code)
        if self.tokenizer.eos_token_id is None:
            raise ConfigError(f"judge tokenizer at {path} has no EOS token")
        self.eos_id = int(self.tokenizer.eos_token_id)
        self.model = AutoModelForCausalLM.from_pretrained(
            path, dtype=getattr(torch, self.dtype), trust_remote_code=trust_remote_code
        ).to(self.device)
        self.model.eval()
        self.batch_size = int(batch_size)
        self.identity = f"transformers:{path}:{self.dtype}"

    def _ids(self, r: Request) -> list[int]:
        if r.ids is not None:
            return list(r.ids)
        if r.messages is not None:
            msgs = [{"role": a, "content": b} for a, b in r.messages]
            out = self.tokenizer.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True)
            if isinstance(out, dict) or hasattr(out, "keys"):  # transformers 5 returns a BatchEncoding
                out = out["input_ids"]
            return list(out)
        return list(self.tokenizer(r.text)["input_ids"])

    def _generate_ids(self, input_ids, attention_mask, max_new_tokens: int):
        """One ``model.generate`` call, greedy (a test seam)."""
        return self.model.generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            do_sample=False,
            temperature=None,
            top_p=None,
            max_new_tokens=max_new_tokens,
            eos_token_id=self.eos_id,
            pad_token_id=self.eos_id,
        )

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True, clean_up_tokenization_spaces=True)

    def generate(self, requests: Sequence[Request], sampling: Sampling) -> list[Reply]:
        if sampling.temperature != 0.0:
            raise ConfigError("the transformers judge backend decodes greedily (temperature 0)")
        torch = self.torch
        all_ids = [self._ids(r) for r in requests]
        order = sorted(range(len(all_ids)), key=lambda i: -len(all_ids[i]))  # less padding
        out: list[Reply | None] = [None] * len(all_ids)
        pad = self.eos_id
        for s in range(0, len(order), self.batch_size):
            idx = order[s : s + self.batch_size]
            width = max(len(all_ids[i]) for i in idx)
            budget = sampling.max_tokens or max(1, (sampling.max_total or 2048) - width)
            ids = torch.tensor([[pad] * (width - len(all_ids[i])) + all_ids[i] for i in idx])
            mask = torch.tensor([[0] * (width - len(all_ids[i])) + [1] * len(all_ids[i]) for i in idx])
            with torch.inference_mode():
                gen = self._generate_ids(ids.to(self.device), mask.to(self.device), budget)
            gen = gen.to("cpu").tolist()
            for row, i in zip(gen, idx):
                new = row[width:]
                # strip the padding generate appends after EOS in finished rows
                stop = new.index(pad) + 1 if pad in new else len(new)
                new = new[:stop]
                truncated = not new or (new[-1] != pad and len(new) >= budget)
                text = self.decode(all_ids[i] + new if requests[i].echo else new)
                out[i] = Reply(text, "length" if truncated else "stop", len(all_ids[i]), len(new))
        return [r for r in out if r is not None]


class VllmBackend:
    """vLLM's offline engine on the same inputs as the transformers backend."""

    name = "vllm"

    def __init__(
        self, path: str, *, dtype: str, trust_remote_code: bool, vllm_kwargs: dict[str, Any] | None = None,
        gpu_dtype: str = "float16",
    ) -> None:  # fmt: skip
        try:
            import vllm
        except ImportError as e:
            raise DependencyError("backend 'vllm' needs vLLM: pip install vllm") from e
        from transformers import AutoTokenizer

        self.vllm = vllm
        self.tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        self.dtype = gpu_dtype if dtype == "auto" else dtype
        self.llm = vllm.LLM(model=path, dtype=self.dtype, trust_remote_code=trust_remote_code, **(vllm_kwargs or {}))
        self.identity = f"vllm:{path}:{self.dtype}"

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True, clean_up_tokenization_spaces=True)

    def _ids(self, r: Request) -> list[int]:
        if r.ids is not None:
            return list(r.ids)
        if r.messages is not None:
            msgs = [{"role": a, "content": b} for a, b in r.messages]
            out = self.tokenizer.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True)
            if hasattr(out, "keys"):
                out = out["input_ids"]
            return list(out)
        return list(self.tokenizer(r.text)["input_ids"])

    def generate(self, requests: Sequence[Request], sampling: Sampling) -> list[Reply]:
        all_ids = [self._ids(r) for r in requests]
        params = [
            self.vllm.SamplingParams(
                temperature=sampling.temperature,
                seed=sampling.seed,
                max_tokens=sampling.max_tokens or max(1, (sampling.max_total or 2048) - len(ids)),
                skip_special_tokens=True,
            )
            for ids in all_ids
        ]
        results = self.llm.generate([{"prompt_token_ids": ids} for ids in all_ids], params, use_tqdm=False)
        out = []
        for r, ids, res in zip(requests, all_ids, results):
            c = res.outputs[0]
            text = self.decode(list(ids) + list(c.token_ids)) if r.echo else self.decode(c.token_ids)
            out.append(Reply(text, c.finish_reason, len(ids), len(c.token_ids)))
        return out


class EndpointBackend:
    """An OpenAI-compatible server: ``api`` "completions" or "chat"; ``batching`` "auto"
    (a list per completions request until the server shows it answers lists wrongly), "list"
    (always a list; a wrong count is an error) or "single" (one prompt per request)."""

    name = "endpoint"

    def __init__(
        self,
        url: str,
        *,
        model: str | None,
        api: str = "completions",
        batching: str = "auto",
        batch_size: int = 8,
        timeout: float = 600.0,
        retries: int = 3,
        concurrency: int = 4,
        api_key: str | None = None,
        api_key_env: str = "RADEVAL_JUDGE_API_KEY",
        label: str = "judge",
        extra_body: dict[str, Any] | None = None,
    ) -> None:
        url = url.rstrip("/")
        if not re.match(r"^https?://", url):
            raise ConfigError(f"{label} endpoint must be an http(s) URL, got {url!r}")
        if api not in ("completions", "chat"):
            raise ConfigError(f"{label} endpoint api must be completions or chat, got {api!r}")
        if batching not in ("auto", "list", "single"):
            raise ConfigError(f"{label} endpoint batching must be auto, list or single, got {batching!r}")
        for name, v in (("timeout", timeout), ("concurrency", concurrency), ("batch_size", batch_size)):
            if not float(v) > 0:
                raise ConfigError(f"{label} endpoint {name} must be > 0, got {v!r}")
        if int(retries) < 0:
            raise ConfigError(f"{label} endpoint retries must be >= 0, got {retries!r}")
        self.label = label
        self.base = url if url.endswith("/v1") else url + "/v1"
        self.api = api
        self.batching = batching
        self.batch_size = int(batch_size)
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.concurrency = max(1, int(concurrency))
        self.api_key = api_key if api_key is not None else os.environ.get(api_key_env)
        self.extra_body = dict(extra_body or {})
        self.usage: Usage | None = None
        self._single = batching == "single"
        self.model = model or self._first_model()
        self.identity = f"endpoint:{self.model}:{api}"

    # -- HTTP with retries --------------------------------------------------------------------
    def _request(self, path: str, payload: dict[str, Any] | None) -> dict[str, Any]:
        url = self.base + path
        data = None if payload is None else json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last: Exception | None = None
        wait = 0.0
        for attempt in range(self.retries + 1):
            if attempt:
                if self.usage is not None:
                    self.usage.add(retries=1)
                # exponential backoff with jitter, or the server's Retry-After when it gives one
                time.sleep(wait or min(8.0, 0.5 * 2 ** (attempt - 1)) * (0.5 + random.random() / 2))
                wait = 0.0
            req = urllib.request.Request(url, data=data, headers=headers, method="POST" if data else "GET")
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    body = resp.read()
                if self.usage is not None and payload is not None:
                    self.usage.add(requests=1)
                return json.loads(body.decode("utf-8"))
            except urllib.error.HTTPError as e:
                body = e.read()[:500].decode("utf-8", "replace")
                if e.code == 429 or e.code >= 500:
                    last = RadevalError(f"{self.label} endpoint {url}: HTTP {e.code}: {body}")
                    ra = e.headers.get("Retry-After") if e.headers else None
                    if ra and ra.strip().isdigit():
                        wait = min(60.0, float(ra))
                    continue
                raise RadevalError(f"{self.label} endpoint {url}: HTTP {e.code}: {body}") from None
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as e:
                last = e
                continue
            except ValueError as e:  # not JSON
                raise RadevalError(f"{self.label} endpoint {url}: response is not JSON ({e})") from None
        raise RadevalError(f"{self.label} endpoint {url}: no answer after {self.retries + 1} tries: {last}")

    def _first_model(self) -> str:
        listing = self._request("/models", None)
        try:
            return str(listing["data"][0]["id"])
        except (KeyError, IndexError, TypeError):
            raise RadevalError(
                f"{self.label} endpoint {self.base}/models lists no model; pass the served model id"
            ) from None

    def _body(self, sampling: Sampling) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": sampling.max_tokens or ENDPOINT_DEFAULT_MAX_TOKENS,
            "temperature": sampling.temperature,
            "n": 1,
        }
        if sampling.seed is not None:
            body["seed"] = sampling.seed
        body.update(dict(sampling.extra))
        body.update(self.extra_body)
        return body

    @staticmethod
    def _usage(resp: dict[str, Any]) -> tuple[int, int]:
        u = resp.get("usage") if isinstance(resp, dict) else None
        if not isinstance(u, dict):
            return 0, 0
        try:
            return int(u.get("prompt_tokens") or 0), int(u.get("completion_tokens") or 0)
        except (TypeError, ValueError):
            return 0, 0

    # -- one call -------------------------------------------------------------------------------
    def _chat(self, r: Request, sampling: Sampling) -> list[Reply]:
        if r.messages is None:
            raise ConfigError(f"{self.label}: the chat API needs chat messages, not a text prompt")
        body = self._body(sampling)
        body["messages"] = r.payload()
        resp = self._request("/chat/completions", body)
        choices = resp.get("choices") if isinstance(resp, dict) else None
        if not isinstance(choices, list) or not choices:
            raise RadevalError(f"{self.label} endpoint returned no choices for a chat request")
        ch = choices[0]
        msg = ch.get("message") if isinstance(ch, dict) else None
        text = msg.get("content") if isinstance(msg, dict) else None
        p, c = self._usage(resp)
        return [Reply(str(text or ""), ch.get("finish_reason"), p, c)]

    def _completions(self, texts: list[str], sampling: Sampling, strict: bool) -> list[Reply] | None:
        """Replies in order, or None when the server answered a list with the wrong count
        (and ``strict`` is off)."""
        body = self._body(sampling)
        body["prompt"] = texts if len(texts) > 1 or not self._single else texts[0]
        resp = self._request("/completions", body)
        choices = resp.get("choices") if isinstance(resp, dict) else None
        n = len(choices) if isinstance(choices, list) else None
        if n != len(texts):
            if not strict and len(texts) > 1:
                if self.usage is not None:  # discarded, but paid for: keep it in the accounting
                    p, c = self._usage(resp)
                    self.usage.add(prompt_tokens=p, completion_tokens=c)
                return None
            raise RadevalError(
                f"{self.label} endpoint returned {n if n is not None else 'no'} choices for {len(texts)} prompts"
            )
        out: list[Reply | None] = [None] * len(texts)
        p, c = self._usage(resp)
        for pos, ch in enumerate(choices):  # type: ignore[arg-type]
            i = ch.get("index", pos) if isinstance(ch, dict) else None
            if not isinstance(i, int) or not 0 <= i < len(texts) or out[i] is not None:
                raise RadevalError(f"{self.label} endpoint returned a bad choice index {i!r}")
            out[i] = Reply(str(ch.get("text") or ""), ch.get("finish_reason"))
        replies = [r for r in out if r is not None]
        # usage covers the whole request: share it out so the totals add up
        for k, r in enumerate(replies):
            r.prompt_tokens = p // len(replies) + (1 if k < p % len(replies) else 0)
            r.completion_tokens = c // len(replies) + (1 if k < c % len(replies) else 0)
        return replies

    def _chunk(self, chunk: list[Request], sampling: Sampling) -> list[Reply]:
        if self.api == "chat":
            return [self._chat(r, sampling)[0] for r in chunk]
        texts = []
        for r in chunk:
            if r.text is None:
                raise ConfigError(f"{self.label}: the completions API needs a text prompt")
            texts.append(r.text)
        if not self._single and len(texts) > 1:
            got = self._completions(texts, sampling, strict=self.batching == "list")
            if got is not None:
                return got
            # the server answers one prompt per request: remember, and send them one by one
            self._single = True
            if self.usage is not None:
                self.usage.add(batching_fallbacks=1)
        return [self._completions([t], sampling, strict=True)[0] for t in texts]  # type: ignore[index]

    def generate(self, requests: Sequence[Request], sampling: Sampling) -> list[Reply]:
        reqs = list(requests)
        size = 1 if (self.api == "chat" or self._single) else self.batch_size
        chunks = [reqs[i : i + size] for i in range(0, len(reqs), size)]
        if size > 1 and self.batching == "auto" and len(chunks) > 1:
            # learn whether the server answers lists before sending the rest in parallel
            first = [self._chunk(chunks[0], sampling)]
            rest = chunks[1:]
            if self._single:  # re-chunk one by one to use the concurrency
                rest = [[r] for c in rest for r in c]
        else:
            first, rest = [], chunks
        if self.concurrency == 1 or len(rest) <= 1:
            results = first + [self._chunk(c, sampling) for c in rest]
        else:
            with ThreadPoolExecutor(self.concurrency) as ex:
                results = first + list(ex.map(lambda c: self._chunk(c, sampling), rest))
        return [g for chunk in results for g in chunk]


# ----- the judge -----------------------------------------------------------------------------
class Judge:
    """A backend + the disk cache + usage accounting. ``generate`` returns one reply per
    request, in order; each distinct request is sent at most once per call and never again
    while it is in the cache."""

    def __init__(
        self,
        backend: Any,
        *,
        cache: bool | str | os.PathLike[str] = True,
        prices: Any = None,
        identity: str | None = None,
    ) -> None:
        self.backend = backend
        self.identity = identity or backend.identity
        self.prices = parse_prices(prices)
        self.usage = Usage()
        if hasattr(backend, "usage"):
            backend.usage = self.usage
        if cache is False or cache is None:
            self.cache: ResponseCache | None = None
        else:
            self.cache = ResponseCache(default_cache_path() if cache is True else Path(cache))

    def generate(self, requests: Sequence[Request], sampling: Sampling) -> list[Reply]:
        keys = [ResponseCache.key(self.identity, r, sampling) for r in requests]
        found: dict[str, Reply] = {}
        todo: dict[str, Request] = {}
        for k, r in zip(keys, requests):
            if k in found or k in todo:
                continue
            hit = self.cache.get(k) if self.cache is not None else None
            if hit is not None:
                found[k] = hit
            else:
                todo[k] = r
        self.usage.add(cache_hits=len(found))
        if todo:
            replies = self.backend.generate(list(todo.values()), sampling)
            if len(replies) != len(todo):
                raise RadevalError(f"judge backend returned {len(replies)} replies for {len(todo)} requests")
            for k, rep in zip(todo, replies):
                found[k] = rep
                if self.cache is not None:
                    self.cache.put(k, rep)
            # local backends count tokens themselves; servers report them in "usage"
            if not isinstance(self.backend, EndpointBackend):
                self.usage.add(requests=len(replies))
            self.usage.add(
                replies=len(replies),
                prompt_tokens=sum(r.prompt_tokens for r in replies),
                completion_tokens=sum(r.completion_tokens for r in replies),
            )
        return [found[k] for k in keys]

    async def agenerate(self, requests: Sequence[Request], sampling: Sampling) -> list[Reply]:
        """The same as :meth:`generate`, off the event loop (servers are waited on in threads)."""
        return await asyncio.to_thread(self.generate, requests, sampling)

    def summary(self) -> dict[str, Any]:
        return self.usage.as_dict(self.prices)


def endpoint_options_help(label: str) -> dict[str, str]:
    """The options every judge metric accepts for its endpoint (registry help text)."""
    return {
        "endpoint": "URL of an OpenAI-compatible server (implies backend endpoint)",
        "endpoint_model": "served model id (default: the server's first)",
        "endpoint_api": "completions | chat",
        "endpoint_batching": "auto (list, falling back to one per request) | list | single",
        "endpoint_concurrency": "requests in flight (default 4)",
        "endpoint_timeout": "seconds per request",
        "endpoint_retries": "retries on connection errors, 429, 5xx",
        "judge_cache": "true (default; $RADEVAL_JUDGE_CACHE or ~/.cache/radeval) | false | a path",
        "prices": "'PROMPT,COMPLETION' per million tokens: cost in the details",
    }
