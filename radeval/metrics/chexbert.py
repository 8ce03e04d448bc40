"""The CheXbert labeler: 14 CheXpert observations per report from a fine-tuned BERT-base.

Architecture (Smit et al. 2020, as f1chexbert 0.0.2 rebuilds it): a BERT-base encoder, the
final hidden state of the [CLS] token, and 14 linear heads on it: 13 four-way heads whose
classes are {0: blank, 1: positive, 2: negative, 3: uncertain} and one two-way head for
"No Finding" whose classes are {0: blank, 1: positive}. Heads are in CheXbert's own
condition order (:data:`CHEXBERT_CONDITIONS`); :meth:`CheXbertLabeler.label` returns the
columns in :data:`radeval.labels.CHEXPERT_OBSERVATIONS` order.

Exactness against f1chexbert (proved by tests/test_chexbert.py on a random-weight checkpoint):

* text cleaning: strip, every run of whitespace (newlines included) -> one space, strip;
* tokens: bert-base-uncased WordPiece, ``[CLS] tokens [SEP]``; longer than 512 ids ->
  the first 510 tokens (``ids[:511] + [SEP]`` in f1chexbert's terms);
* class = argmax of each head's logits (first index wins a tie, as in torch).

What we do differently, none of which changes a label (float rounding aside: the parity test
checks the argmax margins are far above it): many reports per forward pass (sorted by length,
padded, padding masked out of attention), our own forward over the checkpoint's BERT weights
(transformers' BertModel holds them; Q/K/V fused into one matrix product; in the last layer
only [CLS] is carried forward, since nothing else reaches the heads; no pooler, no dropout),
no gradients, the 14 heads as one matrix product, a label cache keyed by the sha1 of the
cleaned text, ``torch.load(weights_only=True)`` and a strict key match (f1chexbert loads with
``strict=False``: a renamed key silently leaves random weights).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from radeval.errors import DependencyError, InputError, RadevalError
from radeval.labels import CHEXPERT_OBSERVATIONS

#: Head order of the CheXbert checkpoint (CheXbert's ``CONDITIONS``; f1chexbert's target_names).
CHEXBERT_CONDITIONS: tuple[str, ...] = (
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
    "No Finding",
)
#: Class index -> label value. Four-way heads: blank, positive, negative, uncertain.
FOUR_WAY_VALUES: tuple[float, ...] = (math.nan, 1.0, 0.0, -1.0)
#: The "No Finding" head has two classes: blank, positive.
NO_FINDING_VALUES: tuple[float, ...] = (math.nan, 1.0)

MAX_LEN = 512  # BERT-base position embeddings; f1chexbert truncates to this many ids
MODEL_NAME = "chexbert"
MODEL_FILE = "chexbert.pth"
TOKENIZER_NAME = "bert-base-uncased"
MIN_FILL = 0.75  # a report joins a batch only if at least this fraction of the batch's width
PAD_SLACK = 32  # ... or at most this many tokens shorter (tiny batches of short reports cost more)
TOKENS_PER_REPORT = 128  # padded tokens per batch <= batch_size x this (memory bound)
DEFAULT_MAX_CACHE = 200_000  # cached texts; about 40 MB of labels + keys at most
#: texts whose labels *and* [CLS] state are kept from the last forward passes, whatever the
#: ``cache`` flag: CheXbert F1, SembScore and RadCliQ read the same texts of a chunk one
#: after the other, and must not run them again (about 50 MB at hidden size 768)
RECENT_SIZE = 16_384

_WS = re.compile(r"\s+")
_DP_PREFIX = "module."  # nn.DataParallel, which CheXbert was trained under
# A buffer some transformers versions (3.x-4.30) saved with the weights; its value is fixed
# (0..max_len-1), so it carries no information and is checked, then dropped.
_DETERMINED_BUFFERS = ("bert.embeddings.position_ids",)


def clean_report(text: str) -> str:
    """f1chexbert's text cleaning: every whitespace run -> one space, ends stripped.

    (Its pandas steps strip, replace ``\\n`` and then ``\\s+`` by a space, strip; Python's ``\\s``
    and ``str.split()`` use the same Unicode whitespace set, so this is the same string.)
    """
    return _WS.sub(" ", text).strip()


def text_key(cleaned: str) -> str:
    """Cache key of a cleaned report (labels are a function of the cleaned text only)."""
    return hashlib.sha1(cleaned.encode("utf-8", "surrogatepass")).hexdigest()


def _require_torch():
    try:
        import torch
        import transformers  # noqa: F401
    except ImportError as e:
        raise DependencyError(
            "the CheXbert labeler needs torch and transformers: pip install 'radeval-toolkit[clinical]'"
        ) from e
    return torch


def _sha256(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(chunk):
            h.update(b)
    return h.hexdigest()


def load_chexbert_state_dict(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The model weights of a CheXbert checkpoint, ``module.`` prefix removed.

    The file is a ``torch.save`` of ``{"epoch", "model_state_dict", "optimizer_state_dict"}``;
    only tensors and plain containers are unpickled (``weights_only=True``). It is memory-mapped
    when the format allows, so the optimizer state it also holds is never read into memory.
    """
    torch = _require_torch()
    import pickle

    path = Path(path)
    try:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as e:
            if "mmap" not in str(e):
                raise
            obj = torch.load(path, map_location="cpu", weights_only=True)  # legacy (pre-zip) format
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as e:
        raise RadevalError(f"cannot load the CheXbert checkpoint {path} with torch.load(weights_only=True): {e}") from e
    sd = obj.get("model_state_dict") if isinstance(obj, dict) else None
    if not isinstance(sd, dict):
        keys = sorted(obj)[:10] if isinstance(obj, dict) else type(obj).__name__
        raise RadevalError(f"{path} is not a CheXbert checkpoint: expected a dict with 'model_state_dict', got {keys}")
    out: dict[str, Any] = {}
    for k, v in sd.items():
        name = k[len(_DP_PREFIX) :] if k.startswith(_DP_PREFIX) else k
        out[name] = v
    return out


def _bert_config(tokenizer_dir: Path):
    """BertConfig from the bert-base-uncased config.json, as f1chexbert's AutoConfig reads it."""
    from transformers import BertConfig

    f = tokenizer_dir / "config.json"
    if not f.is_file():
        raise RadevalError(f"{tokenizer_dir} has no config.json (the bert-base-uncased architecture)")
    cfg = json.loads(f.read_text())
    if cfg.get("model_type", "bert") != "bert":
        raise RadevalError(f"{f}: model_type {cfg.get('model_type')!r}, the CheXbert labeler needs 'bert'")
    for key, want in (("position_embedding_type", "absolute"), ("is_decoder", False), ("add_cross_attention", False)):
        if cfg.get(key, want) != want:
            raise RadevalError(f"{f}: {key}={cfg[key]!r}; the CheXbert labeler runs BERT with {key}={want!r}")
    config = BertConfig(**{k: v for k, v in cfg.items() if k not in ("architectures", "transformers_version")})
    if config.hidden_size % config.num_attention_heads:
        raise RadevalError(f"{f}: hidden_size {config.hidden_size} is not a multiple of num_attention_heads")
    # inference only: dropout is the identity in eval mode; zero it so no code path can apply it
    config.hidden_dropout_prob = 0.0
    config.attention_probs_dropout_prob = 0.0
    return config


def build_chexbert_net(config):
    """The CheXbert module tree, with the checkpoint's key names (``bert.*``, ``linear_heads.N.*``).

    A plain container (no forward of its own): :class:`CheXbertLabeler` runs it.
    """
    _require_torch()
    from torch import nn
    from transformers import BertModel

    net = nn.Module()
    # the pooler is in the checkpoint (strict keys) although the labeler never uses it
    net.bert = BertModel(config, add_pooling_layer=True)
    h = config.hidden_size
    net.linear_heads = nn.ModuleList([nn.Linear(h, 4) for _ in range(13)] + [nn.Linear(h, 2)])
    return net


def _strict_load(net, sd: dict[str, Any], path: Path) -> None:
    torch = _require_torch()
    sd = dict(sd)
    for k in _DETERMINED_BUFFERS:
        if k in sd:
            v = sd.pop(k)
            if not torch.equal(v.reshape(-1).long(), torch.arange(v.numel())):
                raise RadevalError(f"{path}: {k} is not 0..{v.numel() - 1}; not a CheXbert checkpoint we can read")
    expected = net.state_dict()
    missing = sorted(set(expected) - set(sd))
    unexpected = sorted(set(sd) - set(expected))
    shapes = sorted(
        f"{k}: checkpoint {tuple(sd[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in set(sd) & set(expected)
        if tuple(sd[k].shape) != tuple(expected[k].shape)
    )
    if missing or unexpected or shapes:

        def show(xs: list[str]) -> str:
            return ", ".join(xs[:20]) + (f", ... ({len(xs)} in all)" if len(xs) > 20 else "") if xs else "none"

        raise RadevalError(
            f"{path} does not match the CheXbert architecture (BERT from the bert-base-uncased config + "
            f"13 four-way and 1 two-way heads); refusing to run with any weight left random.\n"
            f"  missing keys: {show(missing)}\n  unexpected keys: {show(unexpected)}\n"
            f"  shape mismatches: {show(shapes)}"
        )
    net.load_state_dict(sd, strict=True)


class CheXbertLabeler:
    """CheXbert labels for reports: ``label(texts) -> (n, 14)`` array in CheXpert order.

    Values: 1.0 positive, 0.0 negative, -1.0 uncertain, NaN blank (not mentioned).

    Args:
        model_path: ``chexbert.pth`` or a directory holding it; default: radeval's model
            resolution (``$RADEVAL_MODELS_DIR/chexbert``, then the HF cache of
            ``StanfordAIMI/RRG_scorers``).
        tokenizer_path: directory with the bert-base-uncased ``vocab.txt`` and ``config.json``;
            default: resolved the same way (model name ``bert-base-uncased``).
        device: torch device for the forward pass.
        batch_size: reports per forward pass (labels do not depend on it).
        max_cache: how many distinct cleaned texts keep their labels (oldest dropped first).
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        tokenizer_path: str | os.PathLike[str] | None = None,
        device: str = "cpu",
        batch_size: int = 32,
        *,
        max_cache: int = DEFAULT_MAX_CACHE,
    ) -> None:
        torch = _require_torch()
        from transformers import BertTokenizer

        from radeval import models

        if int(batch_size) < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = int(batch_size)
        self.max_cache = int(max_cache)
        self.device = torch.device(device)
        self.model_file = models.resolve_file(MODEL_NAME, MODEL_FILE, model_path)
        self.tokenizer_dir = models.resolve(TOKENIZER_NAME, tokenizer_path)
        if self.tokenizer_dir.is_file():
            self.tokenizer_dir = self.tokenizer_dir.parent

        self.tokenizer = BertTokenizer.from_pretrained(str(self.tokenizer_dir))
        self._cls = self.tokenizer.cls_token_id
        self._sep = self.tokenizer.sep_token_id
        self._pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0

        config = _bert_config(self.tokenizer_dir)
        net = build_chexbert_net(config)
        _strict_load(net, load_chexbert_state_dict(self.model_file), self.model_file)
        net.eval().requires_grad_(False)
        self.max_len = min(MAX_LEN, config.max_position_embeddings)
        self._n_heads = config.num_attention_heads
        self._embeddings = net.bert.embeddings.to(self.device)
        self._layers = [_Layer.of(layer, self.device) for layer in net.bert.encoder.layer]
        self.n_encoder_params = sum(p.numel() for p in net.bert.encoder.parameters())
        # All 14 heads as one (54, hidden) matrix: one product instead of 14 small ones.
        heads = net.linear_heads
        self._head_w = torch.cat([h.weight for h in heads]).to(self.device).contiguous()
        self._head_b = torch.cat([h.bias for h in heads]).to(self.device).contiguous()
        self._head_sizes = [h.out_features for h in heads]
        # class index -> value lookup per head, and the head -> CheXpert column map
        self._values = [np.array(NO_FINDING_VALUES if n == 2 else FOUR_WAY_VALUES) for n in self._head_sizes]
        self._column = np.array([CHEXPERT_OBSERVATIONS.index(c) for c in CHEXBERT_CONDITIONS])
        self._cache: dict[str, np.ndarray] = {}
        self._recent: OrderedDict[str, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._sha256: str | None = None
        self._vocab_sha256: str | None = None
        self.n_forward = 0  # reports actually run through the encoder (cache misses), for tests/benchmarks

    # ----- public ------------------------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        """Everything that changes a label, for metric signatures."""
        if self._sha256 is None:
            self._sha256 = _sha256(self.model_file)
        if self._vocab_sha256 is None:
            vocab = self.tokenizer_dir / "vocab.txt"
            self._vocab_sha256 = _sha256(vocab) if vocab.is_file() else "none"
        return {
            "labeler": "chexbert",
            "model": f"{MODEL_NAME}:{MODEL_FILE}",
            "model_sha256": self._sha256[:12],
            "tokenizer": f"{TOKENIZER_NAME}:vocab.sha256={self._vocab_sha256[:12]}",
            "max_len": self.max_len,
        }

    def label(self, texts: Sequence[str], *, cache: bool = True) -> np.ndarray:
        """``(n, 14)`` float64 labels in CHEXPERT_OBSERVATIONS order (NaN = blank).

        Repeated texts (within the call, and across calls when ``cache``) run once. Pass
        ``cache=False`` for one-off texts (GRPO completions) so they do not fill the cache.
        """
        if isinstance(texts, str):
            raise InputError("CheXbertLabeler.label takes a list of reports, not one string")
        cleaned: list[str] = []
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise InputError(f"report {i}: expected a string, got {type(t).__name__}")
            cleaned.append(clean_report(t))
        keys = [text_key(c) for c in cleaned]
        todo: dict[str, str] = {}
        fresh: dict[str, np.ndarray] = {}
        for k, c in zip(keys, cleaned):
            if k in self._cache or k in todo or k in fresh:
                continue
            hit = self._recent.get(k)
            if hit is None:
                todo[k] = c
            else:
                fresh[k] = hit[0]
        if todo:
            fresh.update({k: f[0] for k, f in self._run(todo).items()})
        out = np.empty((len(cleaned), len(CHEXPERT_OBSERVATIONS)), dtype=np.float64)
        for i, k in enumerate(keys):
            row = fresh.get(k)
            out[i] = self._cache[k] if row is None else row
        if cache and fresh:
            self._cache.update(fresh)
            while len(self._cache) > self.max_cache:  # dicts keep insertion order: oldest first
                del self._cache[next(iter(self._cache))]
        return out

    def clear_cache(self) -> None:
        self._cache.clear()
        self._recent.clear()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Final-layer [CLS] states, (n, hidden) float32: the "CheXbert embedding" of SembScore
        and RadCliQ (CXR-Report-Metric's ``bert_encoder(logits=False)``), with the labeler's
        text cleaning. Distinct texts run once; a text labelled in the last forward passes
        is not run again (its state was kept with its labels)."""
        cleaned = [clean_report(t) for t in texts]
        keys = [text_key(c) for c in cleaned]
        todo: dict[str, str] = {}
        got: dict[str, np.ndarray] = {}
        for k, c in zip(keys, cleaned):
            if k in got or k in todo:
                continue
            hit = self._recent.get(k)
            if hit is None:
                todo[k] = c
            else:
                self._recent.move_to_end(k)
                got[k] = hit[1]
        if todo:
            got.update({k: f[1] for k, f in self._run(todo).items()})
        hidden = self._head_w.shape[1]
        if not keys:
            return np.zeros((0, hidden), dtype=np.float32)
        return np.stack([got[k] for k in keys]).astype(np.float32, copy=False)

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids exactly as f1chexbert builds them (texts are cleaned here)."""
        return self._encode([clean_report(t) for t in texts])

    # ----- internals ---------------------------------------------------------------------------
    def _encode(self, cleaned: list[str]) -> list[list[int]]:
        body = self.max_len - 2
        enc = self.tokenizer(
            cleaned,
            add_special_tokens=False,
            return_attention_mask=False,
            return_token_type_ids=False,
            verbose=False,  # no "longer than 512" warning: we truncate below, as f1chexbert does
        )["input_ids"]
        return [[self._cls, *ids[:body], self._sep] for ids in enc]

    def _run(self, todo: dict[str, str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Encode texts (key -> cleaned text) once; labels and [CLS] states join the recent cache."""
        rows, states = self._forward(list(todo.values()))
        fresh = {k: (rows[i], states[i]) for i, k in enumerate(todo)}
        self._recent.update(fresh)
        while len(self._recent) > RECENT_SIZE:
            self._recent.popitem(last=False)
        return fresh

    def _forward(self, cleaned: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(labels (n, 14) in CHEXPERT_OBSERVATIONS order, [CLS] states (n, hidden) float32)."""
        torch = _require_torch()
        ids = self._encode(cleaned)
        classes = np.empty((len(ids), len(self._head_sizes)), dtype=np.int64)
        states = np.zeros((len(ids), self._head_w.shape[1]), dtype=np.float32)
        # longest first: batches hold similar lengths (little padding), and the widest batch
        # comes first so a memory problem shows at once
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
        with torch.inference_mode():
            for idx in self._batches(order, [len(x) for x in ids]):
                classes[idx], states[idx] = self._classes([ids[i] for i in idx])
        self.n_forward += len(ids)
        rows = np.full((len(ids), len(CHEXPERT_OBSERVATIONS)), np.nan)
        for h, values in enumerate(self._values):
            rows[:, self._column[h]] = values[classes[:, h]]
        return rows, states

    def _batches(self, order: list[int], lengths: list[int]) -> list[list[int]]:
        """Cut the longest-first ``order`` into batches of at most ``batch_size`` reports.

        A batch also ends before a report shorter than ``MIN_FILL`` x the batch's width (its
        first, longest report) by more than ``PAD_SLACK`` tokens, so padding stays under ~1/4 of
        the tokens computed (one long report in a GRPO group must not pad 31 short ones to
        512) while short reports still share batches; and before the padded size passes
        ``batch_size`` x 128 tokens, which bounds memory for long reports.
        """
        budget = self.batch_size * TOKENS_PER_REPORT
        out: list[list[int]] = []
        cur: list[int] = []
        for i in order:
            if cur and (
                len(cur) == self.batch_size
                or lengths[cur[0]] - lengths[i] > max((1 - MIN_FILL) * lengths[cur[0]], PAD_SLACK)
                or (len(cur) + 1) * lengths[cur[0]] > budget
            ):
                out.append(cur)
                cur = []
            cur.append(i)
        if cur:
            out.append(cur)
        return out

    def _classes(self, batch: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        """Class index per head and the [CLS] state of each report of one batch."""
        torch = _require_torch()
        width = max(len(s) for s in batch)
        input_ids = torch.full((len(batch), width), self._pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for r, s in enumerate(batch):
            input_ids[r, : len(s)] = torch.tensor(s, dtype=torch.long)
            mask[r, : len(s)] = 1
        cls = self._cls_states(input_ids.to(self.device), mask.to(self.device))
        logits = torch.addmm(self._head_b, cls, self._head_w.t())
        # argmax per head; torch.argmax takes the first maximum, like f1chexbert's per-head argmax
        classes = torch.stack([part.argmax(dim=1) for part in logits.split(self._head_sizes, dim=1)], 1)
        return classes.cpu().numpy(), cls.float().cpu().numpy()

    def _cls_states(self, input_ids, mask):
        """Final hidden state of [CLS], (batch, hidden): BERT's encoder, post-LayerNorm blocks.

        Same arithmetic as transformers' BertModel (absolute positions, token type 0, exact
        activation from the config, scaled dot-product attention over unmasked keys), with two
        savings: Q, K and V come from one fused matrix product, and in the last layer only
        [CLS] is carried forward (its query, attention output and feed-forward), since nothing
        else of that layer reaches the heads.
        """
        torch = _require_torch()
        F = torch.nn.functional
        x = self._embeddings(input_ids=input_ids)
        b, n, d = x.shape
        h = self._n_heads
        keys = mask[:, None, None, :].bool()  # (b, 1, 1, n): padding is never attended to
        last = len(self._layers) - 1
        for i, ly in enumerate(self._layers):
            if i < last:
                q, k, v = F.linear(x, ly.wqkv, ly.bqkv).view(b, n, 3, h, d // h).unbind(2)
            else:
                k, v = F.linear(x, ly.wqkv[d:], ly.bqkv[d:]).view(b, n, 2, h, d // h).unbind(2)
                x = x[:, :1]
                q = F.linear(x, ly.wqkv[:d], ly.bqkv[:d]).view(b, 1, h, d // h)
            ctx = F.scaled_dot_product_attention(
                q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=keys
            )
            ctx = ctx.transpose(1, 2).reshape(b, x.shape[1], d)
            x = ly.ln1(F.linear(ctx, ly.wo, ly.bo) + x)
            x = ly.ln2(F.linear(ly.act(F.linear(x, ly.w1, ly.b1)), ly.w2, ly.b2) + x)
        return x[:, 0]


class _Layer:
    """One BERT layer's weights, with Q, K, V fused into one (3*hidden, hidden) matrix."""

    __slots__ = ("wqkv", "bqkv", "wo", "bo", "ln1", "w1", "b1", "act", "w2", "b2", "ln2")

    @classmethod
    def of(cls, layer, device) -> _Layer:
        torch = _require_torch()
        sa, ao = layer.attention.self, layer.attention.output
        me = cls()
        me.wqkv = torch.cat([sa.query.weight, sa.key.weight, sa.value.weight]).to(device).contiguous()
        me.bqkv = torch.cat([sa.query.bias, sa.key.bias, sa.value.bias]).to(device).contiguous()
        me.wo, me.bo, me.ln1 = ao.dense.weight.to(device), ao.dense.bias.to(device), ao.LayerNorm.to(device)
        me.w1, me.b1 = layer.intermediate.dense.weight.to(device), layer.intermediate.dense.bias.to(device)
        me.act = layer.intermediate.intermediate_act_fn
        me.w2, me.b2, me.ln2 = (
            layer.output.dense.weight.to(device),
            layer.output.dense.bias.to(device),
            layer.output.LayerNorm.to(device),
        )
        return me
