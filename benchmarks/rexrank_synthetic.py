"""One ``radeval score -m rexrank`` run on synthetic checkpoints (random weights, real formats).

    PYTHONPATH=. python benchmarks/rexrank_synthetic.py [--n 200] [--workdir DIR]

Builds tiny stand-ins for every model the ReXrank preset reads (CheXbert ``chexbert.pth`` +
bert-base-uncased files in an HF-cache layout, the RadGraph archive, distilroberta, RaTEScore's
NER + BioLORD directories, a 2-layer Llama for GREEN), writes ``--n`` report pairs
(tests/report_corpus.py), and runs the real CLI with ``-m rexrank`` and the paths as ``-O``
options (RaTEScore with ``splitter=simple``: medspaCy is not installed here; GREEN with
``max_new_tokens=8``: a random Llama writes gibberish, so it scores 0 -- this run shows the
plumbing and the shared encoders, not GREEN's numbers). Afterwards it scores the same pairs in
process with ``radeval.evaluate`` and prints how many texts each shared encoder ran.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def build(work: Path) -> dict[str, Path]:
    import torch
    import transformers

    from tests import ratescore_fixture
    from tests.chexbert_fixture import make_caches
    from tests.radgraph_fixture import build_archive
    from tests.test_green import _train_tokenizer
    from tests.test_radcliq import build_tiny_roberta

    cx = make_caches(work / "chexbert", seed=0)
    rg = build_archive(work / "radgraph", seed=0, model_type="radgraph")
    rob = build_tiny_roberta(work / "distilroberta")
    rate = ratescore_fixture.build(work / "ratescore")
    green = work / "green"
    green.mkdir(parents=True, exist_ok=True)
    _train_tokenizer(green)
    tok = transformers.AutoTokenizer.from_pretrained(green)
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.eos_token_id,
    )
    transformers.LlamaForCausalLM(cfg).save_pretrained(green, safe_serialization=True)
    return {
        "hub": cx["hub"],
        "chexbert": cx["checkpoint"],
        "radgraph": rg,
        "roberta": rob,
        "ner": rate["ner"],
        "embed": rate["embed"],
        "green": green,
    }


def options(p: dict[str, Path]) -> dict[str, dict]:
    clin = {
        "radgraph_path": str(p["radgraph"]),
        "bertscore_path": str(p["roberta"]),
        "chexbert_path": str(p["chexbert"]),
    }
    return {
        "radcliq_features": {k: v for k, v in clin.items() if k != "chexbert_path"},
        "semb": {"model_path": str(p["chexbert"])},
        "radcliq": dict(clin),
        "radcliq_v0": dict(clin),
        "ratescore": {"ner_path": str(p["ner"]), "embed_path": str(p["embed"]), "splitter": "simple"},
        "green": {"model_path": str(p["green"]), "max_new_tokens": 8, "device": "cpu"},
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--workdir", default="/tmp/radeval-rexrank-synthetic")
    a = ap.parse_args()
    work = Path(a.workdir)
    paths = build(work)
    os.environ.update(HF_HUB_CACHE=str(paths["hub"]), HF_HUB_OFFLINE="1")
    os.environ.pop("RADEVAL_MODELS_DIR", None)
    from tests.report_corpus import report_pairs

    pairs = report_pairs(a.n, seed=7)
    src = work / "preds.jsonl"
    src.write_text(
        "".join(
            json.dumps({"id": f"r{i:04d}", "prediction": h, "reference": r}) + "\n" for i, (h, r) in enumerate(pairs)
        )
    )
    opts = options(paths)
    cmd = [
        sys.executable,
        "-m",
        "radeval.cli",
        "score",
        str(src),
        "-m",
        "rexrank",
        "--output",
        str(work / "out"),
        "--quiet",
    ]
    for m, o in opts.items():
        cmd += [x for k, v in o.items() for x in ("-O", f"{m}.{k}={json.dumps(v) if not isinstance(v, str) else v}")]
    t0, c0 = time.perf_counter(), os.times()
    rc = subprocess.run(cmd, env={**os.environ, "PYTHONPATH": str(ROOT)}).returncode
    c1 = os.times()
    wall = time.perf_counter() - t0
    cpu = (c1.children_user - c0.children_user) + (c1.children_system - c0.children_system)
    print(f"radeval score -m rexrank: {a.n} records, rc={rc}, wall {wall:.1f}s, cpu {cpu:.1f}s")
    summary = json.loads((work / "out" / "summary.json").read_text())
    print(json.dumps(summary.get("corpus", summary), indent=1)[:1500])

    # the same run in process, to read the shared encoders' counters
    from radeval import evaluate
    from radeval.metrics import shared
    from radeval.metrics.chexbert import clean_report

    shared.clear()
    hyps, refs = [h for h, _ in pairs], [r for _, r in pairs]
    t0 = time.perf_counter()
    evaluate(predictions=hyps, references=refs, metrics="rexrank", options=opts, bootstrap=0)
    t_in = time.perf_counter() - t0
    cxl = shared.chexbert_labeler(paths["chexbert"])
    rg = shared.radgraph_extractor("radgraph", paths["radgraph"])
    bs = shared.shared(("radcliq-bertscore", shared._path(paths["roberta"]), None, None), lambda: None)
    n_cx = len({clean_report(t) for t in hyps + refs})
    print(f"in-process evaluate(rexrank) {t_in:.1f}s; distinct texts {len(set(hyps + refs))}")
    print(f"CheXbert texts encoded {cxl.n_forward} (distinct cleaned {n_cx}; read by semb, radcliq, radcliq_v0)")
    print(f"RadGraph texts annotated {rg.n_forward} (read by radcliq_features, radcliq, radcliq_v0)")
    print(
        f"RadCliQ BERTScore texts embedded {bs.n_forward} (idf off: one engine for radcliq_features, radcliq, radcliq_v0)"
    )
    return rc


if __name__ == "__main__":
    sys.exit(main())
