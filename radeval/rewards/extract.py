"""Report text from a completion, and the ``<report>…</report>`` format reward.

The rule (shared/DESIGN.md, "VALOR composites"): the format reward is 1 when the completion holds
exactly one ``<report>…</report>`` span, else 0; every other reward scores the text inside the
tags, or the whole text when there is no complete span. Details fixed here:

* Tags are the literal, lower-case strings ``<report>`` and ``</report>``.
* "Exactly one span" means: one opening tag, one closing tag, the opening one first, and
  non-blank text between them (an empty span would pay the format reward for writing nothing).
  Text outside the span (e.g. reasoning before it) is allowed.
* Extraction takes the text between the first ``<report>`` and the first ``</report>`` after it,
  stripped. With no such pair the whole completion (stripped) is scored, stray tags included:
  a malformed answer is not repaired for the other rewards.
* Completions may be strings or TRL's conversational form (a list of ``{"role", "content"}``
  messages, where ``content`` may itself be a list of parts such as ``{"type": "text", "text":
  ...}``). The assistant messages' text parts are joined with newlines; non-text parts (images)
  are ignored. Anything else (``None``, numbers, malformed dicts) reads as ``""`` so a reward
  never raises on a strange completion.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from radeval.rewards.base import Reward, log_metric

OPEN_TAG = "<report>"
CLOSE_TAG = "</report>"


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        # a single part given as a dict
        if content.get("type", "text") == "text" and isinstance(content.get("text"), str):
            return content["text"]
        return ""
    if isinstance(content, (list, tuple)):
        return "\n".join(t for t in (_content_text(p) for p in content) if t)
    return ""


def completion_text(completion: Any) -> str:
    """The generated text of one completion (string or conversational), never raising."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):  # a single message
        completion = [completion]
    if isinstance(completion, (list, tuple)):
        messages = [m for m in completion if isinstance(m, dict)]
        assistant = [m for m in messages if m.get("role", "assistant") == "assistant"]
        chosen = assistant if assistant else messages
        return "\n".join(t for t in (_content_text(m.get("content")) for m in chosen) if t)
    return ""


def report_span(text: str) -> str | None:
    """Text between the first ``<report>`` and the first ``</report>`` after it, or None."""
    start = text.find(OPEN_TAG)
    if start < 0:
        return None
    end = text.find(CLOSE_TAG, start + len(OPEN_TAG))
    if end < 0:
        return None
    return text[start + len(OPEN_TAG) : end]


def extract_report(completion: Any) -> str:
    """The text every non-format reward scores: inside the tags, else the whole completion."""
    text = completion_text(completion)
    span = report_span(text)
    return (span if span is not None else text).strip()


def is_well_formed(completion: Any) -> bool:
    """Exactly one ``<report>…</report>`` span with non-blank content (see module docstring)."""
    text = completion_text(completion)
    if text.count(OPEN_TAG) != 1 or text.count(CLOSE_TAG) != 1:
        return False
    span = report_span(text)
    return span is not None and span.strip() != ""


def format_scores(completions: Sequence[Any]) -> list[float]:
    """1.0 for each completion with exactly one well-formed ``<report>…</report>`` span, else 0.0."""
    return [1.0 if is_well_formed(c) else 0.0 for c in completions]


class FormatReward(Reward):
    """The format reward as a picklable TRL reward: 1.0 for a completion with exactly one
    well-formed ``<report>…</report>`` span, else 0.0.

    With TRL's ``log_metric`` it also logs the batch's well-formed share as
    ``<name>/well_formed``.

    Example:
        >>> format_reward(completions=["<report>No acute findings.</report>", "No tags"])
        [1.0, 0.0]
    """

    def __init__(self, name: str = "radeval_format"):
        super().__init__(name)

    def __call__(
        self,
        prompts: Sequence[Any] | None = None,
        completions: Sequence[Any] = (),
        completion_ids: Sequence[Any] | None = None,
        **kwargs: Any,
    ) -> list[float]:
        out = format_scores(completions)
        if out:
            log_metric(kwargs, f"{self.__name__}/well_formed", sum(out) / len(out))
        return out


#: the format reward (``__name__`` ``radeval_format``)
format_reward = FormatReward("radeval_format")
