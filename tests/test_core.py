"""Registry, evaluate/Result, output contract, bootstrap and paired tests."""

from __future__ import annotations

import json

import numpy as np
import pytest

import radeval
from radeval.errors import ConfigError, InputError, MetricNotFound
from radeval.evaluation import compare, evaluate
from radeval.metrics.nlg import Bleu, RougeL
from radeval.registry import PRESETS, resolve
from radeval.stats import bootstrap_ci, paired_tests

HYPS = [
    "The heart is normal in size. No pleural effusion.",
    "Mild cardiomegaly. Small left effusion.",
    "",
    "Lungs clear.",
    "Right lower lobe pneumonia.",
    "No acute process. No pneumothorax.",
]
REFS = [
    "Heart size is normal. No effusion or pneumothorax.",
    "Cardiomegaly with small bilateral effusions.",
    "No acute findings.",
    "The lungs are clear.",
    "Right lower lobe opacity concerning for pneumonia.",
    "No acute cardiopulmonary process.",
]


def test_list_and_resolve_presets():
    names = radeval.list_metrics()
    assert {"bleu", "rouge_l", "rouge_l_stemmed"} <= set(names)
    assert resolve("bleu,rouge_l") == ["bleu", "rouge_l"]
    assert resolve(["bleu", "bleu"]) == ["bleu"]
    assert resolve("default") == list(PRESETS["default"])
    with pytest.raises(MetricNotFound, match="unknown metric or preset 'blue'"):
        resolve("blue")


def test_get_metric_bad_option():
    with pytest.raises(ConfigError, match=r"metric 'bleu' has no option 'nonsense'\. Its options: tokenize"):
        radeval.get_metric("bleu", nonsense=1)
    with pytest.raises(ConfigError, match="Did you mean 'tokenize'"):
        radeval.get_metric("bleu", tokenise="ptb")
    with pytest.raises(ConfigError, match="Did you mean 'bleu'"):
        radeval.get_metric("bleuu")
    with pytest.raises(ConfigError, match="unknown tokenize mode"):
        radeval.get_metric("bleu", tokenize="spaces")


def test_signature_names_settings():
    sig = Bleu(tokenize="whitespace").signature
    assert sig.startswith("bleu|") and "tok:whitespace" in sig and "reflen:closest" in sig
    assert Bleu().signature != Bleu(tokenize="r2gen-iu").signature


def test_corpus_bleu_is_not_mean_of_sentence_bleu():
    r = evaluate(predictions=HYPS, references=REFS, metrics=["bleu"], bootstrap=0)
    sent_mean = float(np.mean(r.per_sample["bleu_2"]))
    assert abs(r.corpus["bleu_2"] - sent_mean) > 1e-2
    # and the corpus value equals from_totals of the summed rows
    stats = r.runs["bleu"].stats
    assert r.corpus["bleu_4"] == pytest.approx(float(Bleu().from_totals(stats.sum(0))["bleu_4"]), abs=1e-15)


def test_bleu_mean_is_mean_of_four():
    r = evaluate(predictions=HYPS, references=REFS, metrics=["bleu"], bootstrap=0)
    expected = np.mean([r.corpus[f"bleu_{n}"] for n in range(1, 5)])
    assert r.corpus["bleu_mean"] == pytest.approx(expected, abs=1e-15)


def test_summary_contract_and_files(tmp_path):
    r = evaluate(predictions=HYPS, references=REFS, metrics=["bleu", "rouge_l"], bootstrap=200, seed=0)
    s = r.summary()
    assert s["n_records"] == len(HYPS)
    assert s["radeval_version"] == radeval.__version__
    for k in ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "bleu_mean", "rouge_l"):
        m = s["metrics"][k]
        assert set(m) == {"score", "ci95", "higher_is_better", "signature"}
        lo, hi = m["ci95"]
        assert lo <= hi and m["higher_is_better"] is True
    files = {p.name for p in r.write(tmp_path)}
    assert files == {"summary.json", "per_sample.jsonl", "per_sample.csv", "details.json", "summary.md"}
    rows = [json.loads(line) for line in (tmp_path / "per_sample.jsonl").read_text().splitlines()]
    assert [row["id"] for row in rows] == [str(i) for i in range(len(HYPS))]
    assert rows[0]["rouge_l"] == pytest.approx(r.per_sample["rouge_l"][0])
    assert json.loads((tmp_path / "summary.json").read_text()) == s
    assert not list(tmp_path.glob(".*.tmp"))


def test_ci_invariant_to_record_order():
    ids = [f"r{i}" for i in range(len(HYPS))]
    a = evaluate(predictions=HYPS, references=REFS, ids=ids, metrics=["bleu", "rouge_l"], bootstrap=300)
    perm = [3, 0, 5, 1, 4, 2]
    b = evaluate(
        predictions=[HYPS[i] for i in perm],
        references=[REFS[i] for i in perm],
        ids=[ids[i] for i in perm],
        metrics=["bleu", "rouge_l"],
        bootstrap=300,
    )
    assert a.summary()["metrics"] == b.summary()["metrics"]


def test_bootstrap_matches_naive_resampling():
    """The matrix form equals re-scoring the resampled records directly."""
    metric = Bleu()
    stats = metric.stats(HYPS, REFS)
    ci = bootstrap_ci(metric, stats, n_resamples=50, seed=3)
    rng = np.random.default_rng(3)
    n = len(stats)
    vals = []
    for _ in range(50):
        row = rng.integers(0, n, size=n)
        vals.append(metric.corpus(stats[row])["bleu_4"])
    lo, hi = np.percentile(vals, [2.5, 97.5])
    assert ci["bleu_4"] == pytest.approx((lo, hi), abs=1e-12)


def test_paired_tests_identical_systems_and_clear_winner():
    metric = RougeL()
    good = metric.stats(REFS, REFS)
    bad = metric.stats(["x"] * len(REFS), REFS)
    same = paired_tests(metric, good, good, n_resamples=200, n_trials=500)
    assert same["rouge_l"].delta == 0 and same["rouge_l"].p_randomization == 1.0
    diff = paired_tests(metric, good, bad, n_resamples=200, n_trials=2000)
    assert diff["rouge_l"].delta > 0.5
    # with 6 records, the smallest two-sided randomization p is 2/64
    assert diff["rouge_l"].p_randomization < 0.05


def test_compare_results_requires_same_ids():
    a = evaluate(predictions=HYPS, references=REFS, metrics=["rouge_l"], bootstrap=0)
    b = evaluate(predictions=REFS, references=REFS, metrics=["rouge_l"], bootstrap=0)
    table = compare(a, b, n_resamples=100, n_trials=200)
    assert table["rouge_l"]["delta"] < 0
    c = evaluate(predictions=HYPS[:3], references=REFS[:3], metrics=["rouge_l"], bootstrap=0)
    with pytest.raises(InputError, match="different records"):
        compare(a, c)


def test_duplicate_keys_and_unselected_options_rejected():
    with pytest.raises(ConfigError, match="not selected"):
        evaluate(predictions=HYPS, references=REFS, metrics=["bleu"], options={"rouge_l": {"beta": 1.0}})


def test_single_record_has_no_ci():
    r = evaluate(predictions=["a b"], references=["a b"], metrics=["bleu"])
    assert r.summary()["metrics"]["bleu_1"]["ci95"] is None
    assert r.corpus["bleu_1"] == pytest.approx(1.0)


def test_ci_does_not_depend_on_the_block_size(monkeypatch):
    from radeval import stats as stats_mod

    metric = Bleu()
    stats = metric.stats(HYPS, REFS)
    a = bootstrap_ci(metric, stats, n_resamples=40, seed=1)
    monkeypatch.setattr(stats_mod, "_BLOCK_CELLS", 7)
    b = bootstrap_ci(metric, stats, n_resamples=40, seed=1)
    assert a == b
