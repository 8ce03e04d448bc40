"""GREEN (Ostmeier et al., Findings of EMNLP 2024): an LLM judge counts clinically significant
errors and matched findings; GREEN = matched / (matched + significant errors (a)-(f)).

Input contract (what the GREEN checkpoints see), taken from the GREEN repository
(github.com/Stanford-AIMI/GREEN, ``green_score/green.py`` + ``utils.py``; RadEval's copy agrees):

* each report is cut to its first 300 whitespace-separated words and re-joined with single
  spaces; the two go into GREEN's fixed instruction prompt (:func:`make_prompt`). The prompt's
  words are GREEN's, not ours: they are read from ``make_prompt`` in GREEN's ``utils.py`` at the
  pinned commit, which ``radeval models download green-prompt`` fetches and checks (file sha256,
  and the sha256 of the prompt it renders for ("REF", "CAND"), :data:`PROMPT_SHA256`). The file
  is parsed, never executed;
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

Backends (all through :mod:`radeval.judge`: disk response cache, usage and cost):
``transformers`` (default; batched greedy generation, GPU when present), ``vllm`` (when
installed) and ``endpoint`` (any OpenAI-compatible server, e.g. ``vllm serve`` of the GREEN
model). The endpoint is called through the *completions* API with the rendered text above
(plus the trailing EOS string), because GREEN sets its chat template at run time: the
checkpoint's own tokenizer config does not carry it. ``endpoint_api="chat"`` sends the prompt
as one user message instead, for chat-only servers: the server's chat template then shapes the
input, so those numbers are not GREEN's exact contract, and the signature says
``template:server-chat``. ``trust_remote_code`` is off unless asked for (GREEN-RadLlama2-7b
is a plain Llama checkpoint).
"""

from __future__ import annotations

import ast
import hashlib
import math
import os
import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from radeval import judge as J
from radeval import models
from radeval.errors import ConfigError, ModelNotFound, RadevalError
from radeval.metric import Metric

MODEL_NAME = "green"
PROMPT_MODEL = "green-prompt"
MAX_WORDS = 300  # GREEN's make_prompt(max_len=300)
MAX_PROMPT_IDS = 2048  # GREEN's tokenizer call: truncation=True, max_length=2048
MAX_TOTAL_IDS = 2048 + 512  # GREEN's generate(max_length=2048 + 512)
ENDPOINT_DEFAULT_MAX_TOKENS = J.ENDPOINT_DEFAULT_MAX_TOKENS  # no local tokenizer to measure the prompt with
#: sha256 of GREEN's make_prompt("REF", "CAND"), computed on the GREEN repository's own function
#: (green_score/utils.py) when this module was first written: pins the prompt byte for byte and is
#: the check ``radeval models download green-prompt`` runs on what it fetched.
PROMPT_SHA256 = "4e621f21f3a8802263136333c20f59e6b103d87179c675cea196e36e81cf6eb0"

#: GREEN's six error categories, in its order (a)-(f) (the names its details report).
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


@dataclass(frozen=True)
class PromptTemplate:
    """GREEN's prompt as literal pieces and slots (0 = reference, 1 = candidate)."""

    parts: tuple[str | int, ...]
    origin: str

    def render(self, reference: str, candidate: str) -> str:
        slots = (reference, candidate)
        return "".join(slots[p] if isinstance(p, int) else p for p in self.parts)

    @property
    def sha256(self) -> str:
        """sha256 of the prompt for ("REF", "CAND"): equals :data:`PROMPT_SHA256` for GREEN's."""
        return hashlib.sha256(self.render("REF", "CAND").encode()).hexdigest()

    @property
    def is_greens(self) -> bool:
        return self.sha256 == PROMPT_SHA256


def template_from_source(source: str | bytes, origin: str = "<source>") -> PromptTemplate:
    """Read the f-string that ``make_prompt(text1, text2, ...)`` returns from Python source,
    without executing it: the literal pieces plus the two report slots."""
    try:
        tree = ast.parse(source)
    except SyntaxError as e:
        raise ConfigError(f"GREEN prompt template {origin}: not Python source ({e})") from None
    fn = next((n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "make_prompt"), None)
    if fn is None or len(fn.args.args) < 2:
        raise ConfigError(f"GREEN prompt template {origin}: no make_prompt(reference, candidate) function")
    slot = {fn.args.args[0].arg: 0, fn.args.args[1].arg: 1}
    found: list[PromptTemplate] = []
    for node in ast.walk(fn):
        if not isinstance(node, ast.JoinedStr):
            continue
        parts: list[str | int] = []
        ok = True
        for v in node.values:
            if isinstance(v, ast.Constant) and isinstance(v.value, str):
                parts.append(v.value)
            elif (
                isinstance(v, ast.FormattedValue)
                and isinstance(v.value, ast.Name)
                and v.value.id in slot
                and v.conversion == -1
                and v.format_spec is None
            ):
                parts.append(slot[v.value.id])
            else:
                ok = False
        if ok and sorted(p for p in parts if isinstance(p, int)) == [0, 1]:
            found.append(PromptTemplate(tuple(parts), origin))
    if len(found) != 1:
        raise ConfigError(
            f"GREEN prompt template {origin}: expected one f-string in make_prompt with the two reports, "
            f"found {len(found)}"
        )
    return found[0]


_TEMPLATES: dict[tuple[str, float], PromptTemplate] = {}


def load_template(path: str | os.PathLike[str] | None = None) -> PromptTemplate:
    """GREEN's prompt template from ``path`` (a utils.py or its folder) or the model manager's
    ``green-prompt`` (missing: the manager's message naming ``radeval models download green-prompt``)."""
    f = models.resolve_file(PROMPT_MODEL, "utils.py", path)
    key = (str(f), f.stat().st_mtime)
    if key not in _TEMPLATES:
        _TEMPLATES[key] = template_from_source(f.read_bytes(), str(f))
    return _TEMPLATES[key]


def check_template_dir(directory: str | os.PathLike[str]) -> None:
    """The download's check: the fetched file renders GREEN's prompt byte for byte."""
    f = Path(directory) / "utils.py"
    t = template_from_source(f.read_bytes(), str(f))
    if not t.is_greens:
        raise ModelNotFound(f"{f}: make_prompt renders a prompt with sha256 {t.sha256}, expected {PROMPT_SHA256}")


def make_prompt(
    reference: str, candidate: str, max_words: int = MAX_WORDS, template: PromptTemplate | None = None
) -> str:
    """GREEN's instruction prompt: each report cut to ``max_words`` words, put in the template."""
    t = template if template is not None else load_template()
    return t.render(_truncate_words(reference, max_words), _truncate_words(candidate, max_words))


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


# ----- token ids for local backends ----------------------------------------------------------
class GreenIds:
    """GREEN's ids for a prompt: [BOS] + tokens(rendered) + [EOS], at most 2048."""

    def __init__(self, tok) -> None:
        self.tok = tok
        self.eos = tok.eos_token
        self.eos_id = int(tok.eos_token_id)
        self.bos_id = None if tok.bos_token_id is None else int(tok.bos_token_id)

    def ids(self, prompt: str) -> list[int]:
        body = self.tok(render_input(prompt, self.eos), add_special_tokens=False)["input_ids"]
        head = [self.bos_id] if self.bos_id is not None else []
        room = MAX_PROMPT_IDS - len(head) - 1  # HF truncation keeps room for the special tokens
        return head + list(body[:room]) + [self.eos_id]


@dataclass
class Generation:
    text: str  # cleaned response
    truncated: bool


# ----- the metric ----------------------------------------------------------------------------
class Green(Metric):
    """GREEN score per report, its mean over the corpus, and error counts in the details.

    Options: ``backend`` ("transformers" | "vllm" | "endpoint"; ``endpoint=URL`` alone picks
    the endpoint), ``model_path`` (else the model manager resolves "green"), ``prompt_path``
    (GREEN's utils.py; else the manager's "green-prompt"), ``device``, ``dtype`` ("auto" =
    float16 on GPU as GREEN, float32 on CPU), ``batch_size``, ``max_new_tokens`` (None =
    GREEN's cap: prompt + answer <= 2560 ids; the endpoint, which cannot count prompt ids,
    uses 1024), ``trust_remote_code`` (off), ``endpoint_model`` (else the server's first),
    ``endpoint_api`` ("completions" | "chat"), ``endpoint_batching`` ("auto" | "list" |
    "single"), ``endpoint_timeout`` (s), ``endpoint_retries``, ``endpoint_concurrency``,
    ``api_key``, ``judge_cache`` (disk response cache: True | False | path), ``prices``
    (per million prompt/completion tokens, for the cost in the details).
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
        endpoint_api: str = "completions",
        endpoint_batching: str = "auto",
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
        prompt_path: str | os.PathLike[str] | None = None,
        judge_cache: bool | str = True,
        prices: Any = None,
    ) -> None:
        if backend is None:
            backend = "endpoint" if endpoint else "transformers"
        if backend not in ("transformers", "vllm", "endpoint"):
            raise ConfigError(f"green backend must be transformers, vllm or endpoint, got {backend!r}")
        if int(batch_size) < 1:
            raise ConfigError(f"green batch_size must be >= 1, got {batch_size!r}")
        if max_new_tokens is not None and int(max_new_tokens) < 1:
            raise ConfigError(f"green max_new_tokens must be >= 1, got {max_new_tokens!r}")
        if endpoint_api not in ("completions", "chat"):
            raise ConfigError(f"green endpoint_api must be completions or chat, got {endpoint_api!r}")
        self.backend_name = backend
        self.batch_size = int(batch_size)
        self.max_new_tokens = None if max_new_tokens is None else int(max_new_tokens)
        self.trust_remote_code = bool(trust_remote_code)
        self.endpoint_api = endpoint_api
        self.prompt_path = prompt_path
        self.prices = J.parse_prices(prices)
        self._judge_cache = judge_cache
        self._cache: OrderedDict[tuple[str, str], tuple[Parsed, bool, str]] = OrderedDict()
        self._cache_size = int(cache_size)
        #: the raw (cleaned) responses of the last ``stats`` call, in record order
        self.last_responses: list[str] = []
        self._judge: J.Judge | None = None
        self._ids: GreenIds | None = None
        self._template: PromptTemplate | None = None
        self._opts = {
            "device": device,
            "dtype": dtype,
            "vllm_kwargs": vllm_kwargs,
            "endpoint_model": endpoint_model,
            "endpoint_batching": endpoint_batching,
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
        # GREEN's prompt is a download of its own: a missing one stops here, before any model
        # or server is touched, with the model manager's message
        self.template()

    # ----- identity ---------------------------------------------------------------------------
    def template(self) -> PromptTemplate:
        if self._template is None:
            self._template = load_template(self.prompt_path)
        return self._template

    def settings(self) -> dict[str, Any]:
        t = self.template()
        prompt = f"green-make_prompt-{MAX_WORDS}w" if t.is_greens else f"custom-{t.sha256[:12]}-{MAX_WORDS}w"
        if self.backend_name == "endpoint":
            backend = self._get_backend()
            model = f"endpoint:{backend.model}"
            limit = f"new{self.max_new_tokens or ENDPOINT_DEFAULT_MAX_TOKENS}"
        else:
            spec = models.get_spec(MODEL_NAME)
            model = f"{spec.repo_id}@{self._source}"
            limit = f"new{self.max_new_tokens}" if self.max_new_tokens else f"total{MAX_TOTAL_IDS}"
        chat = self.backend_name == "endpoint" and self.endpoint_api == "chat"
        return {
            "model": model,
            "backend": self.backend_name,
            "prompt": prompt,
            "template": "server-chat" if chat else "green-chat+bos+eos",
            "decode": "greedy",
            "max_len": limit,
            "parse": "green_score",
        }

    def _get_judge(self) -> J.Judge:
        if self._judge is not None:
            return self._judge
        o = self._opts
        if self.backend_name == "endpoint":
            backend: Any = J.EndpointBackend(
                self.endpoint,
                model=o["endpoint_model"],
                api=self.endpoint_api,
                batching=o["endpoint_batching"],
                batch_size=self.batch_size,
                timeout=o["endpoint_timeout"],
                retries=o["endpoint_retries"],
                concurrency=o["endpoint_concurrency"],
                api_key=o["api_key"],
                api_key_env="RADEVAL_GREEN_API_KEY",
                label="GREEN",
                # vLLM extension (others ignore it): GREEN decodes without special tokens
                extra_body={"skip_special_tokens": True} if self.endpoint_api == "completions" else None,
            )
            identity = backend.identity
        elif self.backend_name == "vllm":
            backend = J.VllmBackend(
                str(self.model_dir), dtype=o["dtype"], trust_remote_code=self.trust_remote_code,
                vllm_kwargs=o["vllm_kwargs"],
            )  # fmt: skip
            self._ids = GreenIds(backend.tokenizer)
            identity = f"vllm:{models.get_spec(MODEL_NAME).repo_id}@{self._source}:{backend.dtype}"
        else:
            backend = J.TransformersBackend(
                str(self.model_dir), device=o["device"], dtype=o["dtype"], batch_size=self.batch_size,
                trust_remote_code=self.trust_remote_code,
            )  # fmt: skip
            self._ids = GreenIds(backend.tokenizer)
            identity = f"transformers:{models.get_spec(MODEL_NAME).repo_id}@{self._source}:{backend.dtype}"
        if self._source in ("local-path", "unpinned"):
            identity += f":{self.model_dir}"  # an unpinned copy: only its path tells it apart
        self._judge = J.Judge(backend, cache=self._judge_cache, prices=self.prices, identity=identity)
        return self._judge

    def _get_backend(self):
        return self._get_judge().backend

    def _requests(self, pairs: Sequence[tuple[str, str]]) -> tuple[list[J.Request], J.Sampling]:
        t = self.template()
        prompts = [make_prompt(r, h, template=t) for r, h in pairs]
        if self.backend_name == "endpoint":
            sampling = J.Sampling(max_tokens=self.max_new_tokens or ENDPOINT_DEFAULT_MAX_TOKENS)
            if self.endpoint_api == "chat":
                return [J.Request(messages=(("user", p),)) for p in prompts], sampling
            # the server adds BOS; the trailing EOS string is GREEN's add_eos_token
            eos = "</s>"
            return [J.Request(text=render_input(p, eos) + eos) for p in prompts], sampling
        assert self._ids is not None
        sampling = J.Sampling(max_tokens=self.max_new_tokens, max_total=MAX_TOTAL_IDS)
        return [J.Request(ids=tuple(self._ids.ids(p)), echo=True) for p in prompts], sampling

    def generate(self, pairs: Sequence[tuple[str, str]]) -> list[Generation]:
        """Cleaned GREEN responses for (reference, candidate) pairs, through the judge."""
        judge = self._get_judge()
        requests, sampling = self._requests(pairs)
        replies = judge.generate(requests, sampling)
        out = []
        for rep in replies:
            text = rep.text
            if self.backend_name == "endpoint":
                # a server detokenises itself: apply transformers' cleanup as GREEN's decode does
                text = cleanup_tokenization_spaces(text)
            out.append(Generation(clean_response(text), rep.truncated))
        return out

    # ----- scoring ----------------------------------------------------------------------------
    def judge(self, hyps: Sequence[str], refs: Sequence[str]) -> list[tuple[Parsed, bool, str]]:
        """(parsed counts, truncated, response) per pair; each distinct (truncated) pair is
        generated once and cached, as GREEN's own pair cache does."""
        keys = [(_truncate_words(r), _truncate_words(h)) for h, r in zip(hyps, refs)]
        todo = list(OrderedDict.fromkeys(k for k in keys if k not in self._cache))
        gens = self.generate(todo) if todo else []
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

    async def astats(self, hyps, refs, images=None) -> np.ndarray:
        """:meth:`stats` off the event loop (async rewards: the judge waits on a server or GPU)."""
        import asyncio

        return await asyncio.to_thread(self.stats, hyps, refs, images)

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
        out = {
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
        if self._judge is not None:
            out["judge"] = self._judge.summary()  # requests, cache hits, tokens, cost (this process)
        return out


def _describe_source(source: str | None, path) -> str:
    if source == "explicit":
        return "local-path"
    commit = models._commit_of(path)
    if commit:
        return commit[:12]
    record = models.read_record(MODEL_NAME) or {}
    return str(record.get("commit") or "unpinned")[:12]
