"""Training data: R2Gen ``annotation.json``, JSONL records, HF datasets → chat-formatted datasets.

Every loader yields plain records ``{"id", "image", "report"}`` (image: a path resolved against
``image_root``, or an HF dataset's stored image bytes; never decoded pixels), checked up front: a missing field, an empty
report or an image file that does not exist is an :class:`InputError` naming the record, before
any model loads. The stage formatters then build TRL's dataset shapes:

* SFT: ``{"images": [img], "prompt": [user(image, prompt)], "completion": [assistant("<report>…</report>")]}``,
  conversational prompt/completion so TRL's completion-only loss masks the prompt (any template);
* GRPO: ``{"prompt": [user(image, prompt)], "image": img, "ground_truth": report, "id"}``; the
  reward functions read ``ground_truth`` and ``image`` (TRL repeats columns per completion);
* DPO: ``{"images": [img], "prompt": [...], "chosen": [assistant], "rejected": [assistant]}``.

The assistant's target is wrapped in ``<report>…</report>`` because the format reward
(``radeval.rewards.format_reward``) pays only for exactly one such span.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from radeval.errors import ConfigError, InputError
from radeval.rewards.extract import CLOSE_TAG, OPEN_TAG

R2GEN_SPLITS = ("train", "val", "test")


def wrap_report(report: str) -> str:
    """The assistant target the format reward expects (text already in tags is kept as is)."""
    text = report.strip()
    if text.startswith(OPEN_TAG) and text.endswith(CLOSE_TAG):
        return text
    return f"{OPEN_TAG}{text}{CLOSE_TAG}"


def _resolve_image(value: Any, root: Path | None, where: str, check: bool = True) -> Any:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise InputError(f"{where}: no image")
    if isinstance(value, dict) and ("path" in value or "bytes" in value):
        # an undecoded HF Image value: prefer the file on disk, else keep the stored bytes
        path = value.get("path")
        if path and Path(path).is_file() and not value.get("bytes"):
            return str(path)
        if not value.get("bytes"):
            raise InputError(f"{where}: image {path!r} has no bytes and no file on disk")
        return {"path": path, "bytes": value["bytes"]}
    if not isinstance(value, (str, Path)):
        return value  # an in-memory image (PIL)
    p = Path(value)
    if not p.is_absolute() and root is not None:
        p = root / p
    if check and not p.is_file():
        hint = "" if root is not None else " (set data.image_root to the folder the image paths are relative to)"
        raise InputError(f"{where}: image file {str(p)!r} does not exist{hint}")
    return str(p)


def _record(
    raw: dict[str, Any],
    *,
    where: str,
    id_field: str,
    report_field: str,
    image_field: str,
    root: Path | None,
    max_images: int,
    index: int,
) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise InputError(f"{where}: a record must be an object, got {type(raw).__name__}")
    rid = raw.get(id_field, index)
    where = f"{where} (id {rid!r})"
    report = raw.get(report_field)
    if not isinstance(report, str) or not report.strip():
        raise InputError(f"{where}: field {report_field!r} must be a non-empty report string")
    if image_field not in raw:
        raise InputError(f"{where}: no image field {image_field!r}; fields: {sorted(raw)}")
    images = raw[image_field]
    if isinstance(images, (list, tuple)):
        if not images:
            raise InputError(f"{where}: field {image_field!r} is an empty list")
        images = list(images)[:max_images]
    else:
        images = [images]
    resolved = [_resolve_image(v, root, where) for v in images]
    return {"id": str(rid), "image": resolved[0] if len(resolved) == 1 else resolved, "report": report.strip()}


def load_r2gen(path: str | Path, split: str, image_root: str | Path | None, max_images: int = 1) -> list[dict]:
    """R2Gen's IU-Xray / MIMIC-CXR ``annotation.json``: ``{split: [{id, report, image_path: [...]}]}``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"annotation file {str(path)!r} does not exist")
    try:
        ann = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(ann, dict) or split not in ann:
        have = sorted(ann) if isinstance(ann, dict) else type(ann).__name__
        raise InputError(f"{path}: no split {split!r} (R2Gen layout has {list(R2GEN_SPLITS)}; found {have})")
    root = Path(image_root) if image_root else path.parent / "images"
    rows = ann[split]
    if not isinstance(rows, list):
        raise InputError(f"{path}: split {split!r} must be a list of records")
    return [
        _record(
            r,
            where=f"{path}:{split}[{i}]",
            id_field="id",
            report_field="report",
            image_field="image_path",
            root=root,
            max_images=max_images,
            index=i,
        )
        for i, r in enumerate(rows)
    ]


def load_jsonl(
    path: str | Path,
    *,
    image_root: str | Path | None = None,
    id_field: str = "id",
    report_field: str = "report",
    image_field: str = "image",
    max_images: int = 1,
    split: str | None = None,
) -> list[dict]:
    """One JSON object per line; a ``split`` field, when present, filters records."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"JSONL file {str(path)!r} does not exist")
    root = Path(image_root) if image_root else path.parent
    out = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{lineno}: not valid JSON ({exc})") from None
            if split is not None and isinstance(raw, dict) and "split" in raw and raw["split"] != split:
                continue
            out.append(
                _record(
                    raw,
                    where=f"{path}:{lineno}",
                    id_field=id_field,
                    report_field=report_field,
                    image_field=image_field,
                    root=root,
                    max_images=max_images,
                    index=lineno,
                )
            )
    return out


def load_hf(
    path_or_name: str,
    split: str,
    *,
    image_root: str | Path | None = None,
    id_field: str = "id",
    report_field: str = "report",
    image_field: str = "image",
    max_images: int = 1,
) -> list[dict]:
    """A ``datasets`` dataset: a ``save_to_disk`` folder, or a name/script in the local HF cache."""
    import datasets

    p = Path(path_or_name)
    try:
        if p.exists():
            ds = datasets.load_from_disk(str(p))
        else:
            ds = datasets.load_dataset(path_or_name, split=split)
    except Exception as exc:
        raise InputError(f"HF dataset {path_or_name!r} does not load: {exc}") from None
    if isinstance(ds, datasets.DatasetDict):
        if split not in ds:
            raise InputError(f"HF dataset {path_or_name!r} has no split {split!r}; splits: {sorted(ds)}")
        ds = ds[split]
    ds = _undecoded_images(ds, image_field)
    root = Path(image_root) if image_root else None
    return [
        _record(
            dict(r),
            where=f"{path_or_name}:{split}[{i}]",
            id_field=id_field,
            report_field=report_field,
            image_field=image_field,
            root=root,
            max_images=max_images,
            index=i,
        )
        for i, r in enumerate(ds)
    ]


def _undecoded_images(ds: Any, field: str) -> Any:
    """Read an ``Image`` column without decoding it: ``{"path", "bytes"}`` per image.

    A value whose file exists on disk is kept as its path (decoded per batch later); embedded
    bytes stay bytes (compressed, as stored), never decoded pixels.
    """
    import datasets

    feat = ds.features.get(field)
    if isinstance(feat, datasets.Image):
        return ds.cast_column(field, datasets.Image(decode=False))
    inner = getattr(feat, "feature", None)
    if isinstance(inner, datasets.Image):
        return ds.cast_column(field, datasets.List(datasets.Image(decode=False)))
    return ds


def load_records(data_cfg: Any, split: str | None = None) -> list[dict]:
    """Records of a split from a :class:`trainers.config.DataSection`."""
    split = split or data_cfg.split
    if not data_cfg.path:
        raise ConfigError("data.path is empty: point it at annotation.json, a .jsonl file or an HF dataset")
    if data_cfg.format == "r2gen":
        recs = load_r2gen(data_cfg.path, split, data_cfg.image_root, data_cfg.max_images)
    elif data_cfg.format == "jsonl":
        recs = load_jsonl(
            data_cfg.path,
            image_root=data_cfg.image_root,
            id_field=data_cfg.id_field,
            report_field=data_cfg.report_field,
            image_field=data_cfg.image_field,
            max_images=data_cfg.max_images,
            split=split,
        )
    else:
        recs = load_hf(
            data_cfg.path,
            split,
            image_root=data_cfg.image_root,
            id_field=data_cfg.id_field,
            report_field=data_cfg.report_field,
            image_field=data_cfg.image_field,
            max_images=data_cfg.max_images,
        )
    if not recs:
        raise InputError(f"{data_cfg.path}: split {split!r} has no records")
    if data_cfg.max_samples is not None:
        recs = recs[: data_cfg.max_samples]
    return recs


# ----- chat formatting -----------------------------------------------------------------------------


def _images(rec: dict) -> list[Any]:
    img = rec["image"]
    return list(img) if isinstance(img, list) else [img]


def user_message(prompt: str, n_images: int = 1) -> dict[str, Any]:
    """The user turn: the image placeholder(s), then the instruction 𝒫."""
    return {"role": "user", "content": [{"type": "image"}] * n_images + [{"type": "text", "text": prompt}]}


def assistant_message(report: str) -> dict[str, Any]:
    return {"role": "assistant", "content": [{"type": "text", "text": wrap_report(report)}]}


def _load_image(img: Any) -> Any:
    """A path, or an HF ``Image(decode=False)`` value ``{"bytes", "path"}`` → RGB PIL image."""
    if isinstance(img, dict):
        import io

        from PIL import Image

        with Image.open(io.BytesIO(img["bytes"]) if img.get("bytes") else img["path"]) as im:
            return im.convert("RGB")
    if isinstance(img, str):
        from PIL import Image

        with Image.open(img) as im:
            return im.convert("RGB")
    return img


def sft_rows(records: Iterable[dict], prompt: str) -> Iterator[dict]:
    """Prompt/completion rows (TRL's completion-only loss): the loss covers the report only.

    This works for every chat template, unlike TRL's assistant-only loss, which needs
    ``{% generation %}`` markers that TRL 1.16 patches in only for templates it knows (not
    LLaVA-1.5's / LLaVA-Med's). Images stay paths: decoded per batch (see ``to_dataset``).
    """
    for r in records:
        yield {
            "images": _images(r),
            "prompt": [user_message(prompt, len(_images(r)))],
            "completion": [assistant_message(r["report"])],
        }


def grpo_rows(records: Iterable[dict], prompt: str) -> Iterator[dict]:
    for r in records:
        imgs = _images(r)
        row = {"id": r["id"], "prompt": [user_message(prompt, len(imgs))], "ground_truth": r["report"]}
        if len(imgs) == 1:
            row["image"] = imgs[0]
        else:
            row["images"] = imgs
        yield row


def load_pairs(path: str | Path, records_by_id: dict[str, dict], image_root: str | Path | None) -> list[dict]:
    """DPO pairs: ``{"id" | "image", "chosen", "rejected"}``; ``id`` takes the image of that record."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"preference pairs file {str(path)!r} does not exist")
    root = Path(image_root) if image_root else path.parent
    out = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{where}: not valid JSON ({exc})") from None
            for f in ("chosen", "rejected"):
                if not isinstance(raw.get(f), str) or not raw[f].strip():
                    raise InputError(f"{where}: field {f!r} must be a non-empty report string")
            if "image" in raw:
                image = _resolve_image(raw["image"], root, where)
            elif str(raw.get("id")) in records_by_id:
                image = records_by_id[str(raw["id"])]["image"]
            else:
                raise InputError(f"{where}: needs an 'image' path or an 'id' of a training record")
            out.append(
                {"id": str(raw.get("id", lineno)), "image": image, "chosen": raw["chosen"], "rejected": raw["rejected"]}
            )
    if not out:
        raise InputError(f"{path}: no preference pairs")
    return out


def dpo_rows(pairs: Iterable[dict], prompt: str) -> Iterator[dict]:
    for p in pairs:
        yield {
            "images": _images(p),
            "prompt": [user_message(prompt, len(_images(p)))],
            "chosen": [assistant_message(p["chosen"])],
            "rejected": [assistant_message(p["rejected"])],
        }


def _features(first: dict):
    """The rows' features: inferred from the first row, image columns as lazy ``Image(mode="RGB")``."""
    import datasets

    image = datasets.Image(mode="RGB")
    plain = {k: v for k, v in first.items() if k not in ("image", "images")}
    feats = dict(datasets.Dataset.from_list([plain]).features) if plain else {}
    if "image" in first:
        feats["image"] = image
    if "images" in first:
        feats["images"] = datasets.List(image)
    # keep the row's column order
    return datasets.Features({k: feats[k] for k in first})


def to_dataset(rows: Iterable[dict], path: str | Path | None = None):
    """A ``datasets.Dataset`` whose image columns decode lazily, one row at a time.

    Rows hold image *paths*; the ``image``/``images`` columns get the ``Image(mode="RGB")``
    feature, which stores the path and opens the file only when a row is read (by the trainer's
    data loader, per batch). PIL images (in-memory datasets) are stored as PNG bytes.

    With ``path`` the rows stream into an Arrow file there (in batches of 1,000) and the dataset
    memory-maps it, so memory before training stays flat in the number of records
    (benchmarks/bench_trainer_data_memory.py); under several processes the main process writes
    it first and the others map the same file (``main_process_first``).
    """
    import datasets

    rows = iter(rows)
    first = next(rows, None)
    if first is None:
        return datasets.Dataset.from_list([])
    features = _features(first)
    if path is None:
        return datasets.Dataset.from_list([first, *rows], features=features)
    from accelerate import PartialState
    from datasets.arrow_writer import ArrowWriter

    path = Path(path)
    state = PartialState()
    with state.main_process_first():
        if state.is_main_process:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            with ArrowWriter(features=features, path=str(tmp), writer_batch_size=1000) as writer:
                writer.write(features.encode_example(first))
                for row in rows:
                    writer.write(features.encode_example(row))
                writer.finalize()
            tmp.replace(path)  # atomic: a reader never maps a half-written file
        return datasets.Dataset.from_file(str(path))
