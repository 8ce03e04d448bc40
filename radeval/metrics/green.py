"""GREEN (Ostmeier et al., Findings of EMNLP 2024): an LLM judge counts clinically significant
errors and matched findings; GREEN = matched / (matched + significant errors (a)-(f)).

Input contract (what the GREEN checkpoints see), taken from the GREEN repository
(github.com/Stanford-AIMI/GREEN, ``green_score/green.py`` + ``utils.py``; RadEval's copy agrees):

* each report is cut to its first 300 whitespace-separated words and re-joined with single
  spaces; the two go into GREEN's fixed instruction prompt (:func:`make_prompt`);
* the prompt is wrapped by GREEN's runtime chat template with the conversation
  ``[human: prompt, gpt: ""]`` and ``add_generation_prompt=True``, which renders as
  ``"<|user|>\\n" + prompt + EOS + "\\n<|assistant|>\\n" + EOS + "\\n<|assistant|>\\n"``
  (:func:`render_input`);
* the tokenizer is loaded with ``add_eos_token=True``, so the ids are
  ``[BOS] + tokens(text) + [EOS]``, truncated to 2048 ids; left padding with EOS as pad;
* greedy decoding, total length (prompt + answer) capped at 2048 + 512 ids;
* the whole row is decoded with ``skip_special_tokens=True`` and
  ``clean_up_tokenization_spaces=True`` and cleaned as GREEN's ``clean_responses`` does.

(GREEN's *training* script adds a system turn "You are a helpful assistant."; its published
scorer does not, and every GREEN number in the literature comes from the scorer, so we follow
the scorer.)

Scoring is GREEN's ``compute_green`` / ``parse_error_counts`` with ``for_reward=False``:

* a section is ``[NAME]:`` up to the first blank line (or the end); a section that starts
  with "No" counts 0; a missing section counts 0;
* errors: every ``(x) ...`` line fragment (x in a-f; else the numbered (1)-(6) form), in
  sorted order; the first integer that follows ": " and precedes "." is that category's count
  (a later fragment of the same category overrides an earlier one, as in GREEN);
* matched findings: the integer that starts the section and is followed by ".";
* ``matched == 0`` -> 0 (also when there are no errors), else matched / (matched + errors).

Malformed or truncated responses (a section missing, the answer cut by the length cap, a
count too long to be a number) never raise: they get GREEN's own value for that text (a
missing "Matched Findings" section gives 0) and are counted in :meth:`Green.details`
(``malformed``, ``truncated``). The mean is GREEN's ``np.mean``; the std is ``np.std``
(population, ddof 0), reported in the details.

Backends: ``transformers`` (default; batched greedy generation, GPU when present),
``vllm`` (when installed) and ``endpoint`` (any OpenAI-compatible server, e.g.
``vllm serve`` of the GREEN model). The endpoint is called through the *completions* API
with the rendered text above (plus the trailing EOS string), because GREEN sets its chat
template at run time: the checkpoint's own tokenizer config does not carry it, so a chat
API call would render a different prompt. ``trust_remote_code`` is off unless asked for
(GREEN-RadLlama2-7b is a plain Llama checkpoint).
"""

from __future__ import annotations

import json
import math
import os
import re
import time
import urllib.error
import urllib.request
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from radeval import models
from radeval.errors import ConfigError, DependencyError, RadevalError
from radeval.metric import Metric

MODEL_NAME = "green"
MAX_WORDS = 300  # GREEN's make_prompt(max_len=300)
MAX_PROMPT_IDS = 2048  # GREEN's tokenizer call: truncation=True, max_length=2048
MAX_TOTAL_IDS = 2048 + 512  # GREEN's generate(max_length=2048 + 512)
ENDPOINT_DEFAULT_MAX_TOKENS = 1024  # no local tokenizer to measure the prompt with

#: GREEN's six error categories, in its order (a)-(f).
CATEGORIES: tuple[str, ...] = (
    "False report of a finding in the candidate",
    "Missing a finding present in the reference",
    "Misidentification of a finding's anatomic location/position",
    "Misassessment of the severity of a finding",
    "Mentioning a comparison that isn't in the reference",
    "Omitting a comparison detailing a change from a prior study",
)
LETTERS = "abcdef"

SIG = "Clinically Significant Errors"
INSIG = "Clinically Insignificant Errors"
MATCHED = "Matched Findings"


# ----- prompt --------------------------------------------------------------------------------
def _truncate_words(text: str, max_words: int = MAX_WORDS) -> str:
    return " ".join(text.split()[:max_words])


def make_prompt(reference: str, candidate: str, max_words: int = MAX_WORDS) -> str:
    """GREEN's instruction prompt, byte for byte (source: GREEN ``utils.make_prompt``).

    The lines after the first are indented by four spaces, as GREEN's triple-quoted source
    produces them; the model was tuned on exactly this text.
    """
    ref = _truncate_words(reference, max_words)
    cand = _truncate_words(candidate, max_words)
    fmt = "<Error Type>: <The number of errors>. <Error 1>; <Error 2>; ...; <Error n>"
    errors_block = [f"(a) {fmt}", "....", f"(f) {fmt}"]
    lines: list[str | None] = [
        "Objective: Evaluate the accuracy of a candidate radiology report in comparison to a "
        "reference radiology report composed by expert radiologists.",
        None,
        "Process Overview: You will be presented with:",
        None,
        "1. The criteria for making a judgment.",
        "2. The reference radiology report.",
        "3. The candidate radiology report.",
        "4. The desired format for your assessment.",
        None,
        "1. Criteria for Judgment:",
        None,
        "For each candidate report, determine:",
        None,
        "The count of clinically significant errors.",
        "The count of clinically insignificant errors.",
        None,
        "Errors can fall into one of these categories:",
        None,
        *[f"{LETTERS[i]}) {c}." for i, c in enumerate(CATEGORIES)],
        "Note: Concentrate on the clinical findings rather than the report's writing style. "
        "Evaluate only the findings that appear in both reports.",
        None,
        "2. Reference Report:",
        ref,
        None,
        "3. Candidate Report:",
        cand,
        None,
        "4. Reporting Your Assessment:",
        None,
        "Follow this specific format for your output, even if no errors are found:",
        "```",
        "[Explanation]:",
        "<Explanation>",
        None,
        f"[{SIG}]:",
        *errors_block,
        None,
        f"[{INSIG}]:",
        *errors_block,
        None,
        f"[{MATCHED}]:",
        "<The number of matched findings>. <Finding 1>; <Finding 2>; ...; <Finding n>",
        "```",
    ]
    # GREEN's string: blank lines (None) are bare "\n"; every other line after the first,
    # the reports included even when empty, carries 4 spaces of indentation
    out = str(lines[0])
    for line in lines[1:]:
        out += "\n" + ("" if line is None else "    " + line)
    return out + "\n"


def render_input(prompt: str, eos: str = "</s>") -> str:
    """The text GREEN's runtime chat template renders for ``[human: prompt, gpt: ""]`` with a
    generation prompt (jinja with trim_blocks: the newline after each ``{{ }}`` survives)."""
    return f"<|user|>\n{prompt}{eos}\n<|assistant|>\n{eos}\n<|assistant|>\n"


def clean_response(text: str) -> str:
    """GREEN's ``clean_responses``: keep what follows the last ``<|assistant|>``, then what
    follows ``[Explanation]:`` (GREEN's test ``("A" or "B") in r`` only ever tests A), drop
    ``</s>`` / ``<unk>``."""
    r = text
    if "[Explanation]:" in r:
        if "<|assistant|>" in r:
            r = r.split("<|assistant|>")[-1]
        if "[Explanation]:\n    <Explanation>\n" in r:
            r = r.split("[Explanation]:")[1]
        else:
            r = r.split("[Explanation]:")[-1]
    if "<|assistant|>" in r:
        r = r.split("<|assistant|>")[-1]
    return r.replace("</s>", "").replace("<unk>", "")


_CLEANUP = (
    (" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"),
    (" n't", "n't"), (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"),
)  # fmt: skip


def cleanup_tokenization_spaces(text: str) -> str:
    """transformers' ``clean_up_tokenization`` (GREEN decodes with it on); applied to text that
    a server detokenised, so every backend parses the same kind of string."""
    for a, b in _CLEANUP:
        text = text.replace(a, b)
    return text


# ----- parser --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Parsed:
    """Counts parsed from one GREEN response."""

    significant: tuple[int, ...]
    insignificant: tuple[int, ...]
    matched: int
    malformed: bool

    @property
    def green(self) -> float:
        if self.matched == 0:
            return 0.0
        return self.matched / (self.matched + sum(self.significant))


def _section(text: str, name: str) -> str | None:
    m = re.search(rf"\[{re.escape(name)}\]:\s*(.*?)(?:\n\s*\n|\Z)", text, re.DOTALL)
    return None if m is None else m.group(1)


class _BadNumber(Exception):
    pass


def _int(s: str) -> int:
    try:
        return int(s)
    except ValueError:  # more digits than Python converts (sys.int_info.str_digits_check_threshold)
        raise _BadNumber(s[:20]) from None


def _error_counts(body: str | None) -> list[int]:
    counts = [0] * 6
    if body is None or body.startswith("No"):
        return counts
    frags = sorted(re.findall(r"\([a-f]\) .*", body))
    labels = [f"({c}) " for c in LETTERS]
    if not frags:  # GPT-4-style numbered categories
        frags = sorted(re.findall(r"\([1-6]\) .*", body))
        labels = [f"({i}) " for i in range(1, 7)]
    for pos, label in enumerate(labels):
        for frag in frags:
            if frag.startswith(label):
                nums = re.findall(r"(?<=: )\b\d+\b(?=\.)", frag)
                if nums:
                    counts[pos] = _int(nums[0])
    return counts


def _matched_count(body: str | None) -> int:
    if body is None or body.startswith("No"):
        return 0
    m = re.match(r"\d+\b(?=\.)", body)
    return _int(m.group(0)) if m else 0


def parse_response(text: str) -> Parsed:
    """Counts from a (cleaned) GREEN response; never raises. ``malformed`` when the
    significant-errors or matched-findings section is missing or a count is unreadable."""
    sig_body = _section(text, SIG)
    matched_body = _section(text, MATCHED)
    malformed = sig_body is None or matched_body is None
    try:
        sig = _error_counts(sig_body)
        insig = _error_counts(_section(text, INSIG))
        matched = _matched_count(matched_body)
    except _BadNumber:
        return Parsed((0,) * 6, (0,) * 6, 0, True)
    return Parsed(tuple(sig), tuple(insig), matched, malformed)


# ----- statistics layout ---------------------------------------------------------------------
STAT_NAMES: tuple[str, ...] = (
    "green", "green_sq", "n", "malformed", "truncated", "matched",
    *(f"sig_{c}" for c in LETTERS), *(f"insig_{c}" for c in LETTERS),
    *(f"has_sig_{c}" for c in LETTERS),
)  # fmt: skip


def stats_row(p: Parsed, truncated: bool) -> np.ndarray:
    g = p.green
    sig = np.asarray(p.significant, dtype=np.float64)
    return np.concatenate(
        [
            [g, g * g, 1.0, float(p.malformed), float(truncated), float(p.matched)],
            sig,
            np.asarray(p.insignificant, dtype=np.float64),
            (sig > 0).astype(np.float64),
        ]
    )


# ----- backends ------------------------------------------------------------------------------
@dataclass
class Generation:
    text: str  # cleaned response
    truncated: bool


def _torch():
    try:
        import torch
        import transformers  # noqa: F401
    except ImportError as e:  # pragma: no cover - depends on the install
        raise DependencyError(f"GREEN's local backends need torch and transformers: {e}") from e
    return torch


class _LocalTokenizer:
    """GREEN's ids for a prompt: [BOS] + tokens(rendered) + [EOS], at most 2048."""

    def __init__(self, path: str, trust_remote_code: bool) -> None:
        from transformers import AutoTokenizer

        self.tok = AutoTokenizer.from_pretrained(path, padding_side="left", trust_remote_code=trust_remote_code)
        if self.tok.eos_token_id is None:
            raise ConfigError(f"GREEN tokenizer at {path} has no EOS token")
        self.eos = self.tok.eos_token
        self.eos_id = int(self.tok.eos_token_id)
        self.bos_id = None if self.tok.bos_token_id is None else int(self.tok.bos_token_id)

    def ids(self, reference: str, candidate: str) -> list[int]:
        text = render_input(make_prompt(reference, candidate), self.eos)
        body = self.tok(text, add_special_tokens=False)["input_ids"]
        head = [self.bos_id] if self.bos_id is not None else []
        room = MAX_PROMPT_IDS - len(head) - 1  # HF truncation keeps room for the special tokens
        return head + list(body[:room]) + [self.eos_id]

    def decode(self, ids: Sequence[int]) -> str:
        return self.tok.decode(list(ids), skip_special_tokens=True, clean_up_tokenization_spaces=True)


class TransformersBackend:
    """Batched greedy generation with transformers (left padding, GPU when present)."""

    name = "transformers"

    def __init__(
        self,
        path: str,
        *,
        device: str | None,
        dtype: str,
        batch_size: int,
        max_new_tokens: int | None,
        trust_remote_code: bool,
    ) -> None:
        torch = _torch()
        from transformers import AutoModelForCausalLM

        self.torch = torch
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.dtype = _resolve_dtype(dtype, self.device)
        self.tk = _LocalTokenizer(path, trust_remote_code)
        self.model = AutoModelForCausalLM.from_pretrained(
            path, dtype=getattr(torch, self.dtype), trust_remote_code=trust_remote_code
        ).to(self.device)
        self.model.eval()
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens

    def _generate_ids(self, input_ids, attention_mask, max_new_tokens: int):
        """One ``model.generate`` call with GREEN's decoding settings (a test seam)."""
        return self.model.generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            do_sample=False,
            temperature=None,
            top_p=None,
            max_new_tokens=max_new_tokens,
            eos_token_id=self.tk.eos_id,
            pad_token_id=self.tk.eos_id,
        )

    def generate(self, pairs: Sequence[tuple[str, str]]) -> list[Generation]:
        torch = self.torch
        all_ids = [self.tk.ids(r, h) for r, h in pairs]
        order = sorted(range(len(all_ids)), key=lambda i: -len(all_ids[i]))  # less padding
        out: list[Generation | None] = [None] * len(all_ids)
        for s in range(0, len(order), self.batch_size):
            idx = order[s : s + self.batch_size]
            width = max(len(all_ids[i]) for i in idx)
            budget = self.max_new_tokens or max(1, MAX_TOTAL_IDS - width)
            pad = self.tk.eos_id
            ids = torch.tensor([[pad] * (width - len(all_ids[i])) + all_ids[i] for i in idx])
            mask = torch.tensor([[0] * (width - len(all_ids[i])) + [1] * len(all_ids[i]) for i in idx])
            with torch.inference_mode():
                gen = self._generate_ids(ids.to(self.device), mask.to(self.device), budget)
            gen = gen.to("cpu").tolist()
            for row, i in zip(gen, idx):
                new = row[width:]
                # strip the padding generate appends after EOS in finished rows
                stop = new.index(pad) + 1 if pad in new else len(new)
                new = new[:stop]
                truncated = not new or (new[-1] != pad and len(new) >= budget)
                text = clean_response(self.tk.decode(all_ids[i] + new))
                out[i] = Generation(text, truncated)
        return [g for g in out if g is not None]


class VllmBackend:
    """vLLM offline engine on the same token ids as the transformers backend."""

    name = "vllm"

    def __init__(
        self,
        path: str,
        *,
        dtype: str,
        max_new_tokens: int | None,
        trust_remote_code: bool,
        vllm_kwargs: dict[str, Any] | None = None,
    ) -> None:
        try:
            import vllm
        except ImportError as e:
            raise DependencyError("backend 'vllm' needs vLLM: pip install vllm") from e
        self.vllm = vllm
        self.tk = _LocalTokenizer(path, trust_remote_code)
        self.dtype = "float16" if dtype == "auto" else dtype
        self.llm = vllm.LLM(model=path, dtype=self.dtype, trust_remote_code=trust_remote_code, **(vllm_kwargs or {}))
        self.max_new_tokens = max_new_tokens

    def generate(self, pairs: Sequence[tuple[str, str]]) -> list[Generation]:
        all_ids = [self.tk.ids(r, h) for r, h in pairs]
        params = [
            self.vllm.SamplingParams(
                temperature=0.0,
                max_tokens=self.max_new_tokens or max(1, MAX_TOTAL_IDS - len(ids)),
                skip_special_tokens=True,
            )
            for ids in all_ids
        ]
        prompts = [{"prompt_token_ids": ids} for ids in all_ids]
        results = self.llm.generate(prompts, params, use_tqdm=False)
        out = []
        for ids, res in zip(all_ids, results):
            c = res.outputs[0]
            text = clean_response(self.tk.decode(list(ids) + list(c.token_ids)))
            out.append(Generation(text, c.finish_reason == "length"))
        return out


class EndpointBackend:
    """An OpenAI-compatible completions endpoint (e.g. ``vllm serve`` of the GREEN model).

    One request per batch of prompts (the completions API takes a list); a few requests in
    flight at once; each request has a timeout and is retried on connection errors, 429 and
    5xx with exponential backoff.
    """

    name = "endpoint"

    def __init__(
        self,
        url: str,
        *,
        model: str | None,
        batch_size: int,
        max_new_tokens: int | None,
        timeout: float,
        retries: int,
        concurrency: int,
        api_key: str | None,
        eos: str = "</s>",
    ) -> None:
        url = url.rstrip("/")
        if not re.match(r"^https?://", url):
            raise ConfigError(f"green endpoint must be an http(s) URL, got {url!r}")
        self.base = url if url.endswith("/v1") else url + "/v1"
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.concurrency = max(1, int(concurrency))
        self.batch_size = batch_size
        self.max_tokens = max_new_tokens or ENDPOINT_DEFAULT_MAX_TOKENS
        self.api_key = api_key if api_key is not None else os.environ.get("RADEVAL_GREEN_API_KEY")
        self.eos = eos
        self.model = model or self._first_model()

    def _request(self, path: str, payload: dict[str, Any] | None) -> dict[str, Any]:
        url = self.base + path
        data = None if payload is None else json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(min(8.0, 0.5 * 2 ** (attempt - 1)))
            req = urllib.request.Request(url, data=data, headers=headers, method="POST" if data else "GET")
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    return json.loads(resp.read().decode("utf-8"))
            except urllib.error.HTTPError as e:
                body = e.read()[:500].decode("utf-8", "replace")
                if e.code == 429 or e.code >= 500:
                    last = RadevalError(f"GREEN endpoint {url}: HTTP {e.code}: {body}")
                    continue
                raise RadevalError(f"GREEN endpoint {url}: HTTP {e.code}: {body}") from None
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as e:
                last = e
                continue
            except ValueError as e:  # not JSON
                raise RadevalError(f"GREEN endpoint {url}: response is not JSON ({e})") from None
        raise RadevalError(f"GREEN endpoint {url}: no answer after {self.retries + 1} tries: {last}")

    def _first_model(self) -> str:
        listing = self._request("/models", None)
        try:
            return str(listing["data"][0]["id"])
        except (KeyError, IndexError, TypeError):
            raise RadevalError(f"GREEN endpoint {self.base}/models lists no model; pass endpoint_model") from None

    def _batch(self, texts: list[str]) -> list[Generation]:
        payload = {
            "model": self.model,
            "prompt": texts,
            "max_tokens": self.max_tokens,
            "temperature": 0.0,
            "n": 1,
            "skip_special_tokens": True,  # vLLM extension; others ignore it
        }
        resp = self._request("/completions", payload)
        choices = resp.get("choices") if isinstance(resp, dict) else None
        if not isinstance(choices, list) or len(choices) != len(texts):
            raise RadevalError(
                f"GREEN endpoint returned {len(choices) if isinstance(choices, list) else 'no'} "
                f"choices for {len(texts)} prompts"
            )
        out: list[Generation | None] = [None] * len(texts)
        for pos, ch in enumerate(choices):
            i = ch.get("index", pos)
            if not isinstance(i, int) or not 0 <= i < len(texts) or out[i] is not None:
                raise RadevalError(f"GREEN endpoint returned a bad choice index {i!r}")
            text = cleanup_tokenization_spaces(str(ch.get("text") or ""))
            out[i] = Generation(clean_response(text), ch.get("finish_reason") == "length")
        return [g for g in out if g is not None]

    def generate(self, pairs: Sequence[tuple[str, str]]) -> list[Generation]:
        # the server adds BOS; the trailing EOS string is GREEN's add_eos_token
        texts = [render_input(make_prompt(r, h), self.eos) + self.eos for r, h in pairs]
        chunks = [texts[i : i + self.batch_size] for i in range(0, len(texts), self.batch_size)]
        if self.concurrency == 1 or len(chunks) <= 1:
            results = [self._batch(c) for c in chunks]
        else:
            with ThreadPoolExecutor(self.concurrency) as ex:
                results = list(ex.map(self._batch, chunks))
        return [g for chunk in results for g in chunk]


def _resolve_dtype(dtype: str, device: str) -> str:
    if dtype == "auto":
        # GREEN runs float16 on GPU; float16 matmuls on CPU are slow or unsupported
        return "float16" if str(device).startswith("cuda") else "float32"
    if dtype not in ("float16", "bfloat16", "float32"):
        raise ConfigError(f"green dtype must be auto, float16, bfloat16 or float32, got {dtype!r}")
    return dtype


# ----- the metric ----------------------------------------------------------------------------
class Green(Metric):
    """GREEN score per report, its mean over the corpus, and error counts in the details.

    Options: ``backend`` ("transformers" | "vllm" | "endpoint"; ``endpoint=URL`` alone picks
    the endpoint), ``model_path`` (else the model manager resolves "green"), ``device``,
    ``dtype`` ("auto" = float16 on GPU as GREEN, float32 on CPU), ``batch_size``,
    ``max_new_tokens`` (None = GREEN's cap: prompt + answer <= 2560 ids; the endpoint,
    which cannot count prompt ids, uses 1024), ``trust_remote_code`` (off),
    ``endpoint_model`` (else the server's first model), ``endpoint_timeout`` (s),
    ``endpoint_retries``, ``endpoint_concurrency``, ``api_key``.
    """

    name: ClassVar[str] = "green"
    keys = ("green",)
    stat_names = STAT_NAMES
    directions = {"green": True}
    impl_version: ClassVar[str] = "1"

    def __init__(
        self,
        backend: str | None = None,
        model_path: str | os.PathLike[str] | None = None,
        endpoint: str | None = None,
        endpoint_model: str | None = None,
        endpoint_timeout: float = 600.0,
        endpoint_retries: int = 3,
        endpoint_concurrency: int = 4,
        api_key: str | None = None,
        device: str | None = None,
        dtype: str = "auto",
        batch_size: int = 8,
        max_new_tokens: int | None = None,
        trust_remote_code: bool = False,
        cache_size: int = 100_000,
        vllm_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if backend is None:
            backend = "endpoint" if endpoint else "transformers"
        if backend not in ("transformers", "vllm", "endpoint"):
            raise ConfigError(f"green backend must be transformers, vllm or endpoint, got {backend!r}")
        if int(batch_size) < 1:
            raise ConfigError(f"green batch_size must be >= 1, got {batch_size!r}")
        if max_new_tokens is not None and int(max_new_tokens) < 1:
            raise ConfigError(f"green max_new_tokens must be >= 1, got {max_new_tokens!r}")
        self.backend_name = backend
        self.batch_size = int(batch_size)
        self.max_new_tokens = None if max_new_tokens is None else int(max_new_tokens)
        self.trust_remote_code = bool(trust_remote_code)
        self._cache: OrderedDict[tuple[str, str], tuple[Parsed, bool, str]] = OrderedDict()
        self._cache_size = int(cache_size)
        #: the raw (cleaned) responses of the last ``stats`` call, in record order
        self.last_responses: list[str] = []
        self._backend: Any = None
        self._opts = {
            "device": device,
            "dtype": dtype,
            "vllm_kwargs": vllm_kwargs,
            "endpoint_model": endpoint_model,
            "endpoint_timeout": endpoint_timeout,
            "endpoint_retries": endpoint_retries,
            "endpoint_concurrency": endpoint_concurrency,
            "api_key": api_key,
        }
        if backend == "endpoint":
            if not endpoint:
                raise ConfigError("green backend 'endpoint' needs endpoint=URL (--green-endpoint URL)")
            self.endpoint = str(endpoint)
            self.model_dir = None
            self._source = "endpoint"
        else:
            self.endpoint = None
            res = models.locate(MODEL_NAME, model_path)
            if res.path is None:
                raise models.not_found_error(MODEL_NAME, res.searched)
            self.model_dir = res.path
            self._source = _describe_source(res.source, res.path)
            self.dtype = dtype

    # ----- identity ---------------------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        if self.backend_name == "endpoint":
            backend = self._get_backend()
            model = f"endpoint:{backend.model}"
            limit = f"new{backend.max_tokens}"
        else:
            spec = models.get_spec(MODEL_NAME)
            model = f"{spec.repo_id}@{self._source}"
            limit = f"new{self.max_new_tokens}" if self.max_new_tokens else f"total{MAX_TOTAL_IDS}"
        return {
            "model": model,
            "backend": self.backend_name,
            "prompt": f"green-make_prompt-{MAX_WORDS}w",
            "template": "green-chat+bos+eos",
            "decode": "greedy",
            "max_len": limit,
            "parse": "green_score",
        }

    def _get_backend(self):
        if self._backend is not None:
            return self._backend
        o = self._opts
        if self.backend_name == "endpoint":
            self._backend = EndpointBackend(
                self.endpoint,
                model=o["endpoint_model"],
                batch_size=self.batch_size,
                max_new_tokens=self.max_new_tokens,
                timeout=o["endpoint_timeout"],
                retries=o["endpoint_retries"],
                concurrency=o["endpoint_concurrency"],
                api_key=o["api_key"],
            )
        elif self.backend_name == "vllm":
            self._backend = VllmBackend(
                str(self.model_dir),
                dtype=o["dtype"],
                max_new_tokens=self.max_new_tokens,
                trust_remote_code=self.trust_remote_code,
                vllm_kwargs=o["vllm_kwargs"],
            )
        else:
            self._backend = TransformersBackend(
                str(self.model_dir),
                device=o["device"],
                dtype=o["dtype"],
                batch_size=self.batch_size,
                max_new_tokens=self.max_new_tokens,
                trust_remote_code=self.trust_remote_code,
            )
        return self._backend

    # ----- scoring ----------------------------------------------------------------------------
    def judge(self, hyps: Sequence[str], refs: Sequence[str]) -> list[tuple[Parsed, bool, str]]:
        """(parsed counts, truncated, response) per pair; each distinct (truncated) pair is
        generated once and cached, as GREEN's own pair cache does."""
        keys = [(_truncate_words(r), _truncate_words(h)) for h, r in zip(hyps, refs)]
        todo = list(OrderedDict.fromkeys(k for k in keys if k not in self._cache))
        gens = self._get_backend().generate(todo) if todo else []
        if len(gens) != len(todo):
            raise RadevalError(f"GREEN backend returned {len(gens)} responses for {len(todo)} prompts")
        fresh = {k: (parse_response(g.text), g.truncated, g.text) for k, g in zip(todo, gens)}
        for k, item in fresh.items():
            self._cache[k] = item
            self._cache.move_to_end(k)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return [fresh[k] if k in fresh else self._cache[k] for k in keys]

    def stats(self, hyps, refs, images=None) -> np.ndarray:
        if len(hyps) == 0:
            self.last_responses = []
            return np.zeros((0, len(STAT_NAMES)))
        for name, seq in (("prediction", hyps), ("reference", refs)):
            for i, t in enumerate(seq):
                if not isinstance(t, str):
                    from radeval.errors import InputError

                    raise InputError(f"green: record {i}: {name} must be a string, got {type(t).__name__}")
        judged = self.judge(hyps, refs)
        self.last_responses = [resp for _, _, resp in judged]
        return np.stack([stats_row(p, t) for p, t, _ in judged])

    def from_totals(self, totals: np.ndarray) -> dict[str, np.ndarray]:
        t = np.asarray(totals, dtype=np.float64)
        n = t[..., 2]
        with np.errstate(invalid="ignore", divide="ignore"):
            green = np.where(n > 0, t[..., 0] / np.where(n > 0, n, 1.0), np.nan)
        return {"green": green}

    def details(self, totals: np.ndarray) -> dict[str, Any]:
        t = dict(zip(STAT_NAMES, (float(x) for x in totals)))
        n = t["n"]
        mean = t["green"] / n if n else math.nan
        var = t["green_sq"] / n - mean * mean if n else math.nan
        cats = {f"({c}) {name}": c for c, name in zip(LETTERS, CATEGORIES)}
        return {
            "n": int(n),
            "mean": mean,
            "std": math.sqrt(max(var, 0.0)) if n else math.nan,
            "malformed": int(t["malformed"]),
            "truncated": int(t["truncated"]),
            "matched_findings": int(t["matched"]),
            "significant_errors": {k: int(t[f"sig_{c}"]) for k, c in cats.items()},
            "insignificant_errors": {k: int(t[f"insig_{c}"]) for k, c in cats.items()},
            # GREEN's summary "accuracy": share of reports with no error of the category
            "accuracy": {k: (1.0 - t[f"has_sig_{c}"] / n) if n else math.nan for k, c in cats.items()},
        }


def _describe_source(source: str | None, path) -> str:
    if source == "explicit":
        return "local-path"
    commit = models._commit_of(path)
    if commit:
        return commit[:12]
    record = models.read_record(MODEL_NAME) or {}
    return str(record.get("commit") or "unpinned")[:12]
