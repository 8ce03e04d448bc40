"""OpenRLHF 0.11's own remote-reward client scores through the radeval reward service (run in the
openrlhf venv: benchmarks/peers/reward_frameworks.sh; skipped where openrlhf is not installed).

``openrlhf.utils.agent.SingleTurnAgentExecutor(remote_rm_url)`` is what OpenRLHF's vLLM engines
run for ``--remote_rm_url``: it generates, decodes prompt + response with special tokens, POSTs
``{"query", "prompts", "labels"}`` to the URL (one query per request) and reads ``rewards`` /
``scores`` / ``extra_logs``. The vLLM engine is replaced by a stub that returns fixed tokens.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

pytest.importorskip("openrlhf")
pytest.importorskip("litserve")

from framework_helpers import REF, RESPONSES, byte_tokenizer  # noqa: E402
from service_fixture import running_service  # noqa: E402

import radeval.rewards as R  # noqa: E402


class StubEngine:
    """vLLM's engine, reduced to what SingleTurnAgentExecutor calls: async generate -> outputs[0]."""

    def __init__(self, token_ids):
        self.token_ids = token_ids

    async def generate(self, prompt_token_ids, sampling_params, multi_modal_data=None):
        out = SimpleNamespace(token_ids=self.token_ids, finish_reason="stop", logprobs=None)
        return SimpleNamespace(outputs=[out])


def test_openrlhf_single_turn_executor_reads_our_rewards(tmp_path):
    from openrlhf.utils.agent import SingleTurnAgentExecutor

    tok = byte_tokenizer()
    prompt = "Describe the X-ray."
    params = SimpleNamespace(max_tokens=64, logprobs=None)
    bleu = R.make_reward("bleu_4")(completions=RESPONSES, ground_truth=[REF] * len(RESPONSES))
    fmt = R.valor_format_reward(completions=RESPONSES)
    with running_service(tmp_path, ["bleu_4", "valor_format_reward=0.5"]) as svc:
        executor = SingleTurnAgentExecutor(remote_rm_url=svc["url"])

        async def rollouts():
            return await asyncio.gather(
                *[executor.execute(prompt, REF, params, 256, tok, StubEngine(tok.encode(r))) for r in RESPONSES]
            )

        outs = asyncio.run(rollouts())
    for i, out in enumerate(outs):
        assert out["reward"] == pytest.approx([bleu[i] + 0.5 * fmt[i]])
        assert out["scores"] == out["reward"]
        assert out["extra_logs"]["radeval_bleu_4"] == pytest.approx([bleu[i]])
        assert out["extra_logs"]["valor_format"] == [fmt[i]]
