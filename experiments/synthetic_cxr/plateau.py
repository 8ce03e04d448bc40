"""SFT until validation F1 plateaus: a TrainerCallback that evaluates and stops.

Every ``every`` optimizer steps the callback decodes the validation split greedily with the
model being trained (the project's ``generate_predictions`` on the live model), scores the
five-finding true-label micro-F1 and stops training once the F1 values measured in the last
20% of the steps so far (at least three evaluations) span less than ``tol`` points (×100) —
the issue's plateau criterion. ``max_steps`` in the stage config is the cap; whether the
plateau was reached is recorded, never assumed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from experiments.synthetic_cxr import oracle


def plateau_reached(history: list[tuple[int, float]], *, tol: float = 1.0, frac: float = 0.2, min_points: int = 3):
    """(reached, span): span of F1 (points) over evaluations in the last ``frac`` of the steps."""
    if not history:
        return False, float("nan")
    last = history[-1][0]
    window = [f for s, f in history if s >= (1.0 - frac) * last]
    if len(window) < min_points:
        return False, float("nan")
    span = max(window) - min(window)
    return span < tol, span


def val_f1(cfg, model, processor, out: Path, truth: dict[str, list[str]]) -> float:
    """Greedy micro-F1 (×100) of the live model on ``cfg``'s eval split."""
    from trainers.generation import generate_predictions

    was_training = model.training
    try:
        path = generate_predictions(cfg, None, output=out, model_and_processor=(model, processor))
    finally:
        model.train(was_training)
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    pred = oracle.label_matrix([r["prediction"] for r in rows])
    true = oracle.truth_matrix([truth[r["id"]] for r in rows])
    return 100.0 * oracle.micro_f1(oracle.counts(pred, true))


def make_callback(cfg, truth: dict[str, list[str]], log_path: Path, *, every: int, min_steps: int, tol: float = 1.0):
    """A transformers TrainerCallback running :func:`val_f1` every ``every`` steps (and at step 0)."""
    from transformers import TrainerCallback

    class PlateauCallback(TrainerCallback):
        def __init__(self):
            self.history: list[tuple[int, float]] = []
            self.reached = False
            self.span = float("nan")

        def _eval(self, state, model, processor):
            f1 = val_f1(cfg, model, processor, log_path.parent / "val_predictions.jsonl", truth)
            self.history.append((int(state.global_step), round(f1, 3)))
            self.reached, self.span = plateau_reached(self.history, tol=tol)
            log_path.write_text(
                json.dumps(
                    {
                        "every": every,
                        "min_steps": min_steps,
                        "tol_points": tol,
                        "history": self.history,
                        "plateau_reached": self.reached,
                        "span_last_20pct": self.span,
                    },
                    indent=1,
                )
                + "\n"
            )

        def on_train_begin(self, args, state, control, model=None, processing_class=None, **kw: Any):
            self._eval(state, model, processing_class)

        def on_step_end(self, args, state, control, model=None, processing_class=None, **kw: Any):
            if state.global_step % every == 0:
                self._eval(state, model, processing_class)
                if self.reached and state.global_step >= min_steps:
                    control.should_training_stop = True
            return control

    return PlateauCallback()
