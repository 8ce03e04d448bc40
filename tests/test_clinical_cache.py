"""Regression: the reference-label cache never drops a row the current batch still needs.

Found by the 1M-record scaling run (KeyError once the cache was full and a batch mixed old hits
with new references)."""

from __future__ import annotations

import numpy as np

from radeval.metrics import clinical
from radeval.metrics.clinical import CheXpertRulesF1

REFS = [
    "Small left pleural effusion.",
    "Mild cardiomegaly.",
    "No pneumothorax.",
    "Right lower lobe consolidation.",
    "Pulmonary edema.",
    "The lungs are clear.",
]


def test_batch_larger_than_cache_and_old_hits(monkeypatch):
    monkeypatch.setattr(clinical, "REF_CACHE_SIZE", 3)
    metric = CheXpertRulesF1()
    fresh = CheXpertRulesF1()
    expected = fresh.reference_labels(REFS)
    # warm the cache with the first three, then a batch with old hits + more new refs than fit
    metric.reference_labels(REFS[:3])
    batch = [REFS[0], REFS[3], REFS[4], REFS[5], REFS[1], REFS[0]]
    got = metric.reference_labels(batch)
    want = expected[[0, 3, 4, 5, 1, 0]]
    np.testing.assert_array_equal(np.nan_to_num(got, nan=9), np.nan_to_num(want, nan=9))
    assert len(metric._ref_cache) <= 3
