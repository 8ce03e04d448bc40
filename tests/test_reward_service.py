"""The reward service: request parsing, batch scoring with per-sample None, and a live LitServe service
started and stopped through `radeval serve rewards`, called the way OpenRLHF, verl and TRL call it."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request

import pytest

import radeval.rewards as R
from radeval.errors import ConfigError
from radeval.rewards.client import RemoteReward
from radeval.rewards.service import BatchScorer, Limits, check_host_token, parse_request, responses_from
from tests.service_fixture import cli as _cli
from tests.service_fixture import free_port as _free_port
from tests.service_fixture import running_service

REF = "The heart size is normal. No pleural effusion."
GOOD = "<report>The heart size is normal. No pleural effusion.</report>"


# ----- parsing --------------------------------------------------------------------------------------


def test_parse_both_forms_and_reject_bad_fields():
    r = parse_request({"query": ["P<report>x</report>"], "prompts": ["P"], "labels": [REF]})
    assert r["completions"] == ["<report>x</report>"] and r["references"] == [REF]
    r = parse_request({"completions": ["a", "b"], "references": [REF, None], "global_step": 3, "rewards": ["x"]})
    assert r["global_step"] == 3 and r["references"][1] is None and r["rewards"] == ["x"]
    bad = [
        ([], "JSON object"),
        ({"completions": ["a"]}, "'references'"),
        ({"completions": "a", "references": ["r"]}, "'completions' must be a list"),
        ({"completions": [1], "references": ["r"]}, r"'completions'\[0\]"),
        ({"completions": ["a"], "references": ["r", "s"]}, "2 entries for 1"),
        ({"completions": ["a"], "references": ["r"], "global_step": -1}, "global_step"),
        ({"query": ["a"]}, "labels"),
        ({"completions": ["a"], "references": ["r"], "rewards": ["nope"]}, "unknown reward"),
        ({"completions": ["a"] * 3, "references": ["r"] * 3}, "limit is 2"),
        ({"completions": ["a" * 11], "references": ["r"]}, "limit is 10"),
    ]
    for payload, msg in bad:
        with pytest.raises(ValueError, match=msg):
            parse_request(payload, Limits(max_items=2, max_chars=10), known=["x"])
    assert responses_from(["Pabc", "xyz"], ["P", "P"]) == ["abc", "xyz"]


def test_host_needs_a_token_beyond_loopback():
    check_host_token("127.0.0.1", None)
    check_host_token("0.0.0.0", "s3cret")
    with pytest.raises(ConfigError, match="token"):
        check_host_token("0.0.0.0", None)


# ----- batch scoring --------------------------------------------------------------------------------


def boom_reward(prompts=None, completions=(), completion_ids=None, **kwargs):
    """A reward that fails on any batch holding the completion 'BOOM'."""
    if "BOOM" in completions:
        raise RuntimeError("boom")
    return [float(len(c)) for c in completions]


boom_reward.__name__ = "boom"


def test_batch_scorer_isolates_failures_per_request_and_sums_scored_parts():
    scorer = BatchScorer([(R.make_reward("bleu_4"), 1.0), (boom_reward, 0.5), (R.format_reward, 2.0)])
    reqs = [
        parse_request({"completions": [GOOD, ""], "references": [REF, REF]}),
        parse_request({"completions": ["BOOM"], "references": [None]}),
        parse_request({"completions": ["abc"], "references": [REF], "rewards": ["boom"]}),
    ]
    a, b, c = scorer.score(reqs)
    assert a["extra_logs"]["radeval_bleu_4"] == [pytest.approx(1.0), 0.0]  # empty -> worst value
    assert a["extra_logs"]["boom"] == [float(len(GOOD)), 0.0]  # the BOOM request failed alone
    assert a["rewards"][0] == pytest.approx(1.0 + 0.5 * len(GOOD) + 2.0)
    # request b: boom failed (None), bleu has no reference (None), format scored 0 -> total 0
    assert b["extra_logs"] == {"radeval_bleu_4": [None], "boom": [None], "radeval_format": [0.0]}
    assert b["rewards"] == [0.0]
    assert c["extra_logs"] == {"boom": [3.0]} and c["rewards"] == [1.5]
    assert a["batch"] == {"requests": 3, "completions": 4}
    # nothing scored at all -> None, never 0
    (d,) = BatchScorer([(boom_reward, 1.0)]).score([parse_request({"completions": ["BOOM"], "references": [REF]})])
    assert d["rewards"] == [None]


# ----- the live service -------------------------------------------------------------------------------

TOKEN = "test-token-123"


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    pytest.importorskip("litserve")
    rewards = ["bleu_4", "valor_format_reward=0.5"]
    extra = ("--batch-timeout", "0.05", "--max-items", "256")
    with running_service(tmp_path_factory.mktemp("state"), rewards, TOKEN, extra) as svc:
        yield svc


def post(url, payload, token=TOKEN, raw=None):
    req = urllib.request.Request(url, data=raw if raw is not None else json.dumps(payload).encode(), method="POST")
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        body = e.read()
        try:
            return e.code, json.loads(body or b"{}")
        except json.JSONDecodeError:  # LitServe's own size guard answers plain text
            return e.code, {"error": body.decode(errors="replace")}


def test_service_openrlhf_contract_and_status(service):
    q = {"query": ["PROMPT" + GOOD, "PROMPT no tags"], "prompts": ["PROMPT"] * 2, "labels": [REF, REF]}
    status, body = post(service["url"], q)
    assert status == 200
    assert body["extra_logs"]["valor_format"] == [1.0, 0.0]
    assert body["rewards"][0] == pytest.approx(1.0 + 0.5) and body["scores"] == body["rewards"]
    # OpenRLHF cannot set headers: the token also works in the URL
    status, _ = post(service["url"] + f"?token={TOKEN}", q, token=None)
    assert status == 200
    assert _cli("serve", "rewards", "status", "--port", str(service["port"]), env=service["env"]).returncode == 0


def test_service_refuses_without_token_and_bounds_requests(service):
    ok = {"completions": [GOOD], "references": [REF]}
    assert post(service["url"], ok, token=None)[0] == 401
    assert post(service["url"], ok, token="wrong")[0] == 401
    status, body = post(service["url"], {"completions": ["a"] * 257, "references": ["r"] * 257})
    assert status == 400 and "limit is 256" in body["error"]
    status, _ = post(service["url"], None, raw=b"x" * (9 * 1024 * 1024))
    assert status == 413
    assert post(service["url"], None, raw=b"{not json")[0] == 400


def test_service_batches_concurrent_requests_and_a_bad_one_fails_alone(service):
    results, errors = [], []

    def client(i):
        payload = {"completions": [GOOD, f"heart {i}"] * 4, "references": [REF] * 8}
        if i == 3:
            payload = {"completions": [7], "references": [REF]}  # malformed: 400 before batching
        results.append((i, *post(service["url"], payload)))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 12
    for i, status, body in results:
        if i == 3:
            assert status == 400
        else:
            assert status == 200 and len(body["rewards"]) == 8 and None not in body["rewards"]
    assert max(body["batch"]["requests"] for i, s, body in results if i != 3) > 1  # dynamic batching happened


def test_trl_client_against_the_service(service):
    f = RemoteReward(service["url"], "radeval_bleu_4", token=TOKEN)
    g = RemoteReward(service["url"], token=TOKEN)  # the weighted total
    kwargs = dict(completions=[GOOD, "", [{"role": "assistant", "content": GOOD}]], ground_truth=[REF, REF, None])
    local = R.make_reward("bleu_4")(**kwargs)
    assert asyncio.run(f(**kwargs)) == local  # same numbers as the in-process reward; None stays None
    assert asyncio.run(g(**kwargs)) == pytest.approx([local[0] + 0.5, 0.0, 0.5])


def test_client_outage_is_unscored_not_a_crash():
    dead = RemoteReward(f"http://127.0.0.1:{_free_port()}/get_reward", timeout=1, retries=1, backoff=0.01)
    logged = []
    with pytest.warns(RuntimeWarning, match="unscored"):
        out = dead.score(["a", "b"], {"ground_truth": [REF, REF], "log_metric": lambda n, v: logged.append((n, v))})
    assert out == [None, None] and logged == [("radeval/errors/remote_total", 2.0)]


def test_verl_reward_loop_entry_against_the_service(service):
    from radeval.rewards.verl import compute_score_remote

    async def many():
        return await asyncio.gather(
            *[
                compute_score_remote(
                    "iu_xray",
                    s,
                    REF,
                    {"global_step": 3},
                    service_url=service["url"],
                    reward="radeval_bleu_4",
                    token=TOKEN,
                    reward_router_address="10.0.0.1:9000",
                )  # fmt: skip
                for s in [GOOD, "Heart is enlarged.", ""]
            ]
        )

    out = asyncio.run(many())
    assert [o["radeval_unscored"] for o in out] == [0.0, 0.0, 0.0]
    assert out[0]["score"] == pytest.approx(1.0) and out[2]["score"] == 0.0
