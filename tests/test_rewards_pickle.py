"""Every reward pickles, equals its copy, keeps a distinct __name__, and scores the same after the trip.

TRL's AsyncGRPOTrainer pickles reward_funcs into a spawned rollout process (``AsyncRolloutWorker.start``
calls ``pickle.dumps`` on them, then ``mp.get_context("spawn").Process``); the spawn test below does the
same with our rewards and calls them in the child.
"""

from __future__ import annotations

import multiprocessing as mp
import pickle
from unittest import mock

import radeval.rewards as R
from radeval.errors import ModelNotFound
from radeval.rewards import trl as rtrl
from radeval.rewards.client import RemoteReward
from radeval.rewards.trl import reward_keys
from radeval.rewards.valor import ValorConfig, make_clin_reward, make_text_reward, make_ver_reward

# VALOR composites over offline metrics, so their outputs can be compared without model files
OFFLINE_VALOR = ValorConfig(
    bertscore="rouge_l_stemmed:rouge_l_stemmed",
    chexbert="chexpert_rules:chexpert_rules_f1_sample",
    radgraph="bleu:bleu_1",
    k_clin=2,
)

REF = "The heart size is normal. No pleural effusion."
BATCH = dict(
    prompts=["p"] * 5,
    completions=[
        "<report>The heart size is normal. No pleural effusion.</report>",
        "Heart is enlarged. Small left pleural effusion.",
        "   ",
        [{"role": "assistant", "content": "<report>No acute findings.</report>"}],
        "Opacity at [0.1, 0.1, 0.4, 0.4].",
    ],
    ground_truth=[REF] * 5,
    boxes=[[[0.1, 0.1, 0.4, 0.4]]] * 5,
)


def _offline(build, direct=None):
    """``build()`` (e.g. the attribute ``radeval.rewards.<key>``); where its models are absent
    here (the reward constructors' preflight refuses it), the identical object built by
    ``direct`` (default ``build``) with the preflight skipped: pickling a reward holds only its
    settings and never needs the models. ``direct`` bypasses the module attributes' caches, so
    they never hold a reward the preflight refused."""
    try:
        return build()
    except ModelNotFound:
        with mock.patch("radeval.preflight.check_models", lambda *a, **k: None):
            return (direct or build)()


def all_rewards() -> list:
    """Every kind of reward the package offers (the count is reported in the closing note)."""
    keys = reward_keys()
    # dotted path radeval.rewards.<key>
    out = [_offline(lambda k=k: getattr(R, k), lambda k=k: R.make_reward(keys[k], k)) for k in sorted(keys)]
    out += [
        R.make_reward("bleu", "bleu_4", metric_options={"tokenize": "whitespace"}),
        R.make_reward("chexpert_rules_f1_sample", empty="metric", name="chexpert_f1_package_empty"),
        R.make_reward("rouge_l", on_error=0.0, empty=-1.0, name="rouge_l_custom"),
        R.make_reward("bleu_2", asynchronous=True, name="bleu_2_async"),
        R.make_reward("bleu_1", transform="neg", name="neg_bleu_1"),
        _offline(lambda: R.make_radcliq_reward(on_error=-3.0, name="radvlm_radcliq_strict")),
        _offline(lambda: R.radvlm_radcliq_reward, R.make_radcliq_reward),
        _offline(lambda: R.valor_text_reward, make_text_reward),
        _offline(lambda: R.valor_ver_reward, make_ver_reward),
        _offline(lambda: R.valor_clin_reward, make_clin_reward),
        make_text_reward(OFFLINE_VALOR, name="valor_text_offline"),
        make_ver_reward(OFFLINE_VALOR, name="valor_ver_offline"),
        make_clin_reward(OFFLINE_VALOR, name="valor_clin_offline"),
        R.valor_format_reward,
        R.format_reward,
        R.box_ap50_reward,
        R.make_box_reward(pred_format="pixel", name="box_ap50_pixel"),
        RemoteReward("http://127.0.0.1:9/get_reward", reward="bleu_4", name="remote_bleu_4"),
    ]
    return out


OFFLINE_NAMES = {
    "radeval_bleu_4__tokenize_whitespace",
    "chexpert_f1_package_empty",
    "rouge_l_custom",
    "neg_bleu_1",
    "valor_text_offline",
    "valor_ver_offline",
    "valor_clin_offline",
    "valor_format",
    "radeval_format",
    "radeval_box_ap50",
}
OFFLINE_METRICS = {"bleu", "rouge_l", "rouge_l_stemmed", "chexpert_rules"}


def runs_offline(f) -> bool:
    return f.__name__ in OFFLINE_NAMES or (
        isinstance(f, R.MetricReward) and not isinstance(f, R.AsyncMetricReward) and f.metric_name in OFFLINE_METRICS
    )


def call(f, batch=BATCH):
    if isinstance(f, R.AsyncReward):
        import asyncio

        return asyncio.run(f(**batch))
    return f(**batch)


def test_every_reward_pickles_equal_and_named_apart():
    rewards = all_rewards()
    names = [f.__name__ for f in rewards]
    assert len(set(names)) == len(names), "TRL logs rewards by __name__: they must differ"
    assert len(rewards) == len(reward_keys()) + 18  # every key of every registered metric + 18 others
    for f in rewards:
        assert isinstance(f, R.Reward), f.__name__
        g = pickle.loads(pickle.dumps(f))
        assert g == f and g is not f and g.__name__ == f.__name__
        assert type(g).__module__.startswith("radeval.rewards")


def test_outputs_equal_after_a_pickle_round_trip():
    checked = 0
    for f in all_rewards():
        if not runs_offline(f) and not isinstance(f, R.AsyncMetricReward):
            continue
        g = pickle.loads(pickle.dumps(f))
        rtrl.clear_caches()  # the copy must not ride on the original's cached values
        a = call(f)
        rtrl.clear_caches()
        b = call(g)
        assert a == b and len(a) == 5, f.__name__
        checked += 1
    assert checked >= 25


def test_async_reward_is_detected_by_trl_and_equals_sync():
    from trl.trainer.utils import get_callable_name, is_async_callable

    sync, asy = R.make_reward("bleu_2"), R.make_reward("bleu_2", asynchronous=True)
    assert is_async_callable(asy) and not is_async_callable(sync)
    assert get_callable_name(asy) == "radeval_bleu_2" and get_callable_name(R.valor_format_reward) == "valor_format"
    assert call(asy) == call(sync)


def _child(payload: bytes, batch: dict, queue) -> None:
    # what TRL's spawned rollout child does with reward_funcs (AsyncRolloutLoop._score_group):
    # unpickle, then call each -- sync ones via asyncio.to_thread, async ones awaited, no
    # trainer_state / log_metric. TRL's is_async_callable / get_callable_name are restated here
    # (importing trl costs ~10 s per process); test_async_reward_is_detected_by_trl checks them.
    import asyncio
    import inspect

    def is_async_callable(f):
        return inspect.iscoroutinefunction(f) or inspect.iscoroutinefunction(f.__call__)

    def get_callable_name(f):
        return getattr(f, "__name__", type(f).__name__)

    rewards = pickle.loads(payload)

    async def score():
        kwargs = dict(batch)
        return await asyncio.gather(
            *[f(**kwargs) if is_async_callable(f) else asyncio.to_thread(f, **kwargs) for f in rewards]
        )

    values = asyncio.run(score())
    queue.put({get_callable_name(f): v for f, v in zip(rewards, values)})


def test_spawned_process_receives_pickled_rewards_and_calls_them():
    rewards = [f for f in all_rewards() if runs_offline(f) or isinstance(f, R.AsyncMetricReward)]
    rtrl.clear_caches()
    expected = {f.__name__: call(f) for f in rewards}
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(pickle.dumps(rewards), BATCH, queue))
    proc.start()
    try:
        got = queue.get(timeout=240)
    finally:
        proc.join(timeout=30)
    assert proc.exitcode == 0
    assert got == expected
