"""Fake OpenAI-compatible servers on loopback for the judge tests (stdlib http.server).

``mode``:
* ``"list"``: /v1/completions answers every prompt of a list (choices in reverse order);
* ``"one"``: /v1/completions answers only the first prompt of a list, one choice per
  request (as many servers do);
* ``"chat"``: only /v1/chat/completions exists (404 on /v1/completions).

``answer(prompt_or_messages) -> (text, finish_reason)``; usage counts characters as tokens.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeServer:
    def __init__(self, answer, mode: str = "list", model: str = "judge-test", fail_first: int = 0,
                 delay: float = 0.0, retry_after: str | None = None) -> None:  # fmt: skip
        self.requests: list[dict] = []
        self.paths: list[str] = []
        self.fail_first = fail_first
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        outer = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _send(self, code, obj, headers=None):
                body = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path == "/v1/models":
                    self._send(200, {"object": "list", "data": [{"id": model, "object": "model"}]})
                else:
                    self._send(404, {"error": "no"})

            def do_POST(self):
                n = int(self.headers.get("Content-Length", 0))
                payload = json.loads(self.rfile.read(n))
                with outer.lock:
                    outer.paths.append(self.path)
                    if outer.fail_first > 0:
                        outer.fail_first -= 1
                        fail = True
                    else:
                        fail = False
                        outer.in_flight += 1
                        outer.max_in_flight = max(outer.max_in_flight, outer.in_flight)
                if fail:
                    self._send(503, {"error": "busy"}, {"Retry-After": retry_after} if retry_after else None)
                    return
                try:
                    if delay:
                        time.sleep(delay)
                    outer.requests.append(payload)
                    if self.path == "/v1/chat/completions":
                        text, finish = answer(payload["messages"])
                        p = sum(len(m["content"]) for m in payload["messages"])
                        self._send(200, {"object": "chat.completion", "model": payload["model"],
                                         "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                                      "finish_reason": finish}],
                                         "usage": {"prompt_tokens": p, "completion_tokens": len(text)}})  # fmt: skip
                        return
                    if self.path != "/v1/completions" or mode == "chat":
                        self._send(404, {"error": "not found"})
                        return
                    prompts = payload["prompt"] if isinstance(payload["prompt"], list) else [payload["prompt"]]
                    if mode == "one":
                        prompts = prompts[:1]
                    choices = []
                    for i, prompt in enumerate(prompts):
                        text, finish = answer(prompt)
                        choices.append({"index": i, "text": text, "finish_reason": finish, "logprobs": None})
                    usage = {"prompt_tokens": sum(map(len, prompts)),
                             "completion_tokens": sum(len(c["text"]) for c in choices)}  # fmt: skip
                    self._send(200, {"object": "text_completion", "model": payload["model"],
                                     "choices": choices[::-1], "usage": usage})  # fmt: skip
                finally:
                    with outer.lock:
                        outer.in_flight -= 1

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)
