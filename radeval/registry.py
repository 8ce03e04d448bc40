"""Metric registry: name -> factory, presets, and third-party metrics via entry points.

Factories are stored as ``"module:attr"`` strings and imported only when a metric is asked
for, so listing metrics never imports torch. Third-party packages register metrics under the
entry-point group ``radeval.metrics`` (name = metric name, value = ``module:factory``); the
factory takes keyword options and returns a :class:`radeval.metric.Metric`.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from radeval.errors import ConfigError, MetricNotFound
from radeval.metric import Metric

ENTRY_POINT_GROUP = "radeval.metrics"


@dataclass(frozen=True)
class MetricSpec:
    name: str
    target: str  # "module:attr" of a factory / Metric subclass
    keys: tuple[str, ...]
    summary: str
    extra: str | None = None  # pip extra that provides its dependencies
    offline: bool = True  # runs with nothing downloaded
    options: dict[str, str] = field(default_factory=dict)  # option -> help


_REGISTRY: dict[str, MetricSpec] = {}
_ENTRY_POINTS_LOADED = False

PRESETS: dict[str, tuple[str, ...]] = {
    # pure Python, runs on a fresh offline core install
    "default": ("bleu", "rouge_l", "chexpert_rules"),
    # VALOR Table 1 columns: BLEU (mean of 1-4), ROUGE-L, METEOR, CheXbert F1, GREEN, RaTEScore
    "valor": ("bleu", "rouge_l", "meteor", "chexbert", "green", "ratescore"),
    # RadVLM-GRPO report-generation table columns
    "radvlm": ("bleu", "rouge_l", "bertscore", "radgraph", "chexbert", "radcliq"),
    # the metrics the CRIMSON paper scores on RadPref/RadJudge (its evaluate_radpref.py: RadEval's
    # BLEU, ROUGE-L, BERTScore, RadGraph, CheXbert, RaTEScore, GREEN, and CRIMSON itself)
    "crimson_paper": ("bleu", "rouge_l", "bertscore", "radgraph", "chexbert", "ratescore", "green", "crimson"),
    # ReXrank leaderboard columns (rajpurkarlab/ReXrank-metric): BLEU-2, BERTScore, RadGraph
    # (CXR-Report-Metric's), SembScore, RadCliQ-v1 (ReXrank prints 1/RadCliQ-v1) and -v0,
    # RaTEScore, GREEN
    "rexrank": ("radcliq_features", "semb", "radcliq", "radcliq_v0", "ratescore", "green"),
    # the R2Gen lineage's NLG columns
    "r2gen": ("bleu", "meteor", "rouge_l", "cider"),
}

#: Options a preset implies (the user's own options win): ReXrank runs CXR-Report-Metric with
#: IDF off, so its RadCliQ-v1 uses plain BERTScore.
PRESET_OPTIONS: dict[str, dict[str, dict[str, Any]]] = {
    "rexrank": {"radcliq": {"idf": False}},
}


def preset_options(names: str | list[str] | tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Default options implied by the presets named in ``names`` (a comma list or a list)."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    out: dict[str, dict[str, Any]] = {}
    for n in names:
        for metric, opts in PRESET_OPTIONS.get(n, {}).items():
            out.setdefault(metric, {}).update(opts)
    return out


def register(spec: MetricSpec, *, replace: bool = False) -> None:
    if spec.name in _REGISTRY and not replace:
        raise ConfigError(f"metric {spec.name!r} is already registered")
    if spec.name in PRESETS or spec.name == "all":
        raise ConfigError(f"metric name {spec.name!r} clashes with a preset name")
    _REGISTRY[spec.name] = spec


def _load_entry_points() -> None:
    global _ENTRY_POINTS_LOADED
    if _ENTRY_POINTS_LOADED:
        return
    _ENTRY_POINTS_LOADED = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in _REGISTRY:
            continue  # built-ins win; a plug-in cannot silently redefine a key
        _REGISTRY[ep.name] = MetricSpec(
            name=ep.name,
            target=ep.value,
            keys=(),
            summary=f"third-party metric from {ep.dist.name if ep.dist else ep.value}",
            offline=False,
        )


def specs() -> dict[str, MetricSpec]:
    _load_entry_points()
    return dict(_REGISTRY)


def list_metrics() -> list[str]:
    return sorted(specs())


def did_you_mean(name: str, choices: list[str] | tuple[str, ...]) -> str:
    """" Did you mean 'x'?" for the closest choice, or "" (difflib, as click does for commands)."""
    close = difflib.get_close_matches(name, list(choices), n=2, cutoff=0.6)
    return f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def check_options(name: str, factory: Callable[..., Any], options: dict[str, Any], spec: MetricSpec) -> None:
    """Unknown options name the valid ones (instead of Python's TypeError text)."""
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    valid = [
        p for p, v in params.items()
        if p != "self" and v.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    ]
    unknown = [o for o in options if o not in valid]
    if not unknown:
        return
    hints = "".join(did_you_mean(o, valid) for o in unknown)
    listed = ", ".join(f"{v} ({spec.options[v]})" if v in spec.options else v for v in valid) or "none"
    raise ConfigError(
        f"metric {name!r} has no option {', '.join(repr(o) for o in unknown)}.{hints} "
        f"Its options: {listed}"
    )


def _import(target: str) -> Callable[..., Metric]:
    module, _, attr = target.partition(":")
    try:
        mod = importlib.import_module(module)
    except ImportError as e:  # a missing extra: name it
        from radeval.errors import DependencyError

        raise DependencyError(f"cannot import {module!r} ({e}); install the extra that provides it") from e
    return getattr(mod, attr)


def _factory(name: str, spec: MetricSpec) -> Callable[..., Metric]:
    if not spec.extra:
        return _import(spec.target)
    try:
        return _import(spec.target)
    except Exception as e:
        from radeval.errors import DependencyError

        if isinstance(e, DependencyError):
            raise DependencyError(
                f"metric {name!r} needs the [{spec.extra}] extra: "
                f"pip install 'radeval-toolkit[{spec.extra}]' ({e})"
            ) from e
        raise


def get_metric(name: str, **options: Any) -> Metric:
    """Instantiate a registered metric with keyword options (e.g. ``tokenize="ptb"``)."""
    all_specs = specs()
    if name not in all_specs:
        raise MetricNotFound(
            f"unknown metric {name!r}.{did_you_mean(name, sorted(all_specs))} Known metrics: "
            f"{', '.join(sorted(all_specs))}; presets: {', '.join(sorted(PRESETS) + ['all'])}"
        )
    spec = all_specs[name]
    factory = _factory(name, spec)
    check_options(name, factory, options, spec)
    try:
        metric = factory(**options)
    except TypeError as e:
        raise ConfigError(f"bad option for metric {name!r}: {e}") from e
    if not isinstance(metric, Metric):
        raise ConfigError(f"factory for {name!r} returned {type(metric).__name__}, not a Metric")
    return metric


def validate_options(options: dict[str, dict[str, Any]]) -> None:
    """Check every metric's option names up front (imports the metric modules, loads no model)."""
    all_specs = specs()
    for name, opts in options.items():
        if name in all_specs and opts:
            check_options(name, _factory(name, all_specs[name]), dict(opts), all_specs[name])


def resolve(names: str | list[str] | tuple[str, ...]) -> list[str]:
    """Expand a comma list of metric and preset names into metric names, in order, no repeats."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    out: list[str] = []
    known = specs()
    for n in names:
        if n == "all":
            expanded: tuple[str, ...] = tuple(sorted(known))
        elif n in PRESETS:
            expanded = PRESETS[n]
            absent = [e for e in expanded if e not in known]
            if absent:
                raise MetricNotFound(
                    f"preset {n!r} needs metric(s) {', '.join(absent)}, which this build of radeval does not provide"
                )
        elif n in known:
            expanded = (n,)
        else:
            presets = sorted(PRESETS) + ["all"]
            raise MetricNotFound(
                f"unknown metric or preset {n!r}.{did_you_mean(n, sorted(known) + presets)} "
                f"Metrics: {', '.join(sorted(known))}; presets: {', '.join(presets)}"
            )
        for e in expanded:
            if e not in out:
                out.append(e)
    return out


#: the options every LLM-judge metric takes for radeval.judge
_JUDGE_OPTIONS = {
    "endpoint": "URL of an OpenAI-compatible server (implies backend endpoint)",
    "endpoint_model": "served model id (default: the server's first)",
    "endpoint_batching": "auto (a list per request, one per request if the server answers lists wrongly) | list | single",
    "endpoint_concurrency": "requests in flight",
    "endpoint_timeout": "seconds per request (default 600)",
    "endpoint_retries": "retries with backoff on connection errors, 429 and 5xx (default 3)",
    "judge_cache": "disk response cache: true (default, $RADEVAL_JUDGE_CACHE or ~/.cache/radeval) | false | a path",
    "prices": "'PROMPT,COMPLETION' price per million tokens: the cost goes in the details",
}


def _builtin(name: str, target: str, keys: tuple[str, ...], summary: str, **kw: Any) -> None:
    register(MetricSpec(name=name, target=target, keys=keys, summary=summary, **kw))


_builtin(
    "bleu",
    "radeval.metrics.nlg:Bleu",
    ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "bleu_mean"),
    "BLEU-1..4 as pycocoevalcap Bleu(4) (corpus, closest ref length) and their mean",
    options={"tokenize": "r2gen-mimic (default) | r2gen-iu | whitespace | ptb"},
)
_builtin(
    "rouge_l",
    "radeval.metrics.nlg:RougeL",
    ("rouge_l",),
    "ROUGE-L F (beta 1.2) as pycocoevalcap Rouge",
    options={"tokenize": "r2gen-mimic (default) | r2gen-iu | whitespace | ptb"},
)
_builtin(
    "cider",
    "radeval.metrics.cider:Cider",
    ("cider",),
    "CIDEr-D as pycocoevalcap Cider (n 1-4, sigma 6, x10, clipped tf-idf; DF from the evaluated references "
    "in a first pass, or a fixed df_corpus)",
    options={
        "tokenize": "r2gen-mimic (default) | r2gen-iu | whitespace | ptb",
        "df_corpus": "DF table from `radeval cider-df` (.json), a reference file (.txt/.jsonl) or texts; "
        "default: the evaluated references (rewards: set it)",
        "sigma": "length-penalty width, default 6.0 (pycocoevalcap)",
    },
)
_builtin(
    "rouge_l_stemmed",
    "radeval.metrics.nlg:RougeLStemmed",
    ("rouge_l_stemmed",),
    "ROUGE-L F1 as rouge-score with the Porter stemmer (RadEval's convention)",
)
_builtin(
    "meteor",
    "radeval.metrics.meteor:meteor_metric",
    ("meteor",),
    "METEOR 1.5 as pycocoevalcap's jar (-l en -norm), corpus from the jar's aggregate statistics; "
    "native (no Java) by default, the jar itself with backend=jar",
    extra="coco",
    options={
        "tokenize": "r2gen-mimic (default) | r2gen-iu | whitespace | ptb",
        "backend": "native (default; no Java, same statistics as the jar) | jar (pycocoevalcap's jar, needs Java)",
        "jars": "backend=jar: jar processes to split a batch over (speed only; default $RADEVAL_METEOR_JARS or 1)",
    },
)
_builtin(
    "bertscore",
    "radeval.metrics.bertscore:BertScore",
    ("bertscore_f1", "bertscore_precision", "bertscore_recall"),
    "BERTScore, distilbert-base-uncased layer 5, baseline-rescaled (ViLMedic/RadEval convention)",
    extra="bertscore",
    offline=False,
)
_builtin(
    "bertscore_minilm",
    "radeval.metrics.bertscore:BertScoreMiniLM",
    ("bertscore_minilm_f1", "bertscore_minilm_precision", "bertscore_minilm_recall"),
    "BERTScore on the packaged all-MiniLM-L6-v2 weights (offline; no rescaling baseline)",
    extra="bertscore",
)
_builtin(
    "radeval_bertscore",
    "radeval.metrics.bertscore:RadEvalBertScore",
    ("radeval_bertscore",),
    "RadEval-BERTScore F1 (IAMJB/RadEvalModernBERT, layer 22, idf off, not rescaled) as RadEval 2.2",
    extra="bertscore",
    offline=False,
)
_builtin(
    "srr_bert",
    "radeval.metrics.srr_bert:SrrBert",
    (
        "srr_bert_weighted_f1",
        "srr_bert_weighted_precision",
        "srr_bert_weighted_recall",
        "srr_bert_sample_f1",
        "srr_bert_sample_precision",
        "srr_bert_sample_recall",
    ),
    "SRR-BERT (leaves with statuses, 163 labels) weighted P/R/F1 and per-report P/R/F1, as RadEval 2.2",
    extra="clinical",
    offline=False,
    options={
        "model_path": "local SRR-BERT dir",
        "tokenizer_path": "local CXR-BERT-general tokenizer dir",
        "punkt_path": "local punkt_tab dir (nltk data root or its english/ dir)",
        "batch_size": "sentences per forward pass (default 32)",
    },
)
_builtin(
    "temporal_f1",
    "radeval.metrics.temporal:TemporalF1",
    ("temporal_f1",),
    "temporal-entity F1 (stanza radiology NER + 44 temporal keywords), as RadEval 2.2",
    extra="temporal",
    offline=False,
    options={"model_path": "a stanza resources dir (resources.json + en/...)", "device": "cpu/cuda"},
)


def _clinical_keys(prefix: str) -> tuple[str, ...]:
    return (
        f"{prefix}_f1",
        *(f"{prefix}_f1_{avg}_{n}" for n in ("14", "5") for avg in ("micro", "macro", "weighted")),
        f"{prefix}_f1_sample",
        f"{prefix}_em5",
    )


_builtin(
    "chexpert_rules",
    "radeval.metrics.clinical:CheXpertRulesF1",
    _clinical_keys("chexpert_rules"),
    "CheXpert 14-observation F1 from radeval's offline rule-based CheXpert-style labeler",
)
_builtin(
    "chexbert",
    "radeval.metrics.clinical:CheXbertF1",
    _clinical_keys("chexbert"),
    "CheXpert 14-observation F1 from the CheXbert labeler (chexbert.pth)",
    extra="clinical",
    offline=False,
)
_builtin(
    "grounding",
    "radeval.metrics.grounding:Grounding",
    ("grounding_similarity",),
    "image-report cosine S_i in a frozen CLIP-style expert (BiomedCLIP by default); needs an image per record",
    extra="grounding",
    offline=False,
    options={
        "model": "registered name, hf-hub:ID, model dir, or open_clip arch (+pretrained)",
        "device": "cpu/cuda",
        "batch_size": "default 32",
        "image_root": "base dir for relative image paths",
        "on_bad_image": "error (default) | nan (rewards)",
    },
)
_builtin(
    "radgraph",
    "radeval.metrics.radgraph:RadGraphF1",
    ("radgraph_partial", "radgraph_simple", "radgraph_complete"),
    "RadGraph F1 (F1RadGraph's partial/simple/complete levels) on the RadGraph-XL archive; batched reimplementation of radgraph 0.1.18",
    extra="clinical",
    offline=False,
    options={
        "model_type": "radgraph-xl (default) | radgraph | modern-radgraph-xl",
        "model_path": "explicit archive or extracted dir",
        "encoder_path": "local dir of the archive's encoder config/tokenizer",
    },
)
_builtin(
    "radcliq",
    "radeval.metrics.radcliq:RadCliQ",
    ("radcliq_v1",),
    "RadCliQ-v1 composite (RadGraph, BERTScore-IDF, CheXbert cosine, BLEU-2); LOWER is better",
    extra="clinical",
    offline=False,
    options={
        "radgraph_model": "radgraph (default) | radgraph-xl",
        "idf": "use BERTScore IDF (default yes, the paper's setting)",
        "idf_corpus": "texts or a file to freeze the IDF on (rewards); default: the evaluated references",
    },
)
_builtin(
    "radcliq_v0",
    "radeval.metrics.radcliq:RadCliQV0",
    ("radcliq_v0",),
    "RadCliQ-v0 (CXR-Report-Metric's first composite: same 4 features as v1, its StandardScaler + "
    "LinearRegression); LOWER is better; idf off by default (CXR-Report-Metric's USE_IDF)",
    extra="clinical",
    offline=False,
    options={"radgraph_model": "radgraph (default)", "idf": "default no", "idf_corpus": "as radcliq"},
)
_builtin(
    "radcliq_features",
    "radeval.metrics.radcliq:RadCliQFeatures",
    ("radgraph_combined", "bertscore_cxr", "bleu2_cxr"),
    "CXR-Report-Metric/ReXrank columns: RadGraph (entity+relation F1)/2, BERTScore distilroberta L5 "
    "rescaled (idf off), fast_bleu BLEU-2",
    extra="clinical",
    offline=False,
    options={"radgraph_model": "radgraph (default)", "idf": "default no"},
)
_builtin(
    "semb",
    "radeval.metrics.semb:SembScore",
    ("semb_score",),
    "SembScore: cosine of CheXbert final [CLS] embeddings (CXR-Report-Metric / ReXrank semb_score)",
    extra="clinical",
    offline=False,
    options={"model_path": "chexbert.pth", "device": "cpu/cuda"},
)
_builtin(
    "green",
    "radeval.metrics.green:Green",
    ("green",),
    "GREEN (StanfordAIMI/GREEN-RadLlama2-7b): matched / (matched + significant errors (a)-(f)); "
    "transformers | vllm | OpenAI-compatible endpoint",
    extra="green",
    offline=False,
    options={
        "backend": "transformers (default) | vllm | endpoint",
        **_JUDGE_OPTIONS,
        "endpoint_api": "completions (GREEN's exact input) | chat (chat-only servers; signature template:server-chat)",
        "model_path": "local GREEN dir",
        "prompt_path": "GREEN's green_score/utils.py (default: radeval models download green-prompt)",
        "batch_size": "8",
        "trust_remote_code": "false unless you pass it",
    },
)
_builtin(
    "crimson",
    "radeval.metrics.crimson:Crimson",
    ("crimson",),
    "CRIMSON (crimson-score 0.2.2: its prompt and parser read from the installed package): "
    "significance-weighted findings and attribute errors, in (-1, 1]; MedGemma-CRIMSON locally or any chat endpoint",
    extra="crimson",
    offline=False,
    options={
        "backend": "transformers (default) | vllm | endpoint",
        **_JUDGE_OPTIONS,
        "model_path": "local rajpurkarlab/medgemma-4b-it-crimson dir",
        "guidelines": "default: the package's rule (off for its fine-tuned MedGemma, on otherwise)",
        "max_new_tokens": "8192 (the package's)",
    },
)
_builtin(
    "radfact",
    "radeval.metrics.radfact:RadFact",
    ("radfact_logical_precision", "radfact_logical_recall", "radfact_logical_f1"),
    "RadFact (microsoft/RadFact @72463ac): phrase-level logical precision/recall by LLM entailment "
    "verification of narrative reports (phrases split by the LLM first); chat endpoint",
    extra="radfact",
    offline=False,
    options={**_JUDGE_OPTIONS, "prompt_path": "RadFact's prompt files (default: radeval models download radfact-prompts)",
             "image_size": "224"},
)
_builtin(
    "radfact_grounded",
    "radeval.metrics.radfact:RadFactGrounded",
    tuple(f"radfact_grounded_{k}_{m}" for k in ("logical", "spatial", "grounding") for m in ("precision", "recall", "f1")),
    "RadFact on grounded phrase lists (JSON [{text, boxes}] per report): logical, spatial and grounding "
    "precision/recall (box pixel precision > 0.5 on 224 x 224 masks)",
    extra="radfact",
    offline=False,
    options={**_JUDGE_OPTIONS, "prompt_path": "RadFact's prompt files", "image_size": "224 (mask size)"},
)
_builtin(
    "ratescore",
    "radeval.metrics.ratescore:RaTEScore",
    ("ratescore",),
    "RaTEScore as RaTEScore 0.6.0 (RaTE-NER-Deberta + BioLORD-2023-C, long matrix); a side with no "
    "entities scores 0.5 as in the package (rewards: empty_score=0.0)",
    extra="ratescore",
    offline=False,
    options={
        "affinity_matrix": "long | short | JSON path",
        "empty_score": "default 0.5 (package); 0.0 for rewards",
        "splitter": "medspacy (exact; Python >= 3.12 or numpy < 2) | simple (approximation, own signature)",
    },
)
