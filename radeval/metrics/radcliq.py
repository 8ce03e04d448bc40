"""RadCliQ-v1 (Yu et al. 2023, Patterns): a linear composite of four metrics. LOWER IS BETTER.

Per report pair, the four features of CXR-Report-Metric (``CXRMetric/run_eval.py``, column
order ``radgraph_combined, bertscore, semb_score, bleu_score``):

1. ``radgraph_combined`` = (entity F1 + relation F1) / 2 on RadGraph annotations, entities
   {(tokens, label)}, relations {((tokens, label), (target tokens, target label), relation)},
   no lower-casing; model ``radgraph`` (CXR-Report-Metric's current ``RadGraph(model_type=
   "radgraph")``; option ``radgraph_model``); see :mod:`radeval.metrics.radgraph`.
2. ``bertscore`` = BERTScore F1, ``distilroberta-base``, layer 5 (bert-score's default for it),
   rescaled with bert-score's English baseline, IDF weights (``idf=True, idf_sents=`` the
   references), texts with runs of spaces collapsed (``re.sub(' +', ' ', t)``).
3. ``semb_score`` = cosine of the CheXbert embeddings (final-layer [CLS] vector of the CheXbert
   encoder) of the two reports.
4. ``bleu_score`` = BLEU-2 as ``fast_bleu.BLEU([ref], {"bigram": (1/2, 1/2)})`` on
   ``text.lower().replace(".", " .").split(" ")`` minus empty strings: clipped n-gram
   precisions, a zero bigram precision smoothed to 0.1 / max(#bigrams, 1), 0 if no unigram
   matches, brevity penalty exp(1 - r/c) when c <= r (fast_bleu 0.0.90, checked against it).

RadCliQ-v1 = ((x - mean) / scale) · coef[:4] + coef[4], with the published scaler and
coefficients (:data:`SCALER_MEAN`, :data:`SCALER_SCALE`, :data:`COEFS`). The corpus value is
the mean of the per-sample values (CXR-Report-Metric reports the per-report column; one
RadEval version returns 1 / mean instead — not this metric). ``higher_is_better`` is False.

IDF corpus (the fix for RadEval's per-call IDF, under which a reward depends on the other
references in its batch and all-identical references make the term constant): the IDF
weights come from one named corpus and are frozen:

* ``idf_corpus=None`` (default, the paper's setting for evaluation): the references of the
  evaluated set. :meth:`RadCliQ.fit_references` sets them from the whole file (the evaluator's
  first pass); :meth:`score` on a whole set fits on its references; a bare ``stats`` call on an
  unfitted metric fits on that call's references and freezes them (so a reward without an IDF
  corpus uses its first batch, deterministically, and says so in the signature).
* ``idf_corpus=[texts]`` or a path to a text/JSONL file of references (recommended for
  rewards: e.g. the training set's references): fixed, hashed into the signature.
* ``idf=False``: plain BERTScore (RadEval's other variant; a different number, in the signature).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections import Counter, OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from radeval import models
from radeval.errors import ConfigError, DependencyError, InputError
from radeval.metric import MeanMetric

# ----- published constants ------------------------------------------------------------------
#: StandardScaler of RadCliQ-v1 (features in COLS order) and the linear coefficients (in COLS
#: order, then the intercept): CXR-Report-Metric's ``CXRMetric/radcliq-v1.pkl`` (scaler with
#: n_samples_seen_ = 160, ``coefs``), read from the pickle's opcodes with ``pickletools`` (never
#: unpickled), full float64 precision. (impl v1 used RadEval's 8-digit transcription, which
#: moved RadCliQ-v1 by up to 3.6e-8.)
COLS = ("radgraph_combined", "bertscore", "semb_score", "bleu_score")
SCALER_MEAN = (0.5379231241355762, 0.6175725628125001, 0.7647942121140658, 0.44738335396242174)
SCALER_SCALE = (0.3028258411486429, 0.22430938459304575, 0.2539439110169773, 0.2989271671041838)
COEFS = (
    -0.37708368261038905,
    -0.37030009974480316,
    -0.25261621789593225,
    4.315048405024756e-12,
    2.466552561323256e-10,
)

#: RadCliQ-v0 (Yu et al. 2023's first composite; CXR-Report-Metric ``CXRMetric/normalizer.pkl``
#: + ``composite_metric_model.pkl``): a StandardScaler (n_samples_seen_ = 200) and an sklearn
#: LinearRegression on the same four features in COLS order. Read from those pickles'
#: opcodes with ``pickletools`` (never unpickled), full float64 precision.
V0_SCALER_MEAN = (0.5398376019082272, 0.6312549595000001, 0.7716797866672277, 0.4607372064809605)
V0_SCALER_SCALE = (0.3018344440559102, 0.22466950746141123, 0.24750333805236252, 0.30336670936092264)
V0_COEFS = (-0.4796252644863446, -0.6762170542369337, -0.46366575161751994, 0.2165861905287535)
V0_INTERCEPT = 1.641666666666666

_SPACES = re.compile(r" +")

DISTILROBERTA = models.ModelSpec(
    name="distilroberta-base",
    repo_id="distilbert/distilroberta-base",
    aliases=("distilroberta-base",),
    files=("config.json", "vocab.json", "merges.txt", "model.safetensors|pytorch_model.bin"),
    download_patterns=("tokenizer_config.json", "tokenizer.json"),
    size="~330 MB (not measured here)",
    licence="apache-2.0",
    description="DistilRoBERTa for RadCliQ-v1's BERTScore (layer 5, IDF, baseline-rescaled)",
    used_by=("radcliq", "radcliq_v0", "radcliq_features"),
)
if DISTILROBERTA.name not in models.MODELS:  # until radeval.models lists it
    models.register_model(DISTILROBERTA)


# ----- BLEU-2 (fast_bleu) ---------------------------------------------------------------------
def cxr_words(text: str) -> list[str]:
    """CXR-Report-Metric's ``prep_reports``: lower, " ." before periods, split on " "."""
    return [t for t in str(text).lower().replace(".", " .").split(" ") if t != ""]


def bleu2(ref: Sequence[str], hyp: Sequence[str]) -> float:
    """fast_bleu's sentence BLEU-2 (weights 1/2, 1/2) of one hypothesis against one reference."""
    c, r = len(hyp), len(ref)
    if c == 0:
        return 0.0
    logs = 0.0
    for n in (1, 2):
        hyp_ng = Counter(zip(*(hyp[k:] for k in range(n))))
        ref_ng = Counter(zip(*(ref[k:] for k in range(n))))
        total = max(c - n + 1, 0)
        match = sum(min(v, ref_ng.get(g, 0)) for g, v in hyp_ng.items())
        if match == 0:
            if n == 1:
                return 0.0
            p = 0.1 / max(total, 1)
        else:
            p = match / total
        logs += 0.5 * math.log(p)
    bp = 1.0 if c > r else math.exp(1 - r / c)
    return bp * math.exp(logs)


# ----- IDF ------------------------------------------------------------------------------------
def _load_corpus(corpus: str | os.PathLike[str] | Sequence[str]) -> list[str]:
    if isinstance(corpus, (str, os.PathLike)):
        p = Path(corpus)
        if not p.is_file():
            raise ConfigError(f"radcliq idf_corpus {p}: no such file")
        lines = p.read_text(encoding="utf-8").splitlines()
        if p.suffix == ".jsonl":
            out = []
            for i, ln in enumerate(lines, 1):
                if ln.strip():
                    try:
                        rec = json.loads(ln)
                        out.append(rec["reference"] if isinstance(rec, dict) else str(rec))
                    except (ValueError, KeyError) as e:
                        raise InputError(f"{p}:{i}: need a JSON object with 'reference' ({e})") from e
            return out
        return [ln for ln in lines if ln.strip()]
    texts = list(corpus)
    if not all(isinstance(t, str) for t in texts):
        raise ConfigError("radcliq idf_corpus must be texts or a file path")
    return texts


def _emb(feat):
    """Token embeddings from the engine's per-text feature ((emb, weights) or emb)."""
    if feat is None:
        return None
    return feat[0] if isinstance(feat, tuple) else feat


def _corpus_key(corpus: Any) -> str | None:
    """What identifies an IDF corpus option (for sharing the engine that holds its IDF)."""
    if corpus is None:
        return None
    if isinstance(corpus, (str, os.PathLike)):
        return "path:" + os.path.abspath(os.fspath(corpus))
    return "texts:" + hashlib.sha256("\n\x00".join(map(str, corpus)).encode("utf-8", "surrogatepass")).hexdigest()


class _IdfBertScore:
    """BERTScore F1 with IDF weights from a frozen corpus, on radeval's BERTScore engine."""

    def __init__(self, model_path=None, device=None, batch_size: int = 64) -> None:
        from radeval.metrics import bertscore as bs

        class _Engine(bs._BertScoreBase):
            name = "radcliq_bertscore"
            model_name = "distilroberta-base"
            model_label = "distilroberta-base"
            default_layers = 5
            rescale = True
            keys = ("radcliq_bertscore_f1", "radcliq_bertscore_precision", "radcliq_bertscore_recall")

        self.engine = _Engine(device=device, batch_size=batch_size, model_path=model_path)
        self.idf: dict[int, float] | None = None
        self.idf_id = "unfitted"
        # (hyp, ref, idf) -> F1 of pairs scored lately: RadCliQ-v0 and -v1 share this engine
        # and score the same pairs one after the other
        self._memo: OrderedDict[tuple, float] = OrderedDict()
        self.n_forward = 0  # texts run through the model, for tests

    def fit(self, texts: Sequence[str], label: str) -> None:
        """bert-score's get_idf_dict on ``texts`` (spaces collapsed), [CLS]/[SEP]-like ids at 0."""
        self.engine._load()
        texts = [_SPACES.sub(" ", t) for t in texts]
        h = hashlib.sha256("\n\x00".join(texts).encode("utf-8", "surrogatepass")).hexdigest()[:12]
        if self.idf is not None and self.idf_id == f"{label}(n={len(texts)},sha={h})":
            return  # a second metric on this shared engine fitting the same corpus
        df: Counter = Counter()
        for t in texts:
            ids = self._ids(t)
            df.update(set(ids))
        m = len(texts)
        self.default_idf = math.log((m + 1) / 1)
        idf = {i: math.log((m + 1) / (c + 1)) for i, c in df.items()}
        tok = self.engine._tok
        idf[tok.sep_token_id] = 0.0
        idf[tok.cls_token_id] = 0.0
        self.idf = idf
        self.idf_id = f"{label}(n={m},sha={h})"
        self._memo.clear()

    def _ids(self, text: str) -> list[int]:
        from bert_score.utils import sent_encode

        return list(sent_encode(self.engine._tok, text))

    def f1(self, hyps: Sequence[str], refs: Sequence[str], use_idf: bool) -> np.ndarray:
        import torch

        eng = self.engine
        hyps = [_SPACES.sub(" ", h) for h in hyps]
        refs = [_SPACES.sub(" ", r) for r in refs]
        eng._load()
        tag = (use_idf, self.idf_id if use_idf else None)
        memo: dict[tuple[str, str], float] = {}
        for h, r in zip(hyps, refs):
            v = self._memo.get((h, r, tag))
            if v is not None:
                memo[(h, r)] = v
        need = [(h, r) for h, r in zip(hyps, refs) if (h, r) not in memo]
        need_refs = [r for _, r in need]
        self.n_forward += len([r for r in dict.fromkeys(need_refs) if r not in eng._cache])
        ref_emb = eng._ref_embeddings(need_refs)
        hyp_todo = [h for h in dict.fromkeys(h for h, _ in need) if h not in ref_emb]
        self.n_forward += len(hyp_todo)
        hyp_emb = eng._embed(hyp_todo)
        hyp_emb.update({h: ref_emb[h] for h, _ in need if h in ref_emb})
        base = eng._baseline
        out = np.zeros(len(hyps), dtype=np.float64)
        tok = eng._tok

        def weights(text: str, n: int) -> torch.Tensor:
            if not use_idf:
                w = torch.ones(n)
                ids = self._ids(text)
                for k, i in enumerate(ids[:n]):
                    if i in (tok.sep_token_id, tok.cls_token_id):
                        w[k] = 0.0
            else:
                assert self.idf is not None
                ids = self._ids(text)[:n]
                w = torch.tensor([self.idf.get(i, self.default_idf) for i in ids], dtype=torch.float32)
            return w / w.sum()

        with torch.inference_mode():
            for k, (h, r) in enumerate(zip(hyps, refs)):
                key = (h, r)
                if key not in memo:
                    eh, er = _emb(hyp_emb.get(h)), _emb(ref_emb.get(r))
                    if eh is None or er is None:
                        raw = torch.zeros((), dtype=torch.float32)
                    else:
                        sim = eh @ er.T
                        # clamp at 0 as radeval's BERTScore engine does: bert-score's
                        # zero-padded batches never let a best match fall below 0
                        p = (sim.max(dim=1)[0].clamp_min(0) * weights(h, eh.shape[0])).sum()
                        rr = (sim.max(dim=0)[0].clamp_min(0) * weights(r, er.shape[0])).sum()
                        raw = 2 * p * rr / (p + rr)
                        if torch.isnan(raw):
                            raw = torch.zeros((), dtype=torch.float32)
                    f = (raw - base[2]) / (1 - base[2]) if base is not None else raw
                    memo[key] = float(f)
                    self._memo[(h, r, tag)] = memo[key]
                out[k] = memo[key]
        while len(self._memo) > 65_536:
            self._memo.popitem(last=False)
        return out


# ----- the metric -----------------------------------------------------------------------------
class RadCliQ(MeanMetric):
    """RadCliQ-v1, per sample and corpus mean. LOWER IS BETTER (a predicted error count scale).

    Options: ``radgraph_model`` (``radgraph``), ``idf`` (True), ``idf_corpus`` (None = the
    evaluated references; or texts / a file), model paths, ``device``. Components can be
    injected (``radgraph``, ``bertscore``, ``chexbert``) to share loaded models.
    """

    name = "radcliq"
    keys = ("radcliq_v1",)
    directions = {"radcliq_v1": False}
    impl_version = "2"  # 2: full-precision constants from radcliq-v1.pkl

    def __init__(
        self,
        radgraph_model: str = "radgraph",
        *,
        idf: bool = True,
        idf_corpus: str | os.PathLike[str] | Sequence[str] | None = None,
        radgraph_path: str | os.PathLike[str] | None = None,
        bertscore_path: str | os.PathLike[str] | None = None,
        chexbert_path: str | os.PathLike[str] | None = None,
        device: str | None = None,
        radgraph: Any = None,
        bertscore: Any = None,
        chexbert: Any = None,
    ) -> None:
        from radeval.metrics import shared

        self.use_idf = bool(idf)
        # encoders are shared per process (radeval.metrics.shared): RadCliQ-v0/-v1, SembScore,
        # CheXbert F1 and RadGraph F1 then run each text through each model once
        if radgraph is None:
            radgraph = shared.radgraph_extractor(radgraph_model, radgraph_path, device=device)
        self.radgraph = radgraph
        if bertscore is None:
            corpus_key = _corpus_key(idf_corpus) if self.use_idf else None
            key = ("radcliq-bertscore", shared._path(bertscore_path), device, corpus_key)
            bertscore = shared.shared(key, lambda: _IdfBertScore(bertscore_path, device))
        self.bertscore = bertscore
        if chexbert is None:
            try:
                import radeval.metrics.chexbert  # noqa: F401
            except ImportError as e:
                raise DependencyError(f"radcliq needs the CheXbert labeler: {e}") from e
            chexbert = shared.chexbert_labeler(chexbert_path, device=device or "cpu")
        if not callable(getattr(chexbert, "embed", None)):
            raise DependencyError(
                "radcliq needs CheXbertLabeler.embed(texts) -> (n, 768) [CLS] embeddings, "
                "which this radeval's CheXbert labeler does not provide"
            )
        self.chexbert = chexbert
        self._idf_fixed = False
        if self.use_idf and idf_corpus is not None:
            texts = _load_corpus(idf_corpus)
            if not texts:
                raise ConfigError("radcliq idf_corpus is empty")
            self.bertscore.fit(texts, "corpus")
            self._idf_fixed = True

    # ----- identity ---------------------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        rg_model = self.radgraph.settings().get("model", "?") if hasattr(self.radgraph, "settings") else "?"
        eng = getattr(self.bertscore, "engine", None)
        bs_model = eng.settings().get("model", "distilroberta-base") if eng is not None else "distilroberta-base"
        cx = self.chexbert.settings().get("model", "chexbert") if hasattr(self.chexbert, "settings") else "chexbert"
        return {
            "version": "v1",
            "radgraph": rg_model,
            "bertscore": f"{bs_model}-L5-rescaled",
            "chexbert": cx,
            "idf": self.bertscore.idf_id if self.use_idf else "no",
            "semb": "chexbert-cls-cosine",
            "bleu": "fast_bleu-2",
            "coefs": "CXR-Report-Metric-radcliq-v1",
            "lower_is_better": True,
        }

    # ----- IDF --------------------------------------------------------------------------------
    def fit_references(self, refs: Sequence[str]) -> None:
        """Freeze the IDF on the evaluated references (call once with the whole file)."""
        if self.use_idf and not self._idf_fixed:
            self.bertscore.fit(list(refs), "test-refs")
            self._idf_fixed = True

    def score(self, hyps, refs, images=None):
        self.fit_references(refs)
        return super().score(hyps, refs, images)

    # ----- features ---------------------------------------------------------------------------
    def features(self, hyps: Sequence[str], refs: Sequence[str]) -> np.ndarray:
        """(n, 4) array of the four features in :data:`COLS` order."""
        from radeval.metrics.radgraph import entity_relation_f1

        if len(hyps) != len(refs):
            raise InputError(f"{len(hyps)} hypotheses but {len(refs)} references")
        for i, (h, r) in enumerate(zip(hyps, refs)):
            if not isinstance(h, str) or not isinstance(r, str):
                raise InputError(f"radcliq: record {i}: prediction and reference must be strings")
        n = len(hyps)
        x = np.zeros((n, 4), dtype=np.float64)
        if n == 0:
            return x
        self.fit_references(refs)  # no-op once frozen
        ref_anns = self.radgraph(list(refs))
        hyp_anns = self.radgraph(list(hyps))
        x[:, 0] = [0.5 * sum(entity_relation_f1(h, r)) for h, r in zip(hyp_anns, ref_anns)]
        x[:, 1] = self.bertscore.f1(hyps, refs, self.use_idf)
        from radeval.metrics.semb import semb_cosine  # SembScore's own definition, one copy

        x[:, 2] = semb_cosine(self.chexbert.embed(list(refs)), self.chexbert.embed(list(hyps)))
        x[:, 3] = [bleu2(cxr_words(r), cxr_words(h)) for h, r in zip(hyps, refs)]
        return x

    @staticmethod
    def combine(x: np.ndarray) -> np.ndarray:
        """RadCliQ-v1 from (n, 4) features: scaler, then the linear model."""
        z = (np.asarray(x, dtype=np.float64) - np.array(SCALER_MEAN)) / np.array(SCALER_SCALE)
        z = np.concatenate([z, np.ones((z.shape[0], 1))], axis=1)
        return z @ np.array(COEFS)

    def values(self, hyps, refs, images=None) -> dict[str, np.ndarray]:
        return {"radcliq_v1": self.combine(self.features(hyps, refs))}


class RadCliQV0(RadCliQ):
    """RadCliQ-v0 (CXR-Report-Metric's first composite), per sample and corpus mean. LOWER IS BETTER.

    Same four features as RadCliQ-v1 (shared: with ``radcliq`` also selected nothing is
    computed twice), then ``LinearRegression.predict(StandardScaler.transform(x))`` with the
    v0 constants. Default ``idf=False``: CXR-Report-Metric's ``config.USE_IDF`` default, and
    ReXrank's setting.
    """

    name = "radcliq_v0"
    keys = ("radcliq_v0",)
    directions = {"radcliq_v0": False}
    impl_version = "1"

    def __init__(self, radgraph_model: str = "radgraph", *, idf: bool = False, **kw: Any) -> None:
        super().__init__(radgraph_model, idf=idf, **kw)

    def settings(self) -> dict[str, Any]:
        out = super().settings()
        out.update(version="v0", coefs="CXR-Report-Metric-radcliq-v0(normalizer+composite_metric_model)")
        return out

    @staticmethod
    def combine(x: np.ndarray) -> np.ndarray:
        """RadCliQ-v0 from (n, 4) features: StandardScaler, then sklearn's ``X @ coef_ + intercept_``."""
        z = (np.asarray(x, dtype=np.float64) - np.array(V0_SCALER_MEAN)) / np.array(V0_SCALER_SCALE)
        return z @ np.array(V0_COEFS) + V0_INTERCEPT

    def values(self, hyps, refs, images=None) -> dict[str, np.ndarray]:
        return {"radcliq_v0": self.combine(self.features(hyps, refs))}


class RadCliQFeatures(RadCliQ):
    """CXR-Report-Metric's individual columns, as ReXrank reports them beside RadCliQ.

    Keys (higher is better): ``radgraph_combined`` ((entity F1 + relation F1) / 2, RadGraph
    ``radgraph``), ``bertscore_cxr`` (BERTScore F1, distilroberta-base layer 5, baseline-
    rescaled; ``idf=False`` by default, CXR-Report-Metric's and ReXrank's setting) and
    ``bleu2_cxr`` (fast_bleu BLEU-2 on CXR-Report-Metric's tokens). The same features RadCliQ
    combines, shared with it (SembScore is its own metric, ``semb``).
    """

    name = "radcliq_features"
    keys = ("radgraph_combined", "bertscore_cxr", "bleu2_cxr")
    directions = {k: True for k in keys}
    impl_version = "1"

    def __init__(self, radgraph_model: str = "radgraph", *, idf: bool = False, **kw: Any) -> None:
        # SembScore is its own metric (semb): these columns need no CheXbert at all
        if kw.get("chexbert_path") is not None or kw.get("chexbert") is not None:
            raise ConfigError("radcliq_features reads no CheXbert model (SembScore is metric 'semb')")
        kw.pop("chexbert_path", None)
        kw["chexbert"] = _NoEmbedding()
        super().__init__(radgraph_model, idf=idf, **kw)

    def settings(self) -> dict[str, Any]:
        out = super().settings()
        for k in ("version", "coefs", "lower_is_better", "semb", "chexbert"):
            out.pop(k, None)
        out["columns"] = "CXR-Report-Metric"
        return out

    def values(self, hyps, refs, images=None) -> dict[str, np.ndarray]:
        x = self.features(hyps, refs)
        return {"radgraph_combined": x[:, 0], "bertscore_cxr": x[:, 1], "bleu2_cxr": x[:, 3]}


class _NoEmbedding:
    """Stand-in embedder for RadCliQFeatures (whose columns do not include SembScore)."""

    def embed(self, texts):
        return np.zeros((len(texts), 1), dtype=np.float32)


__all__ = [
    "COEFS",
    "COLS",
    "RadCliQ",
    "RadCliQFeatures",
    "RadCliQV0",
    "SCALER_MEAN",
    "SCALER_SCALE",
    "V0_COEFS",
    "V0_INTERCEPT",
    "V0_SCALER_MEAN",
    "V0_SCALER_SCALE",
    "bleu2",
    "cxr_words",
]
