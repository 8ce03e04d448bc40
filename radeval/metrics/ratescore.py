"""RaTEScore (Zhao et al., EMNLP 2024): entity-level, synonym- and negation-aware report score,
computed as the RaTEScore package (0.6.0) computes it, batched, on transformers 5.

Pipeline (facts from the package's ``scorer.py`` / ``score.py`` / ``utils.py``):

1. **Sentences.** medspaCy's pipeline as the package builds it: ``spacy.blank("en")`` plus
   PyRuSH (``medspacy_pyrush`` with medspaCy's ``resources/en/rush_rules.tsv``); no spaCy
   model is involved (the package's "medspacy_conte" typo means ConText is not even loaded,
   and ConText never fed the score). Each sentence is stripped; sentences with no word or
   fewer than 3 characters are dropped.
2. **NER.** ``Angelakeke/RaTE-NER-Deberta`` token classification per sentence (max 512
   tokens, ``[CLS] ... [SEP]``, argmax label per token); spans are read with the package's
   B-/I- state machine (:func:`entity_spans`, quirks included) and turned back into text
   with the tokenizer's decoder; a report's entities are its sentences' entities in order.
3. **Embeddings.** ``FremyCompany/BioLORD-2023-C``: the ``[CLS]`` vector of the last hidden
   state for each entity string (max 30 tokens).
4. **Matching.** For each entity on one side, the most cosine-similar entity on the other
   (see :meth:`RaTEScore.pair_scores` on ties); weight ``W[type, matched type]`` from the
   affinity matrix ("long" default, "short"); similarity multiplied by ``neg_weight`` when the
   pair is a negated/non-negated disease or abnormality pair; score = sum(sim*W*neg) / sum(W).
   RaTEScore = harmonic mean of the two directions (0 when both are 0).
5. **No entities.** When either report has no entity the package returns 0.5.

Exactness notes:

* Tokenizers: when a model directory has ``tokenizer.json`` we load it with the ``tokenizers``
  library as-is, which is what transformers 4.x did. transformers 5 rebuilds DeBERTa-v2's
  normaliser and pre-tokeniser from its own class definition (it drops the checkpoint's
  normaliser), which changes tokens for some characters; without ``tokenizer.json`` we fall
  back to ``AutoTokenizer``.
* Sentence splitting needs medspaCy (``splitter="medspacy"``, the default). medspaCy pins
  spaCy < 3.8 on Python < 3.12, and spaCy 3.7 pins numpy < 2: on Python 3.11 it cannot live
  next to numpy 2 (so pyarrow < 26); on Python >= 3.12 it installs with spaCy 3.8 and numpy 2.
  ``splitter="simple"`` is our pure-Python approximation (its own signature; different
  numbers where it splits differently).
* Package bugs we do not reproduce, by design: a report with no sentence (empty, "ok") gets
  no entry in the package's entity list, so ``compute_score`` silently pairs every later
  candidate with the wrong reference (or returns fewer scores); we score such a pair as
  entity-less (0.5 under the package convention). The package also needs ``use_gpu=False``
  spelled out on CPU machines.
* Batching: sentences and entities are deduplicated, sorted by length and run in padded
  batches (the package: batch size 1 and one embedding batch per report); values move by
  float32 rounding only (~1e-7). Entity embeddings are cached by text, so references that
  recur (GRPO groups, epochs) are embedded once.

Reward behaviour: the 0.5 for "no entity on a side" rewards an empty completion with half
marks. ``empty_score`` replaces that value (the signature says which): the registry's
evaluator key keeps the package's 0.5; a reward should use ``empty_score=0.0`` - a completion
with no recognisable entity (or any completion when the reference has none) earns nothing.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from radeval import models
from radeval.errors import ConfigError, DependencyError, InputError
from radeval.metric import Metric

# Affinity matrices of RaTEScore 0.6.0 (scorer.py DEFAULT_MATRIX_LONG / DEFAULT_MATRIX_SHORT):
# "<type of the entity>_<type of its best match>" -> weight, plus the negation weight.
MATRIX_LONG: dict[str, float] = {
    "abnormality_abnormality": 0.4276119164393705, "abnormality_anatomy": 0.6240929990607657,
    "abnormality_disease": 0.0034478181112993847, "abnormality_non-abnormality": 0.5431049700217344,
    "abnormality_non-disease": 0.27005425386213877, "anatomy_abnormality": 0.7487824274337533,
    "anatomy_anatomy": 0.2856134859160784, "anatomy_disease": 0.4592143222158069,
    "anatomy_non-abnormality": 0.02097055139911715, "anatomy_non-disease": 0.00013736314126696204,
    "disease_abnormality": 0.8396510075734789, "disease_anatomy": 0.9950209388542061,
    "disease_disease": 0.8460555030578727, "disease_non-abnormality": 0.9820689020512646,
    "disease_non-disease": 0.3789136708096537, "non-abnormality_abnormality": 0.16546764653692908,
    "non-abnormality_anatomy": 0.018670610691852826, "non-abnormality_disease": 0.719397354576018,
    "non-abnormality_non-abnormality": 0.0009357166071730684,
    "non-abnormality_non-disease": 0.0927333564267591, "non-disease_abnormality": 0.7759420231214385,
    "non-disease_anatomy": 0.1839139293714062, "non-disease_disease": 0.10073046076318157,
    "non-disease_non-abnormality": 0.03860183811876373, "non-disease_non-disease": 0.34065681486566446,
    "neg_weight": 0.8716553966489615,
}  # fmt: skip
MATRIX_SHORT: dict[str, float] = {
    "abnormality_abnormality": 0.4070293318365468, "abnormality_anatomy": 0.6952639610605605,
    "abnormality_disease": 0.28342529466226446, "abnormality_non-abnormality": 0.9479148658006686,
    "abnormality_non-disease": 0.23875064111146294, "anatomy_abnormality": 0.5829759950441763,
    "anatomy_anatomy": 0.7709590751917746, "anatomy_disease": 0.0006059634829551632,
    "anatomy_non-abnormality": 0.794672584951181, "anatomy_non-disease": 0.27982942400798977,
    "disease_abnormality": 0.8840397619834857, "disease_anatomy": 0.9637659445696822,
    "disease_disease": 0.19018958438059513, "disease_non-abnormality": 0.6962283914800402,
    "disease_non-disease": 0.943727057946997, "non-abnormality_abnormality": 0.1712744286898638,
    "non-abnormality_anatomy": 0.4485149671497294, "non-abnormality_disease": 0.00045065329822896076,
    "non-abnormality_non-abnormality": 0.0007887930317199857,
    "non-abnormality_non-disease": 0.8555432840895761, "non-disease_abnormality": 0.9555801066212176,
    "non-disease_anatomy": 0.13122106162635216, "non-disease_disease": 0.6072996585919443,
    "non-disease_non-abnormality": 0.05650711141169969, "non-disease_non-disease": 0.3214769399791204,
    "neg_weight": 0.3611577852354489,
}  # fmt: skip

#: (entity type, matched type) pairs whose similarity is scaled by neg_weight
NEGATION_PAIRS = frozenset(
    {
        ("NON-DISEASE", "DISEASE"), ("NON-ABNORMALITY", "ABNORMALITY"),
        ("DISEASE", "NON-DISEASE"), ("ABNORMALITY", "NON-ABNORMALITY"),
        ("NON-DISEASE", "ABNORMALITY"), ("NON-ABNORMALITY", "DISEASE"),
        ("DISEASE", "NON-ABNORMALITY"), ("ABNORMALITY", "NON-DISEASE"),
    }
)  # fmt: skip
PACKAGE_EMPTY_SCORE = 0.5
NER_MAX_LEN = 512
EMBED_MAX_LEN = 30
NER_MODEL, EMBED_MODEL = "rate-ner", "biolord"


# ----- affinity matrix -----------------------------------------------------------------------
def load_matrix(matrix: str) -> tuple[dict[tuple[str, str], float], str]:
    """("long" | "short" | path to a JSON like the package's) -> ({(A, B): w}, signature label).

    Keys split at the first "_" and upper-cased, as the package does (so "neg_weight" is the
    pair ("NEG", "WEIGHT"))."""
    if matrix.lower() == "long":
        raw, label = MATRIX_LONG, "long"
    elif matrix.lower() == "short":
        raw, label = MATRIX_SHORT, "short"
    else:
        p = Path(matrix)
        try:
            raw = json.loads(p.read_text())
        except (OSError, ValueError) as e:
            raise ConfigError(f"ratescore: cannot read affinity matrix {matrix!r}: {e}") from e
        label = "file-" + hashlib.sha256(p.read_bytes()).hexdigest()[:12]
    out: dict[tuple[str, str], float] = {}
    for k, v in raw.items():
        parts = k.split("_")
        if len(parts) < 2:
            raise ConfigError(f"ratescore: affinity matrix key {k!r} is not 'TYPE_TYPE'")
        out[(parts[0].upper(), parts[1].upper())] = float(v)
    if ("NEG", "WEIGHT") not in out:
        raise ConfigError("ratescore: affinity matrix has no 'neg_weight'")
    return out, label


# ----- sentence splitting --------------------------------------------------------------------
def _keep(sentences: Sequence[str]) -> list[str]:
    """The package's filter: strip; drop sentences with no word or shorter than 3 characters."""
    out = []
    for s in sentences:
        s = str(s).strip()
        if len(s.split()) == 0 or len(s) < 3:
            continue
        out.append(s)
    return out


class MedspacySplitter:
    """medspaCy + PyRuSH exactly as RaTEScore's utils.py builds it (blank English tokenizer)."""

    label = "medspacy-pyrush"

    def __init__(self) -> None:
        try:
            import medspacy
        except ImportError as e:
            raise DependencyError(
                "ratescore splitter 'medspacy' (the package's sentence splitter) needs medspacy: "
                "pip install medspacy  (on Python < 3.12 it pins spaCy < 3.8 and so numpy < 2; "
                "or use splitter='simple', which gives different numbers where it splits differently)"
                f" [{e}]"
            ) from e
        try:  # PyRuSH logs every sentence through loguru at DEBUG level
            from loguru import logger

            logger.disable("PyRuSH")
        except ImportError:  # pragma: no cover - loguru is a PyRuSH dependency
            pass
        self.nlp = medspacy.load(medspacy_enable=["medspacy_pyrush"])
        try:
            from importlib.metadata import version

            self.label = f"medspacy-{version('medspacy')}-pyrush-{version('PyRuSH')}"
        except Exception:  # pragma: no cover - metadata missing
            pass

    def __call__(self, text: str) -> list[str]:
        return _keep(str(s) for s in self.nlp(text).sents)


_SIMPLE_SPLIT = re.compile(r"(?<=[.!?])\s+(?=\S)|\s*\n\s*\n\s*|(?<=[.!?:])[ \t]*\n\s*")
_ITEM = re.compile(r"^\d{1,2}\.$")  # a list number left on its own: "1."
_ABBREV = re.compile(r"(?:^|\s)(?:dr|mr|mrs|ms|vs|approx|e\.g|i\.e|a\.m|p\.m|no|st)\.$", re.IGNORECASE)


class SimpleSplitter:
    """Pure-Python approximation of PyRuSH on report text (not the package's splitter; its
    own signature): breaks after . ! ? followed by whitespace, at blank lines and at line
    ends after a stop or colon; a bare list number ("2.") stays with what follows, and no
    break after Dr. / a.m. / p.m. / e.g. / i.e. / vs. / approx."""

    label = "simple-v1"

    def __call__(self, text: str) -> list[str]:
        out: list[str] = []
        carry = ""
        for piece in _SIMPLE_SPLIT.split(text):
            piece = carry + piece
            carry = ""
            stripped = piece.strip()
            if _ITEM.match(stripped) or (_ABBREV.search(stripped) and not stripped.lower().endswith(" no.")):
                carry = piece + " "
                continue
            out.append(piece)
        if carry:
            out.append(carry)
        return _keep(out)


class GivenSplitter:
    """Sentences supplied by the caller (text -> list of sentences); for tests and tooling."""

    label = "given"

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table

    def __call__(self, text: str) -> list[str]:
        return _keep(self.table[text])


# ----- NER span reading ----------------------------------------------------------------------
def entity_spans(tokens: Sequence[str], labels: Sequence[str]) -> list[tuple[int, int, str]]:
    """(start, end, type) token spans, read the way RaTEScore's ``post_process`` reads them.

    ``labels`` may be longer than ``tokens`` (padding). Quirks kept on purpose: a span opened
    by "B-" and still open at the end closes on the last real token only if no span was closed
    before it; "I-" directly before "B-" restarts at the "I-" token; "[CLS]"/"[SEP]" tokens are
    skipped whatever their label, but their labels are still looked at as the next label.
    """
    spans: list[tuple[int, int, str]] = []
    start: int | None = None
    end: int | None = None
    etype: str | None = None
    n_lab = len(labels)
    for i, (tok, lab) in enumerate(zip(tokens, labels[: len(tokens)])):
        if tok in ("[CLS]", "[SEP]"):
            continue
        if lab == "O" or i >= n_lab - 1:
            continue
        nxt = labels[i + 1]
        if lab.startswith("B-"):
            if nxt.startswith("I-"):
                start, etype = i, lab[2:]
            elif nxt.startswith("B-"):
                start = end = i
                spans.append((i, i, lab[2:]))
                start, etype = i, lab[2:]
            elif nxt.startswith("O"):
                spans.append((i, i, lab[2:]))
                start = end = etype = None
        elif lab.startswith("I-"):
            if nxt.startswith("B-"):
                end = i
                if start is not None:
                    spans.append((start, end, etype))  # type: ignore[arg-type]
                start, etype = i, lab[2:]
            elif nxt.startswith("O"):
                end = i
                if start is not None:
                    spans.append((start, end, etype))  # type: ignore[arg-type]
                start = end = etype = None
    if start is not None and end is None:
        spans.append((start, len(tokens) - 2, etype))  # type: ignore[arg-type]
    return spans


# ----- tokenizers ----------------------------------------------------------------------------
class _Tok:
    """A checkpoint's tokenizer as transformers 4 used it: ``tokenizer.json`` through the
    ``tokenizers`` library when present, else ``AutoTokenizer``."""

    def __init__(self, directory: Path) -> None:
        self.fast = None
        self.hf = None
        tj = directory / "tokenizer.json"
        if tj.is_file():
            from tokenizers import Tokenizer

            self.fast = Tokenizer.from_file(str(tj))
            self.fast.no_padding()
            self.fast.no_truncation()
            cfg = {}
            if (directory / "tokenizer_config.json").is_file():
                cfg = json.loads((directory / "tokenizer_config.json").read_text())
            pad = cfg.get("pad_token", "[PAD]")
            if isinstance(pad, dict):
                pad = pad.get("content", "[PAD]")
            self.pad_id = self.fast.token_to_id(str(pad))
            if self.pad_id is None:
                self.pad_id = 0
        else:
            from transformers import AutoTokenizer

            self.hf = AutoTokenizer.from_pretrained(str(directory))
            self.pad_id = self.hf.pad_token_id if self.hf.pad_token_id is not None else 0

    def encode(self, texts: Sequence[str], max_len: int) -> list[tuple[list[int], list[str]]]:
        """(ids, tokens) per text, with special tokens, truncated to ``max_len``."""
        if self.fast is not None:
            self.fast.enable_truncation(max_length=max_len)
            try:
                encs = self.fast.encode_batch(list(texts))
            finally:
                self.fast.no_truncation()
            # tokens from ids, as convert_ids_to_tokens: an unknown piece is "[UNK]", not its text
            return [(list(e.ids), [self.fast.id_to_token(i) for i in e.ids]) for e in encs]
        enc = self.hf(list(texts), max_length=max_len, truncation=True)
        return [(list(ids), self.hf.convert_ids_to_tokens(ids)) for ids in enc["input_ids"]]

    def tokens_to_string(self, tokens: Sequence[str]) -> str:
        if self.fast is not None:
            return self.fast.decoder.decode(list(tokens)) if self.fast.decoder else " ".join(tokens)
        return self.hf.convert_tokens_to_string(list(tokens))


def _padded(torch, seqs: Sequence[Sequence[int]], pad_id: int):
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for r, s in enumerate(seqs):
        ids[r, : len(s)] = torch.tensor(list(s), dtype=torch.long)
        mask[r, : len(s)] = 1
    return ids, mask


# ----- the metric ----------------------------------------------------------------------------
class RaTEScore(Metric):
    """RaTEScore per report pair and its corpus mean.

    Options: ``affinity_matrix`` ("long" default | "short" | JSON path), ``empty_score``
    (None = the package's 0.5 when a side has no entity; a reward should pass 0.0),
    ``splitter`` ("medspacy" exact | "simple" | a callable text -> sentences),
    ``ner_path`` / ``embed_path`` (else the model manager), ``device``, ``batch_size``
    (NER sentences per forward), ``embed_batch_size``, ``cache_size`` (cached entity
    embeddings and sentence analyses).
    """

    name: ClassVar[str] = "ratescore"
    keys = ("ratescore",)
    stat_names = ("ratescore", "n", "no_entities", "type_ties")
    directions = {"ratescore": True}
    impl_version: ClassVar[str] = "1"

    def __init__(
        self,
        affinity_matrix: str = "long",
        empty_score: float | None = None,
        splitter: str | Callable[[str], list[str]] = "medspacy",
        ner_path: str | os.PathLike[str] | None = None,
        embed_path: str | os.PathLike[str] | None = None,
        device: str | None = None,
        batch_size: int = 64,
        embed_batch_size: int = 256,
        cache_size: int = 200_000,
    ) -> None:
        self.matrix, self.matrix_label = load_matrix(str(affinity_matrix))
        if empty_score is not None:
            empty_score = float(empty_score)
            if not math.isfinite(empty_score):
                raise ConfigError(f"ratescore empty_score must be a finite number, got {empty_score!r}")
        self.empty_score = empty_score
        if int(batch_size) < 1 or int(embed_batch_size) < 1:
            raise ConfigError("ratescore batch sizes must be >= 1")
        self.batch_size, self.embed_batch_size = int(batch_size), int(embed_batch_size)
        if callable(splitter):
            self.splitter = splitter
        elif splitter == "medspacy":
            self.splitter = MedspacySplitter()
        elif splitter == "simple":
            self.splitter = SimpleSplitter()
        else:
            raise ConfigError(f"ratescore splitter must be 'medspacy', 'simple' or a callable, got {splitter!r}")
        self.ner_dir = self._resolve(NER_MODEL, ner_path)
        self.embed_dir = self._resolve(EMBED_MODEL, embed_path)
        self._device = device
        self._loaded = False
        self._cache_size = int(cache_size)
        self._emb_cache: OrderedDict[tuple[int, ...], Any] = OrderedDict()
        self._ent_cache: OrderedDict[str, list[tuple[str, str]]] = OrderedDict()

    @staticmethod
    def _resolve(name: str, path) -> Path:
        res = models.locate(name, path)
        if res.path is None:
            raise models.not_found_error(name, res.searched)
        if not res.path.is_dir():
            raise ConfigError(f"ratescore: {name} must be a model directory, got {res.path}")
        return res.path

    # ----- identity ---------------------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        def src(name: str, d: Path) -> str:
            spec = models.get_spec(name)
            commit = models._commit_of(d)
            return f"{spec.repo_id}@{commit[:12] if commit else 'local-path'}"

        empty = f"{PACKAGE_EMPTY_SCORE:g}(package)" if self.empty_score is None else f"{self.empty_score:g}"
        return {
            "ner": src(NER_MODEL, self.ner_dir),
            "embed": src(EMBED_MODEL, self.embed_dir),
            "matrix": self.matrix_label,
            "split": getattr(self.splitter, "label", "custom"),
            "empty": empty,
            "ratescore_pkg": "0.6.0",
        }

    # ----- models -----------------------------------------------------------------------------
    def _load(self) -> None:
        if self._loaded:
            return
        try:
            import torch
            from transformers import AutoConfig, AutoModel, AutoModelForTokenClassification
        except ImportError as e:  # pragma: no cover - depends on the install
            raise DependencyError(f"ratescore needs torch and transformers: {e}") from e
        self.torch = torch
        self.device = self._device or ("cuda" if torch.cuda.is_available() else "cpu")
        cfg = AutoConfig.from_pretrained(str(self.ner_dir))
        self.id2label = {int(k): str(v) for k, v in cfg.id2label.items()}
        types = {lab[2:] for lab in self.id2label.values() if lab != "O"}
        missing = sorted({(a, b) for a in types for b in types} - set(self.matrix))
        if missing:
            raise ConfigError(f"ratescore: affinity matrix lacks weights for {missing[:3]}...")
        self.ner_tok = _Tok(self.ner_dir)
        self.ner = AutoModelForTokenClassification.from_pretrained(str(self.ner_dir)).eval().to(self.device)
        self.emb_tok = _Tok(self.embed_dir)
        self.emb = AutoModel.from_pretrained(str(self.embed_dir)).eval().to(self.device)
        self._loaded = True

    # ----- features ---------------------------------------------------------------------------
    def entities(self, texts: Sequence[str]) -> list[list[tuple[str, str]]]:
        """(entity text, type) per report, in sentence order; cached by report text."""
        self._load()
        todo = [t for t in dict.fromkeys(texts) if t not in self._ent_cache]
        if todo:
            sents = {t: self.splitter(t) for t in todo}
            uniq = list(dict.fromkeys(s for t in todo for s in sents[t]))
            per_sent = self._ner(uniq)
            for t in todo:
                self._ent_cache[t] = [e for s in sents[t] for e in per_sent[s]]
                self._ent_cache.move_to_end(t)
        out = [self._ent_cache[t] for t in texts]
        while len(self._ent_cache) > self._cache_size:
            self._ent_cache.popitem(last=False)
        return out

    def _ner(self, sentences: list[str]) -> dict[str, list[tuple[str, str]]]:
        torch = self.torch
        encs = self.ner_tok.encode(sentences, NER_MAX_LEN)
        order = sorted(range(len(encs)), key=lambda i: len(encs[i][0]))
        out: dict[str, list[tuple[str, str]]] = {}
        for s in range(0, len(order), self.batch_size):
            idx = order[s : s + self.batch_size]
            ids, mask = _padded(torch, [encs[i][0] for i in idx], self.ner_tok.pad_id)
            with torch.inference_mode():
                logits = self.ner(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).logits
            pred = logits.argmax(dim=-1).cpu().tolist()
            for row, i in zip(pred, idx):
                toks = encs[i][1]
                # the package reads labels up to the sentence's own length (batch size 1)
                labels = [self.id2label[c] for c in row[: len(toks)]]
                out[sentences[i]] = [
                    (self.ner_tok.tokens_to_string(toks[a : b + 1]), typ) for a, b, typ in entity_spans(toks, labels)
                ]
        return out

    def _embed(self, strings: Sequence[str]):
        """(matrix of L2-normalised [CLS] embeddings, float32 on CPU, one row per distinct
        embedding; string -> row).

        Cached by *token ids*, not by text: strings the embedder cannot tell apart ("Heart" /
        "heart" under a lower-casing tokenizer) must get bit-identical vectors, so that their
        similarity ties and ``topk`` breaks the tie by position, as in the package (where
        they share one padded batch). Embedding them separately would break such ties by
        float32 noise instead."""
        torch = self.torch
        uniq = list(dict.fromkeys(strings))
        keys = {s: tuple(ids) for s, (ids, _) in zip(uniq, self.emb_tok.encode(uniq, EMBED_MAX_LEN))}
        need = list(dict.fromkeys(k for k in keys.values() if k not in self._emb_cache))
        if need:
            order = sorted(range(len(need)), key=lambda i: len(need[i]))
            for s in range(0, len(order), self.embed_batch_size):
                idx = order[s : s + self.embed_batch_size]
                ids, mask = _padded(torch, [need[i] for i in idx], self.emb_tok.pad_id)
                with torch.inference_mode():
                    h = self.emb(input_ids=ids.to(self.device), attention_mask=mask.to(self.device))
                cls = h.last_hidden_state[:, 0, :].float().cpu()
                for r, i in enumerate(idx):
                    self._emb_cache[need[i]] = cls[r].clone()
        distinct = list(dict.fromkeys(keys.values()))
        vecs = [self._emb_cache[k] for k in distinct]
        for k in distinct:
            self._emb_cache.move_to_end(k)
        while len(self._emb_cache) > self._cache_size:
            self._emb_cache.popitem(last=False)
        pos = {k: i for i, k in enumerate(distinct)}
        mat = torch.nn.functional.normalize(torch.stack(vecs), p=2, dim=1)
        return mat, {s: pos[keys[s]] for s in uniq}

    # ----- compare ----------------------------------------------------------------------------
    def _direction(self, sims, a_types, b_types) -> tuple[float, bool]:
        """For each entity of A (rows of ``sims``) its best match in B (columns), weighted:
        the package's ``compute``. Returns (score, whether a best match was tied between
        copies of one string that carry different types)."""
        neg = self.matrix[("NEG", "WEIGHT")]
        best = sims.max(axis=1)
        arg = sims.argmax(axis=1)  # first index among equal maxima
        num = 0.0
        den = 0.0
        tie = False
        for i in range(sims.shape[0]):
            pair = (a_types[i], b_types[int(arg[i])])
            weight = self.matrix[pair]
            num += float(best[i]) * weight * (neg if pair in NEGATION_PAIRS else 1)
            den += weight
            if not tie:
                at_max = np.flatnonzero(sims[i] == best[i])
                tie = len({b_types[j] for j in at_max}) > 1
        return (num / den if den != 0 else 0), tie

    def pair_scores(self, hyps: Sequence[str], refs: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(scores, no-entity flags, type-tie flags) per pair.

        Ties: when the best match of an entity is a string that occurs more than once on the
        other side with different types (e.g. "effusion" as ABNORMALITY and as
        NON-ABNORMALITY), the similarities are equal and the package's pick depends on
        float32 rounding of its matrix-vector product (the row position); we compute one
        similarity per distinct embedding, so the copies tie exactly and the first one wins.
        Such pairs are flagged (``type_ties`` in the details)."""
        ents_h = self.entities(hyps)
        ents_r = self.entities(refs)
        strings = list(dict.fromkeys(e for es in (*ents_h, *ents_r) for e, _ in es))
        if strings:
            mat, row = self._embed(strings)
            emb = mat.numpy()
        empty_value = PACKAGE_EMPTY_SCORE if self.empty_score is None else self.empty_score
        scores = np.empty(len(hyps), dtype=np.float64)
        flags = np.zeros(len(hyps), dtype=np.float64)
        ties = np.zeros(len(hyps), dtype=np.float64)
        for k, (eh, er) in enumerate(zip(ents_h, ents_r)):
            if not eh or not er:
                scores[k] = empty_value
                flags[k] = 1.0
                continue
            # one product per distinct embedding, expanded: copies tie exactly
            ug, inv_g = np.unique([row[s] for s, _ in er], return_inverse=True)
            up, inv_p = np.unique([row[s] for s, _ in eh], return_inverse=True)
            sims = (emb[ug] @ emb[up].T)[inv_g][:, inv_p]  # float32 cosines, reference x candidate
            gt_t = [t for _, t in er]
            pr_t = [t for _, t in eh]
            p, tie_p = self._direction(sims, gt_t, pr_t)
            r, tie_r = self._direction(sims.T, pr_t, gt_t)
            scores[k] = 0.0 if p + r == 0 else 2 * p * r / (p + r)
            ties[k] = float(tie_p or tie_r)
        return scores, flags, ties

    def stats(self, hyps, refs, images=None) -> np.ndarray:
        if len(hyps) == 0:
            return np.zeros((0, 4))
        for name, seq in (("prediction", hyps), ("reference", refs)):
            for i, t in enumerate(seq):
                if not isinstance(t, str):
                    raise InputError(f"ratescore: record {i}: {name} must be a string, got {type(t).__name__}")
        scores, flags, ties = self.pair_scores(hyps, refs)
        return np.stack([scores, np.ones_like(scores), flags, ties], axis=1)

    def from_totals(self, totals: np.ndarray) -> dict[str, np.ndarray]:
        t = np.asarray(totals, dtype=np.float64)
        n = t[..., 1]
        with np.errstate(invalid="ignore", divide="ignore"):
            return {"ratescore": np.where(n > 0, t[..., 0] / np.where(n > 0, n, 1.0), np.nan)}

    def details(self, totals: np.ndarray) -> dict[str, Any]:
        return {
            "n": int(totals[1]),
            "pairs_without_entities": int(totals[2]),
            "pairs_with_type_ties": int(totals[3]),
            "empty_score": PACKAGE_EMPTY_SCORE if self.empty_score is None else self.empty_score,
        }
