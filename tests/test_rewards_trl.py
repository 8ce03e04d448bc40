"""TRL reward contract: names, dotted-path import, extraction, caching counts, odd completions."""

from __future__ import annotations

import importlib
import math
import subprocess
import sys
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import radeval.rewards as R
from radeval.errors import ConfigError, InputError
from radeval.metric import MeanMetric
from radeval.metrics import nlg
from radeval.registry import _REGISTRY, MetricSpec, register, specs
from radeval.rewards import trl as rtrl
from radeval.rewards.extract import completion_text, extract_report, format_reward, is_well_formed

REF = "The heart size is normal. No pleural effusion or pneumothorax."


class CountingMetric(MeanMetric):
    """Counts the pairs it is asked to score; value = word overlap with the reference."""

    name = "counting"
    keys = ("count_a", "count_b")
    pairs: list[tuple[str, str]] = []
    fail_on = "EXPLODE"

    def settings(self):
        return {"impl": "test"}

    def values(self, hyps, refs, images=None):
        CountingMetric.pairs.extend(zip(hyps, refs))
        if any(self.fail_on in h for h in hyps):
            raise RuntimeError("metric blew up")
        a = [len(set(h.split()) & set(r.split())) / max(1, len(set(r.split()))) for h, r in zip(hyps, refs)]
        b = [math.inf if "INF" in h else 1.0 for h in hyps]
        return {"count_a": np.array(a), "count_b": np.array(b)}


@pytest.fixture
def counting():
    register(MetricSpec("counting", f"{__name__}:CountingMetric", CountingMetric.keys, "test"), replace=True)
    rtrl.clear_caches()
    CountingMetric.pairs.clear()
    yield CountingMetric
    _REGISTRY.pop("counting", None)
    rtrl.clear_caches()


# ----- extraction and format -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "completion,report,ok",
    [
        ("<report>No effusion.</report>", "No effusion.", True),
        ("thinking... <report> Clear lungs. </report> done", "Clear lungs.", True),
        ("Clear lungs.", "Clear lungs.", False),
        ("<report>Clear lungs.", "<report>Clear lungs.", False),
        ("Clear lungs.</report>", "Clear lungs.</report>", False),
        ("</report>x<report>", "</report>x<report>", False),
        ("<report>a</report><report>b</report>", "a", False),
        ("<report>  </report>", "", False),
        ("<REPORT>a</REPORT>", "<REPORT>a</REPORT>", False),
        ("", "", False),
    ],
)
def test_extraction_and_format(completion, report, ok):
    assert extract_report(completion) == report
    assert is_well_formed(completion) is ok
    assert format_reward(completions=[completion]) == [1.0 if ok else 0.0]


def test_conversational_completions():
    msgs = [{"role": "assistant", "content": "<report>Normal chest.</report>"}]
    parts = [
        {
            "role": "assistant",
            "content": [
                {"type": "image"},
                {"type": "text", "text": "<report>Normal"},
                {"type": "text", "text": "chest.</report>"},
            ],
        }
    ]
    assert extract_report(msgs) == "Normal chest."
    assert extract_report(parts) == "Normal\nchest."
    assert completion_text([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]) == "a"
    for odd in (
        None,
        3,
        [None, 5],
        [{"content": None}],
        {"role": "assistant"},
        [{"role": "assistant", "content": [1, None]}],
    ):
        assert isinstance(extract_report(odd), str)
    assert format_reward(completions=[msgs, parts]) == [1.0, 1.0]


# ----- names and import paths ------------------------------------------------------------------------


def test_every_registered_key_has_a_distinct_named_reward():
    from radeval.errors import ModelNotFound
    from radeval.preflight import missing_models, required_models

    keys = [k for s in specs().values() for k in s.keys]
    assert {"bleu_4", "rouge_l", "bertscore_f1"} <= set(keys)
    # a reward whose models are absent fails when it is built (preflight), not on its first call
    absent = {n for n, s in specs().items() if missing_models(required_models([n]))}
    for k in [k for n in absent for k in specs()[n].keys]:
        with pytest.raises(ModelNotFound):
            getattr(R, k)
    keys = [k for n, s in specs().items() if n not in absent for k in s.keys]
    names = [getattr(R, k).__name__ for k in keys]
    assert names == [f"radeval_{k}" for k in keys]
    assert len(set(names)) == len(names)
    assert set(keys) <= set(dir(R))
    assert R.bleu_4 is R.bleu_4 and rtrl.bleu_4 is R.bleu_4


def test_dotted_path_like_trl_cli():
    # trl's grpo script: module_path, name = s.rsplit(".", 1); getattr(import_module(module_path), name)
    for dotted in (
        "radeval.rewards.bleu_4",
        "radeval.rewards.rouge_l",
        "radeval.rewards.format_reward",
        "radeval.rewards.valor_format_reward",
        "radeval.rewards.box_ap50_reward",
    ):
        module_path, name = dotted.rsplit(".", 1)
        f = getattr(importlib.import_module(module_path), name)
        assert callable(f) and f.__name__
    with pytest.raises(AttributeError):
        getattr(R, "not_a_metric_key")  # noqa: B009


def test_import_does_not_import_torch():
    code = (
        "import sys, radeval.rewards as R\nfrom radeval.errors import ModelNotFound\nR.bleu_4\n"
        "try:\n    R.chexbert_f1\nexcept ModelNotFound:\n    pass  # preflight: weights absent here\n"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_make_reward_names_and_errors():
    assert R.make_reward("bleu", "bleu_2").__name__ == "radeval_bleu_2"
    assert R.make_reward("bleu_3").__name__ == "radeval_bleu_3"
    assert R.make_reward("rouge_l").__name__ == "radeval_rouge_l"
    f = R.make_reward("bleu", "bleu_4", metric_options={"tokenize": "whitespace"})
    assert f.__name__ == "radeval_bleu_4__tokenize_whitespace"
    assert R.make_reward("bleu", "bleu_4", name="my_bleu").__name__ == "my_bleu"
    with pytest.raises(ConfigError):
        R.make_reward("bleu")  # several keys: which one?
    with pytest.raises(ConfigError):
        R.make_reward("bleu", "rouge_l")
    with pytest.raises(ConfigError):
        R.make_reward("nope")
    with pytest.raises(ConfigError):
        R.make_reward("bleu", "bleu_4", on_error=math.nan)


# ----- values and contract ---------------------------------------------------------------------------


def test_values_match_the_metric():
    comps = [f"<report>{REF}</report>", "Heart normal.", [{"role": "assistant", "content": "No effusion."}]]
    got = R.bleu_4(prompts=["p"] * 3, completions=comps, completion_ids=None, ground_truth=[REF] * 3)
    metric = R.make_reward("bleu", "bleu_4")  # same object path, fresh reward
    direct = nlg.Bleu().score([REF, "Heart normal.", "No effusion."], [REF] * 3).sample["bleu_4"]
    np.testing.assert_allclose(got, direct)
    np.testing.assert_allclose(metric(completions=comps, ground_truth=[REF] * 3), direct)
    assert got[0] == pytest.approx(1.0)
    rl = R.rouge_l(completions=comps, ground_truth=[REF] * 3)
    np.testing.assert_allclose(
        rl, nlg.RougeL().score([REF, "Heart normal.", "No effusion."], [REF] * 3).sample["rouge_l"]
    )


def test_reference_column_and_missing_values():
    f = R.make_reward("rouge_l", reference_column="report")
    assert f(completions=["a b"], report=["a b"]) == [pytest.approx(1.0)]
    with pytest.raises(InputError, match="report"):
        f(completions=["a"], ground_truth=["a"])
    with pytest.raises(InputError):
        f(completions=["a", "b"], report=["a"])
    g = R.make_reward("rouge_l", on_error=-0.5)
    assert g(completions=["a b", "a b"], ground_truth=[None, "a b"]) == [-0.5, pytest.approx(1.0)]
    assert g(completions=[], ground_truth=[]) == []


def test_failures_give_on_error_and_warn_once(counting):
    f = R.make_reward("counting", "count_a", on_error=-1.0)
    logged = []
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        out = f(
            completions=["heart EXPLODE", "heart", "heart EXPLODE too"],
            ground_truth=["heart size"] * 3,
            log_metric=lambda n, v: logged.append((n, v)),
        )
        out2 = f(completions=["EXPLODE again"], ground_truth=["x"])
    assert out == [-1.0, 0.5, -1.0] and out2 == [-1.0]
    assert len([x for x in w if "metric blew up" in str(x.message)]) == 1
    assert logged == [("radeval/errors/radeval_count_a", 2.0)]
    g = R.make_reward("counting", "count_b", on_error=None)
    assert g(completions=["INF here", "fine"], ground_truth=["r", "r"]) == [None, 1.0]


# ----- caching: B reference feature sets per batch, none on later epochs ----------------------------


def _batch(b, g, epoch):
    refs = [f"Report {i}: the lungs are clear and there is no effusion number {i}." for i in range(b)]
    comps, cols = [], []
    for i in range(b):
        for j in range(g):
            comps.append(f"<report>epoch {epoch} sample {j} lungs clear {i}</report>")
            cols.append(refs[i])
    return comps, cols


def test_reference_features_computed_once_per_distinct_reference():
    rtrl.clear_caches()
    nlg._reference_info.cache_clear()
    nlg._coco_ref_tokens.cache_clear()
    B, G = 4, 8
    comps, cols = _batch(B, G, 0)
    R.bleu_4(prompts=[""] * len(comps), completions=comps, ground_truth=cols)
    R.rouge_l(prompts=[""] * len(comps), completions=comps, ground_truth=cols)
    assert nlg._reference_info.cache_info().misses == B  # not B*G
    assert nlg._coco_ref_tokens.cache_info().misses == B
    for epoch in (1, 2):  # later epochs: same references, new completions
        comps, cols = _batch(B, G, epoch)
        R.bleu_4(completions=comps, ground_truth=cols)
        R.rouge_l(completions=comps, ground_truth=cols)
    assert nlg._reference_info.cache_info().misses == B
    assert nlg._coco_ref_tokens.cache_info().misses == B


def test_layer_dedups_pairs_and_shares_across_rewards(counting):
    a = R.make_reward("counting", "count_a")
    b = R.make_reward("counting", "count_b")
    comps = ["lungs clear"] * 8 + ["effusion"] * 8
    refs = ["lungs clear"] * 8 + ["no effusion"] * 8
    a(completions=comps, ground_truth=refs)
    assert len(counting.pairs) == 2  # 16 completions, 2 distinct pairs
    b(completions=comps, ground_truth=refs)  # other key of the same metric: cached
    a(completions=comps, ground_truth=refs)  # next epoch, same pairs: cached
    assert len(counting.pairs) == 2


# ----- odd completions: finite, never raises ---------------------------------------------------------

_TAGS = st.sampled_from(["<report>", "</report>", "<report></report>", "<REPORT>", "<", ">", "/"])
_WS = st.text(alphabet=" \t\n\r\x0b\x0c\u00a0\u2003\u200b", max_size=20)
_PIECE = st.one_of(
    st.text(max_size=60), _TAGS, _WS, st.sampled_from(["Heart normal.", "无急性", "🫁", "é" * 5, "\x00"])
)
_ODD = st.one_of(
    st.lists(_PIECE, max_size=8).map("".join),
    st.text(),
    _WS,
    st.builds(lambda s: [{"role": "assistant", "content": s}], st.text(max_size=40)),
    st.builds(lambda s: [{"role": "assistant", "content": [{"type": "text", "text": s}]}], st.text(max_size=40)),
)


@settings(max_examples=1200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_ODD, min_size=1, max_size=4), st.text(max_size=80))
def test_odd_completions_score_finite(comps, ref):
    n = len(comps)
    for f in (R.bleu_4, R.bleu_1, R.rouge_l, R.rouge_l_stemmed, format_reward):
        out = f(prompts=[""] * n, completions=comps, ground_truth=[ref] * n)
        assert len(out) == n
        assert all(isinstance(v, float) and math.isfinite(v) for v in out)


def test_huge_completion():
    big = "<report>" + ("effusion " * 12000)[:100_000] + "</report>"
    for comps in ([big], ["x" * 100_000], ["<report>" * 5000]):
        for f in (R.bleu_4, R.rouge_l, format_reward):
            out = f(completions=comps, ground_truth=[REF])
            assert len(out) == 1 and math.isfinite(out[0])


def test_integer_on_error_still_returns_floats():
    f = R.make_reward("rouge_l", on_error=0)
    out = f(completions=["a"], ground_truth=[None])
    assert out == [0.0] and isinstance(out[0], float)


# ----- empty completions (issue 18) ---------------------------------------------------------------


def test_empty_completion_scores_the_worst_value_and_the_signature_says_so():
    from radeval import get_metric

    normal = "No acute cardiopulmonary process."
    evaluator = get_metric("chexpert_rules").score(["", "   "], [normal, normal]).sample["chexpert_rules_f1_sample"]
    assert list(evaluator) == [1.0, 1.0]  # the package's rule: nothing vs no finding agrees
    reward = R.make_reward("chexpert_rules_f1_sample")
    assert reward(completions=["", "<report>  </report>", "   "], ground_truth=[normal] * 3) == [0.0, 0.0, 0.0]
    package = R.make_reward("chexpert_rules_f1_sample", empty="metric", name="cx_pkg")
    assert package(completions=[""], ground_truth=[normal]) == [1.0]
    fixed = R.make_reward("bleu_4", empty=-1.0, name="b4_fixed")
    assert fixed(completions=[""], ground_truth=[normal]) == [-1.0]
    assert reward.signature.endswith("|key:chexpert_rules_f1_sample|empty:worst=0")
    assert package.signature.endswith("|empty:metric") and "empty:-1" in fixed.signature
    assert reward.signature.startswith(get_metric("chexpert_rules").signature)
    with pytest.raises(ConfigError, match="empty"):
        R.make_reward("bleu_4", empty="best")


def test_lower_is_better_worst_is_the_maximum():
    from radeval.rewards.empty import worst_value

    class Dist:
        value_ranges = {"d": (0.0, 5.0)}

        def higher_is_better(self, key):
            return False

    assert worst_value(Dist(), "d") == 5.0
    assert worst_value(object(), "radcliq_v1") == 3.0 and worst_value(object(), "bleu_4") == 0.0
    assert worst_value(object(), "bertscore_f1") is None  # bert-score's own empty rule is the floor


class AsyncJudge(MeanMetric):
    """A judge-like metric with ``async def ascore`` (how endpoint-backed judges plug in)."""

    name = "fake_judge"
    keys = ("judge",)
    awaited: list[int] = []

    def settings(self):
        return {"impl": "test"}

    def values(self, hyps, refs, images=None):
        raise AssertionError("the async reward must await ascore, not call the sync path")

    async def ascore(self, hyps, refs, images=None):
        import asyncio
        import threading

        AsyncJudge.awaited.append(threading.get_ident())
        await asyncio.sleep(0)
        vals = np.array([math.nan if h == "NAN" else len(h) / 10 for h in hyps])
        return SimpleNamespace(sample={"judge": vals})


def test_async_reward_awaits_the_metric_ascore_on_the_callers_loop():
    import asyncio
    import threading

    from trl.trainer.utils import is_async_callable

    register(MetricSpec("fake_judge", f"{__name__}:AsyncJudge", ("judge",), "test"), replace=True)
    rtrl.clear_caches()
    AsyncJudge.awaited.clear()
    try:
        f = R.make_reward("fake_judge", asynchronous=True, empty=-1.0)
        assert is_async_callable(f)
        out = asyncio.run(f(completions=["abcd", "", "NAN", "abcd"], ground_truth=["r", "r", "r", None]))
        assert out == [pytest.approx(0.4), -1.0, None, None]  # empty -> empty value; NaN/no reference -> None
        assert AsyncJudge.awaited == [threading.get_ident()]  # one awaited call, distinct pairs, this thread
    finally:
        _REGISTRY.pop("fake_judge", None)
        rtrl.clear_caches()
