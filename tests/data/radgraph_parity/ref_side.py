"""Runs inside the radgraph reference venv (radgraph 0.1.18, transformers 4.57): package outputs.

Called by make_fixtures.py; reads a job JSON, writes a result JSON. Not imported by tests.
"""

import json
import os
import sys

os.environ["HF_HUB_OFFLINE"] = "1"
import radgraph  # noqa: E402
from radgraph import F1RadGraph, RadGraph  # noqa: E402
from radgraph.rewards import compute_reward  # noqa: E402

job = json.load(open(sys.argv[1]))
out = {"radgraph_version": radgraph.__dict__.get("__version__", "0.1.18"), "archives": []}
import importlib.metadata as md  # noqa: E402

out["versions"] = {p: md.version(p) for p in ("radgraph", "transformers", "torch")}
for a in job["archives"]:
    rg = RadGraph(model_type=a["model_type"], model_cache_dir=a["cache_dir"])
    anns = rg(a["texts"])
    del rg
    f1 = F1RadGraph(reward_level="all", model_type=a["model_type"], model_cache_dir=a["cache_dir"])
    mean, rewards, _, _ = f1(refs=a["refs"], hyps=a["hyps"])
    out["archives"].append(
        {
            "annotations": [anns[str(i)] for i in range(len(a["texts"]))],
            "f1": [list(x) for x in rewards],
            "f1_mean": list(mean),
        }
    )
out["ann_rewards"] = [list(compute_reward(h, r, "all")) for h, r in job["ann_pairs"]]
json.dump(out, open(sys.argv[2], "w"))
