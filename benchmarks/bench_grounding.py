"""Grounding similarity throughput: images/s and texts/s of the frozen expert, cold vs cached.

Builds random-weight open_clip models in BiomedCLIP's layout (tests/clip_fixture.py) in a temp
directory - ``tiny`` (test ViT + 2-layer BERT) and ``base`` (BiomedCLIP's real architecture:
ViT-B/16 224 px + BERT-base, 256-token context; building it takes a while) - writes N distinct
grayscale PNGs, takes N reports from tests/report_corpus.py, and times through radeval's expert:

* load: resolve + build + load weights;
* images cold: read, hash, decode, preprocess and embed N new images (batches of --batch-size);
* images cached: the same N images again (read + sha256 + cache lookup only);
* texts cold / cached: the same for N reports;
* pairs cold: ``Grounding.values`` on N new (report, image) pairs with a fresh cache.

Run:  HF_HUB_OFFLINE=1 PYTHONPATH=. python benchmarks/bench_grounding.py [--sizes tiny,base] [-n 64]
      [--image-px 512] [--threads 2] [--device cpu] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from peers import run_and_record

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def bench_size(
    size: str, work: Path, paths: list[Path], texts: list[str], device: str, batch: int, warm: tuple
) -> dict:
    from clip_fixture import make_clip_dir

    from radeval.metrics import grounding as gr

    model_dir, build_s = _timed(lambda: make_clip_dir(work / size, size, seed=0))
    gr.clear_experts()
    metric, load_s = _timed(lambda: gr.Grounding(model=str(model_dir), device=device, batch_size=batch))
    _, load2_s = _timed(lambda: metric.expert)
    expert = metric.expert
    # one-time lazy initialisation (kernels, allocator) on inputs outside the measured set
    expert.image_features([str(p) for p in warm[0]])
    expert.text_features(list(warm[1]))
    n = len(paths)
    strs = [str(p) for p in paths]
    (_, bad), img_cold = _timed(lambda: expert.image_features(strs))
    assert not bad, bad
    _, img_hot = _timed(lambda: expert.image_features(strs))
    _, txt_cold = _timed(lambda: expert.text_features(texts))
    _, txt_hot = _timed(lambda: expert.text_features(texts))
    gr.clear_experts()
    fresh = gr.Grounding(model=str(model_dir), device=device, batch_size=batch)
    fresh.values(list(warm[1]), list(warm[1]), [str(p) for p in warm[0]])
    _, pairs_cold = _timed(lambda: fresh.values(texts, texts, strs))
    _, pairs_hot = _timed(lambda: fresh.values(texts, texts, strs))
    params = sum(p.numel() for p in expert.model.parameters())
    return {
        "size": size,
        "params_M": round(params / 1e6, 1),
        "fixture_build_s": round(build_s, 2),
        "load_s": round(load_s + load2_s, 2),
        "n": n,
        "images_per_s_cold": round(n / img_cold, 1),
        "images_per_s_cached": round(n / img_hot, 1),
        "texts_per_s_cold": round(n / txt_cold, 1),
        "texts_per_s_cached": round(n / txt_hot, 1),
        "pairs_per_s_cold": round(n / pairs_cold, 1),
        "pairs_per_s_cached": round(n / pairs_hot, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="tiny,base")
    ap.add_argument("-n", type=int, default=64, help="distinct images and reports")
    ap.add_argument("--image-px", type=int, default=512, help="side of the square test PNGs")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    import torch
    from clip_fixture import write_image
    from report_corpus import report_pairs

    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-grounding-") as tmp:
        work = Path(tmp)
        paths = [
            write_image(work / "img" / f"{i:04d}.png", seed=i, size=(args.image_px, args.image_px))
            for i in range(args.n)
        ]
        pairs = report_pairs(args.n + 2, seed=0)
        texts = [p for p, _ in pairs[2:]]
        warm = (
            [write_image(work / "warm" / f"{i}.png", seed=10_000 + i, size=(args.image_px,) * 2) for i in range(2)],
            [r for _, r in pairs[:2]],
        )
        for size in [s for s in args.sizes.split(",") if s]:
            row = bench_size(size, work, paths, texts, args.device, args.batch_size, warm)
            rows.append(row)
            print(json.dumps(row), flush=True)
    print()
    print(
        f"device={args.device} threads={torch.get_num_threads()} n={args.n} image={args.image_px}px "
        f"batch={args.batch_size}"
    )
    head = (
        "size",
        "params_M",
        "load_s",
        "images_per_s_cold",
        "images_per_s_cached",
        "texts_per_s_cold",
        "texts_per_s_cached",
        "pairs_per_s_cold",
        "pairs_per_s_cached",
    )
    print(" | ".join(head))
    for r in rows:
        print(" | ".join(str(r[h]) for h in head))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    run_and_record(main, "bench_grounding")
