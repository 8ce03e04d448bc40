"""Peak RSS before the first training step vs the number of image records (issue 13, streaming data).

Writes N distinct 512x512 PNG files (one image's bytes, N paths) and a JSONL of N records into a
temp folder, then, in a fresh process per (stage, N), builds the stage's trainer on the tiny
Qwen2.5-VL and stops at ``on_train_begin`` (data loader built, nothing trained), reporting the
process's peak RSS (``ru_maxrss``). Images are decoded per batch, so the difference between
1k and 50k records must stay far below the 100 MB the issue allows.

    PYTHONPATH=$PWD HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 python benchmarks/bench_trainer_data_memory.py [--sizes 1000 50000]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


class _Stop(Exception):
    pass


def _child(stage: str, model_dir: str, data: str, out: str) -> None:
    """Build the stage's trainer and stop before the first step; print peak RSS (MB)."""
    import torch
    from transformers import TrainerCallback

    import trainers
    from trainers.config import load_config

    torch.set_num_threads(1)
    cfg_dir = Path(trainers.__file__).parent / "configs" / "tiny"
    rss_at: dict = {}

    class StopAtBegin(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            rss_at["mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            raise _Stop

    cfg = load_config(
        cfg_dir / f"{stage}.yaml",
        [
            f"model.name_or_path={model_dir}",
            f"data.path={data}",
            f"train.output_dir={out}",
            "train.max_steps=1",
            "model.max_pixels=3136",
        ],
    )
    from trainers.stages import run_stage

    t = time.perf_counter()
    try:
        run_stage(cfg, callbacks=[StopAtBegin()])
    except _Stop:
        pass
    print(json.dumps({"peak_rss_mb": rss_at["mb"], "setup_s": time.perf_counter() - t}))


def _write_records(root: Path, n: int, png: bytes) -> Path:
    img_dir = root / f"images-{n}"
    img_dir.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        name = f"images-{n}/{i:06d}.png"
        (root / name).write_bytes(png)  # distinct files, one content
        lines.append(json.dumps({"id": f"r{i:06d}", "image": name, "report": f"No acute disease. Study {i}."}))
    path = root / f"data-{n}.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _png_512() -> bytes:
    from PIL import Image

    # a smooth radial gradient: a chest-X-ray-like grey image that compresses to a few KB
    img = Image.radial_gradient("L").resize((512, 512))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 50000])
    ap.add_argument("--stages", nargs="+", default=["sft", "text"])
    ap.add_argument("--child", nargs=4, metavar=("STAGE", "MODEL", "DATA", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(*args.child)
        return 0
    from trainers.tiny import build_tiny_qwen25vl

    root = Path(tempfile.mkdtemp(prefix="radeval-datamem-"))
    try:
        model_dir = build_tiny_qwen25vl(root / "model")
        png = _png_512()
        rows = []
        for n in args.sizes:
            t = time.perf_counter()
            data = _write_records(root, n, png)
            write_s = time.perf_counter() - t
            for stage in args.stages:
                proc = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--child",
                        stage,
                        str(model_dir),
                        str(data),
                        str(root / f"out-{stage}-{n}"),
                    ],
                    capture_output=True,
                    text=True,
                    env={**os.environ, "TOKENIZERS_PARALLELISM": "false"},
                )
                last = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
                if proc.returncode or not last:
                    print(proc.stderr[-3000:], file=sys.stderr)
                    return 1
                res = json.loads(last[-1])
                rows.append((stage, n, res["peak_rss_mb"], res["setup_s"], write_s))
        print(f"\nPNG: 512x512, {len(png)} bytes each, distinct files\n")
        print("| stage | records | peak RSS before step 1 (MB) | setup (s) |\n|---|---:|---:|---:|")
        for stage, n, mb, setup, _ in rows:
            print(f"| {stage} | {n} | {mb:.0f} | {setup:.1f} |")
        for stage in args.stages:
            mbs = [mb for s, _, mb, _, _ in rows if s == stage]
            print(f"{stage}: difference largest - smallest = {max(mbs) - min(mbs):.0f} MB")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
