"""A TRL reward that scores through the radeval reward service (``radeval serve rewards``).

:class:`RemoteReward` is an *async*, picklable reward: TRL awaits it (``GRPOTrainer`` on its
event-loop thread, ``AsyncGRPOTrainer``'s rollout worker with ``asyncio.gather``), so many
rollout workers and ranks keep the service busy while the GPU metrics batch their requests
together. It holds only settings (URL, reward name, token, timeouts); a copy pickles to another
process and works there.

Per call it POSTs one JSON request (the service's radeval form)::

    {"completions": [...], "references": [...], "images": [...]?, "global_step": k?,
     "rewards": ["<name>"]?}

and reads ``rewards`` (the service's weighted total) or ``extra_logs[<name>]`` (one reward's own
values). ``None`` entries stay ``None`` (unscored). Transient failures (connection refused or
reset, timeouts, HTTP 429/5xx) are retried ``retries`` times with exponential backoff; when the
service stays unreachable, or answers 4xx, every completion of the call is unscored (``None``),
a warning says why once, and ``radeval/errors/<name>`` counts them — a reward never raises on a
transient outage. The HTTP client is the standard library (no extra dependency), run in a worker
thread so the event loop stays free.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Sequence
from typing import Any

from radeval.errors import ConfigError
from radeval.rewards.base import AsyncReward, log_metric
from radeval.rewards.extract import completion_text

TOKEN_HEADER = "Authorization"  # "Bearer <token>"


class ServiceError(RuntimeError):
    """The reward service answered with an error that retrying will not fix (4xx)."""


def post_json(
    url: str,
    payload: dict[str, Any],
    *,
    token: str | None = None,
    timeout: float = 60.0,
    retries: int = 3,
    backoff: float = 0.5,
) -> dict[str, Any]:
    """POST JSON and return the JSON answer, retrying transient failures (module docstring)."""
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"}
    if token:
        headers[TOKEN_HEADER] = f"Bearer {token}"
    last: Exception | None = None
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(backoff * (2 ** (attempt - 1)) * (1 + 0.1 * random.random()))
        req = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as e:
            detail = e.read()[:500].decode(errors="replace")
            if e.code == 429 or e.code >= 500:
                last = RuntimeError(f"HTTP {e.code}: {detail}")
                continue
            raise ServiceError(f"HTTP {e.code} from {url}: {detail}") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as e:
            last = e
    raise ConnectionError(f"reward service at {url} failed after {retries + 1} attempts: {last}")


class RemoteReward(AsyncReward):
    """An async TRL reward backed by the reward service.

    Args:
        url: the service's scoring URL, e.g. ``http://127.0.0.1:8300/get_reward``.
        reward: the service reward to return (its ``__name__``, e.g. ``"radeval_bleu_4"``);
            ``None`` returns the service's weighted total.
        reference_column: dataset column with the reference report.
        token: the service's shared token, if it has one (``RADEVAL_SERVICE_TOKEN`` is read
            when this is ``None``, at call time, so the token is not pickled with the reward).
        timeout: seconds per HTTP attempt.
        retries: extra attempts after a transient failure.
        name: ``__name__`` for TRL's logs; default ``remote_<reward or total>``.
    """

    def __init__(
        self,
        url: str,
        reward: str | None = None,
        *,
        reference_column: str = "ground_truth",
        token: str | None = None,
        timeout: float = 60.0,
        retries: int = 3,
        backoff: float = 0.5,
        name: str | None = None,
    ):
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigError(f"reward service URL must start with http:// or https://, got {url!r}")
        if not (isinstance(timeout, (int, float)) and timeout > 0):
            raise ConfigError(f"timeout must be > 0 seconds, got {timeout!r}")
        if not (isinstance(retries, int) and retries >= 0):
            raise ConfigError(f"retries must be an integer >= 0, got {retries!r}")
        super().__init__(name or f"remote_{reward or 'total'}")
        self.url = url
        self.reward = reward
        self.reference_column = reference_column
        self.token = token
        self.timeout = float(timeout)
        self.retries = retries
        self.backoff = float(backoff)

    def payload(self, completions: Sequence[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
        from radeval.rewards.trl import images_from, references, step_from

        n = len(completions)
        out: dict[str, Any] = {
            "completions": [completion_text(c) for c in completions],
            "references": references(kwargs, self.reference_column, n),
        }
        imgs = images_from(kwargs, n)
        if imgs is not None and all(v is None or isinstance(v, str) for v in imgs):
            out["images"] = imgs  # paths only: in-memory images do not travel
        step = step_from(kwargs)
        if step is not None:
            out["global_step"] = step
        if self.reward is not None:
            out["rewards"] = [self.reward]
        return out

    def _token(self) -> str | None:
        if self.token is not None:
            return self.token
        import os

        return os.environ.get("RADEVAL_SERVICE_TOKEN") or None

    def score(self, completions: Sequence[Any], kwargs: dict[str, Any]) -> list[float | None]:
        """Blocking form of the call (also what the async ``__call__`` runs in a thread)."""
        n = len(completions)
        if n == 0:
            return []
        payload = self.payload(completions, kwargs)
        try:
            answer = post_json(
                self.url,
                payload,
                token=self._token(),
                timeout=self.timeout,
                retries=self.retries,
                backoff=self.backoff,
            )
            values = answer["rewards"] if self.reward is None else answer["extra_logs"][self.reward]
            if not isinstance(values, list) or len(values) != n:
                raise ServiceError(
                    f"service answered {len(values) if isinstance(values, list) else values!r} values for {n}"
                )
        except Exception as exc:  # outage or protocol error: unscored, never a crash
            self._warn(exc)
            log_metric(kwargs, f"radeval/errors/{self.__name__}", n)
            return [None] * n
        out: list[float | None] = []
        for v in values:
            out.append(float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v else None)
        return out

    def _warn(self, exc: Exception) -> None:
        seen = self.__dict__.setdefault("_rt_warned", set())
        tag = type(exc).__name__
        if tag not in seen:
            seen.add(tag)
            warnings.warn(
                f"reward {self.__name__}: {exc}; these completions are unscored (None)", RuntimeWarning, stacklevel=3
            )

    async def __call__(
        self,
        prompts: Sequence[Any] | None = None,
        completions: Sequence[Any] = (),
        completion_ids: Sequence[Any] | None = None,
        **kwargs: Any,
    ) -> list[float | None]:
        return await asyncio.to_thread(self.score, completions, kwargs)
