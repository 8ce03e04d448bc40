"""A small stanza pipeline (tokenizer + radiology NER + word vectors) in stanza's real file layout.

RadEval 2.2's temporal F1 builds ``stanza.Pipeline(lang="en", package="radiology",
processors={"tokenize": "default", "ner": "radiology"})``, which reads
``STANZA_RESOURCES_DIR/resources.json`` and the model files it names:
``en/tokenize/<default>.pt``, ``en/ner/radiology.pt`` and the NER's dependencies
(``en/pretrain/mimic.pt``; the real model also uses ``forward_charlm``/``backward_charlm``
``mimic``). None of these can be downloaded here, so this script *trains* tiny models with
stanza's own training entry points (``stanza.models.tokenizer``, ``stanza.models.ner_tagger``)
on rule-labelled synthetic reports, so they are real stanza checkpoints that stanza loads with
``torch.load(weights_only=True)``.

What differs from the real "radiology" pipeline (recorded in the parity file too):

* the models are tiny and trained for a few hundred steps on synthetic text, not on MIMIC;
* the NER has no character language models (``--charlm`` off), so its resources entry lists only
  the ``pretrain`` dependency;
* the resources.json is ours (only the entries this pipeline needs) and its English "default"
  package has no MWT expander (the real English default adds ``mwt: combined``).

Run with a Python that has stanza (e.g. the RadEval 2.2 venv)::

    ~/.cache/radeval-peers/radeval22/bin/python tests/stanza_fixture.py build DEST
"""

from __future__ import annotations

import json
import os
import random
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = 1234
TOKEN_RE = re.compile(r"\w+|[^\w\s]")
OBSERVATION = {
    "effusion",
    "effusions",
    "pneumothorax",
    "edema",
    "consolidation",
    "opacity",
    "opacities",
    "atelectasis",
    "cardiomegaly",
    "pneumonia",
    "nodule",
    "mass",
    "fracture",
    "enlarged",
    "enlargement",
    "clear",
}
MODIFIER = {
    "stable",
    "unchanged",
    "new",
    "increased",
    "decreased",
    "improved",
    "worsening",
    "worsened",
    "persistent",
    "resolved",
    "resolving",
    "larger",
    "smaller",
    "mild",
    "moderate",
    "small",
    "large",
    "trace",
    "minimal",
    "bilateral",
    "increasing",
    "decreasing",
    "improving",
    "progression",
    "elevated",
}
ANATOMY = {"lung", "lungs", "heart", "pleural", "cardiac", "mediastinal", "hilar", "lobe", "base", "bases", "apex"}


def _reports(n: int = 300) -> list[str]:
    sys.path.insert(0, str(HERE))
    from report_corpus import report_pairs

    out = []
    for h, r in report_pairs(n, seed=99):
        for t in (h, r):
            t = " ".join(t.split())
            if t:
                out.append(t)
    return out


def _tokenizer_data(texts: list[str], txt: Path, labels: Path) -> None:
    """stanza's tokenizer training format: paragraphs separated by blank lines, one label digit
    per character (1 token end, 2 sentence end, 0 otherwise)."""
    paras, labs = [], []
    for t in texts:
        lab = ["0"] * len(t)
        for m in TOKEN_RE.finditer(t):
            lab[m.end() - 1] = "2" if m.group() in ".!?" else "1"
        paras.append(t)
        labs.append("".join(lab))
    txt.write_text("\n\n".join(paras) + "\n", encoding="utf-8")
    labels.write_text("\n\n".join(labs) + "\n", encoding="utf-8")


def _tag(word: str) -> str:
    w = word.lower()
    if w in OBSERVATION:
        return "S-OBSERVATION"
    if w in MODIFIER:
        return "S-OBSERVATION_MODIFIER"
    if w in ANATOMY:
        return "S-ANATOMY"
    return "O"


def _ner_data(texts: list[str], dest: Path) -> None:
    sents = []
    for t in texts:
        sent = []
        for m in TOKEN_RE.finditer(t):
            sent.append({"text": m.group(), "ner": _tag(m.group())})
            if m.group() in ".!?":
                sents.append(sent)
                sent = []
        if sent:
            sents.append(sent)
    dest.write_text(json.dumps(sents), encoding="utf-8")


def _vectors(texts: list[str], dest: Path, dim: int = 16) -> None:
    rng = random.Random(SEED)
    words = sorted({m.group().lower() for t in texts for m in TOKEN_RE.finditer(t)})
    lines = [f"{len(words)} {dim}"]
    for w in words:
        lines.append(w + " " + " ".join(f"{rng.gauss(0, 0.5):.5f}" for _ in range(dim)))
    dest.write_text("\n".join(lines) + "\n", encoding="utf-8")


def resources_json(en: Path) -> dict:
    """Only the entries this pipeline needs, in resources.json's shape; the md5 values make stanza
    accept the files as downloaded (it re-downloads any model whose md5 differs)."""
    import hashlib

    def md5(p: Path) -> str:
        return hashlib.md5(p.read_bytes()).hexdigest()

    return {
        "url": "https://huggingface.co/stanfordnlp/stanza-{lang}/resolve/v{resources_version}/models/{filename}",
        "en": {
            "lang_name": "English",
            "tokenize": {"combined": {"md5": md5(en / "tokenize" / "combined.pt")}},
            "ner": {
                "radiology": {
                    "md5": md5(en / "ner" / "radiology.pt"),
                    "dependencies": [{"model": "pretrain", "package": "mimic"}],
                }
            },
            "pretrain": {"mimic": {"md5": md5(en / "pretrain" / "mimic.pt")}},
            "default_processors": {"tokenize": "combined"},
            "packages": {"default": {"tokenize": "combined"}},
        },
    }


def build(dest: str | os.PathLike[str]) -> Path:
    import torch
    from stanza.models import ner_tagger, tokenizer
    from stanza.models.common.pretrain import Pretrain

    torch.set_num_threads(1)
    root = Path(dest)
    work = root / "work"
    work.mkdir(parents=True, exist_ok=True)
    en = root / "stanza_resources" / "en"
    for sub in ("tokenize", "ner", "pretrain"):
        (en / sub).mkdir(parents=True, exist_ok=True)
    texts = _reports()
    _tokenizer_data(texts, work / "tok.txt", work / "tok.labels")
    (work / "mwt.json").write_text("[]")  # English reports: no multi-word tokens
    tokenizer.main([
        "--txt_file", str(work / "tok.txt"), "--label_file", str(work / "tok.labels"),
        "--dev_txt_file", str(work / "tok.txt"), "--dev_label_file", str(work / "tok.labels"),
        "--lang", "en", "--shorthand", "en_combined", "--emb_dim", "16", "--hidden_dim", "32",
        "--steps", "300", "--eval_steps", "100000", "--batch_size", "16", "--max_seqlen", "80",
        "--mwt_json_file", str(work / "mwt.json"), "--no_use_mwt", "--seed", str(SEED), "--device", "cpu",
        "--save_dir", str(en / "tokenize"), "--save_name", str(en / "tokenize" / "combined.pt"),
    ])  # fmt: skip
    _vectors(texts, work / "vec.txt")
    Pretrain(str(en / "pretrain" / "mimic.pt"), str(work / "vec.txt")).load()
    _ner_data(texts, work / "ner.json")
    ner_tagger.main([
        "--train_file", str(work / "ner.json"), "--eval_file", str(work / "ner.json"),
        "--wordvec_pretrain_file", str(en / "pretrain" / "mimic.pt"), "--shorthand", "en_radiology",
        "--hidden_dim", "32", "--char_hidden_dim", "16", "--word_emb_dim", "16", "--char_emb_dim", "16",
        "--max_steps", "400", "--eval_interval", "200", "--batch_size", "16", "--optim", "adam", "--lr", "0.01",
        "--seed", str(SEED), "--cpu",
        "--save_dir", str(en / "ner"), "--save_name", "radiology.pt",
    ])  # fmt: skip
    (root / "stanza_resources" / "resources.json").write_text(json.dumps(resources_json(en), indent=2))
    return root / "stanza_resources"


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "build":
        sys.exit("usage: stanza_fixture.py build DEST")
    print(build(sys.argv[2]))
