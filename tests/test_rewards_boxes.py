"""Box-grounding reward (per-sample AP@0.5) and the RadCliQ reward wrapper, on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from radeval.errors import ConfigError
from radeval.metric import MeanMetric
from radeval.registry import _REGISTRY, MetricSpec, register
from radeval.rewards import trl as rtrl
from radeval.rewards.boxes import (
    average_precision,
    box_ap50_reward,
    iou,
    make_box_reward,
    make_radcliq_reward,
    parse_boxes,
)

A = (0.1, 0.1, 0.3, 0.3)
B = (0.6, 0.6, 0.9, 0.9)
MISS = (0.4, 0.0, 0.5, 0.1)


def fmt(*boxes):
    return " and ".join("[" + ", ".join(f"{c:g}" for c in b) + "]" for b in boxes)


def test_parse_boxes():
    assert parse_boxes("left lung [0.1, 0.2, 0.3, 0.4] and [.5,0.6 , 1, 1.]") == [
        (0.1, 0.2, 0.3, 0.4),
        (0.5, 0.6, 1.0, 1.0),
    ]
    assert parse_boxes("[ 10, 20, 30, 40 ]") == [(10.0, 20.0, 30.0, 40.0)]
    # not boxes: three numbers, negative numbers, words, nested garbage
    assert parse_boxes("[0.1, 0.2, 0.3] [-0.1, 0.2, 0.3, 0.4] [a, b, c, d] [1.2.3, 1, 1, 1]") == []
    assert parse_boxes("") == [] and parse_boxes(None) == []  # type: ignore[arg-type]


def test_iou_hand_values():
    assert iou(A, A) == 1.0
    assert iou(A, B) == 0.0
    # [0,0,2,2] vs [1,1,3,3]: intersection 1, union 4 + 4 - 1 = 7
    assert iou((0, 0, 2, 2), (1, 1, 3, 3)) == pytest.approx(1 / 7)
    # [0,0,1,1] vs [0,0,1,2]: 1 / 2
    assert iou((0, 0, 1, 1), (0, 0, 1, 2)) == pytest.approx(0.5)
    assert iou((0.5, 0.5, 0.5, 0.9), A) == 0.0  # zero width
    assert iou((0.3, 0.3, 0.1, 0.1), (0.3, 0.3, 0.1, 0.1)) == 0.0  # inverted corners


@pytest.mark.parametrize(
    "pred,ref,ap",
    [
        ([A], [A], 1.0),
        ([MISS, A], [A], 0.5),  # TP at rank 2: precision 1/2 at recall 1
        ([A, MISS], [A], 1.0),  # a trailing FP does not lower AP
        ([A, B], [A, B], 1.0),
        ([A, MISS], [A, B], 0.5),  # recall stops at 1/2
        ([MISS, A, B], [A, B], 2 / 3),  # precisions 1/2, 2/3 at recalls 1/2, 1; envelope lifts 1/2 to 2/3
        ([A, A], [A], 1.0),  # duplicate: second is FP after the only TP
        ([A, A, B], [A, B], 0.5 * 1 + 0.5 * (2 / 3)),
        ([], [A], 0.0),
        ([A], [], 0.0),
        ([MISS], [A], 0.0),
    ],
)
def test_average_precision_hand_cases(pred, ref, ap):
    assert average_precision(pred, ref) == pytest.approx(ap)


def test_greedy_rule_is_best_iou_only():
    # ref R1 = [0,0,1,1], R2 = [0,0,1,0.8]. p1 = R1 exactly: best is R1 (TP).
    # p2 = [0,0,1,0.9]: IoU 0.9 with R1 (taken), 0.8/0.9=0.889 with R2 -> best is R1 -> FP (RadVLM's rule)
    r1, r2 = (0, 0, 1, 1), (0, 0, 1, 0.8)
    p2 = (0, 0, 1, 0.9)
    assert iou(p2, r1) > iou(p2, r2) >= 0.5
    assert average_precision([r1, p2], [r1, r2]) == pytest.approx(0.5)


def test_threshold_boundary():
    # IoU exactly 0.5 counts (>=)
    assert average_precision([(0, 0, 1, 1)], [(0, 0, 1, 2)]) == 1.0
    assert average_precision([(0, 0, 1, 1)], [(0, 0, 1, 2.01)]) == 0.0


def test_box_reward_contract():
    comps = [f"The opacity is at {fmt(MISS, A)}.", [{"role": "assistant", "content": fmt(A, B)}], "no boxes", fmt(A)]
    boxes = [[list(A)], [list(A), list(B)], [list(A)], "[0.1, 0.1, 0.3, 0.3]"]
    assert box_ap50_reward.__name__ == "radeval_box_ap50"
    assert box_ap50_reward(prompts=[""] * 4, completions=comps, boxes=boxes) == pytest.approx([0.5, 1.0, 0.0, 1.0])
    # a single box given flat, numpy arrays, an unusable reference (unscored: None)
    assert box_ap50_reward(completions=[fmt(A), fmt(A), fmt(A)], boxes=[list(A), np.array([A]), [["x"]]]) == [
        1.0,
        1.0,
        None,
    ]


def test_box_reward_pixels():
    f = make_box_reward(pred_format="pixel", on_error=-1.0)
    # image 200 x 100: pixels [20, 10, 60, 30] = normalised A
    assert f(completions=["[20, 10, 60, 30]"], boxes=[[A]], image_size=[(200, 100)]) == [1.0]
    assert f(completions=["[20, 10, 60, 30]"], boxes=[[A]], image_size=[(100, 200)]) == [0.0]
    assert f(completions=["[20, 10, 60, 30]"], boxes=[[A]]) == [-1.0]  # no size known

    class Img:  # PIL-like
        size = (200, 100)

    assert f(completions=["[20, 10, 60, 30]"], boxes=[[A]], image=[Img()]) == [1.0]
    with pytest.raises(ConfigError):
        make_box_reward(pred_format="percent")
    with pytest.raises(ConfigError):
        make_box_reward(threshold=0)


# ----- RadCliQ wrapper against a fake registered "radcliq" -----------------------------------------------


class FakeRadCliQ(MeanMetric):
    name = "radcliq"
    keys = ("radcliq",)
    directions = {"radcliq": False}

    def settings(self):
        return {"impl": "fake"}

    def values(self, hyps, refs, images=None):
        out = []
        for h in hyps:
            if "FAIL" in h:
                raise RuntimeError("radcliq failed")
            out.append(math.nan if "NAN" in h else 0.1 * len(h.split()))
        return {"radcliq": np.array(out)}


@pytest.fixture
def fake_radcliq():
    existed = _REGISTRY.get("radcliq")
    register(MetricSpec("radcliq", f"{__name__}:FakeRadCliQ", ("radcliq",), "fake"), replace=True)
    rtrl.clear_caches()
    yield
    if existed is None:
        _REGISTRY.pop("radcliq", None)
    else:
        _REGISTRY["radcliq"] = existed
    rtrl.clear_caches()


def test_radcliq_reward_wrapper(fake_radcliq):
    f = make_radcliq_reward()
    assert f.__name__ == "radeval_neg_radcliq"
    out = f(
        completions=["<report>two words</report>", "", "<report> </report>", "FAIL now", "NAN"],
        ground_truth=["ref"] * 5,
    )
    # empty -> RadVLM's -3 without scoring; a failed or non-finite pair is unscored (None)
    assert out[:3] == pytest.approx([-0.2, -3.0, -3.0]) and out[3:] == [None, None]
    strict = make_radcliq_reward(on_error=-3.0)  # RadVLM-GRPO's exact rule
    assert strict(completions=["FAIL now", "NAN"], ground_truth=["r", "r"]) == [-3.0, -3.0]


def test_radcliq_module_reward_and_direction_warning(fake_radcliq):
    import radeval.rewards as R

    assert R.radvlm_radcliq_reward.__name__ == "radeval_neg_radcliq"
    assert R.radvlm_radcliq_reward(completions=["a b c"], ground_truth=["r"]) == pytest.approx([-0.3])
    plain = R.make_reward("radcliq")  # a distance as is: TRL would maximise it, so it warns
    with pytest.warns(UserWarning, match="lower is better"):
        assert plain(completions=["a b"], ground_truth=["r"]) == pytest.approx([0.2])
