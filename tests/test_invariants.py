"""Property tests: scores and CIs do not depend on record order or on how the work is cut."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from radeval.data import read_records
from radeval.evaluation import evaluate
from radeval.runner import score_file

ROOT = Path(__file__).resolve().parent.parent
POOL = read_records(ROOT / "examples" / "preds.jsonl")
METRICS = ["bleu", "rouge_l", "rouge_l_stemmed"]

pairs = st.lists(st.sampled_from(range(len(POOL))), min_size=2, max_size=25)


@settings(max_examples=25, deadline=None)
@given(idx=pairs, seed=st.integers(0, 2**32 - 1))
def test_shuffling_records_changes_nothing(idx, seed):
    preds = [POOL[i].prediction for i in idx]
    refs = [POOL[i].reference for i in idx]
    ids = [f"id{k:03d}" for k in range(len(idx))]
    a = evaluate(predictions=preds, references=refs, ids=ids, metrics=METRICS, bootstrap=100)
    perm = np.random.default_rng(seed).permutation(len(idx))
    b = evaluate(
        predictions=[preds[i] for i in perm],
        references=[refs[i] for i in perm],
        ids=[ids[i] for i in perm],
        metrics=METRICS,
        bootstrap=100,
    )
    assert a.summary()["metrics"] == b.summary()["metrics"]
    for k in a.keys:  # per-sample values follow their record
        np.testing.assert_array_equal(a.per_sample[k][perm], b.per_sample[k])


@settings(max_examples=25, deadline=None)
@given(idx=pairs, cut=st.integers(1, 24))
def test_per_sample_values_do_not_depend_on_batching(idx, cut):
    preds = [POOL[i].prediction for i in idx]
    refs = [POOL[i].reference for i in idx]
    whole = evaluate(predictions=preds, references=refs, metrics=METRICS, bootstrap=0)
    cut = min(cut, len(idx) - 1)
    first = evaluate(predictions=preds[:cut], references=refs[:cut], metrics=METRICS, bootstrap=0)
    second = evaluate(predictions=preds[cut:], references=refs[cut:], metrics=METRICS, bootstrap=0)
    for k in whole.keys:
        np.testing.assert_array_equal(whole.per_sample[k], np.concatenate([first.per_sample[k], second.per_sample[k]]))
    # corpus statistics of the parts add up to the whole's
    for name, run in whole.runs.items():
        np.testing.assert_array_equal(run.stats, np.concatenate([first.runs[name].stats, second.runs[name].stats]))


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chunk=st.integers(1, 40), workers=st.sampled_from([1, 2]))
def test_any_chunk_size_gives_identical_files(tmp_path_factory, chunk, workers):
    base = tmp_path_factory.mktemp("chunks")
    src = base / "in.jsonl"
    src.write_text("".join(json.dumps({"id": r.id, "prediction": r.prediction, "reference": r.reference}) + "\n" for r in POOL))
    ref = base / "ref"
    score_file(src, METRICS, ref, bootstrap=100, chunk_size=1000)
    out = base / "out"
    score_file(src, METRICS, out, bootstrap=100, chunk_size=chunk, workers=workers)
    for name in ("summary.json", "per_sample.jsonl", "per_sample.csv", "details.json"):
        assert (ref / name).read_bytes() == (out / name).read_bytes()


def test_scoring_makes_no_network_connection(monkeypatch, tmp_path):
    """With HF_HUB_OFFLINE=1, scoring the default preset never opens a socket."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def refuse(*args, **kwargs):
        raise AssertionError(f"network connection attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    result = score_file(ROOT / "examples" / "preds.jsonl", "default", tmp_path, bootstrap=50)
    assert result.n_records == len(POOL)


@pytest.mark.parametrize("n", [2, 3])
def test_tiny_inputs_have_finite_ci(n):
    r = evaluate(predictions=[p.prediction for p in POOL[:n]], references=[p.reference for p in POOL[:n]], metrics=["bleu"])
    lo, hi = r.ci95["bleu_1"]
    assert np.isfinite(lo) and np.isfinite(hi) and lo <= hi
    assert 0.0 <= lo and hi <= 1.0
