"""LitServe's side of the reward service (imports litserve; kept apart so the rest stays light).

The API class lives at module level because LitServe spawns its inference worker and pickles the
API object into it.
"""

from __future__ import annotations

from collections.abc import Sequence

import litserve as ls

from radeval.rewards.service import BatchScorer, Limits, parse_request, parse_reward_spec


class RewardAPI(ls.LitAPI):
    """Rewards from ``specs`` (``name[=weight]``), built once per worker in ``setup``."""

    def __init__(self, specs: Sequence[str], names: Sequence[str], limits: Limits, **kw):
        super().__init__(**kw)
        self.specs = list(specs)
        self.names = list(names)
        self.limits = limits

    def setup(self, device):
        # metric objects (and their models) load on the first batch, once per process, through
        # radeval.rewards.trl.shared_metric; warm them here so the first request is not slow
        self.scorer = BatchScorer([parse_reward_spec(s) for s in self.specs])
        for fn, _w in self.scorer.rewards:
            metric = getattr(fn, "metric", None)
            if callable(metric):
                try:
                    metric()
                except Exception:  # a missing model is reported per request (None), not at start
                    pass

    def decode_request(self, request, **kwargs):
        # GuardMiddleware validated it already; parsing again cannot fail differently
        return parse_request(request, self.limits, self.names)

    def batch(self, inputs):
        return list(inputs)

    def predict(self, batch, **kwargs):
        return self.scorer.score(batch)

    def unbatch(self, output):
        return list(output)

    def encode_response(self, output, **kwargs):
        return output
