"""radeval: metrics and GRPO rewards for chest X-ray report generation.

Public API: :func:`evaluate`, :func:`get_metric`, :func:`list_metrics`, :class:`Result`.
"""

from __future__ import annotations

__version__ = "0.1.0"

from radeval.errors import RadevalError  # noqa: E402
from radeval.registry import get_metric, list_metrics  # noqa: E402

__all__ = ["__version__", "evaluate", "get_metric", "list_metrics", "Result", "RadevalError"]


def __getattr__(name: str):
    # evaluate/Result pull in numpy-heavy code; keep `import radeval` cheap for the CLI's --help
    if name in ("evaluate", "Result", "compare"):
        from radeval import evaluation

        return getattr(evaluation, name)
    raise AttributeError(name)
