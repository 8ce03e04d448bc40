"""Image-report grounding: cosine similarity S_i between a frozen CLIP-style expert's embedding of
the image and of the generated report.

VALOR's visual reward (Eq. 6-8) ranks completions by how well the report matches the image in
the embedding space of a frozen image-text expert. The paper does not name its expert; ours is
BiomedCLIP (``microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224``: timm ViT-B/16 image
tower, PubMedBERT text tower with an MLP projection, 256-token context), run through
open-clip-torch exactly as its model card does: ``preprocess(PIL.Image.open(path))`` ->
``encode_image``, ``tokenizer(texts)`` -> ``encode_text``, both L2-normalised, S = dot product.
The reference text is not used: S_i compares the *prediction* with the image.

Any other open_clip model can be the expert:

* ``model="biomedclip"`` (default) or any ``radeval.models`` name / ``hf-hub:ID`` of a registered
  spec: resolved by the model manager (explicit path -> ``$RADEVAL_MODELS_DIR`` -> HF cache);
* ``model="/some/dir"`` or ``"local-dir:/some/dir"``: a directory in the hub layout
  (``open_clip_config.json`` with ``model_cfg`` + ``preprocess_cfg``, and the weights);
* ``model="hf-hub:ORG/NAME"`` of an unregistered repo: read from the HF cache only;
* ``model=<open_clip architecture name>`` with ``pretrained=<local weights file>``.

Nothing is ever fetched. An HF text tower names its transformers config/tokenizer by hub id
(BiomedCLIP: ``microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract``); that id is resolved to a
local directory the same way (a directory path in the config is used as is, relative paths are
taken relative to the model directory), and open_clip is handed the local path. Weights load with
safetensors when present, else ``torch.load(weights_only=True)``.

Speed: image features are cached by the sha256 of the image file's bytes (so one X-ray at two
paths is embedded once), text features by the sha256 of the text; both caches are LRU-bounded and
shared by every metric instance using the same expert in the process (a GRPO group's G
completions share one image). Misses are embedded in batches under ``torch.inference_mode``.
An embedding can move in its last float32 bits with its batch neighbours (~1e-7), never more.

Bad images: as an evaluator metric (``on_bad_image="error"``, the default) every image of the
batch that cannot be read or decoded is collected and one :class:`~radeval.errors.InputError`
lists them (record position, path, reason); :meth:`Grounding.check_images` does the same up front
with record ids. As a reward (``on_bad_image="nan"``) such a record gets NaN, which the reward
layer maps to its ``on_error`` value. Either way nothing crashes.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _dist_version
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from radeval import models
from radeval.errors import ConfigError, InputError, ModelNotFound
from radeval.metric import MeanMetric

try:
    import open_clip
    import torch
    import torch.nn.functional as F
    from open_clip.tokenizer import HFTokenizer
    from open_clip.transform import PreprocessCfg, image_transform_v2
    from PIL import Image, UnidentifiedImageError
except ImportError as e:  # the registry turns this into "install the [grounding] extra"
    raise ImportError(f"grounding needs torch, torchvision, open-clip-torch, timm and pillow: {e}") from e

DEFAULT_MODEL = "biomedclip"
KEY = "grounding_similarity"
MAX_ERRORS_SHOWN = 20
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_LOCAL_PREFIX = "local-dir:"
_HUB_PREFIX = "hf-hub:"
# open_clip's own preference, safetensors first (no pickle)
_CHECKPOINT_NAMES = (
    "open_clip_model.safetensors",
    "open_clip_pytorch_model.safetensors",
    "model.safetensors",
    "open_clip_pytorch_model.bin",
    "open_clip_pytorch_model.pth",
    "pytorch_model.bin",
    "pytorch_model.pth",
    "model.pth",
)
_TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "sentencepiece.bpe.model", "spiece.model", "vocab.json")


def _version(dist: str) -> str:
    try:
        return _dist_version(dist)
    except PackageNotFoundError:  # pragma: no cover - editable/odd installs
        return "unknown"


OPEN_CLIP_VERSION = getattr(open_clip, "__version__", None) or _version("open_clip_torch")
# torch.load defaults to weights_only=True from torch 2.6 on
_TORCH_LOAD_SAFE_BY_DEFAULT = tuple(int(x) for x in re.findall(r"\d+", torch.__version__)[:2]) >= (2, 6)


# ----- locating the expert ---------------------------------------------------------------------


@dataclass(frozen=True)
class ExpertFiles:
    """Everything needed to build one expert, all local."""

    label: str  # what the signature calls the model (registry name@commit, hub id, dir name, arch)
    checkpoint: Path  # the weights file
    model_dir: Path | None = None  # directory with open_clip_config.json (None: built-in arch)
    arch: str | None = None  # open_clip built-in architecture name (when model_dir is None)
    text_dir: Path | None = None  # local transformers config of an HF text tower
    tokenizer_dir: Path | None = None  # local tokenizer files of an HF text tower
    config: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


def _spec_for_repo(repo_id: str) -> models.ModelSpec | None:
    for spec in models.MODELS.values():
        if spec.repo_id == repo_id or repo_id in spec.aliases:
            return spec
    return None


def _from_hub_id(repo_id: str, files: tuple[str, ...], what: str) -> Path:
    """Local directory of a hub repo: its registered spec through the model manager, else the
    HF cache (``main``). Raises ModelNotFound naming what was searched; never downloads."""
    spec = _spec_for_repo(repo_id)
    if spec is not None:
        return models.resolve(spec.name)
    adhoc = models.ModelSpec(name=repo_id, repo_id=repo_id, files=files)
    cache = models.hf_cache_dir()
    snap, notes = models._hf_snapshot(adhoc, cache)
    if snap is not None:
        return snap
    lines = [
        f"{what} {repo_id!r} (files {', '.join(files)}) was not found. Searched:",
        f"  - Hugging Face cache {cache} (revision main): " + "; ".join(notes),
        f"It is not a radeval-registered model (radeval models list). Fix: download it "
        f"(HF_HUB_OFFLINE=0 huggingface-cli download {repo_id}) or put its files in a directory "
        "and give that path.",
    ]
    raise ModelNotFound("\n".join(lines))


def _pick_checkpoint(directory: Path) -> Path:
    for name in _CHECKPOINT_NAMES:
        if (directory / name).is_file():
            return directory / name
    for pattern in ("*.safetensors", "*.bin", "*.pth", "*.pt"):
        found = sorted(p for p in directory.glob(pattern) if p.is_file())
        if len(found) == 1:
            return found[0]
        if found:
            raise ConfigError(f"{directory}: several weight files ({', '.join(p.name for p in found)}); pass one")
    raise ModelNotFound(f"{directory}: no open_clip weights ({', '.join(_CHECKPOINT_NAMES[:4])}, ...)")


def _read_config(directory: Path) -> dict[str, Any]:
    f = directory / "open_clip_config.json"
    try:
        cfg = json.loads(f.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelNotFound(f"{directory}: no open_clip_config.json (not an open_clip model directory)") from None
    except (OSError, ValueError) as e:
        raise ConfigError(f"{f}: cannot read ({e})") from e
    if not isinstance(cfg, dict) or not isinstance(cfg.get("model_cfg"), dict):
        raise ConfigError(f"{f}: no 'model_cfg' object (open_clip's hub config layout)")
    return cfg


def _local_dir(name: str, base: Path | None) -> Path | None:
    """``name`` as an existing directory: absolute, or relative to the model directory."""
    p = Path(name).expanduser()
    if p.is_absolute():
        return p if p.is_dir() else None
    if base is not None and (base / p).is_dir():
        return base / p
    return None


def _text_dirs(text_cfg: dict[str, Any], model_dir: Path | None) -> tuple[Path | None, Path | None]:
    """(transformers config dir, tokenizer dir) of an HF text tower, both local."""
    name = text_cfg.get("hf_model_name")
    if not name:
        return None, None
    text_dir = _local_dir(name, model_dir) or _from_hub_id(name, ("config.json",), "text tower")
    tok_name = text_cfg.get("hf_tokenizer_name") or name
    tok_dir = None
    if model_dir is not None and any((model_dir / f).is_file() for f in _TOKENIZER_FILES):
        tok_dir = model_dir  # open_clip's local-dir convention: tokenizer files beside the weights
    if tok_dir is None:
        tok_dir = _local_dir(tok_name, model_dir)
    if tok_dir is None:
        if any((text_dir / f).is_file() for f in _TOKENIZER_FILES) and tok_name == name:
            tok_dir = text_dir
        else:
            tok_dir = _from_hub_id(tok_name, ("vocab.txt|tokenizer.json",), "tokenizer")
    return text_dir, tok_dir


def locate_expert(
    model: str = DEFAULT_MODEL,
    path: str | os.PathLike[str] | None = None,
    pretrained: str | os.PathLike[str] | None = None,
) -> ExpertFiles:
    """Resolve ``model`` (see the module docstring) to local files; cheap (no weights read)."""
    model = str(model)
    label: str
    if model in models.MODELS or (model.startswith(_HUB_PREFIX) and _spec_for_repo(model[len(_HUB_PREFIX) :])):
        name = model if model in models.MODELS else _spec_for_repo(model[len(_HUB_PREFIX) :]).name  # type: ignore[union-attr]
        model_dir = models.resolve(name, path)
        if model_dir.is_file():
            raise ConfigError(f"grounding: {name} needs a model directory, got the file {model_dir}")
        commit = models._commit_of(model_dir)
        if commit is None and path is None:
            commit = (models.read_record(name) or {}).get("commit")
        label = f"{name}@{str(commit)[:12]}" if commit else f"{name}@local"
    elif path is not None:
        raise ConfigError(f"grounding: path= is for registered model names; give the directory as model= ({path})")
    elif model.startswith(_LOCAL_PREFIX) or Path(model).expanduser().is_dir():
        model_dir = Path(model[len(_LOCAL_PREFIX) :] if model.startswith(_LOCAL_PREFIX) else model).expanduser()
        if not model_dir.is_dir():
            raise ModelNotFound(f"grounding: model directory {model_dir} does not exist")
        label = f"local:{model_dir.resolve().name}"
    elif model.startswith(_HUB_PREFIX):
        repo_id = model[len(_HUB_PREFIX) :]
        model_dir = _from_hub_id(repo_id, ("open_clip_config.json",), "open_clip model")
        label = f"{repo_id}@{(models._commit_of(model_dir) or 'local')[:12]}"
    elif model in open_clip.list_models():
        if pretrained is None:
            raise ConfigError(
                f"grounding: open_clip architecture {model!r} needs pretrained=<local weights file>; "
                "radeval never downloads open_clip's pretrained tags"
            )
        ckpt = Path(pretrained).expanduser()
        if not ckpt.is_file():
            raise ModelNotFound(f"grounding: weights file {ckpt} does not exist")
        cfg = {"model_cfg": open_clip.get_model_config(model)}
        text_dir, tok_dir = _text_dirs(cfg["model_cfg"].get("text_cfg", {}), None)
        return ExpertFiles(f"open_clip:{model}", ckpt, None, model, text_dir, tok_dir, cfg)
    else:
        known = ", ".join(sorted(n for n, s in models.MODELS.items() if "grounding" in s.used_by))
        raise ConfigError(
            f"grounding: unknown model {model!r}: give a registered name ({known}), hf-hub:ORG/NAME, "
            "a model directory, or an open_clip architecture name with pretrained=<weights file>"
        )
    cfg = _read_config(model_dir)
    ckpt = Path(pretrained).expanduser() if pretrained is not None else _pick_checkpoint(model_dir)
    text_dir, tok_dir = _text_dirs(cfg["model_cfg"].get("text_cfg", {}), model_dir)
    return ExpertFiles(label, ckpt, model_dir, None, text_dir, tok_dir, cfg)


# ----- hashing ---------------------------------------------------------------------------------

_FILE_SHA: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """sha256 of a weights file, memoised by (path, size, mtime); an HF-cache blob is named by it."""
    real = Path(os.path.realpath(path))
    if _HEX64.match(real.name):
        return real.name
    st = real.stat()
    key = (str(real), st.st_size, st.st_mtime_ns)
    if key not in _FILE_SHA:
        _FILE_SHA[key] = models.sha256_file(real)
    return _FILE_SHA[key]


def _canonical_sha(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _short_floats(values: Sequence[float]) -> str:
    return ",".join(format(float(v), ".8g") for v in values)


# ----- images ------------------------------------------------------------------------------------


class BadImage(Exception):
    """An image that cannot be read or decoded; the message says why."""


def _pil_from_bytes(data: bytes) -> Image.Image:
    try:
        img = Image.open(io.BytesIO(data))
        img.load()  # decode now: a truncated file must fail here, not inside the batch
    except UnidentifiedImageError:
        raise BadImage("not an image PIL can identify (corrupt or unsupported format)") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise BadImage(f"cannot decode ({type(e).__name__}: {e})") from None
    return img


def image_key_and_loader(item: Any, root: Path | None = None) -> tuple[str, Any]:
    """(content key, zero-argument loader returning a PIL image) for one image input.

    Accepted: a path (str / PathLike; relative to ``root`` when given), raw file bytes, an HF
    datasets ``{"bytes": ..., "path": ...}`` dict, a PIL image, or an HxW[xC] uint8 array. The key
    is the sha256 of the file bytes (``file:``) or of mode, size and pixels (``pixels:``).
    Raises BadImage when the input cannot be read.
    """
    if item is None:
        raise BadImage("no image given")
    if isinstance(item, dict):
        if item.get("bytes"):
            item = bytes(item["bytes"])
        elif item.get("path"):
            item = item["path"]
        else:
            raise BadImage("image dict has neither 'bytes' nor 'path'")
    if isinstance(item, (str, os.PathLike)):
        p = Path(item).expanduser()
        if root is not None and not p.is_absolute():
            p = root / p
        try:
            data = p.read_bytes()
        except FileNotFoundError:
            raise BadImage("file not found") from None
        except IsADirectoryError:
            raise BadImage("is a directory") from None
        except OSError as e:
            raise BadImage(f"cannot read ({e.strerror or e})") from None
        item = data
    if isinstance(item, (bytes, bytearray, memoryview)):
        data = bytes(item)
        if not data:
            raise BadImage("empty file")
        return "file:" + hashlib.sha256(data).hexdigest(), lambda: _pil_from_bytes(data)
    if isinstance(item, np.ndarray):
        if item.dtype != np.uint8 or item.ndim not in (2, 3):
            raise BadImage(f"arrays must be HxW or HxWxC uint8, got {item.dtype} {item.shape}")
        try:
            item = Image.fromarray(item)
        except (TypeError, ValueError) as e:
            raise BadImage(f"cannot make an image of the array ({e})") from None
    if isinstance(item, Image.Image):
        img = item
        try:
            h = hashlib.sha256(f"{img.mode}|{img.size[0]}x{img.size[1]}|".encode())
            h.update(img.tobytes())
        except (OSError, ValueError) as e:
            raise BadImage(f"cannot read the image's pixels ({e})") from None
        return "pixels:" + h.hexdigest(), lambda: img
    raise BadImage(f"unsupported image input of type {type(item).__name__}")


def _describe(item: Any) -> str:
    if isinstance(item, (str, os.PathLike)):
        return repr(str(item))
    if isinstance(item, dict) and item.get("path"):
        return repr(str(item["path"]))
    return f"<{type(item).__name__}>"


# ----- the loaded expert ---------------------------------------------------------------------------


class _QuietRoot(logging.Filter):
    """open_clip logs "initialized randomly" before we load the checkpoint ourselves; hide that."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.pathname).replace("\\", "/").endswith("open_clip/factory.py")


class _LRU:
    def __init__(self, size: int) -> None:
        self.size = int(size)
        self.data: OrderedDict[str, np.ndarray] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> np.ndarray | None:
        v = self.data.get(key)
        if v is None:
            self.misses += 1
        else:
            self.hits += 1
            self.data.move_to_end(key)
        return v

    def put(self, key: str, value: np.ndarray) -> None:
        if self.size <= 0:
            return
        self.data[key] = value
        self.data.move_to_end(key)
        while len(self.data) > self.size:
            self.data.popitem(last=False)


class ClipExpert:
    """A frozen open_clip model with content-hash feature caches. One per (weights, device) and
    process (:func:`get_expert`), shared by every metric and reward that uses it."""

    def __init__(
        self,
        files: ExpertFiles,
        device: str = "cpu",
        batch_size: int = 32,
        image_cache: int = 4096,
        text_cache: int = 16384,
    ) -> None:
        self.files = files
        self.device = torch.device(device)
        self.batch_size = int(batch_size)
        self.lock = threading.RLock()
        self.images = _LRU(image_cache)
        self.texts = _LRU(text_cache)
        self.workers = max(1, min(4, os.cpu_count() or 1))
        self.model, self.preprocess, self.tokenizer, self.pp_cfg, self.context_length = self._build()
        # HF text towers mask padding (open_clip's HFTextEncoder: attention_mask = ids != pad):
        # batches can be cut to their longest text without changing any embedding
        cfg = getattr(getattr(self.model, "text", None), "config", None)
        self.pad_id = getattr(cfg, "pad_token_id", None) if files.text_dir is not None else None
        self.weights_sha256 = file_sha256(files.checkpoint)

    def _build(self):
        f = self.files
        model_cfg = f.config.get("model_cfg", {})
        text_cfg = dict(model_cfg.get("text_cfg", {}))
        kwargs: dict[str, Any] = {}
        if f.text_dir is not None:
            # hand open_clip local paths; the checkpoint below holds the text weights
            text_cfg.update(
                hf_model_name=str(f.text_dir), hf_tokenizer_name=str(f.tokenizer_dir), hf_model_pretrained=False
            )
            kwargs["text_cfg"] = text_cfg
        name = f"{_LOCAL_PREFIX}{f.model_dir}" if f.model_dir is not None else str(f.arch)
        root = logging.getLogger()
        quiet = _QuietRoot()
        root.addFilter(quiet)
        try:
            model = open_clip.create_model(
                name, load_weights=False, pretrained_image=False, pretrained_text=False, device="cpu", **kwargs
            )
            if not _TORCH_LOAD_SAFE_BY_DEFAULT and f.checkpoint.suffix != ".safetensors":
                # open_clip retries a failed weights_only load with a plain torch.load, which
                # unpickles anything before torch 2.6: refuse such files before it gets there
                torch.load(f.checkpoint, map_location="cpu", weights_only=True)
            # safetensors when the file is one; torch.load(weights_only=True) otherwise
            open_clip.load_checkpoint(model, str(f.checkpoint), strict=True, weights_only=True)
        except (ModelNotFound, ConfigError):
            raise
        except Exception as e:
            raise ConfigError(
                f"grounding: cannot build {f.label} from {f.model_dir or f.arch} "
                f"with weights {f.checkpoint}: {type(e).__name__}: {e}"
            ) from e
        finally:
            root.removeFilter(quiet)
        # create_model merged the config's preprocess_cfg into model.visual.preprocess_cfg
        model.eval().requires_grad_(False).to(self.device)
        pp_cfg = PreprocessCfg(**model.visual.preprocess_cfg)
        preprocess = image_transform_v2(pp_cfg, is_train=False)
        ctx = int(text_cfg.get("context_length", 77))
        if f.tokenizer_dir is not None:
            tokenizer = HFTokenizer(
                str(f.tokenizer_dir),
                context_length=ctx,
                tokenizer_mode=text_cfg.get("tokenizer_mode"),
                **dict(text_cfg.get("tokenizer_kwargs", {})),
            )
        else:
            tokenizer = open_clip.get_tokenizer(name, context_length=ctx)
        return model, preprocess, tokenizer, pp_cfg, ctx

    # ----- identity -------------------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        """Everything that changes S: weights, architecture + vocab, preprocessing, context, versions."""
        f = self.files
        model_cfg = f.config.get("model_cfg", {})
        arch: dict[str, Any] = {"model_cfg": model_cfg}
        if f.text_dir is not None:
            try:
                arch["text_config"] = json.loads((f.text_dir / "config.json").read_text(encoding="utf-8"))
            except (OSError, ValueError):
                arch["text_config"] = None
            vocab = next((f.tokenizer_dir / n for n in _TOKENIZER_FILES if (f.tokenizer_dir / n).is_file()), None)
            arch["vocab"] = file_sha256(vocab) if vocab is not None else None
        pp = self.pp_cfg
        size = pp.size if isinstance(pp.size, (tuple, list)) else (pp.size, pp.size)
        return {
            "model": f.label,
            "weights": self.weights_sha256[:12],
            "arch": _canonical_sha(arch)[:12],
            "resize": f"{pp.resize_mode}-{size[0]}x{size[1]}-{pp.interpolation}",
            "crop": "center" if pp.resize_mode == "shortest" else "none",
            "mean": _short_floats(pp.mean),
            "std": _short_floats(pp.std),
            "ctx": self.context_length,
            "sim": "cos-l2",
            "precision": "fp32",
            "open_clip": OPEN_CLIP_VERSION,
            "timm": _version("timm"),
            "transformers": _version("transformers") if f.text_dir is not None else "n/a",
        }

    # ----- features -------------------------------------------------------------------------
    def text_features(self, texts: Sequence[str]) -> np.ndarray:
        """(n, d) float32 unit vectors, cached by the sha256 of each text.

        Uncached texts are tokenised once (padded to the context length, as open_clip does),
        sorted by token count and embedded in batches cut to their longest text: an HF text
        tower masks padding out, so the trailing all-padding columns change nothing but time.
        """
        keys = [hashlib.sha256(t.encode("utf-8", "surrogatepass")).hexdigest() for t in texts]
        with self.lock:
            out: dict[str, np.ndarray] = {}
            todo: dict[str, str] = {}
            for k, t in zip(keys, texts):
                if k in out or k in todo:
                    continue
                v = self.texts.get(k)
                if v is None:
                    todo[k] = t
                else:
                    out[k] = v
            if todo:
                todo_keys = list(todo)
                tokens = self.tokenizer([todo[k] for k in todo_keys])
                if self.pad_id is not None:
                    lengths = (tokens != self.pad_id).sum(1)
                    order = sorted(range(len(todo_keys)), key=lambda j: int(lengths[j]))
                else:
                    lengths, order = None, list(range(len(todo_keys)))
                for s in range(0, len(order), self.batch_size):
                    idx = order[s : s + self.batch_size]
                    batch = tokens[idx]
                    if lengths is not None:
                        nonpad = (batch != self.pad_id).any(0).nonzero()
                        batch = batch[:, : int(nonpad.max()) + 1 if len(nonpad) else 1]
                    with torch.inference_mode():
                        feats = self.model.encode_text(batch.to(self.device)).float()
                        feats = F.normalize(feats, dim=-1).cpu().numpy()
                    for j, v in zip(idx, feats):
                        out[todo_keys[j]] = v
                        self.texts.put(todo_keys[j], v)
            return np.stack([out[k] for k in keys]) if keys else np.zeros((0, 0), np.float32)

    def _prepare(self, load: Any) -> Any:
        """Decode + preprocess one image; a BadImage (with the reason) instead of raising."""
        try:
            return self.preprocess(load())
        except BadImage as e:
            return e
        except Exception as e:  # e.g. a mode the transform cannot resize
            return BadImage(f"cannot preprocess ({type(e).__name__}: {e})")

    def image_features(self, images: Sequence[Any], root: Path | None = None) -> tuple[np.ndarray, dict[int, str]]:
        """(n, d) float32 unit vectors (NaN rows for bad images) and {index: why} of the bad ones.

        Decoding and preprocessing run in a small thread pool (PIL and torchvision release the
        GIL); each image's pixels do not depend on the pool, so neither do the values.
        """
        bad: dict[int, str] = {}
        keys: list[str | None] = []
        loaders: dict[str, Any] = {}
        for i, item in enumerate(images):
            try:
                k, load = image_key_and_loader(item, root)
            except BadImage as e:
                bad[i] = str(e)
                keys.append(None)
                continue
            keys.append(k)
            loaders.setdefault(k, load)
        with self.lock:
            feats: dict[str, np.ndarray] = {}
            todo: list[str] = []
            for k in dict.fromkeys(k for k in keys if k is not None):
                v = self.images.get(k)
                if v is None:
                    todo.append(k)
                else:
                    feats[k] = v
            failed: dict[str, str] = {}
            for s in range(0, len(todo), self.batch_size):
                chunk = todo[s : s + self.batch_size]
                if self.workers > 1 and len(chunk) > 1:
                    with ThreadPoolExecutor(min(self.workers, len(chunk))) as pool:
                        prepared = list(pool.map(self._prepare, [loaders[k] for k in chunk]))
                else:
                    prepared = [self._prepare(loaders[k]) for k in chunk]
                batch_keys, tensors = [], []
                for k, x in zip(chunk, prepared):
                    if isinstance(x, BadImage):
                        failed[k] = str(x)
                    else:
                        batch_keys.append(k)
                        tensors.append(x)
                if not tensors:
                    continue
                with torch.inference_mode():
                    out = self.model.encode_image(torch.stack(tensors).to(self.device)).float()
                    out = F.normalize(out, dim=-1).cpu().numpy()
                for k, v in zip(batch_keys, out):
                    feats[k] = v
                    self.images.put(k, v)
        dim = next(iter(feats.values())).shape[0] if feats else 0
        rows = []
        for i, k in enumerate(keys):
            if k is not None and k in failed:
                bad[i] = failed[k]
            rows.append(feats[k] if (k is not None and k in feats) else np.full(dim, np.nan, np.float32))
        return (np.stack(rows) if rows else np.zeros((0, dim), np.float32)), bad

    def cache_info(self) -> dict[str, int]:
        return {
            "image_hits": self.images.hits,
            "image_misses": self.images.misses,
            "image_entries": len(self.images.data),
            "text_hits": self.texts.hits,
            "text_misses": self.texts.misses,
            "text_entries": len(self.texts.data),
        }


_EXPERTS: dict[tuple, ClipExpert] = {}
_EXPERTS_LOCK = threading.Lock()


def get_expert(
    files: ExpertFiles, device: str = "cpu", batch_size: int = 32, image_cache: int = 4096, text_cache: int = 16384
) -> ClipExpert:
    """The process-wide expert for these files and device (built on first use)."""
    key = (
        str(files.checkpoint),
        str(files.model_dir),
        files.arch,
        str(files.text_dir),
        str(files.tokenizer_dir),
        str(torch.device(device)),
    )
    with _EXPERTS_LOCK:
        exp = _EXPERTS.get(key)
        if exp is None:
            exp = ClipExpert(files, device, batch_size, image_cache, text_cache)
            _EXPERTS[key] = exp
        else:  # a later user may ask for bigger caches / batches
            exp.batch_size = max(exp.batch_size, int(batch_size))
            exp.images.size = max(exp.images.size, int(image_cache))
            exp.texts.size = max(exp.texts.size, int(text_cache))
        return exp


def clear_experts() -> None:
    """Drop every loaded expert and its caches (tests, memory)."""
    with _EXPERTS_LOCK:
        _EXPERTS.clear()


# ----- the metric ------------------------------------------------------------------------------------


class Grounding(MeanMetric):
    """Per-record cosine similarity between the image and the predicted report (corpus: mean).

    Options: ``model`` (default ``biomedclip``; see the module docstring), ``model_path``
    (explicit directory for a registered model), ``pretrained`` (weights file for an open_clip
    architecture name), ``device``, ``batch_size``, ``image_cache`` / ``text_cache`` (LRU entries),
    ``image_root`` (base for relative image paths; default the working directory) and
    ``on_bad_image`` ("error": one InputError listing every bad image; "nan": NaN for that
    record, the reward setting). Only the model, weights and preprocessing enter the signature;
    the other options do not change any value.
    """

    name: ClassVar[str] = "grounding"
    keys = (KEY,)
    directions = {KEY: True}
    needs_images: ClassVar[bool] = True

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        model_path: str | os.PathLike[str] | None = None,
        pretrained: str | os.PathLike[str] | None = None,
        device: str | None = None,
        batch_size: int = 32,
        image_cache: int = 4096,
        text_cache: int = 16384,
        image_root: str | os.PathLike[str] | None = None,
        on_bad_image: str = "error",
    ) -> None:
        if int(batch_size) < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size!r}")
        if on_bad_image not in ("error", "nan"):
            raise ConfigError(f"on_bad_image must be 'error' or 'nan', got {on_bad_image!r}")
        if int(image_cache) < 0 or int(text_cache) < 0:
            raise ConfigError("image_cache and text_cache must be >= 0")
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.batch_size = int(batch_size)
        self.image_cache = int(image_cache)
        self.text_cache = int(text_cache)
        self.image_root = Path(image_root).expanduser() if image_root is not None else None
        self.on_bad_image = on_bad_image
        # resolve now (cheap file checks): a missing model fails here with the manager's message
        self.files = locate_expert(model, model_path, pretrained)
        self._expert: ClipExpert | None = None

    @property
    def expert(self) -> ClipExpert:
        if self._expert is None:
            self._expert = get_expert(self.files, self.device, self.batch_size, self.image_cache, self.text_cache)
        return self._expert

    def settings(self) -> dict[str, Any]:
        return self.expert.settings()

    def cache_info(self) -> dict[str, int]:
        return self.expert.cache_info()

    # ----- input checks ------------------------------------------------------------------------
    def _error(self, problems: list[tuple[str, Any, str]], where: str) -> InputError:
        lines = [f"grounding: {len(problems)} image(s) {where} cannot be used:"]
        for label, item, why in problems[:MAX_ERRORS_SHOWN]:
            lines.append(f"  - {label}: image {_describe(item)}: {why}")
        if len(problems) > MAX_ERRORS_SHOWN:
            lines.append(f"  ... and {len(problems) - MAX_ERRORS_SHOWN} more")
        root = self.image_root or Path.cwd()
        lines.append(
            f"Relative paths are read from {root} (option image_root). Fix the paths or files, or drop those records."
        )
        return InputError("\n".join(lines))

    def check_images(self, images: Sequence[Any] | None, ids: Sequence[str] | None = None) -> None:
        """Raise one InputError naming every record whose image is missing or unreadable.

        Reads and decodes each distinct image, no model: for the evaluator to call before
        scoring, with the record ids. An image that decodes but cannot be preprocessed surfaces
        during scoring, also as InputError (with the record's position in the batch).
        """
        images = list(images) if images is not None else []
        ids = [str(i) for i in ids] if ids is not None else [f"#{i}" for i in range(len(images))]
        problems = []
        seen: dict[str, str | None] = {}  # content key -> why it is bad (None: fine)
        for rid, item in zip(ids, images):
            try:
                key, load = image_key_and_loader(item, self.image_root)
                if key not in seen:
                    seen[key] = None
                    try:
                        img = load()
                    except BadImage as e:
                        seen[key] = str(e)
                    else:
                        if key.startswith("file:"):
                            img.close()
                if seen[key] is not None:
                    raise BadImage(seen[key])
            except BadImage as e:
                problems.append((f"record {rid}", item, str(e)))
        if problems:
            raise self._error(problems, "of the records")

    # ----- scoring ---------------------------------------------------------------------------
    def values(self, hyps, refs, images=None) -> dict[str, np.ndarray]:
        n = len(hyps)
        if images is None:
            if self.on_bad_image == "nan":
                return {KEY: np.full(n, np.nan)}
            raise InputError("grounding needs an image per record (field 'image'); none were given")
        images = list(images)
        if len(images) != n:
            raise InputError(f"grounding: {len(images)} images for {n} records")
        for i, h in enumerate(hyps):
            if not isinstance(h, str):
                raise InputError(f"grounding: record {i}: prediction must be a string, got {type(h).__name__}")
        expert = self.expert
        img, bad = expert.image_features(images, self.image_root)
        if bad and self.on_bad_image == "error":
            problems = [(f"record #{i} of this batch", images[i], why) for i, why in sorted(bad.items())]
            raise self._error(problems, "in this batch")
        good = [i for i in range(n) if i not in bad]
        out = np.full(n, np.nan)
        if good:
            txt = expert.text_features([hyps[i] for i in good])
            sims = np.einsum("ij,ij->i", img[good].astype(np.float64), txt.astype(np.float64))
            out[good] = sims
        return {KEY: out}

    def similarity(self, texts: Sequence[str], images: Sequence[Any]) -> np.ndarray:
        """S_i for parallel texts and images (NaN where an image is bad), for trainers."""
        return self.values(list(texts), list(texts), list(images))[KEY]
