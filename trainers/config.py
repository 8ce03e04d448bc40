"""One configuration per training stage, from YAML/TOML plus ``section.key=value`` overrides.

A config file has one section per concern (``model``, ``lora``, ``data``, ``train``, ``grpo``,
``rewards``, ``dpo``, ``generate``) and a top-level ``stage``. Every setting of the VALOR paper
(arXiv 2512.16201, §4–5) is here; where the paper is silent the default is ours and its field
comment says why in one line. Unknown keys and bad values raise :class:`ConfigError` naming the
field (``train.learning_rate``), so a typo never silently trains with a default.

Stages (``stage``): ``sft`` (warm-up, Eq. 2), ``text`` (GRPO, R_text + format, RankNorm, LoRA on
the language model), ``visual`` (GRPO, R_vis, RankNorm, projector only), and the baselines
``dpo`` (TRL DPO on user preference pairs) and ``grpo`` (plain GRPO: TRL's own advantages, no
clinical injection, no visual stage). "SFT only" is stage ``sft`` followed by ``generate``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

from radeval.errors import ConfigError
from radeval.rewards.valor import ValorConfig

STAGES = ("sft", "text", "visual", "dpo", "grpo")

DEFAULT_PROMPT = (
    "You are an expert radiologist. Describe the findings and impression of this chest X-ray. "
    "Write the report between <report> and </report>."
)

#: language-model projections of Qwen2/Qwen2.5 and Llama/Mistral-style decoders (LLaVA)
LM_PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass
class ModelSection:
    #: base VLM: hub id or local directory (the paper's supplementary uses Qwen2.5-VL-7B)
    name_or_path: str = "Qwen/Qwen2.5-VL-7B-Instruct"
    #: hub revision to pin (None = whatever the local cache/hub resolves; pin it for real runs)
    revision: str | None = None
    #: "auto" reads config.model_type; or one of trainers.models.FAMILIES
    family: str = "auto"
    #: "auto" = bfloat16 on a GPU that supports it, float32 on CPU (tiny tests)
    dtype: str = "auto"
    #: e.g. "sdpa" or "flash_attention_2"; None = transformers' default
    attn_implementation: str | None = None
    #: stage visual/text start from this checkpoint (a stage output dir); None = name_or_path
    init_from: str | None = None
    #: image resolution of the Qwen-VL families (the processor's min/max pixels per image; one
    #: image token per 28x28 px for Qwen2/2.5-VL, 32x32 for Qwen3-VL). The processors' default
    #: (12.8 MP) turns a full-size chest X-ray into ~10k tokens; 448x448 (256 tokens for
    #: Qwen2.5-VL) is the usual CXR-model input size. None = the processor's own value; min_pixels
    #: None = the processor's minimum, capped at max_pixels. LLaVA's CLIP tower fixes its input
    #: size (336x336 for LLaVA-1.5/LLaVA-Med): these settings do not apply to the llava families.
    max_pixels: int | None = 448 * 448
    min_pixels: int | None = None
    #: a chat template to use instead of the processor's: a .jinja file or the template text
    #: (e.g. for a converted LLaVA-Med whose processor carries none); None = the processor's own
    chat_template: str | None = None


@dataclass
class LoraSection:
    #: LoRA rank: paper uses LoRA but gives no rank; 16 is peft's common recipe for 7B RL fine-tuning
    r: int = 16
    #: alpha = 2r keeps the update scale of the standard LoRA recipe (paper silent)
    alpha: int = 32
    #: dropout 0.05: peft/TRL examples' value (paper silent)
    dropout: float = 0.05
    #: all attention + MLP projections (paper silent; the QLoRA choice)
    target_modules: list[str] = field(default_factory=lambda: list(LM_PROJECTIONS))
    #: restrict LoRA to the language model (DESIGN: stage text trains LoRA on the LM only)
    language_model_only: bool = True


@dataclass
class DataSection:
    #: "r2gen" (annotation.json + image root), "jsonl", or "hf" (datasets.load_from_disk / load_dataset)
    format: str = "r2gen"
    #: annotation.json, a .jsonl file, or an HF dataset directory / name
    path: str = ""
    #: directory the records' image paths are relative to (r2gen: the dataset's images/ folder)
    image_root: str | None = None
    split: str = "train"
    #: split used by `generate` when none is given
    eval_split: str = "test"
    #: record fields (jsonl/hf); r2gen's layout fixes them
    id_field: str = "id"
    report_field: str = "report"
    image_field: str = "image"
    #: R2Gen IU-Xray has two views per study: use the first N image paths (1 = the frontal view)
    max_images: int = 1
    #: limit the number of records (None = all); for smoke runs
    max_samples: int | None = None
    #: DPO: JSONL of {"id" | "image", "chosen", "rejected"} preference pairs the user supplies
    pairs_path: str | None = None
    #: the instruction 𝒫 (the paper's prompts are in its supplementary, not in the text we have)
    prompt: str = DEFAULT_PROMPT


@dataclass
class TrainSection:
    #: prompts per optimizer step: the paper's batch size 8
    batch_size: int = 8
    #: completions (GRPO) or examples (SFT/DPO) per device per forward pass; sets grad accumulation
    per_device_batch_size: int = 8
    #: the paper's learning rate 1e-6
    learning_rate: float = 1e-6
    #: the paper's 3 epochs
    epochs: float = 3.0
    #: stop after this many optimizer steps (-1 = run the epochs)
    max_steps: int = -1
    #: AdamW weight decay (TRL default 0; paper silent)
    weight_decay: float = 0.0
    #: constant LR keeps 1e-6 as stated (paper names no schedule)
    lr_scheduler: str = "constant"
    #: warmup: an int = steps, a float < 1 = fraction of training (transformers' warmup_steps); none by default
    warmup: float = 0.0
    max_grad_norm: float = 1.0
    seed: int = 42
    #: checkpoint every N optimizer steps (0 = only at the end)
    save_steps: int = 100
    save_total_limit: int | None = 3
    logging_steps: int = 1
    output_dir: str = "runs/valor"
    #: "auto" = resume from output_dir's last checkpoint if there is one; true/false; or a checkpoint path
    resume: Any = "auto"
    #: off on CPU; on GPUs it trades compute for memory (TRL turns it on by default)
    gradient_checkpointing: bool = False
    #: "auto" = bf16 when dtype resolves to bfloat16
    bf16: Any = "auto"
    #: the global step counter k starts here (stage visual: stage text's last k, read from init_from)
    step_offset: Any = "auto"
    #: run on CPU even when a GPU is present (tests)
    use_cpu: bool = False
    dataloader_num_workers: int = 0
    report_to: str = "none"
    #: SFT/DPO max sequence length (prompt + report tokens)
    max_length: int = 1024


@dataclass
class GrpoSection:
    #: group size G (paper silent): TRL's default 8; 8 prompts x 8 = 64 completions per step
    num_generations: int = 8
    #: β of Eq. 10 (paper: "KL regularization", value not given): DeepSeekMath's GRPO value 0.04
    beta: float = 0.04
    #: clip ε of Eq. 10 (paper silent): PPO/GRPO's standard 0.2
    epsilon: float = 0.2
    #: Eq. 10 is per-sequence token mean then group mean: TRL's "grpo" (TRL's own default is "dapo")
    loss_type: str = "grpo"
    #: "rank" = RankNorm (Eq. 9, VALOR); "trl" = TRL's group mean/std (plain GRPO baseline)
    advantage: str = "rank"
    #: policy updates per generation batch: 1 = on-policy, as Algorithm 1 (one update per minibatch)
    num_iterations: int = 1
    #: sampling temperature for the G rollouts (TRL default)
    temperature: float = 1.0
    top_p: float = 1.0
    #: reports: IU-Xray/MIMIC findings+impression fit in 256 tokens with tags (paper silent)
    max_completion_length: int = 256
    #: prompt tokens incl. image tokens; checked once on the prompt (TRL 1.16 does not truncate prompts)
    max_prompt_length: int = 2048
    #: θ_ref of Eq. 10. "auto": the SFT model, fixed before both stages as in Algorithm 1 (LoRA
    #: stages: the start model with adapters off; stage visual: found via valor_state.json);
    #: "start": the model this stage starts from; or a model folder (stage visual only)
    ref_model: str = "auto"
    #: vLLM generation through TRL when installed (scale-out); "colocate" or "server"
    use_vllm: bool = False
    vllm_mode: str = "colocate"


#: VALOR's constants a config sets, flat in its ``rewards`` section (``rewards.k_clin=5``). They are
#: fields of :class:`radeval.rewards.valor.ValorConfig`, which owns their defaults (documented
#: there: Eq. 3 λ_lex = λ_sem = 0.5, Eq. 4 λ_cx = λ_rg = 0.5, Eq. 5 λ_clin = 1 every k_clin = 10
#: updates, Eq. 8 λ_vis = 0.5, the metric of each term) and their checks. ``step_offset`` is
#: ``train.step_offset``; the reference column is fixed by the trainers' datasets.
VALOR_KEYS = (
    "lambda_lex",
    "lambda_sem",
    "lambda_cx",
    "lambda_rg",
    "lambda_clin",
    "k_clin",
    "lambda_vis",
    "bleu4",
    "rouge_l",
    "bertscore",
    "chexbert",
    "radgraph",
    "metric_options",
)


@dataclass
class RewardsSection:
    #: VALOR's constants (the keys in VALOR_KEYS), held as the reward layer's own ValorConfig
    valor: ValorConfig = field(default_factory=ValorConfig)
    #: weight of the format reward, added to R_text in both stages (paper gives no weight)
    format_weight: float = 1.0
    #: stage visual: the frozen expert's raw image–report similarity S_i (Eq. 6), as
    #: "metric:<registry name>[:<key>]" or an import path "pkg.module:callable"
    visual_reward: str | None = None
    #: keyword arguments: when given, the import path names a factory called with them
    visual_reward_kwargs: dict[str, Any] | None = None
    #: clinical injection on (stages text/visual); the plain GRPO baseline turns it off
    clinical: bool = True

    def __getattr__(self, name: str) -> Any:
        # rewards.k_clin etc. read through to the ValorConfig (one definition of each constant)
        if name in VALOR_KEYS and "valor" in self.__dict__:
            return getattr(self.__dict__["valor"], name)
        raise AttributeError(name)


def _build_valor(data: dict[str, Any], prefix: str) -> ValorConfig:
    """The rewards section's VALOR keys → ValorConfig (types coerced here, values checked there)."""
    hints = get_type_hints(ValorConfig)
    kwargs = {k: _coerce(f"{prefix}.{k}", hints[k], v) for k, v in data.items()}
    try:
        return ValorConfig(**kwargs)
    except ConfigError as exc:  # ValorConfig names the constant; say which section it lives in
        raise ConfigError(f"{prefix}: {exc}") from None


@dataclass
class DpoSection:
    #: DPO β (Rafailov et al.'s and TRL's default 0.1; paper silent)
    beta: float = 0.1
    loss_type: str = "sigmoid"


@dataclass
class GenerateSection:
    #: greedy decoding for evaluation (reproducible)
    do_sample: bool = False
    max_new_tokens: int = 256
    batch_size: int = 8
    #: where `generate` writes the JSONL `radeval score` reads (None = <output_dir>/predictions-<split>.jsonl)
    output: str | None = None


@dataclass
class StageConfig:
    stage: str = "text"
    model: ModelSection = field(default_factory=ModelSection)
    lora: LoraSection = field(default_factory=LoraSection)
    data: DataSection = field(default_factory=DataSection)
    train: TrainSection = field(default_factory=TrainSection)
    grpo: GrpoSection = field(default_factory=GrpoSection)
    rewards: RewardsSection = field(default_factory=RewardsSection)
    dpo: DpoSection = field(default_factory=DpoSection)
    generate: GenerateSection = field(default_factory=GenerateSection)

    # ----- derived settings -------------------------------------------------------------------

    def valor_config(self, step_offset: int = 0):
        """The rewards' :class:`radeval.rewards.ValorConfig` (clinical off → λ_clin = 0)."""
        r = self.rewards
        if r.clinical:
            return dataclasses.replace(r.valor, step_offset=step_offset)
        # clinical off (plain GRPO): zero every clinical weight so no CheXbert/RadGraph model loads
        return dataclasses.replace(r.valor, step_offset=step_offset, lambda_cx=0.0, lambda_rg=0.0, lambda_clin=0.0)

    def world_size(self) -> int:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))

    def grad_accum(self) -> int:
        """Gradient accumulation so one optimizer step sees ``batch_size`` prompts (x G for GRPO)."""
        per_step = self.train.batch_size * (self.grpo.num_generations if self.is_grpo else 1)
        per_pass = self.train.per_device_batch_size * self.world_size()
        if per_step % per_pass:
            what = "batch_size x grpo.num_generations" if self.is_grpo else "batch_size"
            raise ConfigError(
                f"train.per_device_batch_size: {what} = {per_step} is not a multiple of "
                f"per_device_batch_size x processes = {per_pass}"
            )
        return per_step // per_pass

    @property
    def is_grpo(self) -> bool:
        return self.stage in ("text", "visual", "grpo")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ----- stage defaults -----------------------------------------------------------------------------

#: what each stage changes from the dataclass defaults (applied before the file and overrides)
STAGE_DEFAULTS: dict[str, dict[str, Any]] = {
    # SFT warm-up: LR for LoRA SFT (paper's 1e-6 is the GRPO LR; its SFT LR is not given)
    "sft": {"train": {"learning_rate": 2e-5, "output_dir": "runs/valor-sft"}},
    "text": {"train": {"output_dir": "runs/valor-text"}},
    "visual": {"train": {"output_dir": "runs/valor-visual"}},
    "dpo": {"train": {"learning_rate": 1e-6, "output_dir": "runs/dpo"}},
    # the paper's plain GRPO baseline: TRL advantages, no clinical injection
    "grpo": {"grpo": {"advantage": "trl"}, "rewards": {"clinical": False}, "train": {"output_dir": "runs/grpo"}},
}


# ----- loading ------------------------------------------------------------------------------------


def _read_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            try:
                import tomllib
            except ModuleNotFoundError:  # Python 3.10
                import tomli as tomllib  # type: ignore[no-redef]
            data = tomllib.loads(text)
        elif suffix in (".yaml", ".yml", ".json"):
            import yaml

            data = yaml.safe_load(text)
        else:
            raise ConfigError(f"config file {str(path)!r}: expected .yaml, .yml, .toml or .json")
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"config file {str(path)!r} does not parse: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping of sections")
    return data


def parse_override(item: str) -> tuple[list[str], Any]:
    """``train.learning_rate=1e-5`` → (["train", "learning_rate"], 1e-5); values parse as YAML."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key or any(not p for p in key.split(".")):
        raise ConfigError(f"bad override {item!r}: expected section.key=value, e.g. train.learning_rate=1e-5")
    import yaml

    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except Exception:
        value = raw
    return key.split("."), value


def _deep_set(d: dict[str, Any], path: list[str], value: Any) -> None:
    for p in path[:-1]:
        nxt = d.setdefault(p, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"override {'.'.join(path)}: {p!r} is not a section")
        d = nxt
    d[path[-1]] = value


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k not in ("metric_options", "visual_reward_kwargs"):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def _coerce(name: str, tp: Any, value: Any) -> Any:
    """Check/convert one value against its annotation; ConfigError names the field."""
    if tp is Any:
        return value
    origin = get_origin(tp)
    args = get_args(tp)
    if origin is not None and type(None) in args:  # Optional[X]
        if value is None:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(name, inner[0], value)
    if origin is list:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name} must be a list, got {value!r}")
        return [_coerce(f"{name}[{i}]", args[0] if args else Any, v) for i, v in enumerate(value)]
    if origin is dict:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                raise ConfigError(f"{name} must be a mapping, got {value!r}") from None
        if not isinstance(value, dict):
            raise ConfigError(f"{name} must be a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    if tp is int:
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or (isinstance(value, float) and not value.is_integer())
        ):
            raise ConfigError(f"{name} must be an integer, got {value!r}")
        return int(value)
    if tp is float:
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise ConfigError(f"{name} must be a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{name} must be a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return str(value)
            raise ConfigError(f"{name} must be a string, got {value!r}")
        return value
    return value


def _build(cls: type, data: dict[str, Any], prefix: str) -> Any:
    hints = get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    valor = None
    if cls is RewardsSection:
        # VALOR's constants are flat keys of this section, built into the reward layer's ValorConfig
        known = (known - {"valor"}) | set(VALOR_KEYS)
        valor = _build_valor({k: data[k] for k in VALOR_KEYS if k in data}, prefix)
        data = {k: v for k, v in data.items() if k not in VALOR_KEYS}
    odd = [k for k in data if not isinstance(k, str)]
    if odd:  # YAML allows null/number/bool keys ("? :", "1: x"); a setting name is a string
        where = f"section {prefix!r}" if prefix else "the top level"
        raise ConfigError(f"setting names must be strings; got {odd!r} in {where}")
    unknown = sorted(set(data) - known)
    if unknown:
        where = f"section {prefix!r}" if prefix else "the top level"
        raise ConfigError(
            f"unknown setting(s) {[f'{prefix}.{u}' if prefix else u for u in unknown]} in {where}; "
            f"known: {sorted(known)}"
        )
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        name = f"{prefix}.{f.name}" if prefix else f.name
        tp = hints[f.name]
        value = data[f.name]
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, dict):
                raise ConfigError(f"{name} must be a section (mapping), got {value!r}")
            kwargs[f.name] = _build(tp, value, name)
        else:
            kwargs[f.name] = _coerce(name, tp, value)
    if valor is not None:
        kwargs["valor"] = valor
    return cls(**kwargs)


def load_config(
    path: str | os.PathLike[str] | None = None,
    overrides: list[str] | None = None,
    *,
    stage: str | None = None,
) -> StageConfig:
    """Read a stage config: stage defaults < file < ``key=value`` overrides; validated.

    ``stage`` (the CLI's ``--stage``) wins over the file's ``stage``; a file naming another stage
    is an error, so a visual config is never run as stage text by mistake.
    """
    data = _read_file(Path(path)) if path is not None else {}
    for item in overrides or []:
        keys, value = parse_override(item)
        _deep_set(data, keys, value)
    file_stage = data.get("stage")
    if stage is not None and file_stage is not None and file_stage != stage:
        raise ConfigError(f"stage: the config file is for stage {file_stage!r} but stage {stage!r} was asked for")
    chosen = stage or file_stage or "text"
    if chosen not in STAGES:
        raise ConfigError(f"stage must be one of {list(STAGES)}, got {chosen!r}")
    merged = _merge(STAGE_DEFAULTS[chosen], {k: v for k, v in data.items() if k != "stage"})
    merged["stage"] = chosen
    cfg = _build(StageConfig, merged, "")
    validate(cfg)
    return cfg


def _positive(name: str, v: float, *, allow_zero: bool = False) -> None:
    if v < 0 or (v == 0 and not allow_zero):
        raise ConfigError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {v!r}")


def validate(cfg: StageConfig) -> None:
    """Cross-field checks; raises ConfigError naming the field."""
    from trainers.models import FAMILIES

    if cfg.model.family != "auto" and cfg.model.family not in FAMILIES:
        raise ConfigError(f"model.family must be 'auto' or one of {sorted(FAMILIES)}, got {cfg.model.family!r}")
    if cfg.model.dtype not in ("auto", "float32", "bfloat16", "float16"):
        raise ConfigError(f"model.dtype must be auto, float32, bfloat16 or float16, got {cfg.model.dtype!r}")
    if not cfg.model.name_or_path:
        raise ConfigError("model.name_or_path is empty")
    for name in ("max_pixels", "min_pixels"):
        v = getattr(cfg.model, name)
        if v is not None:
            _positive(f"model.{name}", v)
    if cfg.model.min_pixels and cfg.model.max_pixels and cfg.model.min_pixels > cfg.model.max_pixels:
        raise ConfigError(
            f"model.min_pixels ({cfg.model.min_pixels}) is above model.max_pixels ({cfg.model.max_pixels})"
        )
    _positive("lora.r", cfg.lora.r)
    _positive("lora.alpha", cfg.lora.alpha)
    if not 0 <= cfg.lora.dropout < 1:
        raise ConfigError(f"lora.dropout must be in [0, 1), got {cfg.lora.dropout!r}")
    if not cfg.lora.target_modules:
        raise ConfigError("lora.target_modules is empty")
    if cfg.data.format not in ("r2gen", "jsonl", "hf"):
        raise ConfigError(f"data.format must be r2gen, jsonl or hf, got {cfg.data.format!r}")
    _positive("data.max_images", cfg.data.max_images)
    if cfg.data.max_samples is not None:
        _positive("data.max_samples", cfg.data.max_samples)
    if not cfg.data.prompt.strip():
        raise ConfigError("data.prompt is empty")
    t = cfg.train
    _positive("train.batch_size", t.batch_size)
    _positive("train.per_device_batch_size", t.per_device_batch_size)
    _positive("train.learning_rate", t.learning_rate)
    _positive("train.epochs", t.epochs)
    if t.max_steps != -1:
        _positive("train.max_steps", t.max_steps)
    _positive("train.save_steps", t.save_steps, allow_zero=True)
    _positive("train.logging_steps", t.logging_steps)
    _positive("train.max_length", t.max_length)
    if not (isinstance(t.resume, bool) or t.resume == "auto" or isinstance(t.resume, str)):
        raise ConfigError(f"train.resume must be auto, true, false or a checkpoint path, got {t.resume!r}")
    if not (
        t.step_offset == "auto"
        or (isinstance(t.step_offset, int) and not isinstance(t.step_offset, bool) and t.step_offset >= 0)
    ):
        raise ConfigError(f"train.step_offset must be 'auto' or an integer >= 0, got {t.step_offset!r}")
    if t.bf16 not in ("auto", True, False):
        raise ConfigError(f"train.bf16 must be auto, true or false, got {t.bf16!r}")
    g = cfg.grpo
    if g.num_generations < 2:
        raise ConfigError(f"grpo.num_generations must be >= 2 (a group needs 2 to rank), got {g.num_generations}")
    _positive("grpo.beta", g.beta, allow_zero=True)
    _positive("grpo.epsilon", g.epsilon)
    if g.advantage not in ("rank", "trl"):
        raise ConfigError(f"grpo.advantage must be 'rank' (RankNorm, Eq. 9) or 'trl', got {g.advantage!r}")
    if g.loss_type not in ("grpo", "bnpo", "dr_grpo", "dapo"):
        raise ConfigError(f"grpo.loss_type must be grpo, bnpo, dr_grpo or dapo, got {g.loss_type!r}")
    _positive("grpo.num_iterations", g.num_iterations)
    _positive("grpo.temperature", g.temperature)
    if not 0 < g.top_p <= 1:
        raise ConfigError(f"grpo.top_p must be in (0, 1], got {g.top_p!r}")
    _positive("grpo.max_completion_length", g.max_completion_length)
    _positive("grpo.max_prompt_length", g.max_prompt_length)
    if g.ref_model not in ("auto", "start") and cfg.stage != "visual":
        raise ConfigError(
            "grpo.ref_model: only stage visual takes a separate reference model; LoRA stages use their "
            "start model with the adapter disabled (set model.init_from instead)"
        )
    if g.vllm_mode not in ("colocate", "server"):
        raise ConfigError(f"grpo.vllm_mode must be colocate or server, got {g.vllm_mode!r}")
    r = cfg.rewards
    _positive("rewards.format_weight", r.format_weight, allow_zero=True)
    try:
        cfg.valor_config()
    except ConfigError as exc:  # ValorConfig names the constant; say which section it lives in
        raise ConfigError(f"rewards: {exc}") from None
    if cfg.stage == "visual":
        if not r.visual_reward:
            raise ConfigError(
                "rewards.visual_reward: stage visual needs the frozen expert's similarity reward, "
                "'metric:<name>[:<key>]' or 'package.module:callable' returning raw similarities S_i"
            )
        if g.advantage != "rank":
            raise ConfigError("grpo.advantage: stage visual ranks similarities (Eq. 7) and needs 'rank'")
    if cfg.stage == "dpo" and not cfg.data.pairs_path:
        raise ConfigError("data.pairs_path: stage dpo needs a JSONL of preference pairs (chosen/rejected)")
    _positive("dpo.beta", cfg.dpo.beta)
    _positive("generate.max_new_tokens", cfg.generate.max_new_tokens)
    _positive("generate.batch_size", cfg.generate.batch_size)
    if cfg.is_grpo:
        cfg.grad_accum()
