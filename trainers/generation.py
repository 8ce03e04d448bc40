"""Generate reports for a split and write the JSONL that ``radeval score`` reads.

One line per record: ``{"id", "prediction", "reference", "image", "completion"}`` where
``prediction`` is the report text the rewards score (inside ``<report>…</report>``, or the whole
completion when the tags are missing — ``radeval.rewards.extract_report``) and ``completion`` is
the raw generated text. Decoding is greedy by default so the file is reproducible.

The checkpoint may be a stage's ``final`` folder (a full model) or a ``checkpoint-N`` folder of a
LoRA stage (an adapter): the adapter is loaded on the stage's start model and merged.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from radeval.data import drop_non_text
from radeval.errors import ConfigError
from trainers.config import StageConfig


def _load_for_generation(cfg: StageConfig, checkpoint: str | Path):
    from trainers.models import load_model

    ckpt = Path(checkpoint)
    if not ckpt.is_dir():
        raise ConfigError(f"checkpoint {str(ckpt)!r} does not exist")
    from trainers.stages import processor_settings

    kw = dict(family=cfg.model.family, dtype=cfg.model.dtype, **processor_settings(cfg))
    if (ckpt / "adapter_config.json").is_file() and not (ckpt / "config.json").is_file():
        from peft import PeftModel

        base = cfg.model.init_from or cfg.model.name_or_path
        model, processor = load_model(base, **kw)
        model = PeftModel.from_pretrained(model, str(ckpt)).merge_and_unload()
        return model, processor
    return load_model(str(ckpt), **kw)


def generate_predictions(
    cfg: StageConfig,
    checkpoint: str | Path,
    *,
    split: str | None = None,
    output: str | Path | None = None,
    model_and_processor: tuple[Any, Any] | None = None,
) -> Path:
    """Write predictions for ``split`` (default ``data.eval_split``); returns the JSONL path."""
    import torch

    from radeval.rewards.extract import extract_report
    from trainers.data import _images, _load_image, load_records, user_message

    split = split or cfg.data.eval_split
    records = load_records(cfg.data, split)
    out = Path(output or cfg.generate.output or Path(cfg.train.output_dir) / f"predictions-{split}.jsonl")
    model, processor = model_and_processor or _load_for_generation(cfg, checkpoint)
    model.eval()
    device = torch.device("cpu") if cfg.train.use_cpu or not torch.cuda.is_available() else torch.device("cuda")
    model.to(device)
    tok = getattr(processor, "tokenizer", processor)
    g = cfg.generate
    gen_kwargs: dict[str, Any] = dict(
        max_new_tokens=g.max_new_tokens, do_sample=g.do_sample, pad_token_id=tok.pad_token_id
    )
    if g.do_sample:
        gen_kwargs.update(temperature=cfg.grpo.temperature, top_p=cfg.grpo.top_p)
        torch.manual_seed(cfg.train.seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as fh, torch.inference_mode():
        for start in range(0, len(records), g.batch_size):
            batch = records[start : start + g.batch_size]
            texts, images = [], []
            for r in batch:
                imgs = [_load_image(i) for i in _images(r)]
                images.append(imgs)
                texts.append(
                    processor.apply_chat_template(
                        [user_message(cfg.data.prompt, len(imgs))], add_generation_prompt=True, tokenize=False
                    )
                )
            # left padding so every prompt ends where generation starts
            inputs = processor(text=texts, images=images, return_tensors="pt", padding=True, padding_side="left")
            inputs = inputs.to(device)
            ids = model.generate(**inputs, **gen_kwargs)
            completions = tok.batch_decode(ids[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
            for r, c in zip(batch, completions):
                # a byte-level tokenizer can decode to NULs, which no report holds and `radeval score`
                # rejects as a broken file: generated text is kept without them
                c = drop_non_text(c)
                row = {"id": r["id"], "prediction": extract_report(c), "reference": r["report"], "completion": c}
                if isinstance(r["image"], (str, list)) and all(isinstance(i, str) for i in _images(r)):
                    row["image"] = r["image"]
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return out
