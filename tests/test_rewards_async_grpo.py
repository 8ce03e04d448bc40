"""Our rewards inside TRL 1.16's own AsyncGRPOTrainer rollout worker, on CPU.

``AsyncGRPOTrainer`` itself needs CUDA, vLLM and a FlashAttention kernel from the hub. Its reward path
does not: :class:`trl.experimental.async_grpo.async_rollout_worker.AsyncRolloutWorker` pickles
``reward_funcs`` (``start()`` calls ``pickle.dumps`` first), spawns ``_child_main`` with
``mp.get_context("spawn")``, and the child generates through vLLM's ``/v1/completions`` and scores
each group in ``_AsyncRolloutLoop._score_group`` (sync rewards in ``asyncio.to_thread``, async ones
awaited, ``None`` → NaN, advantage 0 for unscored rows). This test runs that code unchanged against
a fake completions server on loopback; the only patch is the parent-side ``is_vllm_available``
gate (vLLM is not installed here and the child never imports it).
"""

from __future__ import annotations

import itertools
import json
import math
import queue
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

pytest.importorskip("aiohttp")
pytest.importorskip("trl.experimental.async_grpo.async_rollout_worker")

import radeval.rewards as R  # noqa: E402
from radeval.rewards.valor import ValorConfig, make_text_reward  # noqa: E402

REF = "The heart size is normal. No pleural effusion."
# what the fake policy writes, in turn: a copy of the reference, a wrong report, nothing, a poor one
TEXTS = [
    "<report>The heart size is normal. No pleural effusion.</report>",
    "<report>Large right pleural effusion.</report>",
    "",
    "Heart normal.",
]
G = 4


def _fake_vllm(tokenizer):
    ids = [tokenizer.encode(t, add_special_tokens=False) + [tokenizer.eos_token_id] for t in TEXTS]
    counter = itertools.count()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # vLLM's /v1/completions with return_token_ids and logprobs
            self.rfile.read(int(self.headers["Content-Length"]))
            toks = ids[next(counter) % len(ids)]
            body = json.dumps({"choices": [{"token_ids": toks, "logprobs": {"token_logprobs": [-1.0] * len(toks)}}]})
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.mark.slow
def test_trl_async_rollout_worker_scores_with_our_rewards(tmp_path, monkeypatch):
    from accelerate.state import PartialState
    from datasets import Dataset
    from trl.chat_template_utils import qwen2_5_chat_template
    from trl.experimental.async_grpo import async_rollout_worker as arw

    from tests.tiny_vlm import build_tokenizer

    tok = build_tokenizer(tmp_path / "tok", n_reports=40)
    tok.chat_template = qwen2_5_chat_template  # a template TRL knows how to parse responses of
    server = _fake_vllm(tok)
    offline = ValorConfig(
        bertscore="rouge_l_stemmed:rouge_l_stemmed",
        chexbert="chexpert_rules:chexpert_rules_f1_sample",
        radgraph="bleu:bleu_1",
        k_clin=1,
    )
    rewards = [
        make_text_reward(offline, name="valor_text_offline"),
        R.valor_format_reward,
        R.make_reward("chexpert_rules_f1_sample"),
        R.make_reward("bleu_4", asynchronous=True, name="bleu_4_async"),
    ]
    ds = Dataset.from_list([{"prompt": [{"role": "user", "content": "Describe the X-ray."}], "ground_truth": REF}] * 4)
    monkeypatch.setattr(arw, "is_vllm_available", lambda: True)  # parent-side gate only
    PartialState()  # the trainer's Accelerator does this in a real run (TRL's logger needs it)
    worker = arw.AsyncRolloutWorker(
        model_name="fake",
        dataset=ds,
        reward_funcs=rewards,
        processing_class=tok,
        eos_token_ids=[tok.eos_token_id],
        num_generations=G,
        max_inflight_tasks=G,
        vllm_server_url=f"http://127.0.0.1:{server.server_address[1]}",
        max_tokens=64,
        child_ready_timeout=240,
    )
    samples = []
    try:
        worker.start()
        while len(samples) < 2 * G:
            samples.append(worker.rollout_buffer.get(timeout=240))
    except queue.Empty:
        pytest.fail("the rollout worker produced no scored samples")
    finally:
        worker.stop()
        server.shutdown()

    # every sample was scored by every reward, in the child, with the values the same rewards give here
    by_text: dict[str, dict[str, float]] = {}
    for s in samples:
        text = s.completion[0]["content"]
        conv = [{"role": "assistant", "content": text}]
        for f in rewards:
            got = s.metrics[f"rewards/{f.__name__}"]
            want = f(completions=[conv], ground_truth=[REF]) if not isinstance(f, R.AsyncReward) else None
            if want is not None:
                assert got == pytest.approx(want[0] if want[0] is not None else math.nan, nan_ok=True), (f, text)
        by_text[text] = {k: v for k, v in s.metrics.items() if k.startswith("rewards/")}
    assert set(by_text) == set(TEXTS)
    # the empty completion scores the worst value (0), not the package's 1.0 for "no finding" vs normal
    assert by_text[""]["rewards/radeval_chexpert_rules_f1_sample"] == 0.0
    assert by_text[TEXTS[0]]["rewards/bleu_4_async"] == pytest.approx(1.0)
