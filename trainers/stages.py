"""The stages: build the model, data, rewards and TRL trainer for one config, run it, save.

Every stage ends by writing ``<output_dir>/final``: the full model with any LoRA merged (the
next stage's ``model.init_from``), the processor, and ``valor_state.json`` with the last
VALOR step k so stage visual's counter carries on from stage text. Intermediate checkpoints
(``checkpoint-N`` every ``train.save_steps``) are TRL/transformers checkpoints and are what
``train.resume`` resumes from.

* sft    — TRL SFTTrainer, prompt/completion rows with completion-only loss, LoRA on the LM (Eq. 2).
* text   — ValorGRPOTrainer, rewards [R_text (Eq. 5), format], RankNorm, LoRA on the LM.
* visual — ValorGRPOTrainer from stage text's merged model, only the projector trainable,
           rewards [R_text, format, raw similarity S], Eq. 7–9 in the trainer.
* grpo   — the plain GRPO baseline: TRL's advantages, rewards [R_ver, format], LoRA on the LM.
* dpo    — the DPO baseline: TRL DPOTrainer on user preference pairs, LoRA on the LM.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radeval.errors import ConfigError
from trainers.config import StageConfig
from trainers.precision import check_trainable_fp32

STATE_FILE = "valor_state.json"

logger = logging.getLogger(__name__)


@dataclass
class StageResult:
    """What a finished stage leaves behind."""

    stage: str
    output_dir: Path
    final_dir: Path
    global_step: int
    step_offset: int
    last_k: int
    log_history: list[dict[str, Any]] = field(default_factory=list)
    trainer: Any = None  # the TRL trainer (for inspection in tests / notebooks)


# ----- pieces ----------------------------------------------------------------------------------------


def _start_path(cfg: StageConfig) -> str:
    return cfg.model.init_from or cfg.model.name_or_path


def resolve_step_offset(cfg: StageConfig) -> int:
    """k carries on across stages: ``train.step_offset`` or the start checkpoint's last k."""
    so = cfg.train.step_offset
    if so != "auto":
        return int(so)
    state = Path(_start_path(cfg)) / STATE_FILE
    if state.is_file():
        try:
            return int(json.loads(state.read_text())["last_k"])
        except (ValueError, KeyError, TypeError):
            raise ConfigError(f"{state}: unreadable VALOR state (expected a 'last_k' integer)") from None
    return 0


def _model_ref(path_or_id: str, state_dir: Path) -> dict[str, Any]:
    """How a state file records a model: absolute path + path relative to the state file, or a hub id."""
    p = Path(path_or_id)
    if p.is_dir():
        absolute = p.resolve()
        return {"path": str(absolute), "relative": os.path.relpath(absolute, state_dir.resolve())}
    return {"hub_id": path_or_id}


def _resolve_model_ref(ref: Any, state: Path, what: str) -> str:
    """A recorded model: its absolute path, else the path relative to the state file, else a clear error."""
    if isinstance(ref, str):  # older state files: a bare path as it was typed
        ref = {"path": ref}
    if not isinstance(ref, dict):
        raise ConfigError(f"{state}: unreadable {what} record {ref!r}")
    if "hub_id" in ref:
        return str(ref["hub_id"])
    tried = []
    for key, base in (("path", None), ("relative", state.parent)):
        if ref.get(key):
            cand = Path(ref[key]) if base is None else base / ref[key]
            tried.append(str(cand))
            if cand.is_dir():
                return str(cand)
    raise ConfigError(
        f"{state} records {what} at {tried or ref!r}, which no longer exists; set grpo.ref_model to the "
        "reference model's folder (Algorithm 1: the SFT model), or grpo.ref_model=start"
    )


def resolve_ref_model(cfg: StageConfig) -> str:
    """The reference policy's model folder for stage visual (see ``grpo.ref_model``).

    "auto" reads the start checkpoint's ``valor_state.json``: after stage sft the start model is
    θ_SFT; after stage text/grpo/visual the reference recorded there (stage text's θ_ref is its own
    start model, the SFT model). A recorded folder that no longer resolves is an error, never a
    silent switch to another model.
    """
    start = _start_path(cfg)
    ref = cfg.grpo.ref_model
    if ref == "start":
        return start
    if ref != "auto":
        if not Path(ref).is_dir():
            raise ConfigError(f"grpo.ref_model: {ref!r} is not a model folder")
        return ref
    state = Path(start) / STATE_FILE
    if not state.is_file():
        logger.warning(
            "grpo.ref_model=auto: %s has no %s (not a stage output), so the start model is the reference policy",
            start,
            STATE_FILE,
        )
        return start
    try:
        prev = json.loads(state.read_text())
    except ValueError:
        raise ConfigError(f"{state}: unreadable VALOR state") from None
    if prev.get("stage") == "sft":
        return start
    if "ref_model" in prev:
        return _resolve_model_ref(prev["ref_model"], state, "the reference policy")
    if prev.get("stage") in ("text", "grpo"):
        # state files written before ref_model was recorded: stage text's start model
        before = ((prev.get("config") or {}).get("model") or {}).get("init_from")
        if before:
            return _resolve_model_ref(before, state, "stage text's start model (the reference policy)")
    raise ConfigError(f"{state} (stage {prev.get('stage')!r}) does not record a reference policy; set grpo.ref_model")


def resolve_resume(cfg: StageConfig) -> str | bool | None:
    r = cfg.train.resume
    if r is False or r is None:
        return None
    if r is True or r == "auto":
        from transformers.trainer_utils import get_last_checkpoint

        out = Path(cfg.train.output_dir)
        last = get_last_checkpoint(str(out)) if out.is_dir() else None
        if last is None and r is True:
            raise ConfigError(f"train.resume=true but {out} holds no checkpoint-N folder")
        return last
    if not Path(r).is_dir():
        raise ConfigError(f"train.resume: checkpoint {r!r} does not exist")
    return r


def _load(cfg: StageConfig):
    from trainers.models import load_model

    return load_model(
        _start_path(cfg),
        family=cfg.model.family,
        dtype=cfg.model.dtype,
        revision=None if cfg.model.init_from else cfg.model.revision,
        **processor_settings(cfg),
    )


def processor_settings(cfg: StageConfig) -> dict[str, Any]:
    """load_model's keyword arguments from the model section (dtype, attention, processor)."""
    return dict(
        attn_implementation=cfg.model.attn_implementation,
        use_cpu=cfg.train.use_cpu,
        chat_template=cfg.model.chat_template,
        max_pixels=cfg.model.max_pixels,
        min_pixels=cfg.model.min_pixels,
    )


def lora_config(cfg: StageConfig, model: Any):
    from peft import LoraConfig

    from trainers.models import lora_target_regex

    return LoraConfig(
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=lora_target_regex(
            model, cfg.lora.target_modules, cfg.model.family, cfg.lora.language_model_only
        ),
        task_type="CAUSAL_LM",
    )


def _bf16(cfg: StageConfig, model: Any) -> bool:
    """bf16 autocast: "auto" = on when the model was loaded in bf16 (the trained modules are fp32)."""
    import torch

    from trainers.models import resolve_dtype

    if cfg.train.bf16 == "auto":
        return resolve_dtype(cfg.model.dtype, cfg.train.use_cpu) == torch.bfloat16
    return bool(cfg.train.bf16)


def common_args(cfg: StageConfig, model: Any) -> dict[str, Any]:
    """transformers.TrainingArguments shared by every stage, all explicit."""
    t = cfg.train
    return dict(
        output_dir=t.output_dir,
        per_device_train_batch_size=t.per_device_batch_size,
        gradient_accumulation_steps=cfg.grad_accum() if cfg.is_grpo else _sft_accum(cfg),
        learning_rate=t.learning_rate,
        num_train_epochs=t.epochs,
        max_steps=t.max_steps,
        weight_decay=t.weight_decay,
        lr_scheduler_type=t.lr_scheduler,
        warmup_steps=t.warmup,
        max_grad_norm=t.max_grad_norm,
        seed=t.seed,
        data_seed=t.seed,
        save_strategy="steps" if t.save_steps else "no",
        save_steps=t.save_steps or 500,
        save_total_limit=t.save_total_limit,
        logging_steps=t.logging_steps,
        **_checkpointing(t.gradient_checkpointing),
        bf16=_bf16(cfg, model),
        use_cpu=t.use_cpu,
        dataloader_num_workers=t.dataloader_num_workers,
        report_to=t.report_to,
        remove_unused_columns=False,
    )


def _checkpointing(on: bool) -> dict[str, bool]:
    """Explicit on/off: TRL defaults gradient checkpointing to on; transformers 5.23 renamed it."""
    import dataclasses

    from transformers import TrainingArguments

    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    out = {"gradient_checkpointing": on}
    if "activation_checkpointing" in names:
        out["activation_checkpointing"] = on
    return out


def _sft_accum(cfg: StageConfig) -> int:
    per_pass = cfg.train.per_device_batch_size * cfg.world_size()
    if cfg.train.batch_size % per_pass:
        raise ConfigError(
            f"train.per_device_batch_size: batch_size {cfg.train.batch_size} is not a multiple of "
            f"per_device_batch_size x processes = {per_pass}"
        )
    return cfg.train.batch_size // per_pass


def _metrics_callback(path: Path):
    from transformers import TrainerCallback

    class JsonlMetrics(TrainerCallback):
        """Append every log (rewards per name, loss, k...) to metrics.jsonl on the main process.

        A run that starts at step 0 replaces an earlier run's file in the same output_dir (appending
        made a rerun's curve the two runs' logs end to end); a resumed run keeps the lines up to its
        checkpoint's step, since the interrupted run's later lines are logged again.
        """

        def on_train_begin(self, args, state, control, **kwargs):
            if state.is_world_process_zero and path.is_file():
                keep = []
                if state.global_step > 0:
                    for line in path.read_text(encoding="utf-8").splitlines():
                        try:
                            if line.strip() and json.loads(line).get("step", 0) <= state.global_step:
                                keep.append(line + "\n")
                        except ValueError:  # a line cut by the interruption
                            continue
                path.write_text("".join(keep), encoding="utf-8")

        def on_log(self, args, state, control, logs=None, **kwargs):
            if state.is_world_process_zero and logs:
                path.parent.mkdir(parents=True, exist_ok=True)
                with path.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps({"step": state.global_step, **logs}, default=float) + "\n")

    return JsonlMetrics()


def _sharded(trainer: Any) -> bool:
    """DeepSpeed ZeRO-3 or FSDP: parameters are partitioned, only save_model can gather them."""
    if getattr(trainer, "is_fsdp_enabled", False):
        return True
    plugin = getattr(trainer.accelerator.state, "deepspeed_plugin", None)
    return bool(getattr(trainer, "is_deepspeed_enabled", False) and plugin is not None and plugin.zero_stage == 3)


def _save_merged(cfg: StageConfig, trainer: Any, final: Path) -> None:
    """The full model with LoRA merged, in ``final`` (main process writes)."""
    if _sharded(trainer):
        # transformers gathers the partitioned weights; a peft model saves its adapter only
        gathered = final.with_name("final-gathered")
        trainer.save_model(str(gathered))
        if trainer.accelerator.is_main_process:
            if (gathered / "adapter_config.json").is_file():
                from peft import PeftModel

                base, _ = _load(cfg)
                PeftModel.from_pretrained(base, str(gathered)).merge_and_unload().save_pretrained(final)
            else:
                from trainers.models import load_model

                load_model(str(gathered), family=cfg.model.family, dtype=cfg.model.dtype)[0].save_pretrained(final)
        return
    model = trainer.accelerator.unwrap_model(trainer.model)
    if hasattr(model, "merge_and_unload"):
        if trainer.accelerator.is_main_process:
            # the trained LoRA tensors themselves, fp32, beside the merged model
            model.save_pretrained(final / "adapter", safe_serialization=True)
        _upcast_lora_bases(model)
        model = model.merge_and_unload()
    if trainer.accelerator.is_main_process:
        # tensors keep their own dtype: the trained (fp32) modules stay fp32 on disk
        model.save_pretrained(final, safe_serialization=True)


def _upcast_lora_bases(model: Any) -> None:
    """Merge LoRA into fp32 copies of the targeted weights: a bf16 merge rounds a 1e-6 update away."""
    from peft.tuners.lora import LoraLayer

    for module in model.modules():
        if isinstance(module, LoraLayer):
            module.get_base_layer().float()


def _finish(cfg: StageConfig, trainer: Any, step_offset: int, ref_model: str | None = None) -> StageResult:
    """Merge LoRA (if any), save the full model + processor + VALOR state to <output_dir>/final."""
    final = Path(cfg.train.output_dir) / "final"
    if trainer.accelerator.is_main_process:
        final.mkdir(parents=True, exist_ok=True)
    trainer.accelerator.wait_for_everyone()
    _save_merged(cfg, trainer, final)
    gstep = int(trainer.state.global_step)
    # k counts GRPO updates only (Algorithm 1 sets k <- 0 after the SFT warm-up)
    last_k = step_offset + (gstep if cfg.is_grpo else 0)
    if trainer.accelerator.is_main_process:
        trainer.processing_class.save_pretrained(final)
        state = {
            "stage": cfg.stage,
            "global_step": gstep,
            "step_offset": step_offset,
            "last_k": last_k,
            # absolute + relative to this file, so a moved runs/ tree still resolves (or fails loudly)
            "start_model": _model_ref(_start_path(cfg), final),
            "ref_model": _model_ref(ref_model or _start_path(cfg), final),
            "config": cfg.to_dict(),
        }
        (final / STATE_FILE).write_text(json.dumps(state, indent=2, default=str), encoding="utf-8")
    trainer.accelerator.wait_for_everyone()
    return StageResult(
        cfg.stage,
        Path(cfg.train.output_dir),
        final,
        gstep,
        step_offset,
        last_k,
        list(trainer.state.log_history),
        trainer,
    )


def _dataset_file(cfg: StageConfig) -> Path:
    """Where the stage's training rows are written (memory-mapped while training)."""
    return Path(cfg.train.output_dir) / "dataset" / f"{cfg.stage}-{cfg.data.split}.arrow"


def _seed(cfg: StageConfig) -> None:
    from transformers import set_seed

    set_seed(cfg.train.seed)


# ----- rewards ---------------------------------------------------------------------------------------


def visual_similarity_reward(cfg: StageConfig, override: Callable | None = None) -> Callable:
    """The raw-similarity reward S_i of stage visual, from ``rewards.visual_reward`` (or a callable)."""
    import importlib

    fn = override
    spec = cfg.rewards.visual_reward
    if fn is None:
        if spec is None:
            raise ConfigError("rewards.visual_reward is not set")
        if spec.startswith("metric:"):
            from radeval.rewards.trl import make_reward

            parts = spec.split(":")
            if len(parts) not in (2, 3) or not parts[1]:
                raise ConfigError(f"rewards.visual_reward {spec!r}: expected 'metric:<name>[:<key>]'")
            fn = make_reward(
                parts[1],
                parts[2] if len(parts) == 3 else None,
                on_error=None,
                metric_options=cfg.rewards.metric_options.get(parts[1]),
                name="valor_visual_similarity",
            )
        else:
            mod, sep, attr = spec.partition(":")
            if not sep:
                mod, _, attr = spec.rpartition(".")
            try:
                obj = getattr(importlib.import_module(mod), attr)
            except (ImportError, AttributeError, ValueError) as exc:
                raise ConfigError(f"rewards.visual_reward {spec!r} does not import: {exc}") from None
            fn = obj(**cfg.rewards.visual_reward_kwargs) if cfg.rewards.visual_reward_kwargs is not None else obj
    if not callable(fn):
        raise ConfigError(f"rewards.visual_reward {spec!r} is not callable")
    return fn


def grpo_rewards(cfg: StageConfig, step_offset: int, visual: Callable | None = None):
    """(reward_funcs, reward_weights, visual_index) for stages text / visual / grpo."""
    from radeval.rewards import valor_format_reward
    from radeval.rewards.valor import make_text_reward

    vc = cfg.valor_config(step_offset)
    name = "valor_text" if cfg.rewards.clinical else "valor_ver"
    funcs: list[Callable] = [make_text_reward(vc, name=name), valor_format_reward]
    weights = [1.0, cfg.rewards.format_weight]
    visual_index = None
    if cfg.stage == "visual":
        funcs.append(visual_similarity_reward(cfg, visual))
        # weight 0: TRL's logged "reward" stays R_text + format; S enters only through Eq. 7-8
        weights.append(0.0)
        visual_index = len(funcs) - 1
    return funcs, weights, visual_index


# ----- stages ----------------------------------------------------------------------------------------


def run_sft(cfg: StageConfig, *, callbacks: list | None = None) -> StageResult:
    from trl import SFTConfig, SFTTrainer

    from trainers.data import load_records, sft_rows, to_dataset

    records = load_records(cfg.data)
    _seed(cfg)
    model, processor = _load(cfg)
    step_offset = resolve_step_offset(cfg)
    args = SFTConfig(
        **common_args(cfg, model),
        # prompt/completion rows + completion-only loss: the loss covers the report only, with any
        # chat template (TRL's assistant_only_loss needs templates it knows: not LLaVA-1.5's)
        completion_only_loss=True,
        max_length=cfg.train.max_length,
        packing=False,
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=to_dataset(sft_rows(records, cfg.data.prompt), _dataset_file(cfg)),
        processing_class=processor,
        peft_config=lora_config(cfg, model),
        callbacks=[_metrics_callback(Path(cfg.train.output_dir) / "metrics.jsonl"), *(callbacks or [])],
    )
    check_trainable_fp32(trainer.model)
    trainer.train(resume_from_checkpoint=resolve_resume(cfg))
    return _finish(cfg, trainer, step_offset)


def check_prompt_length(cfg: StageConfig, processor: Any, record: dict) -> None:
    """TRL 1.16 never truncates GRPO prompts (that would cut image tokens): check the budget once."""
    from trainers.data import _images, _load_image, user_message

    imgs = [_load_image(i) for i in _images(record)]
    text = processor.apply_chat_template(
        [user_message(cfg.data.prompt, len(imgs))], add_generation_prompt=True, tokenize=False
    )
    n = len(processor(text=[text], images=imgs, return_tensors="pt")["input_ids"][0])
    if n > cfg.grpo.max_prompt_length:
        raise ConfigError(
            f"grpo.max_prompt_length: the prompt with its image takes {n} tokens (> {cfg.grpo.max_prompt_length}); "
            "shorten data.prompt, lower the image resolution (model.max_pixels, Qwen-VL families), "
            "or raise grpo.max_prompt_length"
        )


def build_grpo_trainer(cfg: StageConfig, *, visual: Callable | None = None, callbacks: list | None = None):
    """(trainer, step_offset) for stages text / visual / grpo, not yet trained."""
    from trl import GRPOConfig

    from trainers.data import load_records
    from trainers.models import freeze_all_but, projector_parts
    from trainers.precision import upcast_trainable

    records = load_records(cfg.data)
    _seed(cfg)
    model, processor = _load(cfg)
    check_prompt_length(cfg, processor, records[0])
    step_offset = resolve_step_offset(cfg)
    funcs, weights, visual_index = grpo_rewards(cfg, step_offset, visual)
    g = cfg.grpo
    args = GRPOConfig(
        **common_args(cfg, model),
        num_generations=g.num_generations,
        beta=g.beta,
        epsilon=g.epsilon,
        loss_type=g.loss_type,
        # TRL's own normalisation only matters for the plain-GRPO baseline ("trl" advantages)
        scale_rewards="group",
        num_iterations=g.num_iterations,
        temperature=g.temperature,
        top_p=g.top_p,
        max_completion_length=g.max_completion_length,
        reward_weights=weights,
        use_vllm=g.use_vllm,
        vllm_mode=g.vllm_mode,
        log_completions=False,
    )
    peft_config = None
    if cfg.stage == "visual":
        parts = projector_parts(model, cfg.model.family)
        freeze_all_but(model, parts)
        # the projector trains in fp32 whatever the load dtype (trainers/precision.py)
        upcast_trainable(model, parts)
    else:
        peft_config = lora_config(cfg, model)
    # TRL builds the reference model from model.config._name_or_path (non-LoRA, beta > 0): point it
    # at θ_ref for the constructor only
    ref_path = None
    if cfg.stage == "visual":
        try:
            ref_path = resolve_ref_model(cfg)
        except ConfigError:
            if g.beta != 0:
                raise
            # β = 0: no reference policy is used; nothing to record for the next stage
    original_name = model.config._name_or_path
    if ref_path is not None and g.beta != 0:
        model.config._name_or_path = ref_path
    try:
        trainer = _make_grpo_trainer(
            cfg, model, processor, funcs, args, records, peft_config, visual_index, step_offset, callbacks
        )
    finally:
        model.config._name_or_path = original_name
    check_trainable_fp32(trainer.model)
    trainer.valor_ref_model = ref_path or _start_path(cfg)
    return trainer, step_offset


def _make_grpo_trainer(cfg, model, processor, funcs, args, records, peft_config, visual_index, step_offset, callbacks):
    from trainers.data import grpo_rows, to_dataset
    from trainers.grpo import ValorGRPOTrainer

    g = cfg.grpo
    return ValorGRPOTrainer(
        model=model,
        reward_funcs=funcs,
        args=args,
        train_dataset=to_dataset(grpo_rows(records, cfg.data.prompt), _dataset_file(cfg)),
        processing_class=processor,
        peft_config=peft_config,
        callbacks=[_metrics_callback(Path(cfg.train.output_dir) / "metrics.jsonl"), *(callbacks or [])],
        advantage=g.advantage,
        visual_index=visual_index,
        lambda_vis=cfg.rewards.lambda_vis,
        step_offset=step_offset,
        k_clin=cfg.rewards.k_clin if cfg.rewards.clinical else None,
    )


def run_grpo(cfg: StageConfig, *, visual: Callable | None = None, callbacks: list | None = None) -> StageResult:
    trainer, step_offset = build_grpo_trainer(cfg, visual=visual, callbacks=callbacks)
    trainer.train(resume_from_checkpoint=resolve_resume(cfg))
    return _finish(cfg, trainer, step_offset, trainer.valor_ref_model)


def run_dpo(cfg: StageConfig, *, callbacks: list | None = None) -> StageResult:
    from trl import DPOConfig, DPOTrainer

    from trainers.data import dpo_rows, load_pairs, load_records, to_dataset

    records = load_records(cfg.data)
    pairs = load_pairs(cfg.data.pairs_path, {r["id"]: r for r in records}, cfg.data.image_root)
    _seed(cfg)
    model, processor = _load(cfg)
    args = DPOConfig(
        **common_args(cfg, model),
        beta=cfg.dpo.beta,
        loss_type=[cfg.dpo.loss_type],
        max_length=cfg.train.max_length,
    )
    trainer = DPOTrainer(
        model=model,
        args=args,
        train_dataset=to_dataset(dpo_rows(pairs, cfg.data.prompt), _dataset_file(cfg)),
        processing_class=processor,
        peft_config=lora_config(cfg, model),
        callbacks=[_metrics_callback(Path(cfg.train.output_dir) / "metrics.jsonl"), *(callbacks or [])],
    )
    trainer.train(resume_from_checkpoint=resolve_resume(cfg))
    return _finish(cfg, trainer, resolve_step_offset(cfg))


def run_stage(cfg: StageConfig, *, visual: Callable | None = None, callbacks: list | None = None) -> StageResult:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if cfg.stage == "sft":
        return run_sft(cfg, callbacks=callbacks)
    if cfg.stage == "dpo":
        return run_dpo(cfg, callbacks=callbacks)
    return run_grpo(cfg, visual=visual, callbacks=callbacks)
