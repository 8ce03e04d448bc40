"""Trainable parameters in fp32 whatever the load dtype (bf16/fp16 compute elsewhere).

Why: at the paper's lr 1e-6 one Adam step moves an element by ~1e-6, below bf16's resolution
(8 mantissa bits: the spacing next to a weight of 0.02 is ~1e-4). Trained in bf16, 97% of the
projector's elements never move (benchmarks/bench_trainer_precision.py). The fix chosen here is
the simplest one that also holds under DDP and needs no second copy: **the trained modules
themselves are cast to fp32** after loading ("fp32 islands"); the frozen rest of the model stays in
the load dtype. Hooks cast a module's floating inputs to fp32 and its outputs back to the
caller's dtype, so the bf16 model around it runs unchanged, with or without autocast (TRL
generates outside autocast). An fp32 master copy beside bf16 weights would work too, but needs an
optimizer wrapper that DDP/DeepSpeed/FSDP each handle differently; the projector is < 1% of a 7B
model, so holding it in fp32 costs nothing worth saving. LoRA adapters are already fp32: peft
casts them on creation (``autocast_adapter_dtype=True``) and casts activations in and out.

Saving: ``save_pretrained`` writes each tensor in its own dtype, so a trained fp32 module stays
fp32 on disk (a bf16 save would round an update of 1e-6 away). LoRA merges happen into fp32
copies of the targeted weights for the same reason (see ``trainers.stages``).
"""

from __future__ import annotations

from typing import Any


def _cast_floats(obj: Any, dtype: Any) -> Any:
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.to(dtype) if obj.is_floating_point() and obj.dtype != dtype else obj
    if isinstance(obj, tuple):
        return tuple(_cast_floats(o, dtype) for o in obj)
    if isinstance(obj, list):
        return [_cast_floats(o, dtype) for o in obj]
    if isinstance(obj, dict):
        return {k: _cast_floats(v, dtype) for k, v in obj.items()}
    return obj


def _first_float_dtype(obj: Any) -> Any:
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.dtype if obj.is_floating_point() else None
    if isinstance(obj, (tuple, list)):
        for o in obj:
            d = _first_float_dtype(o)
            if d is not None:
                return d
    if isinstance(obj, dict):
        return _first_float_dtype(list(obj.values()))
    return None


def fp32_island(module: Any) -> None:
    """Cast ``module`` to fp32 and hook it: fp32 in, caller's dtype out."""
    import torch

    module.float()
    if getattr(module, "_radeval_fp32_island", False):
        return
    module._radeval_fp32_island = True
    state: dict[str, Any] = {}

    def pre(mod, args, kwargs):
        state["dtype"] = _first_float_dtype((args, kwargs))
        return _cast_floats(args, torch.float32), _cast_floats(kwargs, torch.float32)

    def post(mod, args, kwargs, output):
        dtype = state.get("dtype")
        return output if dtype in (None, torch.float32) else _cast_floats(output, dtype)

    module.register_forward_pre_hook(pre, with_kwargs=True)
    module.register_forward_hook(post, with_kwargs=True)


def upcast_trainable(model: Any, names: list[str]) -> list[str]:
    """Make the named modules / bare parameters fp32 islands; returns the names of upcast tensors.

    ``names`` are qualified module or parameter names (``trainers.models.projector_parts``).
    """
    import torch

    modules = dict(model.named_modules())
    params = dict(model.named_parameters())
    for name in names:
        if name in modules:
            fp32_island(modules[name])
        elif name in params and params[name].is_floating_point():
            # a bare parameter (LLaVA-NeXT's image_newline): its users cast it to their dtype
            params[name].data = params[name].data.to(torch.float32)
    return [n for n, p in model.named_parameters() if p.requires_grad and p.dtype == torch.float32]


def check_trainable_fp32(model: Any) -> None:
    """Raise if any trainable parameter is not fp32 (guards the optimizer against bf16 state)."""
    import torch

    bad = [f"{n} ({p.dtype})" for n, p in model.named_parameters() if p.requires_grad and p.dtype != torch.float32]
    if bad:
        raise RuntimeError(f"trainable parameters must be fp32 (lr 1e-6 is below bf16's resolution): {bad[:5]}")
