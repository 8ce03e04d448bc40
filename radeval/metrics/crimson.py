"""CRIMSON (Baharoon et al., 2026; reference implementation: crimson-score 0.2.2 on PyPI).

An LLM judge lists the abnormal findings of the reference and the candidate, matches them and
classifies errors (false findings, missing findings, attribute errors); each finding carries a
clinical-significance weight (urgent 1.0, actionable 0.5, not actionable 0.25, benign 0.0) and
each attribute error a severity weight (significant 0.5, negligible 0.0). The score lies in
(-1, 1]: 1 a perfect report, 0 no better than a normal template, negative when weighted errors
outweigh the correct findings.

What comes from where:

* **the prompt** is the package's: ``CRIMSON.prompt_parts.build_prompt`` of the *installed*
  crimson-score, called at run time (its words are not stored in radeval), and the system turn
  is the string the package sends, read from its ``generate_score.py`` source (parsed, not run);
* **the parser** is the package's ``CRIMSON.utils.parse_json_response`` (its JSON repairs),
  called at run time, so responses parse exactly as the package parses them;
* **the score** (:func:`score_evaluation`) is ours, written from the package's definition and
  checked against the package's own ``CRIMSONScore._calculate_crimson`` in its venv
  (``benchmarks/peers/crimson_parity.py``). It fails exactly where the package's fails (a
  matched finding without ``ref_id``, ...), and such a sample is unscored, as in the package's
  ``evaluate_batch``.

Conventions (the package's ``evaluate_reports.py``): a per-sample score is rounded to 4
decimals; a sample whose response does not parse or score is unscored (``None`` there, NaN
here, counted in the details as ``unparsed`` / ``unscorable``) and the corpus score is the
mean over scored samples. The package's guideline rule: prompts for its fine-tuned MedGemma
model (``rajpurkarlab/medgemma-4b-it-crimson``) leave out the guidelines it was trained
without; other models get them. Decoding: temperature 0; over an endpoint also seed 42 and a
JSON response format (the package's OpenAI call), up to 8192 new tokens.
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import importlib.util
import math
import os
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from radeval import judge as J
from radeval import models
from radeval.errors import ConfigError, DependencyError
from radeval.metric import Metric

MODEL_NAME = "crimson"
DEFAULT_MODEL_ID = "rajpurkarlab/medgemma-4b-it-crimson"  # the package's DEFAULT_HF_MODEL
REFERENCE_VERSION = "0.2.2"
MAX_NEW_TOKENS = 8192  # the package's DEFAULT_MAX_NEW_TOKENS
SEED = 42  # the package's OpenAI call

SIGNIFICANCE_WEIGHTS = {
    "urgent": 1.0,
    "actionable_not_urgent": 0.5,
    "not_actionable_not_urgent": 0.25,
    "benign_expected": 0.0,
}
SEVERITY_WEIGHTS = {"significant": 0.5, "negligible": 0.0}
UNKNOWN_WEIGHT = 0.25  # a missing or unknown label weighs as much as "not actionable"
ATTRIBUTE_TYPES = (
    "location", "severity", "descriptor", "measurement", "certainty", "unspecific", "overinterpretation", "temporal",
)  # fmt: skip

STAT_NAMES: tuple[str, ...] = (
    "crimson", "crimson_sq", "scored", "n", "unparsed", "unscorable", "truncated",
    "false_findings", "missing_findings", "attribute_errors",
    *(f"{t}_errors" for t in ATTRIBUTE_TYPES),
    "weighted_false", "weighted_missing", "weighted_attribute",
)  # fmt: skip


# ----- the reference package, read at run time ------------------------------------------------
class Reference:
    """The installed crimson-score: its prompt builder, parser, system turn and version."""

    def __init__(self) -> None:
        try:
            self.prompt_parts = importlib.import_module("CRIMSON.prompt_parts")
            self.utils = importlib.import_module("CRIMSON.utils")
        except ImportError as e:
            raise DependencyError(
                "metric 'crimson' reads its prompt and parser from the reference package crimson-score "
                f"({e}): pip install 'crimson-score=={REFERENCE_VERSION}' (it declares Python >= 3.12; on 3.11: "
                f"pip install --no-deps --ignore-requires-python crimson-score=={REFERENCE_VERSION})"
            ) from e
        try:
            self.version = importlib.metadata.version("crimson-score")
        except importlib.metadata.PackageNotFoundError:
            self.version = "unknown"
        self.system = _system_message()

    def prompt(self, reference: str, candidate: str, guidelines: bool) -> str:
        return self.prompt_parts.build_prompt(
            reference,
            candidate,
            patient_context=None,
            include_significance_examples=guidelines,
            include_attribute_guidelines=guidelines,
            include_context_guidelines=guidelines,
        )

    def parse(self, response: str) -> Any:
        return self.utils.parse_json_response(response)


def _system_message() -> str:
    """The system turn the package sends (every call site uses one string), from its source."""
    spec = importlib.util.find_spec("CRIMSON.generate_score")
    if spec is None or not spec.origin or not os.path.isfile(spec.origin):
        raise DependencyError("crimson-score is installed without CRIMSON/generate_score.py")
    with open(spec.origin, "rb") as f:
        tree = ast.parse(f.read())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            d = {
                k.value: v.value
                for k, v in zip(node.keys, node.values)
                if isinstance(k, ast.Constant) and isinstance(v, ast.Constant)
            }
            if d.get("role") == "system" and isinstance(d.get("content"), str):
                found.add(d["content"])
    if len(found) != 1:
        raise DependencyError(
            f"crimson-score's {spec.origin}: expected one system message, found {len(found)}; "
            f"radeval was checked against crimson-score {REFERENCE_VERSION}"
        )
    return found.pop()


# ----- the score -----------------------------------------------------------------------------
def _weight(table: dict[str, float], label: Any) -> float:
    # a plain lookup, as the package does: an unhashable label raises there too (unscorable)
    return table.get(label, UNKNOWN_WEIGHT)


def score_evaluation(evaluation: Any) -> dict[str, Any]:
    """CRIMSON's score of one parsed evaluation (raises where the package's formula raises)."""
    errors = evaluation.get("errors", {})
    matched = evaluation.get("matched_findings", [])
    refs = evaluation.get("reference_findings", [])
    preds = evaluation.get("predicted_findings", [])

    ref_w = {r["id"]: _weight(SIGNIFICANCE_WEIGHTS, r.get("clinical_significance", "")) for r in refs}
    pred_w = {p["id"]: _weight(SIGNIFICANCE_WEIGHTS, p.get("clinical_significance", "")) for p in preds}
    false_ids = errors.get("false_findings", [])
    missing_ids = errors.get("missing_findings", [])
    e_false = sum(pred_w.get(i, 0.0) for i in false_ids)  # ids not listed weigh nothing
    e_miss = sum(ref_w.get(i, 0.0) for i in missing_ids)
    attrs = errors.get("attribute_errors", [])
    type_counts = {t: sum(1 for a in attrs if t in a.get("error_types", [])) for t in ATTRIBUTE_TYPES}
    by_ref: dict[Any, list] = {}
    for a in attrs:
        by_ref.setdefault(a["ref_id"], []).append(a)

    n_g = sum(_weight(SIGNIFICANCE_WEIGHTS, r.get("clinical_significance", "")) for r in refs)
    if n_g == 0 and not refs:
        n_g = len(matched) + e_miss

    # matched findings earn their weight, shared out when the finding has attribute errors;
    # a reference finding counts once however often it is matched
    seen: set = set()
    correct = 0.0
    for m in matched:
        rid = m["ref_id"]
        if rid in seen:
            continue
        seen.add(rid)
        w = ref_w.get(rid, 0.0)
        errs = by_ref.get(rid, [])
        if not errs:
            correct += w
            continue
        penalty = sum(_weight(SEVERITY_WEIGHTS, e.get("severity", "")) for e in errs)
        correct += w * (w / (w + penalty) if (w + penalty) > 0 else 0.0)

    excess = e_false - correct
    if n_g == 0:
        s = 1.0 if e_false == 0 and e_miss == 0 else -(e_false + e_miss + 1)
    else:
        s = (correct - e_false) / n_g
    if s >= 0:
        value = s
    else:
        value = -excess / (1 + excess) if excess > 0 else 0
    return {
        "crimson_score": round(value, 4),
        "counts": {
            "false_findings": len(false_ids),
            "missing_findings": len(missing_ids),
            "attribute_errors": len(attrs),
            **{f"{t}_errors": type_counts[t] for t in ATTRIBUTE_TYPES},
        },
        "weighted": {
            "false_findings": e_false,
            "missing_findings": e_miss,
            "attribute_errors": sum(_weight(SEVERITY_WEIGHTS, a.get("severity", "")) for a in attrs),
        },
    }


# ----- the metric ----------------------------------------------------------------------------
class Crimson(Metric):
    """CRIMSON per report (NaN when the judge's answer does not parse) and the mean over scored
    reports. Options: ``backend`` (transformers | vllm | endpoint; ``endpoint=URL`` picks the
    endpoint), ``model_path`` (else the model manager's "crimson"), ``endpoint_model``,
    ``endpoint_api`` (chat, the package's; completions is refused: the prompt is a chat),
    ``endpoint_batching``, ``endpoint_timeout``, ``endpoint_retries``, ``endpoint_concurrency``,
    ``api_key``, ``guidelines`` (None = the package's rule), ``max_new_tokens`` (8192),
    ``device``, ``dtype`` (auto = bfloat16 on GPU, as the package), ``batch_size``,
    ``judge_cache``, ``prices``.
    """

    name: ClassVar[str] = "crimson"
    keys = ("crimson",)
    stat_names = STAT_NAMES
    directions = {"crimson": True}
    impl_version: ClassVar[str] = "1"

    def __init__(
        self,
        backend: str | None = None,
        model_path: str | os.PathLike[str] | None = None,
        endpoint: str | None = None,
        endpoint_model: str | None = None,
        endpoint_api: str = "chat",
        endpoint_batching: str = "auto",
        endpoint_timeout: float = 600.0,
        endpoint_retries: int = 3,
        endpoint_concurrency: int = 8,
        api_key: str | None = None,
        guidelines: bool | None = None,
        max_new_tokens: int = MAX_NEW_TOKENS,
        device: str | None = None,
        dtype: str = "auto",
        batch_size: int = 4,
        trust_remote_code: bool = False,
        judge_cache: bool | str = True,
        prices: Any = None,
    ) -> None:
        if backend is None:
            backend = "endpoint" if endpoint else "transformers"
        if backend not in ("transformers", "vllm", "endpoint"):
            raise ConfigError(f"crimson backend must be transformers, vllm or endpoint, got {backend!r}")
        if endpoint_api != "chat":
            raise ConfigError("crimson endpoint_api must be chat: the package sends a system and a user turn")
        if int(max_new_tokens) < 1 or int(batch_size) < 1:
            raise ConfigError("crimson max_new_tokens and batch_size must be >= 1")
        self.ref = Reference()
        self.backend_name = backend
        self.max_new_tokens = int(max_new_tokens)
        self.batch_size = int(batch_size)
        self.prices = J.parse_prices(prices)
        self._judge_cache = judge_cache
        self._guidelines = guidelines
        self._judge: J.Judge | None = None
        self._opts = dict(
            endpoint_model=endpoint_model, endpoint_batching=endpoint_batching, endpoint_timeout=endpoint_timeout,
            endpoint_retries=endpoint_retries, endpoint_concurrency=endpoint_concurrency, api_key=api_key,
            device=device, dtype=dtype, trust_remote_code=bool(trust_remote_code),
        )  # fmt: skip
        #: parsed evaluations (or the parse error text) of the last ``stats`` call, in record order
        self.last_evaluations: list[Any] = []
        if backend == "endpoint":
            if not endpoint:
                raise ConfigError("crimson backend 'endpoint' needs endpoint=URL")
            self.endpoint = str(endpoint)
            self.model_dir = None
        else:
            self.endpoint = None
            res = models.locate(MODEL_NAME, model_path)
            if res.path is None:
                raise models.not_found_error(MODEL_NAME, res.searched)
            self.model_dir = res.path

    def _get_judge(self) -> J.Judge:
        if self._judge is not None:
            return self._judge
        o = self._opts
        if self.backend_name == "endpoint":
            backend: Any = J.EndpointBackend(
                self.endpoint, model=o["endpoint_model"], api="chat", batching=o["endpoint_batching"],
                timeout=o["endpoint_timeout"], retries=o["endpoint_retries"], concurrency=o["endpoint_concurrency"],
                api_key=o["api_key"], api_key_env="RADEVAL_CRIMSON_API_KEY", label="CRIMSON",
            )  # fmt: skip
        elif self.backend_name == "vllm":
            backend = J.VllmBackend(str(self.model_dir), dtype=o["dtype"], trust_remote_code=o["trust_remote_code"],
                                    gpu_dtype="bfloat16")  # fmt: skip
        else:
            backend = J.TransformersBackend(
                str(self.model_dir), device=o["device"], dtype=o["dtype"], batch_size=self.batch_size,
                trust_remote_code=o["trust_remote_code"], gpu_dtype="bfloat16",
            )  # fmt: skip
        self._judge = J.Judge(backend, cache=self._judge_cache, prices=self.prices)
        return self._judge

    @property
    def model_id(self) -> str:
        if self.backend_name == "endpoint":
            return str(self._get_judge().backend.model)
        commit = models.commit_of(self.model_dir) if self.model_dir else None
        return f"{DEFAULT_MODEL_ID}@{commit[:12] if commit else 'local'}"

    @property
    def guidelines(self) -> bool:
        if self._guidelines is not None:
            return bool(self._guidelines)
        # the package drops the guidelines for its own fine-tuned model, which was trained without them
        if self.backend_name == "endpoint":
            return not self.model_id.rstrip("/").endswith(DEFAULT_MODEL_ID.split("/")[1])
        return False

    def settings(self) -> dict[str, Any]:
        return {
            "model": self.model_id,
            "backend": self.backend_name,
            "prompt": f"crimson-score-{self.ref.version}",
            "guidelines": self.guidelines,
            "decode": "greedy",
            "max_new": self.max_new_tokens,
            "parse": f"crimson-score-{self.ref.version}",
        }

    def _sampling(self) -> J.Sampling:
        if self.backend_name == "endpoint":
            return J.Sampling(max_tokens=self.max_new_tokens, seed=SEED,
                              extra=(("response_format", {"type": "json_object"}),))  # fmt: skip
        return J.Sampling(max_tokens=self.max_new_tokens)

    def _requests(self, hyps: Sequence[str], refs: Sequence[str]) -> list[J.Request]:
        g = self.guidelines
        return [
            J.Request(messages=(("system", self.ref.system), ("user", self.ref.prompt(r, h, g))))
            for h, r in zip(hyps, refs)
        ]

    def _rows(self, replies: Sequence[J.Reply]) -> np.ndarray:
        rows = []
        self.last_evaluations = []
        for rep in replies:
            row = dict.fromkeys(STAT_NAMES, 0.0)
            row["n"] = 1.0
            row["truncated"] = float(rep.truncated)
            try:
                evaluation = self.ref.parse(rep.text)
            except Exception as e:  # the package's parser raises ValueError; anything else is a failure too
                row["unparsed"] = 1.0
                self.last_evaluations.append(f"unparsed: {str(e)[:200]}")
                rows.append([row[k] for k in STAT_NAMES])
                continue
            self.last_evaluations.append(evaluation)
            try:
                res = score_evaluation(evaluation)
            except Exception:  # where the package's formula fails (its evaluate_batch: None)
                row["unscorable"] = 1.0
                rows.append([row[k] for k in STAT_NAMES])
                continue
            v = float(res["crimson_score"])
            row.update(crimson=v, crimson_sq=v * v, scored=1.0)
            for k, c in res["counts"].items():
                row[k] = float(c)
            row["weighted_false"] = float(res["weighted"]["false_findings"])
            row["weighted_missing"] = float(res["weighted"]["missing_findings"])
            row["weighted_attribute"] = float(res["weighted"]["attribute_errors"])
            rows.append([row[k] for k in STAT_NAMES])
        return np.asarray(rows, dtype=np.float64).reshape(len(rows), len(STAT_NAMES))

    def stats(self, hyps, refs, images=None) -> np.ndarray:
        if len(hyps) == 0:
            return np.zeros((0, len(STAT_NAMES)))
        _check_texts(hyps, refs)
        return self._rows(self._get_judge().generate(self._requests(hyps, refs), self._sampling()))

    async def astats(self, hyps, refs, images=None) -> np.ndarray:
        """:meth:`stats` with the judge awaited (async rewards)."""
        if len(hyps) == 0:
            return np.zeros((0, len(STAT_NAMES)))
        _check_texts(hyps, refs)
        replies = await self._get_judge().agenerate(self._requests(hyps, refs), self._sampling())
        return self._rows(replies)

    def from_totals(self, totals: np.ndarray) -> dict[str, np.ndarray]:
        t = np.asarray(totals, dtype=np.float64)
        scored = t[..., 2]
        with np.errstate(invalid="ignore", divide="ignore"):
            v = np.where(scored > 0, t[..., 0] / np.where(scored > 0, scored, 1.0), np.nan)
        return {"crimson": v}

    def details(self, totals: np.ndarray) -> dict[str, Any]:
        t = dict(zip(STAT_NAMES, (float(x) for x in totals)))
        k = t["scored"]
        mean = t["crimson"] / k if k else math.nan
        out: dict[str, Any] = {
            "n": int(t["n"]),
            "scored": int(k),
            "unparsed": int(t["unparsed"]),
            "unscorable": int(t["unscorable"]),
            "truncated": int(t["truncated"]),
            "mean": mean,
            "mean_rounded": round(mean, 4) if k else math.nan,  # the package prints the average this way
            "std": math.sqrt(max(t["crimson_sq"] / k - mean * mean, 0.0)) if k else math.nan,
            "error_counts": {n: int(t[n]) for n in STAT_NAMES[7:18]},
            "weighted_errors": {
                "false_findings": t["weighted_false"],
                "missing_findings": t["weighted_missing"],
                "attribute_errors": t["weighted_attribute"],
            },
        }
        if self._judge is not None:
            out["judge"] = self._judge.summary()
        return out


def _check_texts(hyps, refs) -> None:
    from radeval.errors import InputError

    for name, seq in (("prediction", hyps), ("reference", refs)):
        for i, t in enumerate(seq):
            if not isinstance(t, str):
                raise InputError(f"crimson: record {i}: {name} must be a string, got {type(t).__name__}")
