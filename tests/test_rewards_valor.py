"""VALOR's reward equations (Eq. 3–9) pinned on hand-computed cases."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from radeval.errors import ConfigError
from radeval.metric import MeanMetric
from radeval.registry import _REGISTRY, MetricSpec, register
from radeval.rewards import trl as rtrl
from radeval.rewards.valor import (
    ValorConfig,
    average_ranks,
    clinical_reward,
    is_clinical_step,
    make_clin_reward,
    make_text_reward,
    make_valor_rewards,
    make_ver_reward,
    per_group,
    rank_norm,
    text_reward,
    valor_advantages,
    valor_format_reward,
    verifiable_reward,
    visual_rank_reward,
    visual_reward,
)

# ----- a metric whose values are written in the completion: "x,y,z" -> keys fake_x, fake_y, fake_z


class TripleMetric(MeanMetric):
    name = "fake_triple"
    keys = ("fake_x", "fake_y", "fake_z")
    calls: list[tuple[list[str], list[str]]] = []

    def settings(self):
        return {"impl": "test"}

    def values(self, hyps, refs, images=None):
        TripleMetric.calls.append((list(hyps), list(refs)))
        rows = []
        for h in hyps:
            parts = h.split(",")
            try:
                rows.append([float(p) for p in parts] if len(parts) == 3 else [math.nan] * 3)
            except ValueError:
                rows.append([math.nan] * 3)
        arr = np.array(rows, dtype=np.float64).reshape(-1, 3)
        return {k: arr[:, i] for i, k in enumerate(self.keys)}


@pytest.fixture
def fake_metric():
    register(MetricSpec("fake_triple", f"{__name__}:TripleMetric", TripleMetric.keys, "test metric"), replace=True)
    rtrl.clear_caches()
    TripleMetric.calls.clear()
    yield TripleMetric
    _REGISTRY.pop("fake_triple", None)
    rtrl.clear_caches()


def fake_config(**kw):
    base = dict(
        bleu4="fake_triple:fake_x",
        rouge_l="fake_triple:fake_y",
        bertscore="fake_triple:fake_z",
        chexbert="fake_triple:fake_x",
        radgraph="fake_triple:fake_z",
    )
    base.update(kw)
    return ValorConfig(**base)


def step(global_step):
    return SimpleNamespace(global_step=global_step)


# ----- Eq. 7 -----------------------------------------------------------------------------------------


def test_eq7_distinct_and_ties():
    # ranks: 0.3, 0.3 share ranks 1 and 2 -> 1.5; 0.2 -> 3; 0.1 -> 4; G = 4 -> 1 - (rank-1)/3
    np.testing.assert_allclose(visual_rank_reward([0.3, 0.1, 0.3, 0.2]), [5 / 6, 0.0, 5 / 6, 1 / 3])
    np.testing.assert_allclose(visual_rank_reward([0.9, 0.1]), [1.0, 0.0])
    np.testing.assert_allclose(visual_rank_reward([0.1, 0.5, 0.9]), [0.0, 0.5, 1.0])


def test_eq7_all_equal_and_single():
    np.testing.assert_allclose(visual_rank_reward([0.7] * 5), [0.5] * 5)
    np.testing.assert_allclose(visual_rank_reward([0.42]), [0.5])
    assert visual_rank_reward([]).size == 0


def test_eq7_unscored_stay_unscored_and_are_not_counted():
    # G' = 2 scored members: ranks 2 and 1 -> 0 and 1; the unscored one stays NaN (not rank last)
    np.testing.assert_allclose(visual_rank_reward([0.2, math.nan, 0.5]), [0.0, math.nan, 1.0])
    np.testing.assert_allclose(visual_rank_reward([0.2, None, None]), [0.5, math.nan, math.nan])
    np.testing.assert_allclose(average_ranks([math.nan, 1.0, None]), [math.nan, 1.0, math.nan])


def test_ranknorm_gives_unscored_a_neutral_advantage():
    # the README/closing-note example: G = 4, one unscored member
    np.testing.assert_allclose(rank_norm([0.9, None, 0.1, 0.5]), [1.0, 0.0, -1.0, 0.0])
    np.testing.assert_allclose(rank_norm([0.9, math.nan, math.inf, 0.5]), [1.0, 0.0, 0.0, -1.0])
    np.testing.assert_allclose(rank_norm([None, None, None]), [0.0, 0.0, 0.0])
    np.testing.assert_allclose(rank_norm([None, 0.4]), [0.0, 0.0])
    # per_group and valor_advantages carry None through whole batches
    adv = per_group(rank_norm, [1.0, None, 2.0, 3.0, None, None], 3)
    np.testing.assert_allclose(adv, [-1.0, 0.0, 1.0, 0.0, 0.0, 0.0])
    # stage visual: an unscored similarity makes that member unscored in R_vis -> advantage 0
    adv = valor_advantages([0.5, 0.5, 0.5], [0.9, None, 0.1], group_size=3, lambda_vis=0.5)
    np.testing.assert_allclose(adv, [1.0, 0.0, -1.0])


# ----- Eq. 8 -----------------------------------------------------------------------------------------


def test_eq8_lambda_0_half_1():
    r_text, r_vis = [0.2, 0.8], [1.0, 0.0]
    np.testing.assert_allclose(visual_reward(r_text, r_vis, 0.0), r_text)
    np.testing.assert_allclose(visual_reward(r_text, r_vis, 1.0), r_vis)
    np.testing.assert_allclose(visual_reward(r_text, r_vis, 0.5), [0.6, 0.4])
    with pytest.raises(ConfigError):
        visual_reward(r_text, r_vis, 1.5)


# ----- Eq. 9 -----------------------------------------------------------------------------------------


def test_eq9_ranknorm():
    # values 1,2,2,3: ranks 4, 2.5, 2.5, 1 -> 1 - 2(rank-1)/3
    np.testing.assert_allclose(rank_norm([1, 2, 2, 3]), [-1.0, 0.0, 0.0, 1.0])
    np.testing.assert_allclose(rank_norm([5.0, 1.0, 3.0]), [1.0, -1.0, 0.0])
    np.testing.assert_allclose(rank_norm([0.3, 0.3, 0.3]), [0.0, 0.0, 0.0])
    np.testing.assert_allclose(rank_norm([7.0]), [0.0])
    a = rank_norm([0.1, 0.9, 0.4, 0.4, 0.2])
    assert abs(a.sum()) < 1e-12 and a.max() == 1.0 and a.min() == -1.0


def test_groups_and_advantages():
    np.testing.assert_allclose(per_group(rank_norm, [1, 2, 5, 5], 2), [-1, 1, 0, 0])
    with pytest.raises(ConfigError):
        per_group(rank_norm, [1, 2, 3], 2)
    # stage text: RankNorm(R_text) per group
    np.testing.assert_allclose(valor_advantages([0.1, 0.3, 0.2, 0.2], group_size=2), [-1, 1, 0, 0])
    # stage visual, lambda_vis = 1: advantages follow the similarity ranks only
    np.testing.assert_allclose(valor_advantages([0.9, 0.1], [0.2, 0.8], group_size=2, lambda_vis=1.0), [-1.0, 1.0])
    # lambda_vis = 0.5: R_vis = 0.5*[0.9, 0.1] + 0.5*[0, 1] = [0.45, 0.55]
    np.testing.assert_allclose(valor_advantages([0.9, 0.1], [0.2, 0.8], group_size=2, lambda_vis=0.5), [-1.0, 1.0])
    # lambda_vis = 0: similarities ignored
    np.testing.assert_allclose(valor_advantages([0.9, 0.1], [0.2, 0.8], group_size=2, lambda_vis=0.0), [1.0, -1.0])


# ----- Eq. 3–5 ---------------------------------------------------------------------------------------


def test_eq3_eq4_scalar():
    assert verifiable_reward(0.2, 0.4, 0.6, 0.3, 0.7) == pytest.approx(0.3 * 0.6 + 0.7 * 0.6)
    assert verifiable_reward(0.2, 0.4, 0.6, 1.0, 0.0) == pytest.approx(0.6)
    assert verifiable_reward(0.2, 0.4, 0.6, 0.0, 1.0) == pytest.approx(0.6)
    assert clinical_reward(0.5, 0.25, 0.4, 2.0) == pytest.approx(0.2 + 0.5)


def test_eq5_k_clin_boundaries():
    assert [k for k in range(1, 13) if is_clinical_step(k, 4)] == [4, 8, 12]
    assert all(is_clinical_step(k, 1) for k in range(1, 6))
    assert text_reward(0.5, 0.25, 3, 4, 2.0) == pytest.approx(0.5)
    assert text_reward(0.5, 0.25, 4, 4, 2.0) == pytest.approx(1.0)
    assert text_reward(0.5, 0.25, 4, 4, 0.0) == pytest.approx(0.5)


# ----- configuration --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw",
    [
        {"lambda_lex": 0.6, "lambda_sem": 0.6},
        {"lambda_lex": -0.1, "lambda_sem": 1.1},
        {"lambda_cx": math.nan},
        {"lambda_clin": -1},
        {"lambda_vis": 1.01},
        {"lambda_vis": True},
        {"k_clin": 0},
        {"k_clin": 2.5},
        {"step_offset": -1},
        {"bleu4": ""},
        {"rouge_l": "a:b:c"},
        {"metric_options": {"bleu": "whitespace"}},
        {"on_error": math.inf},
        {"reference_column": ""},
    ],
)
def test_config_rejects_bad_values(kw):
    with pytest.raises(ConfigError):
        ValorConfig(**kw)


def test_config_defaults_and_from_dict():
    c = ValorConfig()
    assert (c.lambda_lex, c.lambda_sem, c.lambda_vis, c.k_clin, c.lambda_clin) == (0.5, 0.5, 0.5, 10, 1.0)
    assert ValorConfig.from_dict({"k_clin": 3}).k_clin == 3
    with pytest.raises(ConfigError, match="unknown VALOR setting"):
        ValorConfig.from_dict({"kclin": 3})


# ----- the TRL reward callables ---------------------------------------------------------------------


def test_ver_reward_eq3(fake_metric):
    f = make_ver_reward(fake_config(lambda_lex=0.25, lambda_sem=0.75))
    out = f(prompts=["p", "p"], completions=["<report>0.2,0.4,0.8</report>", "0,0,1"], ground_truth=["r", "r"])
    assert f.__name__ == "valor_ver"
    assert out == pytest.approx([0.25 * 0.6 + 0.75 * 0.8, 0.75])


def test_clin_reward_eq4(fake_metric):
    f = make_clin_reward(fake_config(lambda_cx=2.0, lambda_rg=0.5))
    assert f(completions=["0.5,0,0.4"], ground_truth=["r"]) == pytest.approx([1.0 + 0.2])


def test_text_reward_periodic_injection(fake_metric):
    cfg = fake_config(lambda_lex=0.5, lambda_sem=0.5, lambda_cx=1.0, lambda_rg=0.0, lambda_clin=2.0, k_clin=3)
    f = make_text_reward(cfg)
    comps, refs = ["0.2,0.4,0.6"], ["r"]
    r_ver = 0.5 * (0.2 + 0.4) + 0.5 * 0.6  # 0.6
    logged = []
    log = lambda name, v: logged.append((name, v))  # noqa: E731
    # k = global_step + 1: global_step 0, 1 -> k 1, 2 (no clinical term); 2 -> k 3 (clinical)
    assert f(completions=comps, ground_truth=refs, trainer_state=step(0)) == pytest.approx([r_ver])
    assert f(completions=comps, ground_truth=refs, trainer_state=step(1)) == pytest.approx([r_ver])
    assert f(completions=comps, ground_truth=refs, trainer_state=step(2), log_metric=log) == pytest.approx(
        [r_ver + 2.0 * 0.2]
    )
    assert f(completions=comps, ground_truth=refs, trainer_state=step(5)) == pytest.approx([r_ver + 0.4])
    assert ("valor/r_clin", pytest.approx(0.2)) in logged and ("valor/r_ver", pytest.approx(0.6)) in logged
    # no trainer_state: k = 1
    assert f(completions=comps, ground_truth=refs) == pytest.approx([r_ver])
    # lambda_clin = 0: clinical steps change nothing
    f0 = make_text_reward(fake_config(lambda_clin=0.0, k_clin=1))
    assert f0(completions=comps, ground_truth=refs, trainer_state=step(0)) == pytest.approx([0.5 * 0.6 + 0.5 * 0.6])


def test_text_reward_step_offset(fake_metric):
    # stage visual continues k: offset 2, global_step 0 -> k = 3
    f = make_text_reward(fake_config(k_clin=3, lambda_clin=1.0, lambda_cx=1.0, lambda_rg=0.0, step_offset=2))
    assert f(completions=["0,0,0.5"], ground_truth=["r"], trainer_state=step(0)) == pytest.approx([0.25 + 0.0])
    g = make_text_reward(fake_config(k_clin=3, lambda_clin=1.0, lambda_cx=1.0, lambda_rg=0.0, step_offset=2))
    assert g(completions=["1,0,0"], ground_truth=["r"], trainer_state=step(0)) == pytest.approx([0.5 + 1.0])
    h = make_text_reward(fake_config(k_clin=3, lambda_clin=1.0, lambda_cx=1.0, lambda_rg=0.0, step_offset=0))
    assert h(completions=["1,0,0"], ground_truth=["r"], trainer_state=step(0)) == pytest.approx([0.5])


def test_composite_failures_are_on_error_not_nan(fake_metric):
    f = make_ver_reward(fake_config(on_error=-1.0))
    out = f(completions=["garbage", "0.1,0.1,0.1", ""], ground_truth=["r", "r", None])
    assert out[0] == -1.0 and out[1] == pytest.approx(0.5 * 0.2 + 0.5 * 0.1) and out[2] == -1.0
    assert all(math.isfinite(v) for v in out)


def test_zero_weight_terms_never_computed(fake_metric):
    # RadGraph is not registered in this install: lambda_rg = 0 must not need it
    f = make_clin_reward(fake_config(radgraph="radgraph_not_registered", lambda_rg=0.0, lambda_cx=1.0))
    assert f(completions=["0.3,0,0"], ground_truth=["r"]) == pytest.approx([0.3])
    with pytest.raises(ConfigError):
        make_clin_reward(fake_config(radgraph="radgraph_not_registered", lambda_rg=0.5))


def test_format_and_stage_rewards(fake_metric):
    assert valor_format_reward.__name__ == "valor_format"
    assert valor_format_reward(completions=["<report>a</report>", "<report>a", ""]) == [1.0, 0.0, 0.0]
    funcs = make_valor_rewards(fake_config())
    assert [f.__name__ for f in funcs] == ["valor_text", "valor_format"]


def test_composite_shares_pair_scoring(fake_metric):
    # R_ver uses three keys of one metric: one metric call for the distinct pairs, none again
    f = make_ver_reward(fake_config())
    comps = ["0.1,0.2,0.3"] * 4 + ["0.3,0.2,0.1"] * 4
    f(completions=comps, ground_truth=["r"] * 8)
    assert len(fake_metric.calls) == 1 and len(fake_metric.calls[0][0]) == 2
    make_clin_reward(fake_config())(completions=comps, ground_truth=["r"] * 8)
    assert len(fake_metric.calls) == 1


def test_text_reward_counts_its_own_calls_without_trainer_state(fake_metric):
    # TRL's async rollout process passes no trainer_state: k = ceil(calls / calls_per_step)
    cfg = fake_config(lambda_cx=1.0, lambda_rg=0.0, lambda_clin=1.0, k_clin=2, calls_per_step=2)
    f = make_text_reward(cfg)
    r_ver = 0.5 * (0.2 + 0.4) + 0.5 * 0.6
    got = [f(completions=["0.2,0.4,0.6"], ground_truth=["r"])[0] for _ in range(6)]
    # calls 1-2 -> k 1, calls 3-4 -> k 2 (clinical), calls 5-6 -> k 3
    assert got == pytest.approx([r_ver, r_ver, r_ver + 0.2, r_ver + 0.2, r_ver, r_ver])
    # a global_step column (verl's extra_info) takes precedence over the counter
    assert f(completions=["0.2,0.4,0.6"], ground_truth=["r"], global_step=[1])[0] == pytest.approx(r_ver + 0.2)
    # the counter is per process state: a pickled copy starts again at call 1
    import pickle

    g = pickle.loads(pickle.dumps(f))
    assert g == f and g(completions=["0.2,0.4,0.6"], ground_truth=["r"])[0] == pytest.approx(r_ver)


def test_text_reward_logs_components_through_trl_hooks(fake_metric):
    f = make_text_reward(fake_config(lambda_cx=1.0, lambda_rg=0.0, k_clin=1))
    metrics, extra = [], {}
    f(
        completions=["0.2,0.4,0.6", "garbage"],
        ground_truth=["r", "r"],
        trainer_state=step(0),
        log_metric=lambda n, v: metrics.append((n, v)),
        log_extra=lambda c, v: extra.__setitem__(c, v),
    )
    names = [n for n, _ in metrics]
    assert {"valor/r_ver", "valor/r_clin", "valor/clinical_step"} <= set(names)
    assert extra["valor/r_ver"] == [pytest.approx(0.6), None] and extra["valor/r_clin"] == [pytest.approx(0.2), None]
    assert valor_format_reward.__name__ == "valor_format"


def test_composite_unscored_is_none_by_default(fake_metric):
    f = make_ver_reward(fake_config())
    assert f(completions=["garbage", "0.1,0.1,0.1"], ground_truth=["r", "r"])[0] is None
