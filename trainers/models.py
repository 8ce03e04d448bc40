"""Load a base VLM and find the parts each stage trains (LoRA targets, the vision projector).

Families (transformers 5.23 attribute paths, relative to the ``*ForConditionalGeneration``):

* Qwen2-VL, Qwen2.5-VL, Qwen3-VL: projector ``model.visual.merger`` (the patch merger that maps
  vision features to the text width), language model ``model.language_model``.
* LLaVA in llava-hf format (LLaVA-1.5, converted LLaVA-Med v1.5): projector
  ``model.multi_modal_projector``, language model ``model.language_model``. The paper's LLaVA-Med
  v1.5 ships in the original LLaVA repo format, which transformers cannot load: convert it to
  llava-hf first (transformers' ``convert_llava_weights_to_hf.py``) and point ``model.name_or_path``
  at the converted folder.

Paths are matched as module-name suffixes, so a peft-wrapped model (``base_model.model.…``)
resolves the same modules.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from radeval.errors import ConfigError, DependencyError

#: model_type -> (projector module path, language-model module path)
FAMILIES: dict[str, tuple[str, str]] = {
    "qwen2_vl": ("model.visual.merger", "model.language_model"),
    "qwen2_5_vl": ("model.visual.merger", "model.language_model"),
    "qwen3_vl": ("model.visual.merger", "model.language_model"),
    "llava": ("model.multi_modal_projector", "model.language_model"),
}
# LLaVA-NeXT / LLaVA-OneVision (anyres tiling, image_newline) are not listed: no test runs them
# through the stages yet, so they are not advertised.

#: other parts of the vision-to-text projection that stage visual trains with the projector:
#: Qwen3-VL's DeepStack mergers (they project intermediate vision layers into the LM)
PROJECTOR_EXTRAS: dict[str, tuple[str, ...]] = {
    "qwen3_vl": ("model.visual.deepstack_merger_list",),
}


def family_of(model_or_config: Any, declared: str = "auto") -> str:
    """The family key for a model (or its config); ConfigError for one we do not know."""
    if declared != "auto":
        if declared not in FAMILIES:
            raise ConfigError(f"model.family {declared!r} is not supported; known: {sorted(FAMILIES)}")
        return declared
    config = getattr(model_or_config, "config", model_or_config)
    # peft wraps the model; its config is the base model's
    model_type = getattr(config, "model_type", None)
    if model_type not in FAMILIES:
        raise ConfigError(
            f"unknown VLM family {model_type!r}: radeval's trainers know {sorted(FAMILIES)} "
            "(their projector module is known); set model.family to one of them if the architecture matches"
        )
    return model_type


def _find_module(model: Any, path: str, what: str, family: str) -> tuple[str, Any]:
    hits = [(n, m) for n, m in model.named_modules() if n == path or n.endswith("." + path)]
    if len(hits) != 1:
        raise ConfigError(
            f"{what} of family {family!r}: expected one module named '{path}', found "
            f"{[n for n, _ in hits] or 'none'}; is this a {family} model?"
        )
    return hits[0]


def projector(model: Any, family: str = "auto") -> tuple[str, Any]:
    """(qualified name, module) of the vision projector (stage visual trains only this)."""
    fam = family_of(model, family)
    return _find_module(model, FAMILIES[fam][0], "vision projector", fam)


def projector_parts(model: Any, family: str = "auto") -> list[str]:
    """Qualified names of every module/parameter stage visual trains: the projector and its extras."""
    fam = family_of(model, family)
    names = [projector(model, fam)[0]]
    params = dict(model.named_parameters())
    modules = dict(model.named_modules())
    for extra in PROJECTOR_EXTRAS.get(fam, ()):
        names += [n for n in list(modules) + list(params) if n == extra or n.endswith("." + extra)]
    return sorted(set(names))


def language_model(model: Any, family: str = "auto") -> tuple[str, Any]:
    """(qualified name, module) of the language model (stage text puts LoRA only here)."""
    fam = family_of(model, family)
    return _find_module(model, FAMILIES[fam][1], "language model", fam)


def lora_target_regex(model: Any, targets: list[str], family: str = "auto", language_model_only: bool = True) -> Any:
    """peft ``target_modules``: a full-match regex inside the language model, or the plain names.

    Qwen2.5-VL's vision blocks also have ``gate_proj``/``up_proj``/``down_proj``, so bare names
    would put LoRA on the vision tower too.
    """
    import re

    if not language_model_only:
        return list(targets)
    lm_name, _ = language_model(model, family)
    alts = "|".join(re.escape(t) for t in targets)
    return rf"(.*\.)?{re.escape(lm_name)}\..*\.({alts})"


def resolve_dtype(name: str, use_cpu: bool = False):
    import torch

    if name == "auto":
        if not use_cpu and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def load_model(
    name_or_path: str,
    *,
    family: str = "auto",
    dtype: str = "auto",
    revision: str | None = None,
    attn_implementation: str | None = None,
    use_cpu: bool = False,
    chat_template: str | None = None,
    max_pixels: int | None = None,
    min_pixels: int | None = None,
):
    """(model, processor) for a supported VLM; never runs remote code.

    ``chat_template`` (a .jinja file or the template text) replaces the processor's; ``max_pixels``
    / ``min_pixels`` set the Qwen-VL image processors' resolution bounds (see ``model.max_pixels``).

    Local folders and the HF cache work offline; a hub id is fetched only when the environment
    allows it (HF_HUB_OFFLINE unset).
    """
    try:
        import transformers
        from transformers import AutoConfig, AutoProcessor
    except ImportError as exc:  # pragma: no cover - the [train] extra brings it
        raise DependencyError("trainers need transformers: pip install 'radeval-toolkit[train]'") from exc

    kwargs: dict[str, Any] = {"revision": revision, "trust_remote_code": False}
    try:
        config = AutoConfig.from_pretrained(name_or_path, **kwargs)
    except (OSError, ValueError) as exc:
        where = "local folder" if Path(name_or_path).exists() else "hub id (offline: must be in the HF cache)"
        raise ConfigError(f"model.name_or_path {name_or_path!r} ({where}) does not load: {exc}") from None
    fam = family_of(config, family)
    if fam.startswith("qwen2_5_vl"):
        cls = transformers.Qwen2_5_VLForConditionalGeneration
    elif fam == "qwen2_vl":
        cls = transformers.Qwen2VLForConditionalGeneration
    elif fam == "qwen3_vl":
        cls = transformers.Qwen3VLForConditionalGeneration
    else:
        cls = transformers.LlavaForConditionalGeneration
    load_kwargs = dict(kwargs, dtype=resolve_dtype(dtype, use_cpu))
    if attn_implementation:
        load_kwargs["attn_implementation"] = attn_implementation
    model = cls.from_pretrained(name_or_path, **load_kwargs)
    processor = AutoProcessor.from_pretrained(name_or_path, **kwargs)
    tok = getattr(processor, "tokenizer", processor)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if chat_template:
        set_chat_template(processor, chat_template)
    if fam.startswith("qwen"):
        set_resolution(processor, max_pixels=max_pixels, min_pixels=min_pixels)
    return model, processor


def set_chat_template(processor: Any, template: str) -> None:
    """Use ``template`` (a .jinja file path or the template text) for the processor and its tokenizer."""
    path = Path(template)
    if "{" not in template and path.suffix in (".jinja", ".j2", ".txt"):
        if not path.is_file():
            raise ConfigError(f"model.chat_template: file {template!r} does not exist")
        template = path.read_text(encoding="utf-8")
    processor.chat_template = template
    tok = getattr(processor, "tokenizer", None)
    if tok is not None:
        tok.chat_template = template


def set_resolution(processor: Any, *, max_pixels: int | None, min_pixels: int | None) -> tuple[int, int]:
    """Bound a Qwen-VL image processor's pixels per image; returns the (min, max) in force."""
    ip = processor.image_processor
    size = ip.size
    lo, hi = size.shortest_edge, size.longest_edge
    if max_pixels is not None:
        hi = max_pixels
    lo = min_pixels if min_pixels is not None else min(lo, hi)
    if lo > hi:
        raise ConfigError(f"model.min_pixels ({lo}) is above model.max_pixels ({hi})")
    ip.size = type(size)(shortest_edge=lo, longest_edge=hi)
    return lo, hi


def freeze_all_but(model: Any, module_names: list[str]) -> list[str]:
    """Make only parameters under the named modules trainable; returns the trainable names."""
    trainable = []
    prefixes = tuple(n + "." for n in module_names)
    exact = set(module_names)  # a bare parameter (e.g. image_newline)
    for name, p in model.named_parameters():
        p.requires_grad = name in exact or name.startswith(prefixes)
        if p.requires_grad:
            trainable.append(name)
    if not trainable:
        raise ConfigError(f"no parameters under {module_names}: nothing would train")
    return trainable
