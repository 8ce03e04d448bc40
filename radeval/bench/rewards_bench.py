"""The reward benchmark: how each metric / reward reacts to paraphrases, clinical errors and hacks.

For every reference report we build every perturbation that applies (radeval.bench.perturb),
wrap it as a policy completion (``<report>…</report>``, except the tag-hack kinds), and score it
against the *unperturbed* reference with each reward callable — the exact objects a GRPO run
would use. Numbers:

* mean score per perturbation kind;
* **clinical sensitivity**: over all (error, paraphrase) pairs of the same reference, the share
  where the error scores strictly lower (ties count half). 1.0 = always prefers the paraphrase;
  0.5 = cannot tell; also per error kind;
* **hack exposure** per degenerate kind: its mean score divided by the paraphrases' mean score
  over the same references (1.0 = pays a hack as much as a faithful paraphrase);
* 95% bootstrap CIs for both, resampling references (B = 1000, seed 0).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from radeval.bench.perturb import DEFAULT_PROMPT, KINDS, perturb, wrap
from radeval.errors import ConfigError, DependencyError, InputError, RadevalError

DEFAULT_REPORTS = Path(__file__).resolve().parent.parent / "resources" / "bench_reports.jsonl"
PARAPHRASE = [k.name for k in KINDS if k.family == "paraphrase"]
ERRORS = [k.name for k in KINDS if k.family == "error"]
DEGENERATE = [k.name for k in KINDS if k.family == "degenerate"]

#: rewards benchmarked by default: (label, how to build it). Each is skipped with its reason
#: if its extra / Java / model is missing on this machine (listed in the output).
DEFAULT_REWARDS = (
    "bleu_4",
    "bleu_mean",
    "rouge_l",
    "rouge_l_stemmed",
    "meteor",
    "bertscore_minilm_f1",
    "chexpert_rules_f1_sample",
    "valor_ver_offline",
    "valor_text_offline",
    "valor_format",
)


def read_reports(path: str | Path | None) -> list[tuple[str, str]]:
    """(id, reference) pairs from a JSONL file with ``reference`` (or ``report``) per line."""
    path = Path(path) if path else DEFAULT_REPORTS
    if not path.exists():
        raise InputError(f"{path}: no such file")
    out = []
    seen = set()
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"{path}:{lineno}: malformed JSON ({e.msg})") from e
        text = obj.get("reference", obj.get("report")) if isinstance(obj, dict) else None
        if not isinstance(text, str) or not text.strip():
            raise InputError(f"{path}:{lineno}: needs a non-empty string field 'reference' (or 'report')")
        rid = str(obj.get("id", lineno))
        if rid in seen:
            raise InputError(f"{path}:{lineno}: duplicate id {rid!r}")
        seen.add(rid)
        out.append((rid, text))
    if len(out) < 2:
        raise InputError(f"{path}: the benchmark needs at least 2 reference reports")
    return out


def _valor_config():
    from radeval.rewards.valor import ValorConfig

    # offline stand-ins, named in the output: MiniLM BERTScore for distilbert's, the rule-based
    # CheXpert labeler for CheXbert, and no RadGraph term (its weights are not on PyPI)
    return ValorConfig(
        bertscore="bertscore_minilm:bertscore_minilm_f1",
        chexbert="chexpert_rules:chexpert_rules_f1_sample",
        lambda_cx=1.0,
        lambda_rg=0.0,
        k_clin=1,
    )


#: VALOR composites: label -> (which composite, offline stand-ins?). The ``_offline`` variants
#: substitute models (different numbers), so they carry their own names; ``valor_ver`` and
#: ``valor_text`` are VALOR's own definition and need its models (preflight names them).
VALOR_LABELS = {
    "valor_ver": ("ver", False),
    "valor_text": ("text", False),
    "valor_ver_offline": ("ver", True),
    "valor_text_offline": ("text", True),
}


def _valor(label: str):
    from radeval.rewards.valor import ValorConfig

    which, offline = VALOR_LABELS[label]
    # stage-text composite on a clinical step (k_clin=1) so R_clin is always part of the score
    return which, (_valor_config() if offline else ValorConfig(k_clin=1))


def reward_metrics(labels: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Metric -> options every reward label needs (for the model preflight)."""
    from radeval.preflight import _metric_of, valor_metrics

    out: dict[str, dict[str, Any]] = {}
    for label in labels:
        if label in VALOR_LABELS:
            which, config = _valor(label)
            for m, o in valor_metrics(config, which).items():
                out.setdefault(m, o)
        elif label != "valor_format":
            out.setdefault(_metric_of(label), {})
    return out


def build_reward(label: str) -> Callable[..., list[float | None]]:
    """A reward callable for a metric key or a VALOR composite name."""
    if label in VALOR_LABELS:
        from radeval.rewards.valor import make_text_reward, make_ver_reward

        which, config = _valor(label)
        make = make_ver_reward if which == "ver" else make_text_reward
        return make(config, name=label)
    if label == "valor_format":
        from radeval.rewards.extract import format_reward

        return format_reward
    from radeval.rewards.trl import make_reward

    return make_reward(label)


REWARD_NOTES = {
    "valor_ver": "VALOR R_ver (Eq. 3) = 0.5·(BLEU-4 + ROUGE-L) + 0.5·BERTScore (distilbert, rescaled)",
    "valor_text": "VALOR R_text (Eq. 5) on a clinical step: R_ver + 1.0·R_clin, R_clin = 0.5·CheXbert F1 + 0.5·RadGraph F1",
    "valor_ver_offline": "NOT VALOR's R_ver: BERTScore term on the offline MiniLM model instead of distilbert (different numbers)",
    "valor_text_offline": "NOT VALOR's R_text: MiniLM BERTScore, and R_clin = rule-based CheXpert per-report F1 instead of CheXbert + RadGraph (no weights offline)",
    "valor_format": "VALOR format reward: 1 iff exactly one <report>…</report> span",
}


@dataclass
class BenchResult:
    reports: int
    rewards: list[str]
    skipped_rewards: dict[str, str]
    applicable: dict[str, int]
    scores: dict[str, dict[str, list[float | None]]]  # reward -> kind -> per-reference score
    mean: dict[str, dict[str, float | None]] = field(default_factory=dict)
    sensitivity: dict[str, dict[str, Any]] = field(default_factory=dict)
    sensitivity_by_error: dict[str, dict[str, float | None]] = field(default_factory=dict)
    exposure: dict[str, dict[str, Any]] = field(default_factory=dict)
    human: dict[str, Any] | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "reports": self.reports,
            "rewards": self.rewards,
            "skipped_rewards": self.skipped_rewards,
            "notes": {r: REWARD_NOTES[r] for r in self.rewards if r in REWARD_NOTES},
            "kinds": [{"name": k.name, "family": k.family, "effect": k.effect, "applicable": self.applicable[k.name]} for k in KINDS],
            "mean": self.mean,
            "clinical_sensitivity": self.sensitivity,
            "sensitivity_by_error": self.sensitivity_by_error,
            "hack_exposure": self.exposure,
            "human_agreement": self.human,
            "settings": self.settings,
            "scores": self.scores,
        }


def _nanmean(v: np.ndarray) -> float | None:
    v = v[~np.isnan(v)]
    return float(v.mean()) if len(v) else None


def _sensitivity_rows(scores: dict[str, np.ndarray], errors: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per reference: (wins, pairs) over its applicable (error, paraphrase) pairs; ties = 1/2."""
    n = len(next(iter(scores.values())))
    wins = np.zeros(n)
    pairs = np.zeros(n)
    for e in errors:
        for p in PARAPHRASE:
            se, sp = scores[e], scores[p]
            ok = ~np.isnan(se) & ~np.isnan(sp)
            wins += np.where(ok, (se < sp) + 0.5 * (se == sp), 0.0)
            pairs += ok
    return wins, pairs


def _ratio_ci(num: np.ndarray, den: np.ndarray, b: int, seed: int) -> tuple[float | None, list[float] | None]:
    """sum(num)/sum(den) and its percentile bootstrap CI over references."""
    if den.sum() == 0:
        return None, None
    value = float(num.sum() / den.sum())
    if b <= 0 or len(num) < 2:
        return value, None
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(num), size=(b, len(num)))
    with np.errstate(invalid="ignore", divide="ignore"):
        boot = num[idx].sum(1) / den[idx].sum(1)
    boot = boot[np.isfinite(boot)]
    if not len(boot):
        return value, None
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return value, [float(lo), float(hi)]


def run_benchmark(
    reports: Sequence[tuple[str, str]],
    rewards: Sequence[str] = DEFAULT_REWARDS,
    *,
    seed: int = 0,
    bootstrap: int = 1000,
    human: str | Path | None = None,
    strict: bool = False,
) -> BenchResult:
    """Score every applicable perturbation of every report with every reward."""
    refs = [r for _, r in reports]
    n = len(refs)
    texts: dict[str, list[str | None]] = {
        k.name: [perturb(k.name, r, seed=seed, index=i) for i, r in enumerate(refs)] for k in KINDS
    }
    applicable = {k: sum(t is not None for t in v) for k, v in texts.items()}
    # one flat batch per reward: every (kind, report) completion that applies
    flat = [(k, i) for k in texts for i in range(n) if texts[k][i] is not None]
    completions = [wrap(k, texts[k][i]) for k, i in flat]
    ground_truth = [refs[i] for _, i in flat]
    prompts = [DEFAULT_PROMPT] * len(flat)

    scores: dict[str, dict[str, np.ndarray]] = {}
    skipped: dict[str, str] = {}
    for label in rewards:
        try:
            fn = build_reward(label)
            values = fn(
                prompts=prompts,
                completions=completions,
                ground_truth=ground_truth,
                trainer_state=_State(),
            )
        except (RadevalError, ImportError) as e:
            if strict:
                raise
            skipped[label] = str(e).splitlines()[0]
            continue
        table = {k: np.full(n, np.nan) for k in texts}
        for (k, i), v in zip(flat, values):
            table[k][i] = np.nan if v is None else float(v)
        scores[label] = table
    if not scores:
        raise ConfigError(f"no reward could run: {skipped}")

    result = BenchResult(
        reports=n,
        rewards=list(scores),
        skipped_rewards=skipped,
        applicable=applicable,
        scores={r: {k: [None if np.isnan(x) else float(x) for x in v] for k, v in t.items()} for r, t in scores.items()},
        settings={"seed": seed, "bootstrap": bootstrap, "ci": "percentile 95%, resampling references"},
    )
    for label, table in scores.items():
        result.mean[label] = {k: _nanmean(v) for k, v in table.items()}
        wins, pairs = _sensitivity_rows(table, ERRORS)
        value, ci = _ratio_ci(wins, pairs, bootstrap, seed)
        result.sensitivity[label] = {"value": value, "ci95": ci, "pairs": int(pairs.sum())}
        result.sensitivity_by_error[label] = {}
        for e in ERRORS:
            w, p = _sensitivity_rows(table, [e])
            result.sensitivity_by_error[label][e] = float(w.sum() / p.sum()) if p.sum() else None
        para = np.nanmean(np.stack([table[p] for p in PARAPHRASE]), axis=0)  # per-reference paraphrase mean
        result.exposure[label] = {}
        for d in DEGENERATE:
            ok = ~np.isnan(table[d]) & ~np.isnan(para)
            value, ci = _ratio_ci(np.where(ok, table[d], 0.0), np.where(ok, para, 0.0), bootstrap, seed)
            result.exposure[label][d] = {"value": value, "ci95": ci}
    if human is not None:
        result.human = human_agreement(human, [r for r in scores], bootstrap=bootstrap, seed=seed)
    return result


class _State:
    """Stands in for TRL's TrainerState: global_step 0 → k = 1, a clinical step when k_clin = 1."""

    global_step = 0


def human_agreement(path: str | Path, rewards: Sequence[str], *, bootstrap: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Kendall's tau-b of each reward against radiologist judgements of report pairs.

    File: JSONL with ``prediction``, ``reference`` and either ``errors`` (count, lower is better;
    ReXVal-style) or ``rating`` (higher is better) per line. The sign is aligned so a positive tau
    always means the reward agrees with the radiologists.
    """
    try:
        from scipy.stats import kendalltau
    except ImportError as e:  # pragma: no cover - scipy comes with the dev extra
        raise DependencyError("human agreement needs scipy: pip install scipy") from e
    path = Path(path)
    preds, refs, human = [], [], []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"{path}:{lineno}: malformed JSON ({e.msg})") from e
        if not isinstance(obj, dict) or not isinstance(obj.get("prediction"), str) or not isinstance(obj.get("reference"), str):
            raise InputError(f"{path}:{lineno}: needs string fields 'prediction' and 'reference'")
        if isinstance(obj.get("errors"), (int, float)) and not isinstance(obj.get("errors"), bool):
            human.append(-float(obj["errors"]))
        elif isinstance(obj.get("rating"), (int, float)) and not isinstance(obj.get("rating"), bool):
            human.append(float(obj["rating"]))
        else:
            raise InputError(f"{path}:{lineno}: needs a number in 'errors' (lower is better) or 'rating' (higher is better)")
        preds.append(obj["prediction"])
        refs.append(obj["reference"])
    if len(preds) < 3:
        raise InputError(f"{path}: Kendall's tau needs at least 3 judged pairs")
    h = np.array(human)
    out: dict[str, Any] = {"pairs": len(preds), "file": str(path)}
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(preds), size=(bootstrap, len(preds))) if bootstrap > 0 else None
    for label in rewards:
        fn = build_reward(label)
        s = np.array(
            [np.nan if v is None else v for v in fn(prompts=[""] * len(preds), completions=preds, ground_truth=refs, trainer_state=_State())],
            dtype=float,
        )
        tau = kendalltau(s, h).statistic
        ci = None
        if idx is not None:
            boot = np.array([kendalltau(s[row], h[row]).statistic for row in idx])
            boot = boot[np.isfinite(boot)]
            if len(boot):
                ci = [float(x) for x in np.percentile(boot, [2.5, 97.5])]
        out[label] = {"tau_b": None if not math.isfinite(tau) else float(tau), "ci95": ci}
    return out
