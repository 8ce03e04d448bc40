"""SembScore parity: radeval's ``semb_score`` against CXR-Report-Metric's definition on one checkpoint.

    PYTHONPATH=. python benchmarks/parity_semb.py [--n 300] [--seed 0]

The reference side follows CXR-Report-Metric (``CheXbert/src/encode.py`` with
``bert_encoder(logits=False)``, ``run_eval.py`` ``add_semb_col``): the checkpoint's weights in
transformers' ``BertModel`` (what its ``bert_encoder`` wraps), one report at a time (no padding),
``final_hidden[:, 0, :]``, then ``(g * p).sum() / (norm(g) * norm(p))`` on float32 numpy.
radeval's side is ``SembScore().score`` (its own batched forward with fused QKV and a last layer
that carries only [CLS]). Checkpoint: tests/chexbert_fixture.py (random weights, real format;
``--full`` for BERT-base size). Prints the largest per-pair and corpus differences.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    import torch

    from radeval.metrics.chexbert import _bert_config, build_chexbert_net, load_chexbert_state_dict
    from radeval.metrics.semb import SembScore
    from tests.chexbert_fixture import FULL_CONFIG, make_caches
    from tests.report_corpus import report_pairs

    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--full", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as d:
        cx = make_caches(d, seed=0, config=FULL_CONFIG if a.full else None)
        os.environ.update(HF_HUB_CACHE=str(cx["hub"]), HF_HUB_OFFLINE="1")
        pairs = report_pairs(a.n, seed=a.seed)
        hyps, refs = [h for h, _ in pairs], [r for _, r in pairs]
        m = SembScore(model_path=cx["checkpoint"], tokenizer_path=cx["tokenizer_dir"])
        ours = m.score(hyps, refs)
        net = build_chexbert_net(_bert_config(Path(cx["tokenizer_dir"])))
        sd = load_chexbert_state_dict(cx["checkpoint"])
        sd.pop("bert.embeddings.position_ids", None)
        net.load_state_dict(sd)
        bert = net.bert.eval()

        def cls(text: str) -> np.ndarray:
            ids = torch.tensor([m.chexbert.encode([text])[0]])
            with torch.no_grad():
                return bert(ids, attention_mask=torch.ones_like(ids))[0][:, 0, :].squeeze(0).numpy()

        ref = []
        for h, r in zip(hyps, refs):
            g, p = cls(r), cls(h)
            ref.append(float((g * p).sum() / (np.linalg.norm(g) * np.linalg.norm(p))))
        ref = np.array(ref)
        d_sample = float(np.abs(ours.sample["semb_score"] - ref).max())
        d_corpus = abs(ours.corpus["semb_score"] - float(ref.mean()))
        print(
            f"pairs {len(pairs)} ({'bert-base' if a.full else 'tiny'} config): semb range "
            f"[{ref.min():.4f}, {ref.max():.4f}], max |diff| per pair {d_sample:.2e}, corpus {d_corpus:.2e}"
        )
    return 0 if d_sample < 1e-5 else 1


if __name__ == "__main__":
    sys.exit(main())
