"""Regenerate parity.json: the radgraph package's outputs on synthetic archives and annotations.

    PYTHONPATH=. /work/venv/bin/python tests/data/radgraph_parity/make_fixtures.py \
        /work/refvenvs/radgraph/bin/python

Builds each archive of ``CASES`` with tests/radgraph_fixture.py (seeded random weights in the
real layout), extracts it where the radgraph package looks for it, runs the package (in its
own venv: it cannot run on transformers 5) on report_pairs texts and on synthetic
annotation pairs, and stores compact results (< 1 MB). tests/test_radgraph.py rebuilds the
same archives and checks radeval against them.
"""

import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from radeval.models import safe_extract_tar
from tests.radgraph_fixture import annotation_pairs, build_archive
from tests.report_corpus import report_pairs

HERE = Path(__file__).resolve().parent
CASES = [
    # name, build_archive kwargs, number of report pairs
    ("radgraph", {"seed": 0, "model_type": "radgraph"}, 80),
    # short max_length: long reports are cut into several encoder segments (the package's folding)
    # (label biases chosen per seed so that random weights give a realistic entity density)
    ("radgraph-xl-fold", {"seed": 1, "model_type": "radgraph-xl", "max_length": 40, "ner_bias": -0.35}, 60),
    ("modern-radgraph-xl-ns", {"seed": 2, "model_type": "modern-radgraph-xl", "ner_bias": -0.55}, 20),
]
N_ANN = 400
N_F1 = 40  # pairs scored end to end by F1RadGraph (the package is slow: one report per pass)


def usable(t: str) -> bool:
    # the package raises on a whitespace-only report (empty span list); "" is fine ("None")
    return t == "" or bool(t.strip())


def compact(ann: dict) -> dict:
    ents = ann["entities"]
    return {
        "words_sha": hashlib.sha1(ann["text"].encode()).hexdigest()[:10],
        "e": [[e["start_ix"], e["end_ix"], e["label"]] for e in ents.values()],
        "r": [[k, rel, tgt] for k, e in ents.items() for rel, tgt in e["relations"]],
    }


def case_texts(n: int, seed: int):
    pairs = [(h, r) for h, r in report_pairs(n, seed=seed) if usable(h) and usable(r)]
    hyps = [h for h, _ in pairs][:N_F1]
    refs = [r for _, r in pairs][:N_F1]
    texts = list(dict.fromkeys([t for p in pairs for t in p if t]))
    return texts, hyps, refs


def main(ref_python: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        job = {"archives": [], "ann_pairs": annotation_pairs(N_ANN, seed=0)}
        for name, kw, n in CASES:
            d = Path(tmp) / name
            arch = build_archive(d, **kw)
            cache = d / "cache"
            safe_extract_tar(arch, cache / kw["model_type"])
            texts, hyps, refs = case_texts(n, kw["seed"])
            job["archives"].append(
                {"model_type": kw["model_type"], "cache_dir": str(cache), "texts": texts, "hyps": hyps, "refs": refs}
            )
        jf, rf = Path(tmp) / "job.json", Path(tmp) / "res.json"
        jf.write_text(json.dumps(job))
        subprocess.run([ref_python, str(HERE / "ref_side.py"), str(jf), str(rf)], check=True)
        res = json.loads(rf.read_text())
    out = {
        "about": "radgraph package outputs on seeded synthetic archives; see make_fixtures.py",
        "versions": res["versions"],
        "cases": [],
        "ann_pairs": {"n": N_ANN, "seed": 0, "rewards": res["ann_rewards"]},
    }
    for (name, kw, n), a, r in zip(CASES, job["archives"], res["archives"]):
        out["cases"].append(
            {
                "name": name,
                "archive": kw,
                "report_pairs": {"n": n, "seed": kw["seed"]},
                "texts_sha": hashlib.sha1(json.dumps(a["texts"]).encode()).hexdigest(),
                "annotations": [compact(x) for x in r["annotations"]],
                "f1": r["f1"],
                "f1_mean": r["f1_mean"],
            }
        )
    (HERE / "parity.json").write_text(json.dumps(out, separators=(",", ":")))
    print("wrote", HERE / "parity.json", (HERE / "parity.json").stat().st_size, "bytes")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/work/refvenvs/radgraph/bin/python")
