"""What a reward gives an empty completion: the ``empty=`` option.

A reward must not pay a policy for saying nothing. Several reference packages give an empty
hypothesis a good score against some references (the rule-based CheXpert F1 of an empty report
against a normal reference is 1: no finding on either side), and the evaluator keeps each
package's own rule, because that is the number the package reports. Rewards differ by default:

* ``empty="worst"`` (the reward default): a completion whose extracted report is empty or
  whitespace-only scores the key's worst value without being scored — its minimum, or its
  maximum for a lower-is-better key (RadCliQ). The worst values are below.
* ``empty="metric"``: score it like any other completion (the reference package's rule; what
  the evaluator does).
* ``empty=<number>``: that value (RadVLM-GRPO's −RadCliQ reward uses −3).

The choice is part of the reward's signature (``...|empty:worst=0``), so a number from a reward
and one from the evaluator are told apart.

Worst values. A metric may declare them as ``value_ranges = {key: (low, high)}`` (a class or
instance attribute); the worst is ``low`` for higher-is-better keys and ``high`` otherwise.
Without a declaration, :data:`KNOWN_WORST` below applies by key prefix. A key with neither is
scored by the metric's own rule and a warning says so once (declare ``value_ranges`` to fix).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

from radeval.errors import ConfigError

WORST = "worst"
METRIC_RULE = "metric"

#: key prefix -> worst value, for keys of the built-in metrics (first matching prefix wins)
KNOWN_WORST: tuple[tuple[str, float | str], ...] = (
    # n-gram overlaps, F1s and similarity ratios in [0, 1]
    ("bleu_", 0.0),
    ("rouge_l", 0.0),
    ("meteor", 0.0),
    ("cider", 0.0),
    ("chexpert_rules_", 0.0),
    ("chexbert_", 0.0),
    ("radgraph_", 0.0),
    ("ratescore", 0.0),
    ("green", 0.0),
    # BERTScore: bert-score's own rule for an empty side (raw P = R = F = 0, then the rescaling
    # where the metric rescales) is already below any real pair: raw cosine-based F of two
    # non-empty texts is positive in practice. Scoring it the package's way gives that floor
    # (also after rescaling, which needs the metric's baseline).
    ("bertscore", METRIC_RULE),
    # RadCliQ-v1 is an unbounded distance (lower is better); RadVLM-GRPO scores an empty or
    # failed report −3 under its −RadCliQ reward, i.e. a distance of 3. We use the same value.
    ("radcliq", 3.0),
)


def check_empty(empty: Any) -> str | float:
    """Validate an ``empty=`` option: ``"worst"``, ``"metric"`` or a finite number."""
    if empty in (WORST, METRIC_RULE):
        return empty
    if isinstance(empty, bool) or not isinstance(empty, (int, float)) or not math.isfinite(empty):
        raise ConfigError(f"empty must be 'worst', 'metric' or a finite number, got {empty!r}")
    return float(empty)


def worst_value(metric: Any, key: str) -> float | None:
    """The key's worst value, or None when it is unknown or the metric's own rule is the floor."""
    ranges = getattr(metric, "value_ranges", None)
    if isinstance(ranges, dict) and key in ranges:
        low, high = ranges[key]
        try:
            higher = bool(metric.higher_is_better(key))
        except Exception:
            higher = True
        return float(low if higher else high)
    for prefix, value in KNOWN_WORST:
        if key.startswith(prefix):
            return None if value == METRIC_RULE else float(value)
    return None


def has_known_worst(metric: Any, key: str) -> bool:
    ranges = getattr(metric, "value_ranges", None)
    if isinstance(ranges, dict) and key in ranges:
        return True
    return any(key.startswith(p) for p, _ in KNOWN_WORST)


_WARNED: set[str] = set()


def resolve_empty(empty: str | float, metric: Any, key: str) -> float | None:
    """The value an empty completion gets, or None to score it with the metric's own rule."""
    if empty == METRIC_RULE:
        return None
    if empty != WORST:
        return float(empty)
    if not has_known_worst(metric, key) and key not in _WARNED:
        _WARNED.add(key)
        warnings.warn(
            f"no worst value is known for key {key!r}: empty completions are scored by the metric's "
            "own rule; declare value_ranges on the metric or pass empty=<number>",
            UserWarning,
            stacklevel=3,
        )
    return worst_value(metric, key)


def empty_tag(empty: str | float, metric: Any = None, key: str | None = None) -> str:
    """The signature fragment for an ``empty=`` setting."""
    if empty == METRIC_RULE:
        return "empty:metric"
    if empty == WORST:
        if metric is not None and key is not None:
            v = worst_value(metric, key)
            return "empty:worst=" + ("metric" if v is None else f"{v:g}")
        return "empty:worst"
    return f"empty:{float(empty):g}"
