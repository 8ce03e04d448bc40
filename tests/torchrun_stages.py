"""Worker for tests/test_trainers_torchrun.py: one stage, 2 ranks (torchrun, gloo on CPU).

Records, per rank and per generation batch, the advantages this rank's loss receives, the
gathered reward matrix and the rank's process index, in ``<out>/adv-<stage>-rank<r>.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> None:
    stage, config, model_dir, data, out, init_from = sys.argv[1:7]
    import torch

    torch.set_num_threads(1)
    from trainers.api import train
    from trainers.grpo import ValorGRPOTrainer

    calls = []
    original = ValorGRPOTrainer._generate_and_score_completions

    def spy(self, inputs):
        output = original(self, inputs)
        calls.append(
            {
                "process_index": self.accelerator.process_index,
                "num_processes": self.accelerator.num_processes,
                "advantages": output["advantages"].double().tolist(),
                "rewards": self.valor_last_rewards.tolist(),
                "weights": self.reward_weights.double().tolist(),
                "visual_index": self.valor_visual_index,
                "group": self.num_generations,
            }
        )
        return output

    ValorGRPOTrainer._generate_and_score_completions = spy
    overrides = [
        f"model.name_or_path={model_dir}",
        f"data.path={data}",
        f"train.output_dir={out}/{stage}",
        "train.max_steps=1",
        "train.save_steps=0",
        # one prompt x G=4 completions per step, 2 per rank: every group spans both ranks
        "train.batch_size=1",
        "train.per_device_batch_size=2",
    ]
    if init_from != "-":
        overrides.append(f"model.init_from={init_from}")
    res = train(stage, config, overrides)
    import torch.distributed as dist

    rank = dist.get_rank() if dist.is_initialized() else 0
    Path(out, f"adv-{stage}-rank{rank}.json").write_text(json.dumps(calls))
    if rank == 0:
        Path(out, f"final-{stage}.txt").write_text(str(res.final_dir))


if __name__ == "__main__":
    main()
