"""RadGraph entity/relation extraction and the RadGraph F1 reward levels, on today's transformers.

We reimplement the inference of the radgraph package (0.1.18: a vendored AllenNLP/DyGIE span
model) on the *same model archives* (``radgraph.tar.gz``, ``radgraph-xl.tar.gz``,
``modern-radgraph-xl.tar.gz`` in ``StanfordAIMI/RRG_scorers``) instead of shimming the package:
it calls ``tokenizer.encode_plus`` (gone in transformers 5), runs one report per forward pass
and unpacks its archive with an unfiltered ``extractall``. What the package computes, and we
compute the same way (facts read from its source; tests/test_radgraph.py proves equality on a
random-weight archive in the real layout, built by tests/radgraph_fixture.py):

* **Words.** ``radgraph``: a space is inserted around each of ``/ , : . ! ? ( )`` (the
  package's character class ``[/,-,:,.,!?()]`` is that set: ``,-,`` is a one-character range,
  so "-" is *not* split) and the text is split on whitespace. ``radgraph-xl`` and
  ``modern-radgraph-xl``: literal ``\\n``/``\\f`` become two spaces, literal ``\\u2122`` six,
  real newlines one, ``\\"`` becomes two backticks; whitespace runs collapse; nltk's
  ``wordpunct_tokenize`` (``\\w+|[^\\w\\s]+``); then ``).``, ``%.``, ``.'``, ``%,``, ``%)`` are
  split; split on whitespace. A report is one "sentence"; no lower-casing here (the encoder's
  tokenizer lower-cases if it is uncased). An empty report is replaced by the word ``None``.
  The model sees ``/.`` and ``/?`` as ``.`` and ``?`` (DyGIE's word normalisation), the output
  keeps the original words.
* **Encoder.** Each word is tokenised on its own (no special tokens); the report's wordpieces
  are cut into segments of ``max_length - 2`` (config ``max_length``, 512), each wrapped in
  ``[CLS] … [SEP]`` and encoded independently; a word's vector is the mean of its wordpieces'
  last-layer vectors (zero if it has none).
* **Spans.** Every span of at most ``max_span_width`` words, ordered by (start, end), is
  ``[start word; end word; width embedding(end - start)]``.
* **NER.** FeedForward (ReLU after every layer) → linear to the non-null labels, a fixed 0
  score for the null label, argmax; a span with a non-null label is an entity.
* **Relations.** A mention scorer keeps the top ``ceil(n_words · spans_per_word)`` spans
  (float32 arithmetic, as the package), re-sorted by position; every ordered pair (i, j) of
  kept spans, the diagonal included, is scored by FeedForward([e_i; e_j; e_i ⊙ e_j]) → linear,
  plus both mention scores, with a 0 null score; argmax. A relation is kept only when both
  spans are entities (the package drops the others when it builds its annotation).
* **Annotation** (the package's format): ``{"text", "entities": {"1": {"tokens", "label",
  "start_ix", "end_ix", "relations": [[label, target_id], ...]}, ...}, "data_source": None,
  "data_split": "inference"}``.

What we do differently, none of which changes an entity: many reports per encoder pass
(sorted by length, padded and masked), span scoring for the whole batch at once, relation
scores only for pairs of kept spans that are both entities (the package scores every pair and
then drops the relations that do not join two entities; in row chunks so a very long report
cannot exhaust memory), ``inference_mode``, a
per-text annotation cache (keyed by a hash of the text; in GRPO a reference is scored G times
per step), ``torch.load(weights_only=True)``, and safe archive extraction
(:func:`radeval.models.safe_extract_tar`). Padding can move encoder outputs in the last float
bits; a decision that close to a tie can in principle flip (none did in the parity tests).

Where the package fails we define the value: a report that is only whitespace makes the
package raise (an empty span list); here it has no entities.

F1 reward levels (the package's ``rewards.py``; per sample, corpus = mean):

* ``simple``: F1 of the sets {(tokens, label)} of the two reports;
* ``partial``: F1 of {(tokens, label, has-relation)} (entities without relations as
  (tokens, label));
* ``complete``: F1 of {(tokens, label)} for entities without relations plus one
  (lower(tokens), label, relation, lower(target tokens)) per relation (the lower-casing is
  the package's, and applies to these relation tuples only);
* precision/recall of an empty set are 0; F1 with p + r = 0 is 0; a pair where either report
  has no entity scores 0 at every level; an empty hypothesis or reference (``""``) scores 0
  without running the model (``F1RadGraph``'s rule).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from radeval import models
from radeval.errors import ConfigError, InputError, ModelNotFound
from radeval.metric import MeanMetric

try:
    import torch
    import torch.nn.functional as F
    import transformers
except ImportError as e:  # the registry turns this into "install the extra"
    raise ImportError(f"RadGraph needs torch and transformers: {e}") from e

MODEL_TYPES = ("radgraph", "radgraph-xl", "modern-radgraph-xl")
DEFAULT_MODEL = "radgraph-xl"
LEVELS = ("simple", "partial", "complete")

# ----------------------------------------------------------------------------------------------
# Words (the package's preprocessing)
# ----------------------------------------------------------------------------------------------
_V1_PUNCT = "/,:.!?()"
_V1_SPLIT = re.compile(rf"(?<! )(?=[{re.escape(_V1_PUNCT)}])|(?<=[{re.escape(_V1_PUNCT)}])(?! )")
_WORDPUNCT = re.compile(r"\w+|[^\w\s]+", re.UNICODE | re.MULTILINE | re.DOTALL)
_XL_FIXES = ((").", ") ."), ("%.", "% ."), (".'", ". '"), ("%,", "% ,"), ("%)", "% )"))


def words_v1(text: str) -> list[str]:
    """RadGraph (v1) words: space around ``/,:.!?()`` (not after/before an existing space)."""
    return _V1_SPLIT.sub(" ", text).split()


def words_xl(text: str) -> list[str]:
    """RadGraph-XL words (also modern-radgraph-xl)."""
    text = (
        text.replace("\\n", "  ")
        .replace("\\f", "  ")
        .replace("\\u2122", "      ")
        .replace("\n", " ")
        .replace('\\"', "``")
    )
    text = re.sub(r"\s+", " ", text)
    joined = " ".join(_WORDPUNCT.findall(text))
    for a, b in _XL_FIXES:
        joined = joined.replace(a, b)
    return joined.split()


def report_words(text: str, model_type: str) -> list[str]:
    # the package's ``elif model_type == "radgraph-xl" or "modern-radgraph-xl"`` is always
    # true, so every non-v1 model uses the XL words
    if not text:
        text = "None"  # RadGraph.forward replaces an empty report by "None"
    return words_v1(text) if model_type == "radgraph" else words_xl(text)


def _normalize_word(w: str) -> str:
    return w[1:] if w in ("/.", "/?") else w


# ----------------------------------------------------------------------------------------------
# F1 layer (the package's reward functions)
# ----------------------------------------------------------------------------------------------
def _set_f1(hyp: set, ref: set) -> float:
    tp = len(hyp & ref)
    precision = tp / len(hyp) if len(hyp) > 0 else 0.0
    recall = tp / len(ref) if len(ref) > 0 else 0.0
    return 2 * precision * recall / (precision + recall) if (precision + recall) > 0 else 0.0


def _items(ann: dict[str, Any], level: str) -> set:
    ents = ann["entities"]
    out: set = set()
    for e in ents.values():
        rels = e["relations"]
        if level == "simple" or not rels:
            out.add((e["tokens"], e["label"]))
        elif level == "partial":
            out.add((e["tokens"], e["label"], True))
        else:  # complete: one lower-cased tuple per relation, the entity itself not added
            for rel, target in rels:
                out.add((e["tokens"].lower(), e["label"], rel, ents[target]["tokens"].lower()))
    return out


def reward(hyp_ann: dict[str, Any], ref_ann: dict[str, Any]) -> tuple[float, float, float]:
    """(simple, partial, complete) F1 of two annotations; 0 if either has no entity."""
    if len(hyp_ann["entities"]) == 0 or len(ref_ann["entities"]) == 0:
        return (0.0, 0.0, 0.0)
    return tuple(_set_f1(_items(hyp_ann, lv), _items(ref_ann, lv)) for lv in LEVELS)  # type: ignore[return-value]


def entity_relation_f1(hyp_ann: dict[str, Any], ref_ann: dict[str, Any]) -> tuple[float, float]:
    """(entity F1, relation F1) as RadCliQ's "radgraph_combined" uses them (CXR-Report-Metric).

    Entities: {(tokens, label)}; relations: {((tokens, label), (target tokens, target label),
    relation)}; no lower-casing; an empty side gives 0 (p + r = 0).
    """

    def sets(ann):
        ents = ann.get("entities", {})
        es = {(e["tokens"], e["label"]) for e in ents.values()}
        rs = set()
        for e in ents.values():
            for rel, target in e.get("relations", []):
                t = ents.get(str(target))
                if t is not None:
                    rs.add(((e["tokens"], e["label"]), (t["tokens"], t["label"]), rel))
        return es, rs

    he, hr = sets(hyp_ann)
    re_, rr = sets(ref_ann)
    return _set_f1(he, re_), _set_f1(hr, rr)


# ----------------------------------------------------------------------------------------------
# Archive: location, safe extraction, config
# ----------------------------------------------------------------------------------------------
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")


def _archive_sha256(path: Path) -> str:
    real = Path(os.path.realpath(path))
    if _SHA_RE.match(real.name):  # HF cache: an LFS blob is named by its sha256
        return real.name
    return models.sha256_file(path)


def _extract_root() -> Path:
    mdir = models.models_dir()
    if mdir is not None:
        return mdir / ".extracted"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "radeval" / "extracted"


def _model_dir_of(d: Path) -> Path | None:
    """The directory holding config.json + weights.th: ``d`` itself or its one subdirectory."""
    if (d / "config.json").is_file() and (d / "weights.th").is_file():
        return d
    subs = [p for p in d.iterdir() if p.is_dir()] if d.is_dir() else []
    if len(subs) == 1 and (subs[0] / "config.json").is_file() and (subs[0] / "weights.th").is_file():
        return subs[0]
    return None


def locate_model(model_type: str, path: str | os.PathLike[str] | None = None) -> tuple[Path, str]:
    """(directory with config.json + weights.th, identity for the signature).

    ``path`` may be the archive, a directory holding it, or an already extracted directory.
    Archives are extracted once, safely, into ``$RADEVAL_MODELS_DIR/.extracted`` (or
    ``~/.cache/radeval/extracted``) under their sha256.
    """
    if model_type not in MODEL_TYPES:
        raise ConfigError(f"radgraph model_type must be one of {', '.join(MODEL_TYPES)}, got {model_type!r}")
    archive_name = f"{model_type}.tar.gz"
    archive: Path | None = None
    if path is not None:
        p = Path(path).expanduser()
        if p.is_dir():
            direct = _model_dir_of(p)
            if direct is not None:
                return direct, f"dir:{direct.name}"
            if (p / archive_name).is_file():
                archive = p / archive_name
        elif p.is_file():
            archive = p
        if archive is None:
            raise ModelNotFound(
                f"RadGraph model {model_type!r}: {p} is neither the archive {archive_name}, a "
                "directory holding it, nor an extracted model directory (config.json + weights.th)"
            )
    else:
        try:
            models.get_spec(model_type)
        except Exception as e:
            raise ConfigError(
                f"RadGraph model {model_type!r} has no entry in radeval.models ({e}); pass model_path="
            ) from e
        archive = models.resolve_file(model_type, archive_name)
    sha = _archive_sha256(archive)
    dest = _extract_root() / f"{model_type}-{sha[:16]}"
    found = _model_dir_of(dest) if dest.is_dir() else None
    if found is None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{model_type}-", dir=dest.parent))
        try:
            models.safe_extract_tar(archive, tmp)
            if _model_dir_of(tmp) is None:
                raise InputError(f"{archive}: no config.json + weights.th inside the archive")
            if dest.exists():
                shutil.rmtree(dest)
            tmp.rename(dest)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        found = _model_dir_of(dest)
        assert found is not None
    return found, sha[:12]


def _read_labels(vocab_dir: Path, namespace: str) -> list[str]:
    """Index -> label of one AllenNLP vocabulary namespace (its own file format)."""
    f = vocab_dir / f"{namespace}.txt"
    if not f.is_file():
        raise InputError(f"RadGraph vocabulary has no namespace {namespace!r} ({f} missing)")
    patterns = ["*tags", "*labels"]
    npf = vocab_dir / "non_padded_namespaces.txt"
    if npf.is_file():
        patterns = [ln.strip() for ln in npf.read_text(encoding="utf-8").splitlines()]

    def match(pat: str) -> bool:
        return namespace.endswith(pat[1:]) if pat.startswith("*") else namespace == pat

    lines = re.split(r"\n|\r\n", f.read_text(encoding="utf-8"))
    if lines and lines[-1] == "":
        lines = lines[:-1]
    lines = [ln.replace("@@NEWLINE@@", "\n") for ln in lines]
    if any(match(p) for p in patterns):
        return lines
    return ["@@PADDING@@", *lines]


def _local_encoder_dir(model_name: str, override: str | os.PathLike[str] | None) -> Path:
    """The transformer (config + tokenizer) that config.json names by ``model_name``."""
    if override is not None:
        p = Path(override).expanduser()
        if not (p / "config.json").is_file():
            raise ModelNotFound(f"RadGraph encoder_path {p}: no config.json")
        return p
    p = Path(model_name).expanduser()
    if (p / "config.json").is_file():
        return p
    cache = models.hf_cache_dir()
    repo = cache / ("models--" + model_name.replace("/", "--"))
    ref = repo / "refs" / "main"
    searched = [f"{p}: not a directory with config.json"]
    if ref.is_file():
        snap = repo / "snapshots" / ref.read_text().strip()
        if (snap / "config.json").is_file():
            return snap
        searched.append(f"{snap}: no config.json")
    else:
        searched.append(f"{repo}: no refs/main")
    raise ModelNotFound(
        f"RadGraph's encoder {model_name!r} (its config and tokenizer; the weights come from the "
        "RadGraph archive) was not found. Searched:\n  - "
        + "\n  - ".join(searched)
        + f"\nFix: put {model_name!r} (config.json + tokenizer files) in the Hugging Face cache, "
        "or pass encoder_path=DIR"
    )


# ----------------------------------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------------------------------
_ENC_PREFIX = "_embedder.token_embedder_bert._matched_embedder.transformer_model."


def _ffn(state: dict[str, torch.Tensor], prefix: str, n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    out = []
    for i in range(n):
        out.append((state.pop(f"{prefix}._linear_layers.{i}.weight"), state.pop(f"{prefix}._linear_layers.{i}.bias")))
    return out


def _run_ffn(x: torch.Tensor, layers, final: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    for w, b in layers:  # AllenNLP FeedForward: activation after every layer
        x = F.relu(F.linear(x, w, b))
    return F.linear(x, *final)


class RadGraphExtractor:
    """Entities and relations per report, batched, with a per-text annotation cache.

    Args:
        model_type: ``radgraph-xl`` (default), ``radgraph`` or ``modern-radgraph-xl``.
        model_path: the archive, a directory holding it, or an extracted model directory;
            default: :func:`radeval.models.resolve` (``RADEVAL_MODELS_DIR``, HF cache).
        encoder_path: local directory with the encoder's config + tokenizer when the
            archive's ``model_name`` is a hub id that is not in the HF cache.
        device: default ``cuda`` when available.
        batch_tokens: wordpiece budget of one encoder pass (padded length × segments);
            default 16384 on CUDA, 2048 on CPU.
        cache_size: annotations kept (least recently used dropped).
    """

    def __init__(
        self,
        model_type: str = DEFAULT_MODEL,
        model_path: str | os.PathLike[str] | None = None,
        *,
        encoder_path: str | os.PathLike[str] | None = None,
        device: str | None = None,
        batch_tokens: int | None = None,
        cache_size: int = 100_000,
    ) -> None:
        self.model_type = model_type.lower()
        self.model_dir, self.archive_id = locate_model(self.model_type, model_path)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        # measured: on CPU large padded batches are slower per report (memory-bound), on GPU
        # they are what makes batching pay
        if batch_tokens is None:
            batch_tokens = 16384 if self.device.type == "cuda" else 2048
        self.batch_tokens = int(batch_tokens)
        if self.batch_tokens < 1:
            raise ConfigError(f"batch_tokens must be >= 1, got {batch_tokens!r}")
        self._cache: OrderedDict[bytes, dict[str, Any]] = OrderedDict()
        self._cache_size = int(cache_size)
        self.n_forward = 0  # texts actually annotated by the model (cache misses), for tests
        self._word_ids: dict[str, list[int]] = {}
        self._load(encoder_path)

    # ----- loading ----------------------------------------------------------------------------
    def _load(self, encoder_path) -> None:
        cfg = json.loads((self.model_dir / "config.json").read_text())
        try:
            m = cfg["model"]
            emb = m["embedder"]["token_embedders"]["bert"]
            model_name = emb["model_name"]
            self.max_length = emb.get("max_length")
            self.max_span_width = int(m["max_span_width"])
            ffp = m["feedforward_params"]
            n_layers = int(ffp["num_layers"])
            self.spans_per_word = float(m["modules"]["relation"]["spans_per_word"])
            lw = m["loss_weights"]
            coref_prop = m["modules"].get("coref", {}).get("coref_prop", 0)
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(f"{self.model_dir}/config.json: not a RadGraph (DyGIE) config ({e!r})") from e
        reader_w = cfg.get("dataset_reader", {}).get("max_span_width", self.max_span_width)
        if int(reader_w) != self.max_span_width:
            raise InputError("RadGraph config: reader and model max_span_width differ")
        if lw.get("coref", 0) > 0 or lw.get("events", 0) > 0 or coref_prop:
            raise InputError("RadGraph config uses coref/events modules, which radeval does not implement")
        if not (lw.get("ner", 0) > 0 and lw.get("relation", 0) > 0):
            raise InputError("RadGraph config: NER and relation modules must both be active")
        self.encoder_name = model_name
        enc_dir = _local_encoder_dir(model_name, encoder_path)
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(str(enc_dir))
        self._special_tokens()
        config = transformers.AutoConfig.from_pretrained(str(enc_dir))
        encoder = transformers.AutoModel.from_config(config)

        state = torch.load(self.model_dir / "weights.th", map_location="cpu", weights_only=True)
        state = dict(state)
        enc_state = {k[len(_ENC_PREFIX) :]: state.pop(k) for k in list(state) if k.startswith(_ENC_PREFIX)}
        missing, unexpected = encoder.load_state_dict(enc_state, strict=False)
        # buffers some transformers versions save and others rebuild; never a weight
        ok = lambda k: k.endswith(("position_ids", "token_type_ids"))  # noqa: E731
        bad = [k for k in missing if not ok(k)] + [k for k in unexpected if not ok(k)]
        if bad:
            raise InputError(f"RadGraph encoder weights do not fit {model_name}: {bad[:5]}")
        self.encoder = encoder.to(self.device).eval()

        ns = self.model_type
        ner_ns, rel_ns = f"{ns}__ner_labels", f"{ns}__relation_labels"
        try:
            self.width_emb = state.pop("_endpoint_span_extractor._span_width_embedding.weight")
            self.ner_ffn = _ffn(state, f"_ner._ner_scorers.{ner_ns}.0._module", n_layers)
            self.ner_out = (
                state.pop(f"_ner._ner_scorers.{ner_ns}.1._module.weight"),
                state.pop(f"_ner._ner_scorers.{ner_ns}.1._module.bias"),
            )
            pre = f"_relation._mention_pruners.{rel_ns}._scorer"
            self.men_ffn = _ffn(state, f"{pre}.0._module", n_layers)
            self.men_out = (state.pop(f"{pre}.1._module.weight"), state.pop(f"{pre}.1._module.bias"))
            self.rel_ffn = _ffn(state, f"_relation._relation_feedforwards.{rel_ns}", n_layers)
            self.rel_out = (
                state.pop(f"_relation._relation_scorers.{rel_ns}.weight"),
                state.pop(f"_relation._relation_scorers.{rel_ns}.bias"),
            )
        except KeyError as e:
            raise InputError(f"RadGraph weights.th lacks {e} (model_type {ns!r} or layout mismatch)") from e
        left = [k for k in state if not k.startswith(("_coref.", "_events."))]
        if left:
            raise InputError(f"RadGraph weights.th has parameters radeval does not use: {left[:5]}")

        def dev(t):
            return t.to(self.device, torch.float32)

        self.width_emb = dev(self.width_emb)
        self.ner_ffn = [(dev(w), dev(b)) for w, b in self.ner_ffn]
        self.men_ffn = [(dev(w), dev(b)) for w, b in self.men_ffn]
        self.rel_ffn = [(dev(w), dev(b)) for w, b in self.rel_ffn]
        self.ner_out = tuple(dev(t) for t in self.ner_out)
        self.men_out = tuple(dev(t) for t in self.men_out)
        self.rel_out = tuple(dev(t) for t in self.rel_out)

        vocab = self.model_dir / "vocabulary"
        self.ner_labels = _read_labels(vocab, ner_ns)
        self.rel_labels = _read_labels(vocab, rel_ns)
        if self.ner_labels[0] != "":
            raise InputError("RadGraph vocabulary: the null NER label must be index 0")
        if len(self.ner_labels) - 1 != self.ner_out[0].shape[0] or len(self.rel_labels) != self.rel_out[0].shape[0]:
            raise InputError("RadGraph vocabulary and weights disagree on the number of labels")
        if self.width_emb.shape[0] != self.max_span_width:
            raise InputError("RadGraph width embedding does not match max_span_width")

    def _special_tokens(self) -> None:
        """[CLS]/[SEP]-like ids around one sequence, found the way AllenNLP finds them."""
        tok = self.tokenizer
        for probe in ("a", "1"):
            bare = tok(probe, add_special_tokens=False)["input_ids"]
            full = tok(probe, add_special_tokens=True)["input_ids"]
            for i in range(len(full) - len(bare) + 1):
                if bare and full[i : i + len(bare)] == bare:
                    self.start_ids = full[:i]
                    self.end_ids = full[i + len(bare) :]
                    return
        raise InputError(f"cannot find the special tokens of the {self.encoder_name} tokenizer")

    # ----- identity ---------------------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        return {
            "model": f"{self.model_type}@{self.archive_id}",
            # a hub id as is; a local directory by its name (its path is machine-specific)
            "encoder": (
                f"local:{Path(self.encoder_name).name}" if Path(self.encoder_name).is_dir() else self.encoder_name
            ),
            "words": "radgraph-v1" if self.model_type == "radgraph" else "radgraph-xl",
        }

    # ----- public -----------------------------------------------------------------------------
    @staticmethod
    def _key(text: str) -> bytes:
        return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()

    def __call__(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        """One annotation per text (the package's format), from the cache where possible."""
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise InputError(f"RadGraph: text {i} is {type(t).__name__}, not a string")
        keys = [self._key(t) for t in texts]
        todo: dict[bytes, str] = {}
        for k, t in zip(keys, texts):
            if k not in self._cache and k not in todo:
                todo[k] = t
        if todo:
            anns = self._annotate(list(todo.values()))
            self.n_forward += len(todo)
            for k, a in zip(todo, anns):
                self._cache[k] = a
        out = []
        for k in keys:
            self._cache.move_to_end(k)
            out.append(self._cache[k])
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return out

    def clear_cache(self) -> None:
        self._cache.clear()

    # ----- inference --------------------------------------------------------------------------
    def _wordpieces(self, words: list[str]) -> list[list[int]]:
        new = [w for w in dict.fromkeys(words) if w not in self._word_ids]
        if new:
            ids = self.tokenizer(new, add_special_tokens=False)["input_ids"]
            self._word_ids.update(zip(new, ids))
            if len(self._word_ids) > 500_000:  # bound memory on adversarial input
                self._word_ids.clear()
                self._word_ids.update(zip(new, ids))
        return [self._word_ids[w] for w in words]

    def _segments(self, wp: list[int]) -> list[list[int]]:
        n_special = len(self.start_ids) + len(self.end_ids)
        if self.max_length is None:
            chunks = [wp]
        else:
            eff = int(self.max_length) - n_special
            chunks = [wp[i : i + eff] for i in range(0, len(wp), eff)] or [[]]
        return [self.start_ids + c + self.end_ids for c in chunks]

    def _annotate(self, texts: list[str]) -> list[dict[str, Any]]:
        docs = []
        for t in texts:
            words = report_words(t, self.model_type)
            norm = [_normalize_word(w) for w in words]
            pieces = self._wordpieces(norm)
            flat: list[int] = []
            offsets: list[tuple[int, int] | None] = []
            for p in pieces:
                if p:
                    offsets.append((len(flat), len(flat) + len(p)))
                    flat.extend(p)
                else:
                    offsets.append(None)
            docs.append({"words": words, "offsets": offsets, "segments": self._segments(flat)})
        results: list[dict[str, Any] | None] = [None] * len(docs)
        for i, d in enumerate(docs):
            if not d["words"]:
                results[i] = self._to_annotation(d["words"], [], [])
        order = sorted(
            (i for i, d in enumerate(docs) if d["words"]), key=lambda i: max(len(s) for s in docs[i]["segments"])
        )
        batch: list[int] = []
        width = 0
        n_seg = 0
        for i in order + [-1]:
            if i >= 0:
                segs = docs[i]["segments"]
                w = max(width, max(len(s) for s in segs))
                if batch and w * (n_seg + len(segs)) > self.batch_tokens:
                    self._run_batch([docs[j] for j in batch], batch, results)
                    batch, width, n_seg = [], 0, 0
                    w = max(len(s) for s in segs)
                batch.append(i)
                width, n_seg = w, n_seg + len(segs)
            elif batch:
                self._run_batch([docs[j] for j in batch], batch, results)
        return results  # type: ignore[return-value]

    @torch.inference_mode()
    def _run_batch(self, docs: list[dict], idx: list[int], results: list) -> None:
        dev = self.device
        segs = [s for d in docs for s in d["segments"]]
        width = max(len(s) for s in segs)
        pad = self.tokenizer.pad_token_id or 0
        ids = torch.full((len(segs), width), pad, dtype=torch.long)
        mask = torch.zeros((len(segs), width), dtype=torch.long)
        for r, s in enumerate(segs):
            ids[r, : len(s)] = torch.tensor(s, dtype=torch.long)
            mask[r, : len(s)] = 1
        hidden = self.encoder(input_ids=ids.to(dev), attention_mask=mask.to(dev).float())[0]
        hidden = hidden.float()
        ns = len(self.start_ids)

        # word vectors -> span vectors for every report of the batch, flattened
        span_rows, span_meta = [], []
        r = 0
        for d in docs:
            parts = [hidden[r + k, ns : len(s) - len(self.end_ids)] for k, s in enumerate(d["segments"])]
            r += len(d["segments"])
            wp = torch.cat(parts, 0)
            n = len(d["words"])
            wv = self._word_vectors(wp, d["offsets"])
            starts, ends = [], []
            for s0 in range(n):
                for e0 in range(s0, min(s0 + self.max_span_width, n)):
                    starts.append(s0)
                    ends.append(e0)
            st = torch.tensor(starts, dtype=torch.long, device=dev)
            en = torch.tensor(ends, dtype=torch.long, device=dev)
            span_rows.append(torch.cat([wv[st], wv[en], self.width_emb[en - st]], -1))
            span_meta.append((starts, ends))
        flat = torch.cat(span_rows, 0)
        ner = _run_ffn(flat, self.ner_ffn, self.ner_out)
        ner = torch.cat([ner.new_zeros((ner.shape[0], 1)), ner], -1)
        ner_label = ner.max(-1)[1].cpu()
        mention = _run_ffn(flat, self.men_ffn, self.men_out)  # (n_spans, 1)

        # per report: keep the top spans, then score the ordered pairs of kept entities
        o = 0
        for d, rows, (starts, ends), i in zip(docs, span_rows, span_meta, idx):
            n_sp = rows.shape[0]
            labels = ner_label[o : o + n_sp].tolist()
            m = mention[o : o + n_sp, 0]
            o += n_sp
            keep = int(torch.ceil(torch.tensor([len(d["words"])], dtype=torch.float32) * self.spans_per_word).item())
            top = torch.topk(m, max(keep, 1), 0)[1]
            top, _ = torch.sort(top)
            top = top[:keep]
            # Only pairs of kept spans that are both entities can survive into the annotation
            # (the package drops every other relation when it builds it), so only those pairs
            # are scored: the same per-pair arithmetic on far fewer pairs.
            top_l = [t for t in top.tolist() if labels[t] != 0]
            rels = []
            if top_l:
                sel = torch.tensor(top_l, dtype=torch.long, device=dev)
                emb = rows[sel]
                ms = m[sel]
                k = emb.shape[0]
                rel_label = torch.empty((k, k), dtype=torch.long)
                step = max(1, int(2**26 // max(1, k * emb.shape[1] * 3)))
                for a in range(0, k, step):
                    e1 = emb[a : a + step]
                    pair = torch.cat(
                        [
                            e1.unsqueeze(1).expand(-1, k, -1),
                            emb.unsqueeze(0).expand(e1.shape[0], -1, -1),
                            e1.unsqueeze(1) * emb.unsqueeze(0),
                        ],
                        -1,
                    )
                    sc = _run_ffn(pair, self.rel_ffn, self.rel_out)
                    sc = sc + (ms[a : a + step, None] + ms[None, :]).unsqueeze(-1)
                    sc = torch.cat([sc.new_zeros(sc.shape[:-1] + (1,)), sc], -1)
                    rel_label[a : a + e1.shape[0]] = sc.max(-1)[1].cpu() - 1
                # row-major over (source, target) in span order: the package's relation order
                for a, b in (rel_label >= 0).nonzero().tolist():
                    sa, sb = top_l[a], top_l[b]
                    rels.append((starts[sa], ends[sa], starts[sb], ends[sb], self.rel_labels[rel_label[a, b].item()]))
            ents = [(starts[s], ends[s], self.ner_labels[lab]) for s, lab in enumerate(labels) if lab != 0]
            results[i] = self._to_annotation(d["words"], ents, rels)

    @staticmethod
    def _word_vectors(wp: torch.Tensor, offsets: list[tuple[int, int] | None]) -> torch.Tensor:
        """Mean of each word's wordpiece vectors (0 for a word without wordpieces), summed over
        a zero-padded (word, piece) grid as AllenNLP's mismatched embedder does."""
        dev = wp.device
        if wp.shape[0] == 0:  # no word has a wordpiece (e.g. only zero-width characters)
            return wp.new_zeros((len(offsets), wp.shape[-1]))
        st = torch.tensor([o[0] if o else 0 for o in offsets], dtype=torch.long, device=dev)
        cnt = torch.tensor([o[1] - o[0] if o else 0 for o in offsets], dtype=torch.long, device=dev)
        width = max(1, int(cnt.max().item())) if len(offsets) else 1
        ar = torch.arange(width, device=dev)
        mask = ar.unsqueeze(0) < cnt.unsqueeze(1)  # (n_words, width)
        idx = (st.unsqueeze(1) + ar.unsqueeze(0)).clamp(max=max(0, wp.shape[0] - 1))
        grid = wp[idx] * mask.unsqueeze(-1)
        return grid.sum(1) / cnt.clamp(min=1).unsqueeze(-1).to(grid.dtype)

    @staticmethod
    def _to_annotation(words: list[str], ents: list[tuple], rels: list[tuple]) -> dict[str, Any]:
        """The package's annotation dict (ids "1".., relations to entities only)."""
        ids = {(s, e): str(k + 1) for k, (s, e, _) in enumerate(ents)}
        entities: dict[str, Any] = {}
        for k, (s, e, lab) in enumerate(ents):
            rel = [[name, ids[(s2, e2)]] for (s1, e1, s2, e2, name) in rels if (s1, e1) == (s, e) and (s2, e2) in ids]
            entities[str(k + 1)] = {
                "tokens": " ".join(words[s : e + 1]),
                "label": lab,
                "start_ix": s,
                "end_ix": e,
                "relations": rel,
            }
        return {"text": " ".join(words), "entities": entities, "data_source": None, "data_split": "inference"}


# ----------------------------------------------------------------------------------------------
# The metric
# ----------------------------------------------------------------------------------------------
class RadGraphF1(MeanMetric):
    """RadGraph F1 at the package's three reward levels; per sample and corpus mean.

    Keys: ``radgraph_partial`` (the default, first key: the F1RadGraph reward of
    Delbrouck et al. 2022, "RG_ER"), ``radgraph_simple``, ``radgraph_complete``.
    Option ``model_type``: ``radgraph-xl`` (default), ``radgraph``, ``modern-radgraph-xl``.
    """

    name = "radgraph"
    keys = ("radgraph_partial", "radgraph_simple", "radgraph_complete")
    impl_version = "1"

    def __init__(
        self,
        model_type: str = DEFAULT_MODEL,
        model_path: str | os.PathLike[str] | None = None,
        *,
        encoder_path: str | os.PathLike[str] | None = None,
        device: str | None = None,
        batch_tokens: int | None = None,
        extractor: RadGraphExtractor | None = None,
    ) -> None:
        if extractor is None:  # shared with RadCliQ when the model is the same
            from radeval.metrics.shared import radgraph_extractor

            extractor = radgraph_extractor(
                model_type, model_path, encoder_path=encoder_path, device=device, batch_tokens=batch_tokens
            )
        self.extractor = extractor

    def settings(self) -> dict[str, Any]:
        return {
            **self.extractor.settings(),
            "levels": "partial,simple,complete",
            "lower": "complete-relations",
            "empty": "0",
            "radgraph_pkg": "0.1.18",
        }

    def rewards(self, hyps: Sequence[str], refs: Sequence[str]) -> np.ndarray:
        """(n, 3) array of (simple, partial, complete) F1, F1RadGraph's rules."""
        if len(hyps) != len(refs):
            raise InputError(f"{len(hyps)} hypotheses but {len(refs)} references")
        out = np.zeros((len(hyps), 3), dtype=np.float64)
        live = [i for i in range(len(hyps)) if len(hyps[i]) > 0 and len(refs[i]) > 0]
        if not live:
            return out
        ref_anns = self.extractor([refs[i] for i in live])
        hyp_anns = self.extractor([hyps[i] for i in live])
        for i, h, r in zip(live, hyp_anns, ref_anns):
            out[i] = reward(h, r)
        return out

    def values(self, hyps, refs, images=None) -> dict[str, np.ndarray]:
        for i, (h, r) in enumerate(zip(hyps, refs)):
            if not isinstance(h, str) or not isinstance(r, str):
                raise InputError(f"radgraph: record {i}: prediction and reference must be strings")
        arr = self.rewards(list(hyps), list(refs))
        return {
            "radgraph_simple": arr[:, 0].copy(),
            "radgraph_partial": arr[:, 1].copy(),
            "radgraph_complete": arr[:, 2].copy(),
        }


__all__ = [
    "LEVELS",
    "MODEL_TYPES",
    "RadGraphExtractor",
    "RadGraphF1",
    "entity_relation_f1",
    "locate_model",
    "report_words",
    "reward",
    "words_v1",
    "words_xl",
]
