"""RadVLM-GRPO's rewards: box grounding (per-sample AP@0.5) and negative RadCliQ-v1.

Box format. A completion writes boxes as ``[x1, y1, x2, y2]``: four non-negative decimal numbers
(``0.12``, ``12``, ``.5``, ``3.``) separated by commas, whitespace allowed around them, (x1, y1)
the top-left and (x2, y2) the bottom-right corner. Boxes are read left to right from the whole
completion text (conversational completions: the assistant text); the order written is the
ranking AP uses, since a generated answer carries no confidence scores. Coordinates are
normalised to [0, 1] of the image width/height (RadVLM's convention) or, with
``pred_format="pixel"``, in pixels of an image whose size is given per row (``(width, height)``
in the ``image_size`` column, or read from a PIL image in ``image``/``images``); pixels are
divided by the size. Reference boxes come from a dataset column (default ``boxes``) as a list of
four-number lists (or a string in the completion format) in the same normalised coordinates.

Per-sample AP@0.5 (RadVLM's evaluation, ``evaluate_boxes``; their table averages it over
samples):

1. IoU of every predicted box with every reference box; a box with non-positive width or height
   has area 0 and an IoU of 0 with everything (RadVLM divides by zero there).
2. In the order written, each predicted box takes the reference box of highest IoU (the first
   on ties); it is a true positive if that IoU ≥ 0.5 and that reference is not matched yet,
   otherwise a false positive. (A box whose best reference is taken does not fall back to its
   second best: that is RadVLM's rule, kept for parity.)
3. Cumulative precision/recall over that order; AP = area under the precision envelope, all
   points (sentinels recall 0 → precision 0 and recall 1 → precision 0, precision made
   non-increasing from the right, summed over recall steps): VOC 2010+ style.
4. No predicted box, or no reference box → 0.

Hand-checked: one reference, prediction = reference → 1.0; predictions [miss, hit] → 0.5;
references A, B and predictions [A, B] → 1.0, [A, miss] → 0.5.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from radeval.errors import ConfigError
from radeval.rewards.base import Reward
from radeval.rewards.extract import completion_text

_NUM = r"(\d+(?:\.\d*)?|\.\d+)"
BOX_PATTERN = re.compile(r"\[\s*" + r"\s*,\s*".join([_NUM] * 4) + r"\s*\]")
IOU_THRESHOLD = 0.5


def parse_boxes(text: str) -> list[tuple[float, float, float, float]]:
    """All ``[x1, y1, x2, y2]`` boxes in ``text``, in the order written."""
    out = []
    for m in BOX_PATTERN.finditer(text if isinstance(text, str) else ""):
        try:
            box = tuple(float(g) for g in m.groups())
        except ValueError:  # pragma: no cover - the pattern only admits valid floats
            continue
        if all(math.isfinite(c) for c in box):
            out.append(box)  # type: ignore[arg-type]
    return out


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two corner boxes; 0 when either box has no area."""
    aw, ah = a[2] - a[0], a[3] - a[1]
    bw, bh = b[2] - b[0], b[3] - b[1]
    if aw <= 0 or ah <= 0 or bw <= 0 or bh <= 0:
        return 0.0
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    inter = iw * ih if iw > 0 and ih > 0 else 0.0
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def _envelope_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    r = np.concatenate(([0.0], recall, [1.0]))
    p = np.concatenate(([0.0], precision, [0.0]))
    for i in range(len(p) - 1, 0, -1):
        p[i - 1] = max(p[i - 1], p[i])
    steps = np.where(r[1:] != r[:-1])[0]
    return float(np.sum((r[steps + 1] - r[steps]) * p[steps + 1]))


def average_precision(
    predicted: Sequence[Sequence[float]], reference: Sequence[Sequence[float]], threshold: float = IOU_THRESHOLD
) -> float:
    """Per-sample AP at an IoU threshold over the written order (module docstring)."""
    if len(predicted) == 0 or len(reference) == 0:
        return 0.0
    ious = np.array([[iou(p, g) for g in reference] for p in predicted], dtype=np.float64)
    matched: set[int] = set()
    tp = np.zeros(len(predicted))
    for i in range(len(predicted)):
        j = int(np.argmax(ious[i]))
        if ious[i, j] >= threshold and j not in matched:
            tp[i] = 1.0
            matched.add(j)
    tp_cum = np.cumsum(tp)
    ranks = np.arange(1, len(predicted) + 1, dtype=np.float64)
    return _envelope_ap(tp_cum / len(reference), tp_cum / ranks)


def _reference_boxes(value: Any) -> list[tuple[float, float, float, float]] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return parse_boxes(value)
    arr = value.tolist() if hasattr(value, "tolist") else value
    if isinstance(arr, (list, tuple)) and len(arr) == 4 and all(isinstance(c, (int, float)) for c in arr):
        arr = [arr]  # a single box
    try:
        boxes = [tuple(float(c) for c in b) for b in arr]
    except (TypeError, ValueError):
        return None
    if not all(len(b) == 4 and all(math.isfinite(c) for c in b) for b in boxes):
        return None
    return boxes  # type: ignore[return-value]


def _image_size(kwargs: dict[str, Any], size_column: str, i: int) -> tuple[float, float] | None:
    col = kwargs.get(size_column)
    if col is not None:
        try:
            w, h = col[i]
            w, h = float(w), float(h)
            return (w, h) if w > 0 and h > 0 and math.isfinite(w) and math.isfinite(h) else None
        except (TypeError, ValueError, IndexError):
            return None
    imgs = kwargs.get("image", kwargs.get("images"))
    if imgs is None:
        return None
    try:
        img = imgs[i]
        if isinstance(img, (list, tuple)):
            img = img[0]
        w, h = img.size  # PIL
        return float(w), float(h)
    except Exception:
        return None


class BoxReward(Reward):
    """Per-sample AP at ``threshold`` of the boxes written in each completion (picklable).

    A row whose reference boxes or image size are unusable is unscored (``on_error``, default
    ``None``). An empty completion writes no box and scores 0 — AP's own rule, which is also
    its worst value.
    """

    def __init__(
        self,
        *,
        reference_column: str = "boxes",
        pred_format: str = "normalized",
        size_column: str = "image_size",
        threshold: float = IOU_THRESHOLD,
        on_error: float | None = None,
        name: str = "radeval_box_ap50",
    ):
        if pred_format not in ("normalized", "pixel"):
            raise ConfigError(f"pred_format must be 'normalized' or 'pixel', got {pred_format!r}")
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold <= 1:
            raise ConfigError(f"IoU threshold must be in (0, 1], got {threshold!r}")
        if on_error is not None and (
            isinstance(on_error, bool) or not isinstance(on_error, (int, float)) or not math.isfinite(on_error)
        ):
            raise ConfigError(f"on_error must be a finite number or None, got {on_error!r}")
        super().__init__(name)
        self.reference_column = reference_column
        self.pred_format = pred_format
        self.size_column = size_column
        self.threshold = float(threshold)
        self.on_error = None if on_error is None else float(on_error)

    def __call__(
        self,
        prompts: Sequence[Any] | None = None,
        completions: Sequence[Any] = (),
        completion_ids: Sequence[Any] | None = None,
        **kwargs: Any,
    ) -> list[float | None]:
        from radeval.rewards.trl import references

        n = len(completions)
        if n == 0:
            return []
        references(kwargs, self.reference_column, n)  # same error as other rewards if the column is absent
        col = kwargs[self.reference_column]
        out: list[float | None] = []
        for i, c in enumerate(completions):
            try:
                ref = _reference_boxes(col[i])
                if ref is None:
                    out.append(self.on_error)
                    continue
                pred = parse_boxes(completion_text(c))
                if self.pred_format == "pixel" and pred:
                    size = _image_size(kwargs, self.size_column, i)
                    if size is None:
                        out.append(self.on_error)
                        continue
                    w, h = size
                    pred = [(b[0] / w, b[1] / h, b[2] / w, b[3] / h) for b in pred]
                v = average_precision(pred, ref, self.threshold)
                out.append(v if math.isfinite(v) else self.on_error)
            except Exception:
                out.append(self.on_error)
        return out


def make_box_reward(
    *,
    reference_column: str = "boxes",
    pred_format: str = "normalized",
    size_column: str = "image_size",
    threshold: float = IOU_THRESHOLD,
    on_error: float | None = None,
    name: str = "radeval_box_ap50",
) -> BoxReward:
    """TRL reward: per-sample AP at ``threshold`` of the boxes written in each completion.

    Args:
        reference_column: column with each row's reference boxes (normalised coordinates).
        pred_format: ``"normalized"`` (boxes in [0, 1]) or ``"pixel"`` (divided by the image
            size from ``size_column`` or from the PIL image; no size → ``on_error``).
        size_column: column with ``(width, height)`` per row, for ``pred_format="pixel"``.
        threshold: IoU threshold (0.5: AP@0.5).
        on_error: value when a row's reference or image size is unusable (None: unscored).
        name: the reward's ``__name__``.
    """
    return BoxReward(
        reference_column=reference_column,
        pred_format=pred_format,
        size_column=size_column,
        threshold=threshold,
        on_error=on_error,
        name=name,
    )


box_ap50_reward = make_box_reward()

#: RadVLM-GRPO's value for an empty or failed report under its RadCliQ reward
RADCLIQ_FAILED = -3.0


def make_radcliq_reward(
    metric_name: str = "radcliq",
    key: str | None = None,
    *,
    reference_column: str = "ground_truth",
    failed_value: float = RADCLIQ_FAILED,
    on_error: float | None = None,
    metric_options: dict[str, Any] | None = None,
    name: str = "radeval_neg_radcliq",
):
    """RadVLM-GRPO's report reward: −RadCliQ-v1 (a distance, lower is better), −3 when empty.

    Plugs into whatever metric is registered as ``metric_name``. An empty extracted report scores
    ``failed_value`` without scoring (RadVLM-GRPO's rule; it equals ``empty="worst"`` under our
    RadCliQ worst value of 3). A pair whose scoring fails or is non-finite is unscored
    (``on_error``, default ``None``); pass ``on_error=-3.0`` for RadVLM-GRPO's exact rule.
    Returns a picklable :class:`radeval.rewards.trl.MetricReward` (``transform="neg"``).
    """
    from radeval.rewards.trl import make_reward

    return make_reward(
        metric_name,
        key,
        reference_column=reference_column,
        metric_options=metric_options,
        on_error=on_error,
        empty=failed_value,
        transform="neg",
        name=name,
    )
