"""The shared LLM-judge backend against fake OpenAI-compatible servers on loopback: a server that
answers one choice per request, a chat-only server, retries, timeouts, concurrency, the disk
cache and usage/cost accounting; GREEN through both servers with unchanged numbers."""

from __future__ import annotations

import time

import pytest
from judge_fixture import FakeServer
from test_green import FAKE_UTILS, NO_ERRORS, WELL_FORMED

from radeval import judge as J
from radeval.errors import ConfigError, RadevalError
from radeval.metrics import green as G


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    d = tmp_path / "models" / "green-prompt"
    d.mkdir(parents=True)
    (d / "utils.py").write_text(FAKE_UTILS)
    monkeypatch.setenv("RADEVAL_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("RADEVAL_JUDGE_CACHE", str(tmp_path / "judge-cache"))


def _green_answer(prompt):
    """GREEN-format answers keyed on the candidate (text prompt or chat messages)."""
    text = prompt if isinstance(prompt, str) else prompt[-1]["content"]
    if "Candidate Report:\n    Perfect" in text:
        return "\n" + NO_ERRORS, "stop"
    if "Candidate Report:\n    Truncated" in text:
        return "[Explanation]:\nThe cand", "length"
    return "\n" + WELL_FORMED, "stop"


REFS = ["Ref one.", "Ref two.", "Ref three.", "Ref four.", "Ref five."]
HYPS = ["Some hyp.", "Perfect.", "Truncated", "Other hyp.", "Perfect too."]
EXPECTED = [3 / 5, 1.0, 0.0, 3 / 5, 1.0]  # GREEN's values for the canned answers


def test_green_on_a_server_that_answers_one_choice_per_request():
    """The issue's failure: 5 prompts in one list, 1 choice back. Now: one fallback, then one
    prompt per request, and the numbers of a list-answering server."""
    with FakeServer(_green_answer, mode="list") as ref_srv:
        ref = G.Green(endpoint=ref_srv.url, batch_size=8).score(HYPS, REFS)
    with FakeServer(_green_answer, mode="one") as srv:
        m = G.Green(endpoint=srv.url, batch_size=8, judge_cache=False, prices="2.0,6.0")
        res = m.score(HYPS, REFS)
    assert res.sample["green"].tolist() == ref.sample["green"].tolist() == EXPECTED
    j = res.details["judge"]
    assert j["batching_fallbacks"] == 1
    # the list request (1 answer, discarded) + 5 single requests
    assert [len(r["prompt"]) if isinstance(r["prompt"], list) else 1 for r in srv.requests] == [5] + [1] * 5
    assert j["requests"] == 6 and j["replies"] == 5
    # the discarded list request was paid for too (the fake counts characters as tokens)
    sent = sum(len(p) for r in srv.requests for p in (r["prompt"] if isinstance(r["prompt"], list) else [r["prompt"]])[:1])
    assert j["prompt_tokens"] == sent
    assert j["cost"] == pytest.approx((j["prompt_tokens"] * 2.0 + j["completion_tokens"] * 6.0) / 1e6)
    assert res.details["truncated"] == 1


def test_strict_list_batching_names_the_mismatch():
    with FakeServer(_green_answer, mode="one") as srv:
        m = G.Green(endpoint=srv.url, batch_size=8, endpoint_batching="list", judge_cache=False)
        with pytest.raises(RadevalError, match="returned 1 choices for 5 prompts"):
            m.score(HYPS, REFS)


def test_green_on_a_chat_only_server():
    with FakeServer(_green_answer, mode="chat") as srv:
        m = G.Green(endpoint=srv.url, endpoint_api="chat", judge_cache=False)
        res = m.score(HYPS, REFS)
        # the completions API is not there: a clear error, not a silent zero
        bad = G.Green(endpoint=srv.url, endpoint_retries=0, judge_cache=False)
        with pytest.raises(RadevalError, match="HTTP 404"):
            bad.score(HYPS[:1], REFS[:1])
    assert res.sample["green"].tolist() == EXPECTED
    assert all(p == "/v1/chat/completions" for p in srv.paths[:5])
    sent = sorted(r["messages"][0]["content"] for r in srv.requests[:5])
    assert sent == sorted(G.make_prompt(r, h) for r, h in zip(REFS, HYPS))  # one user message each
    assert all(len(r["messages"]) == 1 and r["messages"][0]["role"] == "user" for r in srv.requests[:5])
    assert "template:server-chat" in res.signature
    assert res.details["judge"]["requests"] == 5


def test_disk_cache_means_a_repeated_run_sends_nothing(tmp_path):
    cache = tmp_path / "c.sqlite"
    with FakeServer(_green_answer) as srv:
        first = G.Green(endpoint=srv.url, judge_cache=str(cache)).score(HYPS, REFS)
        n = len(srv.requests)
        again = G.Green(endpoint=srv.url, judge_cache=str(cache))  # a new process would look the same
        res = again.score(HYPS, REFS)
        assert len(srv.requests) == n  # nothing sent
        assert res.sample["green"].tolist() == first.sample["green"].tolist()
        assert res.details["judge"]["cache_hits"] == 5 and res.details["judge"]["requests"] == 0
        # other sampling settings are another key: sent again
        G.Green(endpoint=srv.url, judge_cache=str(cache), max_new_tokens=7).score(HYPS[:1], REFS[:1])
        assert len(srv.requests) == n + 1


def test_cache_key_covers_model_request_and_sampling():
    r = J.Request(text="p")
    base = J.ResponseCache.key("m1", r, J.Sampling(max_tokens=5))
    assert base == J.ResponseCache.key("m1", J.Request(text="p"), J.Sampling(max_tokens=5))
    assert base != J.ResponseCache.key("m2", r, J.Sampling(max_tokens=5))
    assert base != J.ResponseCache.key("m1", J.Request(text="q"), J.Sampling(max_tokens=5))
    assert base != J.ResponseCache.key("m1", r, J.Sampling(max_tokens=6))
    assert base != J.ResponseCache.key("m1", r, J.Sampling(max_tokens=5, seed=1))
    assert base != J.ResponseCache.key("m1", J.Request(messages=(("user", "p"),)), J.Sampling(max_tokens=5))


def test_retries_honour_retry_after_then_succeed():
    with FakeServer(_green_answer, fail_first=2, retry_after="0") as srv:
        b = J.EndpointBackend(srv.url, model="judge-test", retries=3, label="t")
        judge = J.Judge(b, cache=False)
        out = judge.generate([J.Request(text="Candidate Report:\n    Perfect")], J.Sampling(max_tokens=9))
    assert out[0].text.startswith("\n[Explanation]") and judge.usage.retries == 2
    assert srv.requests[0]["max_tokens"] == 9 and srv.requests[0]["temperature"] == 0.0


def test_timeout_is_retried_then_reported():
    with FakeServer(_green_answer, delay=1.5) as srv:
        b = J.EndpointBackend(srv.url, model="x", timeout=0.3, retries=1, label="t")
        t0 = time.perf_counter()
        with pytest.raises(RadevalError, match="no answer after 2 tries"):
            J.Judge(b, cache=False).generate([J.Request(text="a")], J.Sampling())
        assert time.perf_counter() - t0 < 5


def test_concurrency_limit_holds():
    with FakeServer(_green_answer, mode="chat", delay=0.05) as srv:
        b = J.EndpointBackend(srv.url, model="x", api="chat", concurrency=2, label="t")
        reqs = [J.Request(messages=(("user", f"q{i}"),)) for i in range(8)]
        out = J.Judge(b, cache=False).generate(reqs, J.Sampling())
    assert len(out) == 8 and 1 <= srv.max_in_flight <= 2


def test_duplicate_requests_in_one_call_are_sent_once():
    with FakeServer(_green_answer, mode="chat") as srv:
        b = J.EndpointBackend(srv.url, model="x", api="chat", label="t")
        reqs = [J.Request(messages=(("user", "same"),))] * 3
        out = J.Judge(b, cache=False).generate(reqs, J.Sampling())
    assert len(out) == 3 and len(srv.requests) == 1


def test_async_generate():
    import asyncio

    with FakeServer(_green_answer, mode="chat") as srv:
        judge = J.Judge(J.EndpointBackend(srv.url, model="x", api="chat", label="t"), cache=False)
        out = asyncio.run(judge.agenerate([J.Request(messages=(("user", "q"),))], J.Sampling()))
    assert out[0].finish_reason == "stop"


def test_bad_settings():
    with pytest.raises(ConfigError):
        J.EndpointBackend("ftp://x", model="m")
    with pytest.raises(ConfigError):
        J.EndpointBackend("http://127.0.0.1:9", model="m", api="rpc")
    with pytest.raises(ConfigError):
        J.EndpointBackend("http://127.0.0.1:9", model="m", batching="some")
    with pytest.raises(ConfigError):
        J.parse_prices("1,2,3")
    with pytest.raises(ConfigError):
        J.parse_prices("a,b")
    assert J.parse_prices("0.5, 1.5") == (0.5, 1.5) and J.parse_prices(None) is None


def test_an_unusable_cache_is_a_clear_error(tmp_path):
    bad = tmp_path / "not-a-db.sqlite"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ConfigError, match="judge_cache=false"):
        J.ResponseCache(bad)
