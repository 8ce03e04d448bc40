"""The frozen expert: a small open_clip image–text dual encoder trained contrastively here.

It is trained on its own image set (``expert.jsonl``, a seed the policy never sees) with the
*complete* reports, then saved as an open_clip model directory in the hub layout
(``open_clip_config.json`` + ``open_clip_model.safetensors``) and loaded back through
``radeval.metrics.grounding.Grounding`` — the path BiomedCLIP takes — so the stage-visual reward
and the grounding column of the tables use exactly the project's metric code.

Architecture (open_clip's own towers, no timm / HF text model): ViT 56x56 in 7-px patches,
width 64, 2 layers; text transformer width 64, 2 layers, open_clip's CLIP BPE tokenizer (ships
inside open-clip-torch, nothing fetched), context 48; 64-d shared space. Contrastive loss is
CLIP's symmetric InfoNCE with a learned temperature.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from experiments.synthetic_cxr import generator

MODEL_CFG = {
    "embed_dim": 64,
    "vision_cfg": {
        "image_size": generator.SIDE,
        "patch_size": 7,
        "width": 64,
        "layers": 2,
        "head_width": 32,
        "mlp_ratio": 2.0,
    },
    "text_cfg": {"context_length": 48, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2, "mlp_ratio": 2.0},
}
PREPROCESS_CFG = {
    "mean": [0.5, 0.5, 0.5],
    "std": [0.25, 0.25, 0.25],
    "interpolation": "bicubic",
    "resize_mode": "shortest",
}


def train_expert(
    rows: list[dict], root: Path, dest: Path, *, steps: int = 300, batch: int = 128, lr: float = 1e-3, seed: int = 0
) -> dict:
    """Train on ``rows`` (``image`` relative to ``root``, complete ``report``); write ``dest``."""
    import numpy as np
    import open_clip
    import torch
    import torch.nn.functional as F
    from PIL import Image
    from safetensors.torch import save_file

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "open_clip_config.json").write_text(
        json.dumps({"model_cfg": MODEL_CFG, "preprocess_cfg": PREPROCESS_CFG}, indent=2) + "\n"
    )
    torch.manual_seed(seed)
    # load_weights=False: open_clip's local-dir loader would otherwise start from the weights an
    # earlier run left in ``dest`` (a rerun into the same work folder trained that expert further)
    model = open_clip.create_model(
        f"local-dir:{dest}", pretrained_image=False, pretrained_text=False, load_weights=False
    )
    tokenizer = open_clip.get_tokenizer(f"local-dir:{dest}", context_length=MODEL_CFG["text_cfg"]["context_length"])
    mean, std = PREPROCESS_CFG["mean"][0], PREPROCESS_CFG["std"][0]
    # images are already 56x56: the eval preprocess is the identity resize + RGB + normalise
    imgs = np.stack([np.asarray(Image.open(root / r["image"]).convert("L"), dtype=np.float32) / 255.0 for r in rows])
    images = ((torch.from_numpy(imgs) - mean) / std).unsqueeze(1).expand(-1, 3, -1, -1).contiguous()
    tokens = tokenizer([r["report"] for r in rows])
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    t0, c0 = time.time(), time.process_time()
    losses = []
    for _ in range(steps):
        idx = torch.randint(0, len(rows), (batch,), generator=gen)
        img_f, txt_f, scale = model(images[idx], tokens[idx])[:3]
        logits = scale * img_f @ txt_f.T
        # identical reports in a batch are true positives, not negatives: soft targets over them
        same = (tokens[idx][:, None, :] == tokens[idx][None, :, :]).all(-1).float()
        target = same / same.sum(1, keepdim=True)
        loss = 0.5 * (
            torch.sum(-target * F.log_softmax(logits, 1), 1).mean()
            + torch.sum(-target * F.log_softmax(logits.T, 1), 1).mean()
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, 4.6052)
        losses.append(loss.item())
    model.eval()
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    save_file(state, str(dest / "open_clip_model.safetensors"))
    info = {
        "steps": steps,
        "batch": batch,
        "lr": lr,
        "n_images": len(rows),
        "final_loss": float(np.mean(losses[-20:])),
        "first_loss": float(np.mean(losses[:5])),
        "wall_s": time.time() - t0,
        "cpu_s": time.process_time() - c0,
    }
    (dest / "training.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def grounding_metric(expert_dir: Path, image_root: Path | None = None, on_bad_image: str = "error"):
    """The project's grounding metric on this expert (same loader as BiomedCLIP)."""
    from radeval.metrics.grounding import Grounding

    return Grounding(
        model=str(Path(expert_dir).resolve()), device="cpu", image_root=image_root, on_bad_image=on_bad_image
    )


def expert_checks(expert_dir: Path, rows: list[dict], root: Path) -> dict:
    """How the expert ranks reports of held-out images: retrieval and complete-vs-under-reported."""
    import numpy as np

    g = grounding_metric(expert_dir, root)
    images = [r["image"] for r in rows]
    s_full = g.similarity([r["report"] for r in rows], images)
    s_under = g.similarity([r["report_under"] for r in rows], images)
    differs = np.array([r["report"] != r["report_under"] for r in rows])
    # a report of another image with different findings
    other = [rows[(i + 1) % len(rows)]["report"] for i in range(len(rows))]
    s_other = g.similarity(other, images)
    diff_findings = np.array([rows[i]["findings"] != rows[(i + 1) % len(rows)]["findings"] for i in range(len(rows))])
    return {
        "n": len(rows),
        "complete_beats_under_reported": float(np.mean(s_full[differs] > s_under[differs])) if differs.any() else None,
        "own_beats_other_report": float(np.mean(s_full[diff_findings] > s_other[diff_findings])),
        "mean_similarity_own": float(np.mean(s_full)),
        "mean_similarity_other": float(np.mean(s_other)),
    }


def make_similarity_reward(expert_dir: str | Path, image_root: str | Path | None = None):
    """Stage visual's raw similarity S_i in TRL's reward contract, via ``radeval.rewards.make_reward``.

    A factory so the stage config can name it: ``rewards.visual_reward=
    experiments.synthetic_cxr.expert:make_similarity_reward`` with ``visual_reward_kwargs``.
    """
    from experiments.synthetic_cxr.pipeline import ensure_grounding_registered
    from radeval.rewards.trl import make_reward

    ensure_grounding_registered()

    return make_reward(
        "grounding",
        None,
        on_error=None,
        metric_options={
            "model": str(Path(expert_dir).resolve()),
            "device": "cpu",
            "on_bad_image": "nan",
            **({"image_root": str(image_root)} if image_root else {}),
        },
        name="valor_visual_similarity",
    )
