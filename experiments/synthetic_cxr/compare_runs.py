"""Do two study runs agree? Compares every per-seed number of the seeds both ran.

    python -m experiments.synthetic_cxr.compare_runs results/results.json RERUN_OUT/results.json

Checks, per common seed: SFT steps and validation history, the pre-flight summary, each arm's
training-reward curve summary (per-seed start/end/rise), the own-reward probe (per-seed
start/end/change) and every per-seed metric value, at the
precision ``results.json`` prints (4 decimals). A rerun of a subset of seeds (``--seeds 0``)
can therefore be checked against the full run: seeds are independent processes.

Validation histories are compared at the steps both runs evaluated (a run may evaluate its SFT
anneal more sparsely: the schedule does not change training). Numbers only one run has (an arm the
other did not train, e.g. a diagnostic arm, and its comparisons) are listed as not compared, never
counted as agreeing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def per_seed_numbers(res: dict[str, Any]) -> dict[int, dict[str, Any]]:
    seeds = res["seeds_ok"]
    out: dict[int, dict[str, Any]] = {s: {} for s in seeds}
    timing = {"wall_s", "cpu_s"}  # machine-dependent, not results
    for s in seeds:
        sft = dict(res["sft_plateau"].get(str(s)) or {})
        for curve in ("val_f1", "val_nll"):
            for step, v in sft.pop(curve, None) or []:
                out[s][f"sft:{curve}@{step}"] = v
        out[s]["sft"] = sft
        pf = res["preflight"].get(str(s))
        out[s]["preflight"] = {k: v for k, v in pf.items() if k not in timing} if pf else pf
    for arm, t in res["training_reward"]["arms"].items():
        for key in ("start", "end", "rise"):
            for s, v in zip(seeds, t[key].get("per_seed") or []):
                out[s][f"train:{arm}:{key}"] = v
    for arm, t in ((res.get("probe") or {}).get("arms") or {}).items():
        for key in ("start", "end", "change"):
            for s, v in zip(seeds, t[key].get("per_seed") or []):
                out[s][f"probe:{arm}:{key}"] = round(v, 4)
    for metric, m in res["metrics"].items():
        if metric == "per_finding_f1":
            continue
        for name, d in {**m["systems"], **m["differences"]}.items():
            for s, v in zip(seeds, d["per_seed"]):
                out[s][f"{metric}:{name}"] = round(v, 4) if isinstance(v, float) else v
    return out


def compare(a: dict, b: dict) -> tuple[list[str], int, list[str]]:
    """(differences, numbers compared, keys only one run has) over the seeds both ran."""
    pa, pb = per_seed_numbers(a), per_seed_numbers(b)
    diffs, only = [], set()
    n = 0
    common = sorted(set(pa) & set(pb))
    for s in common:
        for k in sorted(set(pa[s]) | set(pb[s])):
            if k not in pa[s] or k not in pb[s]:
                only.add(("A" if k in pa[s] else "B") + ": " + (k.split("@")[0] + " at some steps" if "@" in k else k))
                continue
            n += 1
            if pa[s][k] != pb[s][k]:
                diffs.append(f"seed {s} {k}: {pa[s][k]!r} != {pb[s][k]!r}")
    if not common:
        diffs.append("no seed in common")
    return diffs, n, sorted(only)


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 2:
        print(__doc__)
        return 2
    a, b = (json.loads(Path(p).read_text(encoding="utf-8")) for p in args)
    diffs, n, only = compare(a, b)
    common = sorted(set(a["seeds_ok"]) & set(b["seeds_ok"]))
    if only:
        print(f"not compared (in one run only; A = {args[0]}, B = {args[1]}): " + "; ".join(only))
    if diffs:
        print(f"{len(diffs)} differences among {n} per-seed numbers (seeds compared: {common}):")
        print("\n".join(diffs[:50]))
        return 1
    print(f"identical: {n} per-seed numbers over seeds {common}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
