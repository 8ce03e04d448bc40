"""Pin the CPU kernels the study's float math runs on, so a rerun on another x86 machine, Intel or
AMD, gives the same numbers, and describe them for ``results/`` provenance.

Why: torch picks its CPU kernels by what the processor offers (AVX-512 on one machine, AVX2 on
another) and MKL picks its code path by processor vendor and model, for its GEMMs and for its vector
math (torch's ``exp``, ``log``, ``sqrt``, ``erf`` … on tensors). Each choice rounds in its own way, so the
same seeded run differs in the last bits from one machine to the next; SGD then amplifies those bits
over a thousand SFT steps (a rerun of the study on a different Xeon than the one that made ``results/``
matched the validation loss to 4 decimals for 75 steps, then drifted). Fixing the thread count (the
study's ``threads``) makes a run repeat on one machine; these settings make it repeat across machines:

* ``ATEN_CPU_CAPABILITY=avx2`` — torch's own vectorised kernels (reductions, softmax, norms, the fused
  AdamW) use the AVX2 code path on every machine that has AVX2;
* ``MKL_CBWR=COMPATIBLE,STRICT`` — MKL's conditional numerical reproducibility on its SSE2 branch
  without the approximate ``rcpps``/``rsqrtps`` instructions, the one branch MKL documents for
  non-Intel processors (STRICT: independent of memory alignment too). The AVX2 branch is not enough:
  MKL does not take it on AMD, and there its GEMMs and vector ``exp``/``log`` differ from an Intel
  machine's (``numerics_check``'s GRPO steps: an AMD EPYC, real or emulated, against an emulated
  Intel Haswell). With COMPATIBLE a real AMD EPYC (Zen 3), an emulated EPYC-Rome and an emulated
  Haswell give one fingerprint (``check_cross_cpu.sh``). MKL's vector ``sqrt`` still differs between
  processors on this branch; the study never calls it (transformers' default optimizer is the fused
  AdamW, whose square root is torch's own AVX2 kernel);
* ``ONEDNN_MAX_CPU_ISA=AVX2`` — oneDNN (convolutions) capped at the same instruction set.

They are environment variables the libraries read once, when torch loads, so ``pin_cpu_kernels`` must
run before the first ``import torch`` of the process (the study calls it at import; worker processes
inherit the environment). Each is a default: a variable already set in the environment wins (e.g.
``MKL_CBWR=AUTO``), ``RADEVAL_CPU_KERNELS=native`` leaves every library its own choice (faster; the
numbers then depend on the machine), and ``describe`` records what the run actually used.
"""

from __future__ import annotations

import os
import platform
from typing import Any

PINNED = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_CBWR": "COMPATIBLE,STRICT",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
}


def pin_cpu_kernels() -> None:
    """Set the reproducibility defaults above, leaving any value the user already set."""
    if os.environ.get("RADEVAL_CPU_KERNELS") == "native":
        return
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return  # the variables name x86 instruction sets; other machines keep their defaults
    for key, value in PINNED.items():
        os.environ.setdefault(key, value)


def cpuinfo() -> dict[str, str]:
    """The first processor's fields in ``/proc/cpuinfo`` (empty where that file is missing)."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if not line.strip():
                    break  # the first processor's block ends here
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    return fields


def cpu_model() -> str | None:
    """The processor's model name, with vendor, family and model numbers: under a hypervisor the name
    alone can be as vague as "Intel(R) Xeon(R) Processor"."""
    info = cpuinfo()
    if not info.get("model name"):
        return None
    ids = ", ".join(f"{k} {info[k]}" for k in ("vendor_id", "cpu family", "model") if k in info)
    return f"{info['model name']} ({ids})" if ids else info["model name"]


def describe() -> dict[str, Any]:
    """What this process's float math ran on: for provenance (call after torch is imported)."""
    import torch

    return {
        "cpu_model": cpu_model(),
        "machine": platform.machine(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "env": {key: os.environ.get(key) for key in (*PINNED, "RADEVAL_CPU_KERNELS")},
    }
