"""verl's compute_score contract and the OpenRLHF-style HTTP reward server, with their real call shapes."""

from __future__ import annotations

import functools
import json
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest

import radeval.rewards as R
from radeval.errors import ConfigError
from radeval.metrics.nlg import Bleu
from radeval.rewards import server, verl

REF = "The heart size is normal. No pleural effusion."
HYPS = ["<report>The heart size is normal. No pleural effusion.</report>", "Heart is enlarged.", ""]


def expected_bleu4(hyps):
    # rewards score an empty report at the key's worst value (0), not by the package's rule
    texts = [R.extract_report(h) for h in hyps]
    vals = Bleu().score(texts, [REF] * len(hyps)).sample["bleu_4"]
    return np.where([bool(t) for t in texts], vals, 0.0)


# ----- verl --------------------------------------------------------------------------------------------


def test_verl_single_form_as_naive_reward_manager_calls_it():
    # verl loads custom_reward_function.name and wraps reward_kwargs with functools.partial
    fn = functools.partial(verl.compute_score, reward="bleu_4")
    got = [
        fn(data_source="iu_xray", solution_str=h, ground_truth=REF, extra_info={"index": i}) for i, h in enumerate(HYPS)
    ]
    assert all(isinstance(v, float) for v in got)
    np.testing.assert_allclose(got, expected_bleu4(HYPS))


def test_verl_batched_form_as_batch_reward_manager_calls_it():
    fn = functools.partial(verl.compute_score_batch, reward="bleu_4")
    # BatchRewardManager passes numpy object arrays from non_tensor_batch
    scores = fn(
        data_sources=np.array(["mimic"] * 3, dtype=object),
        solution_strs=HYPS,
        ground_truths=[REF] * 3,
        extra_infos=np.array([{"index": 0}, None, {"index": 2}], dtype=object),
    )
    assert isinstance(scores, list) and len(scores) == 3
    np.testing.assert_allclose(scores, expected_bleu4(HYPS))


def test_verl_box_reward_and_errors():
    scores = verl.compute_score_batch(
        data_sources=["vindr"] * 2,
        solution_strs=["[0.1, 0.1, 0.3, 0.3]", "nothing"],
        ground_truths=[[[0.1, 0.1, 0.3, 0.3]], [[0.1, 0.1, 0.3, 0.3]]],
        extra_infos=None,
        reward="box_ap50_reward",
    )
    assert scores == [1.0, 0.0]
    with pytest.raises(ConfigError):
        verl.compute_score("x", "y", "z", None, reward="no_such_reward")


# ----- OpenRLHF remote reward server --------------------------------------------------------------------


@pytest.fixture
def running_server():
    servers = []

    def start(rewards):
        srv = server.make_server(rewards, "127.0.0.1", 0)
        t = threading.Thread(target=srv.serve_forever, daemon=True)
        t.start()
        servers.append((srv, t))
        return f"http://127.0.0.1:{srv.server_address[1]}/get_reward"

    yield start
    for srv, t in servers:
        srv.shutdown()
        srv.server_close()
        t.join(timeout=5)


def post(url, payload, raw=None):
    data = raw if raw is not None else json.dumps(payload).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_server_openrlhf_payload(running_server):
    url = running_server([server.parse_reward_spec("bleu_4"), server.parse_reward_spec("valor_format_reward=0.5")])
    prompts = ["<|user|>Describe the X-ray.<|assistant|>"] * 3
    # OpenRLHF's remote_rm_fn: {"query": prompt+response, "prompts": ..., "labels": ...}
    payload = {"query": [p + h for p, h in zip(prompts, HYPS)], "prompts": prompts, "labels": [REF] * 3}
    status, body = post(url, payload)
    assert status == 200
    bleu = expected_bleu4(HYPS)
    fmt = np.array([1.0, 0.0, 0.0])
    np.testing.assert_allclose(body["rewards"], bleu + 0.5 * fmt)
    assert body["scores"] == body["rewards"]
    np.testing.assert_allclose(body["extra_logs"]["radeval_bleu_4"], bleu)
    np.testing.assert_allclose(body["extra_logs"]["valor_format"], fmt)


def test_server_bad_requests(running_server):
    url = running_server([server.parse_reward_spec("rouge_l")])
    assert post(url, None, raw=b"{not json")[0] == 400
    assert post(url, {"query": ["a"]})[0] == 400  # no labels
    assert post(url, {"query": ["a", "b"], "labels": ["a"]})[0] == 400
    assert post(url, {"query": "a", "labels": ["a"]})[0] == 400
    status, body = post(url, {"query": ["a b"], "labels": ["a b"]})  # prompts optional
    assert status == 200 and body["rewards"] == [pytest.approx(1.0)]


def test_server_reward_failure_is_500_and_server_survives(running_server):
    def broken(prompts=None, completions=(), **kw):
        raise RuntimeError("model missing")

    url = running_server([(broken, 1.0)])
    status, body = post(url, {"query": ["x"], "labels": ["y"]})
    assert status == 500 and "model missing" in body["error"]
    assert post(url, {"query": ["x"], "labels": ["y"]})[0] == 500


def test_parse_reward_spec():
    f, w = server.parse_reward_spec("rouge_l=0.25")
    assert f is R.rouge_l and w == 0.25
    with pytest.raises(ConfigError):
        server.parse_reward_spec("nope")
    with pytest.raises(ConfigError):
        server.parse_reward_spec("rouge_l=abc")
    assert server.responses_from(["PQ", "Q"], ["P", "P"]) == ["Q", "Q"]
