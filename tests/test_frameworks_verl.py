"""verl's own reward managers call radeval's verl entries (run in the verl venv:
benchmarks/peers/reward_frameworks.sh; skipped where verl is not installed).

* legacy ``verl.workers.reward_manager`` NaiveRewardManager (per-sample ``compute_score``) and
  BatchRewardManager (``compute_score_batch``), loaded the way verl loads a custom reward
  (``get_custom_reward_fn`` from ``custom_reward_function.path/name/reward_kwargs``);
* the reward loop's ``verl.experimental.reward_loop`` NaiveRewardManager awaiting the async
  ``compute_score_remote`` against a live radeval reward service, with a reward router address set.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

verl = pytest.importorskip("verl")
torch = pytest.importorskip("torch")

from framework_helpers import REF, RESPONSES, byte_tokenizer  # noqa: E402
from service_fixture import running_service  # noqa: E402

import radeval.rewards as R  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def data_proto(tok, step: int = 0):
    from verl import DataProto

    prompt = tok.encode("Describe the X-ray.")
    resp = [tok.encode(r) for r in RESPONSES]
    width = max(len(r) for r in resp) + 1
    n = len(RESPONSES)
    prompts = torch.tensor([prompt] * n)
    responses = torch.full((n, width), tok.pad_token_id)
    mask = torch.zeros((n, len(prompt) + width), dtype=torch.long)
    mask[:, : len(prompt)] = 1
    for i, r in enumerate(resp):
        responses[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, len(prompt) : len(prompt) + max(len(r), 1)] = 1  # verl keeps >= 1 response token
    return DataProto.from_dict(
        tensors={
            "prompts": prompts,
            "responses": responses,
            "attention_mask": mask,
            "input_ids": torch.cat([prompts, responses], 1),
        },
        non_tensors={
            "data_source": np.array(["iu_xray"] * n, dtype=object),
            "reward_model": np.array([{"ground_truth": REF}] * n, dtype=object),
            "extra_info": np.array([{"global_step": step} for _ in range(n)], dtype=object),
        },
    )


def custom_fn(name: str, **reward_kwargs):
    from omegaconf import OmegaConf
    from verl.trainer.ppo.reward import get_custom_reward_fn

    cfg = OmegaConf.create(
        {
            "reward": {
                "custom_reward_function": {
                    "path": str(ROOT / "radeval/rewards/verl.py"),
                    "name": name,
                    "reward_kwargs": reward_kwargs,
                }
            }
        }
    )
    return get_custom_reward_fn(cfg)


def last_token_scores(reward_tensor, data) -> list[float]:
    plen = data.batch["prompts"].shape[-1]
    lengths = data.batch["attention_mask"][:, plen:].sum(-1)
    return [float(reward_tensor[i, int(lengths[i]) - 1]) for i in range(len(lengths))]


def expected():
    return R.make_reward("bleu_4")(completions=RESPONSES, ground_truth=[REF] * len(RESPONSES))


def test_legacy_naive_and_batch_reward_managers():
    from verl.workers.reward_manager.batch import BatchRewardManager
    from verl.workers.reward_manager.naive import NaiveRewardManager

    tok = byte_tokenizer()
    data = data_proto(tok)
    naive = NaiveRewardManager(tok, 0, compute_score=custom_fn("compute_score", reward="bleu_4"))
    assert last_token_scores(naive(data), data) == pytest.approx(expected())
    batch = BatchRewardManager(tok, 0, compute_score=custom_fn("compute_score_batch", reward="bleu_4"))
    assert last_token_scores(batch(data), data) == pytest.approx(expected())


def test_reward_loop_manager_awaits_the_service_entry(tmp_path):
    pytest.importorskip("litserve")
    from verl.experimental.reward_loop.reward_manager.naive import NaiveRewardManager

    tok = byte_tokenizer()
    data = data_proto(tok)
    with running_service(tmp_path, ["bleu_4", "valor_format_reward=0.5"]) as svc:
        fn = custom_fn("compute_score_remote", service_url=svc["url"], reward="radeval_bleu_4")
        mgr = NaiveRewardManager(None, tok, fn, reward_router_address="127.0.0.1:1")
        assert mgr.is_async_reward_score
        out = [mgr.loop.run_until_complete(mgr.run_single(data[i : i + 1])) for i in range(len(data))]
    assert [o["reward_score"] for o in out] == pytest.approx(expected())
    assert [o["reward_extra_info"]["radeval_unscored"] for o in out] == [0.0, 0.0, 0.0]
