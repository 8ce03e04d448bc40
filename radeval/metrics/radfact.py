"""RadFact (Bannur et al., MAIRA-2, 2024; reference: microsoft/RadFact, MIT) for chest X-ray reports.

An LLM checks, one phrase at a time, whether each phrase of one report is entailed by the other
report's phrases ("entailment verification"): logical precision = share of candidate phrases
entailed by the reference, logical recall = share of reference phrases entailed by the
candidate. With boxes (grounded reports), a phrase is also *spatially* entailed when it is
logically entailed and the pixel precision of its boxes against its evidence's boxes (masks of
224 x 224) exceeds 0.5: spatial precision/recall divide by all boxed phrases, grounding
precision/recall by the entailed boxed phrases.

What comes from where (pinned commit 72463ac of microsoft/RadFact):

* the prompts and few-shot examples are RadFact's files, fetched by
  ``radeval models download radfact-prompts`` (sha256-checked), never stored here; the
  report-to-phrases system prompt ends with langchain's JSON format instructions for RadFact's
  ``ParsedReport`` schema (RadFact's docstrings), and langchain-core's template and JSON repair
  (``parse_json_markdown``) are read from the installed ``langchain-core`` (the ``radfact``
  extra), as RadFact's pinned stack uses them;
* messages as RadFact's ``StructuredProcessor`` builds them: system, few-shot (user, assistant)
  pairs, the query; entailment queries and answers as ``yaml.dump(..., sort_keys=False)``,
  report-to-phrases answers as pydantic-v1 ``.json()``;
* answers parsed as RadFact does: langchain's YAML parser (first ```yaml block, else the whole
  text; ``yaml.safe_load``) and pydantic-v1 validation of ``EvidencedPhrase`` (str coercion of
  numbers; entailed / contradicted phrases need evidence, neutral ones none); an answer that fails
  counts as *not entailed* (RadFact's rule) and as a failure in the details; a rewritten phrase
  is put back; evidence that is not a phrase of the other report invalidates the sample (RadFact
  then drops it from the aggregate: unscored here, counted); a report whose phrase list does not
  parse is unscored too;
* decoding as RadFact's endpoint config: temperature 0, top_p 1, max 1024 tokens, no penalties.

Corpus values are RadFact's ``from_aggregate``: the NaN-ignoring mean of each per-sample value
over valid samples; F1 = harmonic mean of the aggregated precision and recall. Per-sample F1 is
the harmonic mean of that sample's precision and recall (NaN where undefined).

Inputs: ``radfact`` takes narrative text (the LLM first splits each report into phrases, as
RadFact's ``is_narrative_text=True``); ``radfact_grounded`` takes phrase lists with boxes in
RadFact's own format, a JSON list of ``{"text": ..., "boxes": [{"x_min", "y_min", "x_max",
"y_max"}, ...] | null}`` (coordinates in [0, 1]).
"""

from __future__ import annotations

import ast
import inspect
import json
import math
import os
import re
from collections import deque
from collections.abc import Sequence
from decimal import Decimal
from enum import Enum
from pathlib import Path
from types import GeneratorType
from typing import Any, ClassVar

import numpy as np

from radeval import judge as J
from radeval import models
from radeval.errors import ConfigError, DependencyError, InputError
from radeval.metric import Metric

PROMPT_MODEL = "radfact-prompts"
COMMIT = "72463ac34442647886f13fad7d04958ab6c7c294"
IMAGE_SIZE = 224  # RadFactMetric(image_size=224)
BOX_PRECISION_THRESHOLD = 0.5
MAX_TOKENS = 1024  # RadFact's configs/default.yaml llm_api
EXTRA = (("top_p", 1.0), ("frequency_penalty", 0.0), ("presence_penalty", 0.0))
FILES = {
    "ev_system": "nli_system_message_ev_singlephrase.txt",
    "ev_examples": "nli_few_shot_examples.json",
    "phrases_system": "report_to_phrases_system_message.txt",
    "phrases_examples": "report_to_phrases_few_shot_examples.json",
    "phrases_schema": "report_to_phrases_schema.py",
}
ENTAILMENT, NOT_ENTAILMENT, NEUTRAL, CONTRADICTION = "entailment", "not_entailment", "neutral", "contradiction"


# ----- pydantic-v1 validation, as RadFact's pinned pydantic 1.10 applies it -------------------------
class _Invalid(Exception):
    pass


def _v1_str(v: Any) -> str:
    if isinstance(v, str):
        return v.value if isinstance(v, Enum) else v
    if isinstance(v, (float, int, Decimal)):  # bool is an int: True -> "True"
        return str(v)
    if isinstance(v, (bytes, bytearray)):
        try:
            return bytes(v).decode()
        except UnicodeDecodeError:
            raise _Invalid from None
    raise _Invalid


def _v1_list(v: Any) -> list:
    if isinstance(v, list):
        return v
    if isinstance(v, (tuple, set, frozenset, GeneratorType, deque)):
        return list(v)
    raise _Invalid


def _v1_dict(v: Any) -> dict:
    if isinstance(v, dict):
        return v
    try:
        return dict(v)
    except (TypeError, ValueError):
        raise _Invalid from None


def validate_evidenced(obj: Any) -> tuple[str, list[str], str]:
    """``EvidencedPhrase.parse_obj`` (fields and root validator); raises :class:`_Invalid`."""
    d = _v1_dict(obj)
    try:
        phrase = _v1_str(d["phrase"])
        evidence = [_v1_str(x) for x in _v1_list(d["evidence"])]
        status = _v1_str(d["status"])
    except KeyError:
        raise _Invalid from None
    if status == ENTAILMENT:
        ok = len(evidence) > 0
    elif status == NEUTRAL:
        ok = len(evidence) == 0
    elif status == CONTRADICTION:
        ok = len(evidence) > 0
    else:
        ok = status == NOT_ENTAILMENT
    if not ok:
        raise _Invalid
    return phrase, evidence, status


_YAML_BLOCK = re.compile(r"^```(?:ya?ml)?(?P<yaml>[^`]*)", re.MULTILINE | re.DOTALL)


def parse_evidenced(text: str) -> tuple[str, list[str], str] | None:
    """langchain's ``YamlOutputParser`` + the validation above; None where RadFact gets None."""
    import yaml

    m = _YAML_BLOCK.search(text.strip())
    try:
        obj = yaml.safe_load(m.group("yaml") if m else text)
        return validate_evidenced(obj)
    except Exception:  # RadFact's StructuredProcessor.run turns every failure into None
        return None


def validate_parsed_report(obj: Any) -> list[str]:
    """``ParsedReport.parse_obj`` then ``phrases_as_list`` (the non-empty 'new' sentences)."""
    d = _v1_dict(obj)
    if "id" in d and d["id"] is not None:
        v = d["id"]
        try:
            int(v)
        except (TypeError, ValueError, OverflowError):
            _v1_str(v)
    if "sentence_list" not in d:
        raise _Invalid
    phrases: list[str] = []
    for item in _v1_list(d["sentence_list"]):
        s = _v1_dict(item)
        try:
            _v1_str(s["orig"])
            new = [_v1_str(x) for x in _v1_list(s["new"])]
        except KeyError:
            raise _Invalid from None
        phrases.extend(x for x in new if len(x) > 0)
    return phrases


# ----- RadFact's text matching ------------------------------------------------------------------
def normalise(text: str) -> str:
    """RadFact's ``normalise_text_for_comparison``."""
    text = text.lower().strip()
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r"[\-–—]", "", text)
    text = re.sub(r"\s*(?<=[\.\:\!\?])", "", text)
    text = re.sub(r"[\.\:\!\?]$", "", text)
    return text


def best_match(text: str, candidates: Sequence[str]) -> int:
    """RadFact's ``find_best_match``: exact match after normalisation, else the longest common
    substring (its length measured on the un-normalised text at the normalised offsets, as the
    reference does)."""
    from difflib import SequenceMatcher

    norm = [normalise(c) for c in candidates]
    t = normalise(text)
    for i, c in enumerate(norm):
        if c == t:
            return i
    best, best_len = -1, 0
    for i, c in enumerate(norm):
        m = SequenceMatcher(None, t, c).find_longest_match(0, len(t), 0, len(c))
        if len(text[m.a : m.a + m.size]) > best_len:
            best, best_len = i, len(text[m.a : m.a + m.size])
    if best == -1:
        raise ValueError(f"no match for {text!r}")
    return best


# ----- boxes ---------------------------------------------------------------------------------
Box = tuple[float, float, float, float]


def _mask(boxes: Sequence[Box], size: int) -> np.ndarray:
    mask = np.zeros((size, size), dtype=np.bool_)
    for b in boxes:
        x1, y1, x2, y2 = (np.array(b) * size).astype(int)
        mask[x1:x2, y1:y2] = True
    return mask


def box_precision(pred: Sequence[Box], true: Sequence[Box], size: int = IMAGE_SIZE) -> float:
    p, t = _mask(pred, size), _mask(true, size)
    area = p.sum()
    return float((p & t).sum() / area) if area > 0 else math.nan


def parse_grounded(value: Any, where: str) -> list[tuple[str, list[Box] | None]]:
    """RadFact's grounded phrase list (``[{"text", "boxes"}]``, as a JSON string or a list)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise InputError(f"{where}: radfact_grounded needs a JSON list of phrases ({e.msg})") from None
    if not isinstance(value, list):
        raise InputError(f"{where}: radfact_grounded needs a list of {{'text', 'boxes'}} phrases")
    out = []
    for k, part in enumerate(value):
        if not isinstance(part, dict) or not isinstance(part.get("text"), str) or "boxes" not in part:
            raise InputError(f"{where}: phrase {k} must be {{'text': str, 'boxes': [box, ...] | null}}")
        boxes = part["boxes"]
        if boxes is None:
            out.append((part["text"], None))
            continue
        if not isinstance(boxes, list) or not boxes:
            raise InputError(f"{where}: phrase {k}: 'boxes' must be a non-empty list or null")
        bs = []
        for b in boxes:
            try:
                box = (float(b["x_min"]), float(b["y_min"]), float(b["x_max"]), float(b["y_max"]))
            except (TypeError, KeyError, ValueError):
                raise InputError(f"{where}: phrase {k}: a box needs numbers x_min, y_min, x_max, y_max") from None
            if not (0 <= box[0] <= box[2] <= 1 and 0 <= box[1] <= box[3] <= 1):
                raise InputError(f"{where}: phrase {k}: box {box} is not inside [0, 1] with min <= max")
            bs.append(box)
        out.append((part["text"], bs))
    return out


# ----- the reference's prompts, read at run time ------------------------------------------------
def _langchain():
    try:
        from langchain_core.output_parsers import pydantic as lc_pydantic
        from langchain_core.utils.json import parse_json_markdown
    except ImportError as e:
        raise DependencyError(
            "metric 'radfact' reads langchain's format instructions and JSON repair from langchain-core, "
            f"as RadFact's pinned stack uses them ({e}): pip install 'langchain-core>=0.2.43,<0.3'"
        ) from e
    return lc_pydantic._PYDANTIC_FORMAT_INSTRUCTIONS, parse_json_markdown


def _docstrings(source: bytes) -> dict[str, str]:
    tree = ast.parse(source)
    out = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            doc = ast.get_docstring(node, clean=False)
            if doc is not None:
                out[node.name] = inspect.cleandoc(doc)  # pydantic v1's schema description
    return out


def parsed_report_schema(docs: dict[str, str]) -> dict[str, Any]:
    """pydantic v1's ``ParsedReport.schema()`` less "title"/"type" (langchain's reduction)."""
    try:
        return {
            "description": docs["ParsedReport"],
            "properties": {
                "id": {"title": "Id", "anyOf": [{"type": "integer"}, {"type": "string"}]},
                "sentence_list": {
                    "title": "Sentence List",
                    "type": "array",
                    "items": {"$ref": "#/definitions/SentenceWithRephrases"},
                },
            },
            "required": ["sentence_list"],
            "definitions": {
                "SentenceWithRephrases": {
                    "title": "SentenceWithRephrases",
                    "description": docs["SentenceWithRephrases"],
                    "type": "object",
                    "properties": {
                        "orig": {"title": "Orig", "type": "string"},
                        "new": {"title": "New", "type": "array", "items": {"type": "string"}},
                    },
                    "required": ["orig", "new"],
                }
            },
        }
    except KeyError as e:
        raise ConfigError(f"RadFact's report_to_phrases schema has no docstring for {e}") from None


def _yaml(obj: dict[str, Any]) -> str:
    import yaml

    return yaml.dump(obj, sort_keys=False)


def _binary(status: str) -> str:
    return status if status in (ENTAILMENT, NOT_ENTAILMENT) else NOT_ENTAILMENT


class Prompts:
    """RadFact's two chat prompts (system + few-shot turns), built from the downloaded files."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        d = models.resolve(PROMPT_MODEL, path)
        if d.is_file():
            d = d.parent
        template, self.parse_json_markdown = _langchain()
        read = {k: (d / f) for k, f in FILES.items()}
        # Path.read_text, as RadFact reads its prompt files
        self.ev_system = read["ev_system"].read_text()
        self.ev_shots: list[tuple[str, str]] = []
        for ex in json.loads(read["ev_examples"].read_text(encoding="utf-8")):
            phrases = {"A": ex["input"]["phrases_A"], "B": ex["input"]["phrases_B"]}
            out = ex["output"]
            # RadFact: binary statuses; single-phrase samples, B_to_A (A's phrases vs B) then A_to_B
            for mine, other in (("A", "B"), ("B", "A")):
                for p in out[f"phrases_{mine}_evidenced"]:
                    query = _yaml({"reference": [str(x) for x in phrases[other]], "hypothesis": str(p["phrase"])})
                    answer = _yaml({"phrase": str(p["phrase"]), "evidence": [str(x) for x in p["evidence"]],
                                    "status": _binary(str(p["status"]))})  # fmt: skip
                    self.ev_shots.append((query, answer))
        docs = _docstrings(read["phrases_schema"].read_bytes())
        schema = json.dumps(parsed_report_schema(docs), ensure_ascii=False)
        self.phrases_system = read["phrases_system"].read_text() + "\n\n" + template.format(schema=schema)
        self.phrases_shots: list[tuple[str, str]] = []
        for ex in json.loads(read["phrases_examples"].read_text(encoding="utf-8")):
            pr = ex["parsed_report"]
            rid = pr.get("id")
            if isinstance(rid, str):
                try:  # pydantic v1 tries int first in `int | str | None`
                    rid = int(rid)
                except ValueError:
                    pass
            answer = json.dumps({"id": rid, "sentence_list": [{"orig": s["orig"], "new": list(s["new"])}
                                                                for s in pr["sentence_list"]]})  # fmt: skip
            self.phrases_shots.append((ex["findings_text"], answer))

    def ev_messages(self, reference: Sequence[str], hypothesis: str) -> tuple[tuple[str, str], ...]:
        msgs = [("system", self.ev_system)]
        for q, a in self.ev_shots:
            msgs += [("user", q), ("assistant", a)]
        msgs.append(("user", _yaml({"reference": list(reference), "hypothesis": hypothesis})))
        return tuple(msgs)

    def phrases_messages(self, text: str) -> tuple[tuple[str, str], ...]:
        msgs = [("system", self.phrases_system)]
        for q, a in self.phrases_shots:
            msgs += [("user", q), ("assistant", a)]
        msgs.append(("user", text))
        return tuple(msgs)

    def parse_phrases(self, text: str) -> list[str] | None:
        """langchain's PydanticOutputParser for ``ParsedReport``: None where RadFact gets None."""
        try:
            return validate_parsed_report(self.parse_json_markdown(text.strip()))
        except Exception:
            return None


def check_prompt_dir(directory: str | os.PathLike[str]) -> None:
    """The download's extra check: the files have the shapes RadFact's loaders read."""
    d = Path(directory)
    try:
        for ex in json.loads((d / FILES["ev_examples"]).read_text(encoding="utf-8")):
            ex["input"]["phrases_A"], ex["output"]["phrases_B_evidenced"]  # noqa: B018
        for ex in json.loads((d / FILES["phrases_examples"]).read_text(encoding="utf-8")):
            ex["findings_text"], ex["parsed_report"]["sentence_list"]  # noqa: B018
        parsed_report_schema(_docstrings((d / FILES["phrases_schema"]).read_bytes()))
    except (KeyError, TypeError, ValueError, SyntaxError) as e:
        raise models.ModelNotFound(f"{d}: RadFact's prompt files are not in the expected shape ({e})") from e


# ----- scoring -------------------------------------------------------------------------------
FRACTIONS = ("logical_precision", "logical_recall", "spatial_precision", "spatial_recall",
             "grounding_precision", "grounding_recall")  # fmt: skip
STAT_NAMES: tuple[str, ...] = (
    *(s for f in FRACTIONS for s in (f, f"{f}_n")),
    "valid", "n", "invalid", "phrase_failures", "llm_failures", "llm_calls", "rewrites",
    "candidate_phrases", "reference_phrases", "candidate_boxed", "reference_boxed",
)  # fmt: skip


def _oneway(
    statuses: list[str], boxes: list[list[Box] | None], evidence_boxes: list[list[Box]], size: int
) -> dict[str, Any]:
    """RadFact's ``compute_radfact_score_oneway``."""
    n = len(statuses)
    entailed = [s == ENTAILMENT for s in statuses]
    spatial = []
    for ok, b, ev in zip(entailed, boxes, evidence_boxes):
        if b is None:
            spatial.append(None)
        else:
            spatial.append(ok and len(ev) > 0 and box_precision(b, ev, size) > BOX_PRECISION_THRESHOLD)
    boxed = [s is not None for s in spatial]
    n_boxed = sum(boxed)
    n_ent_boxed = sum(1 for e, b in zip(entailed, boxed) if e and b)
    n_se = sum(1 for s in spatial if s)

    def div(a, b):
        return a / b if b != 0 else math.nan

    return {"entailed": div(sum(entailed), n), "entailed_box": div(n_se, n_ent_boxed), "full_box": div(n_se, n_boxed),
            "n": n, "n_boxed": n_boxed}  # fmt: skip


def _f1(p, r):
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((p + r) > 0, 2 * p * r / np.where((p + r) > 0, p + r, 1.0), np.nan)


class RadFact(Metric):
    """RadFact logical precision/recall/F1 per report and over the corpus (``radfact``), plus
    spatial and grounding precision/recall for boxed phrase lists (``radfact_grounded``).

    Options: ``endpoint`` (an OpenAI-compatible chat server; RadFact is endpoint-only),
    ``endpoint_model``, ``endpoint_batching``, ``endpoint_timeout``, ``endpoint_retries``,
    ``endpoint_concurrency``, ``api_key``, ``prompt_path`` (the radfact-prompts folder),
    ``image_size`` (224), ``judge_cache``, ``prices``.
    """

    name: ClassVar[str] = "radfact"
    keys: tuple[str, ...] = ("radfact_logical_precision", "radfact_logical_recall", "radfact_logical_f1")
    stat_names = STAT_NAMES
    impl_version: ClassVar[str] = "1"
    grounded: ClassVar[bool] = False

    def __init__(
        self,
        endpoint: str | None = None,
        endpoint_model: str | None = None,
        endpoint_batching: str = "auto",
        endpoint_timeout: float = 600.0,
        endpoint_retries: int = 3,
        endpoint_concurrency: int = 8,
        api_key: str | None = None,
        prompt_path: str | os.PathLike[str] | None = None,
        image_size: int = IMAGE_SIZE,
        judge_cache: bool | str = True,
        prices: Any = None,
    ) -> None:
        if int(image_size) < 1:
            raise ConfigError(f"{self.name} image_size must be >= 1, got {image_size!r}")
        # the prompts first: a missing download is the model manager's message (exit 4)
        self.prompts = Prompts(prompt_path)
        if not endpoint:
            raise ConfigError(f"{self.name} needs endpoint=URL (an OpenAI-compatible chat server, as RadFact uses)")
        self.image_size = int(image_size)
        self._judge_args = dict(
            model=endpoint_model, api="chat", batching=endpoint_batching, timeout=endpoint_timeout,
            retries=endpoint_retries, concurrency=endpoint_concurrency, api_key=api_key,
            api_key_env="RADEVAL_RADFACT_API_KEY", label="RadFact",
        )  # fmt: skip
        self.endpoint = str(endpoint)
        self.prices = J.parse_prices(prices)
        self._judge_cache = judge_cache
        self._judge: J.Judge | None = None
        self.sampling = J.Sampling(max_tokens=MAX_TOKENS, temperature=0.0, extra=EXTRA)
        #: per record of the last ``stats`` call: phrases with status and evidence (or why unscored)
        self.last_results: list[dict[str, Any]] = []

    def _get_judge(self) -> J.Judge:
        if self._judge is None:
            backend = J.EndpointBackend(self.endpoint, **self._judge_args)
            self._judge = J.Judge(backend, cache=self._judge_cache, prices=self.prices)
        return self._judge

    def settings(self) -> dict[str, Any]:
        return {
            "model": f"endpoint:{self._get_judge().backend.model}",
            "prompts": f"radfact@{COMMIT[:12]}",
            "input": "grounded-phrases" if self.grounded else "narrative",
            "decode": "greedy",
            "max_new": MAX_TOKENS,
            "image_size": self.image_size,
        }

    # ----- the two LLM stages ---------------------------------------------------------------
    def _phrases(self, texts: Sequence[str]) -> list[list[str] | None]:
        reqs = [J.Request(messages=self.prompts.phrases_messages(t.strip())) for t in texts]
        replies = self._get_judge().generate(reqs, self.sampling)
        return [self.prompts.parse_phrases(r.text) for r in replies]

    def _entail(self, jobs: list[tuple[list[str], str]]) -> tuple[list[tuple[str, list[str], str]], list[bool]]:
        reqs = [J.Request(messages=self.prompts.ev_messages(ref, hyp)) for ref, hyp in jobs]
        replies = self._get_judge().generate(reqs, self.sampling)
        out, failed = [], []
        for (_, hyp), rep in zip(jobs, replies):
            parsed = parse_evidenced(rep.text)
            failed.append(parsed is None)
            out.append((hyp, [], NOT_ENTAILMENT) if parsed is None else parsed)
        return out, failed

    def stats(self, hyps, refs, images=None) -> np.ndarray:
        n = len(hyps)
        if n == 0:
            self.last_results = []
            return np.zeros((0, len(STAT_NAMES)))
        cand: list[list[tuple[str, list[Box] | None]] | None]
        ref: list[list[tuple[str, list[Box] | None]] | None]
        if self.grounded:
            cand = [parse_grounded(h, f"record {i}: prediction") for i, h in enumerate(hyps)]
            ref = [parse_grounded(r, f"record {i}: reference") for i, r in enumerate(refs)]
        else:
            for name, seq in (("prediction", hyps), ("reference", refs)):
                for i, t in enumerate(seq):
                    if not isinstance(t, str):
                        raise InputError(f"radfact: record {i}: {name} must be a string, got {type(t).__name__}")
            texts = list(dict.fromkeys([*hyps, *refs]))
            phr = dict(zip(texts, self._phrases(texts)))
            cand = [None if phr[h] is None else [(p, None) for p in phr[h]] for h in hyps]
            ref = [None if phr[r] is None else [(p, None) for p in phr[r]] for r in refs]
        # every phrase of each side against the other side's phrases, in RadFact's order
        jobs: list[tuple[list[str], str]] = []
        spans: list[tuple[int, int, int] | None] = []
        for c, r in zip(cand, ref):
            if c is None or r is None:
                spans.append(None)
                continue
            start = len(jobs)
            jobs += [([p for p, _ in r], p) for p, _ in c]
            jobs += [([p for p, _ in c], p) for p, _ in r]
            spans.append((start, start + len(c), len(jobs)))
        answers, failed = self._entail(jobs) if jobs else ([], [])
        rows, self.last_results = [], []
        for i in range(n):
            row = dict.fromkeys(STAT_NAMES, 0.0)
            row["n"] = 1.0
            if spans[i] is None:
                row["phrase_failures"] = 1.0
                self.last_results.append({"unscored": "phrase list did not parse"})
                rows.append([row[k] for k in STAT_NAMES])
                continue
            a, b, e = spans[i]
            c, r = cand[i], ref[i]
            assert c is not None and r is not None
            row["llm_calls"] = float(e - a)
            row["llm_failures"] = float(sum(failed[a:e]))
            res = self._score_pair(c, r, answers[a:b], answers[b:e], row)
            self.last_results.append(res)
            rows.append([row[k] for k in STAT_NAMES])
        return np.asarray(rows, dtype=np.float64)

    def _score_pair(self, c, r, c_ans, r_ans, row) -> dict[str, Any]:
        # a rewritten phrase is put back (RadFact's processor), then the sample is validated
        fixed_c, fixed_r = [], []
        for (hyp, _), (phrase, ev, st) in zip(c, c_ans):
            row["rewrites"] += float(phrase != hyp)
            fixed_c.append((hyp, ev, st))
        for (hyp, _), (phrase, ev, st) in zip(r, r_ans):
            row["rewrites"] += float(phrase != hyp)
            fixed_r.append((hyp, ev, st))
        c_norm = [normalise(p) for p, _ in c]
        r_norm = [normalise(p) for p, _ in r]
        if any(normalise(x) not in r_norm for _, ev, _ in fixed_c for x in ev) or any(
            normalise(x) not in c_norm for _, ev, _ in fixed_r for x in ev
        ):
            row["invalid"] = 1.0  # RadFact: a ValidationError, the sample is dropped from the aggregate
            return {"unscored": "evidence is not a phrase of the other report"}
        sides = {}
        for side, mine, other, fixed in (("candidate", c, r, fixed_c), ("reference", r, c, fixed_r)):
            texts = [p for p, _, _ in fixed]
            statuses, boxes, ev_boxes = [], [], []
            for hyp, hboxes in mine:
                _, ev, st = fixed[best_match(hyp, texts)]
                statuses.append(st)
                boxes.append(hboxes)
                eb: list[Box] = []
                for x in ev:
                    pb = other[best_match(x, [p for p, _ in other])][1]
                    if pb is not None:
                        eb.extend(pb)
                ev_boxes.append(eb)
            sides[side] = _oneway(statuses, boxes, ev_boxes, self.image_size)
            sides[side]["phrases"] = [{"text": h, "status": s} for (h, _), s in zip(mine, statuses)]
        cs, rs = sides["candidate"], sides["reference"]
        values = {
            "logical_precision": cs["entailed"], "logical_recall": rs["entailed"],
            "spatial_precision": cs["full_box"], "spatial_recall": rs["full_box"],
            "grounding_precision": cs["entailed_box"], "grounding_recall": rs["entailed_box"],
        }  # fmt: skip
        for k, v in values.items():
            if not math.isnan(v):
                row[k], row[f"{k}_n"] = v, 1.0
        row["valid"] = 1.0
        row["candidate_phrases"], row["reference_phrases"] = float(cs["n"]), float(rs["n"])
        row["candidate_boxed"], row["reference_boxed"] = float(cs["n_boxed"]), float(rs["n_boxed"])
        return {"scores": values, "candidate": cs["phrases"], "reference": rs["phrases"]}

    async def astats(self, hyps, refs, images=None) -> np.ndarray:
        """:meth:`stats` off the event loop (async rewards)."""
        import asyncio

        return await asyncio.to_thread(self.stats, hyps, refs, images)

    # ----- values ---------------------------------------------------------------------------
    def from_totals(self, totals: np.ndarray) -> dict[str, np.ndarray]:
        t = np.asarray(totals, dtype=np.float64)
        col = {k: i for i, k in enumerate(STAT_NAMES)}
        out: dict[str, np.ndarray] = {}
        with np.errstate(invalid="ignore", divide="ignore"):
            for f in FRACTIONS:
                num, den = t[..., col[f]], t[..., col[f"{f}_n"]]
                out[f] = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
        kinds = ("logical", "spatial", "grounding") if self.grounded else ("logical",)
        res = {}
        for kind in kinds:
            p, r = out[f"{kind}_precision"], out[f"{kind}_recall"]
            res.update({f"{self.name}_{kind}_precision": p, f"{self.name}_{kind}_recall": r,
                        f"{self.name}_{kind}_f1": _f1(p, r)})  # fmt: skip
        return res

    def details(self, totals: np.ndarray) -> dict[str, Any]:
        t = dict(zip(STAT_NAMES, (float(x) for x in totals)))
        v = max(t["valid"], 1.0)
        out: dict[str, Any] = {
            "n": int(t["n"]),
            "num_samples": int(t["valid"]),  # RadFact's aggregate field names
            "num_invalid_processed_samples": int(t["invalid"]),
            "phrase_parse_failures": int(t["phrase_failures"]),
            "num_llm_failures": int(t["llm_failures"]),
            "num_llm_success": int(t["llm_calls"] - t["llm_failures"]),
            "num_llm_phrase_rewrites": int(t["rewrites"]),
            "num_candidate_phrases": t["candidate_phrases"] / v if t["valid"] else 0.0,
            "num_reference_phrases": t["reference_phrases"] / v if t["valid"] else 0.0,
        }
        if self.grounded:
            out["num_candidate_phrases_with_boxes"] = t["candidate_boxed"] / v if t["valid"] else 0.0
            out["num_reference_phrases_with_boxes"] = t["reference_boxed"] / v if t["valid"] else 0.0
        if self._judge is not None:
            out["judge"] = self._judge.summary()
        return out


class RadFactGrounded(RadFact):
    name: ClassVar[str] = "radfact_grounded"
    keys = tuple(f"radfact_grounded_{k}_{m}" for k in ("logical", "spatial", "grounding")
                 for m in ("precision", "recall", "f1"))  # fmt: skip
    grounded: ClassVar[bool] = True
