"""The clinical F1 layer equals scikit-learn on the same label matrices, in every convention."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score, classification_report, f1_score, precision_recall_fscore_support

from radeval.errors import ConfigError, InputError, ModelNotFound
from radeval.labels import CHEXPERT_OBSERVATIONS, FIVE_INDEX, FIVE_LABELS
from radeval.metric import exact_column_sums
from radeval.metrics.clinical import CONVENTIONS, CheXbertF1, CheXpertRulesF1, to_classes

FIVE = list(FIVE_INDEX)
VALUES = (1.0, 0.0, -1.0, math.nan)


def _matrix(draw_values: list[int], n: int) -> np.ndarray:
    return np.array([VALUES[v] for v in draw_values], dtype=np.float64).reshape(n, 14)


matrices = st.integers(min_value=1, max_value=25).flatmap(
    lambda n: st.tuples(
        st.just(n),
        st.lists(st.integers(0, 3), min_size=14 * n, max_size=14 * n),
        st.lists(st.integers(0, 3), min_size=14 * n, max_size=14 * n),
    )
)


def _corpus(metric, hyp: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    rows = metric.stats_from_labels(hyp, ref)
    return {k: float(v) for k, v in metric.from_totals(exact_column_sums(rows)).items()}


def _sk_binary(hyp: np.ndarray, ref: np.ndarray, convention: str) -> dict[str, float]:
    """f1chexbert-style: binarise, then sklearn's averages over 14 and 5 columns."""
    h = (to_classes(hyp, convention) > 0).astype(int)
    r = (to_classes(ref, convention) > 0).astype(int)
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for n, cols in (("14", list(range(14))), ("5", FIVE)):
            for avg in ("micro", "macro", "weighted"):
                out[f"{avg}_{n}"] = precision_recall_fscore_support(
                    r[:, cols], h[:, cols], average=avg, zero_division=0
                )[2]
            # the same numbers through classification_report, as f1chexbert calls it
            rep = classification_report(r[:, cols], h[:, cols], output_dict=True)
            for avg in ("micro", "macro", "weighted"):
                assert rep[f"{avg} avg"]["f1-score"] == pytest.approx(out[f"{avg}_{n}"], abs=1e-12)
        out["em5"] = accuracy_score(r[:, FIVE], h[:, FIVE])
    return out


def _sk_class(hyp: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """IFCC --uncertain: classes {0, 1 pos, 3 unc}; per label sklearn micro over labels=[1, 3]."""

    def cls(m):
        c = to_classes(m, "uncertain-class").astype(int)
        return np.where(c == 2, 3, c)

    h, r = cls(hyp), cls(ref)
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for n, cols in (("14", list(range(14))), ("5", FIVE)):
            # micro over observations = IFCC's pooled lists ("5-micro")
            out[f"micro_{n}"] = precision_recall_fscore_support(
                r[:, cols].T.ravel(), h[:, cols].T.ravel(), labels=[1, 3], average="micro", zero_division=0
            )[2]
            per = np.array(
                [
                    precision_recall_fscore_support(r[:, j], h[:, j], labels=[1, 3], average="micro", zero_division=0)[
                        2
                    ]
                    for j in cols
                ]
            )
            support = np.array([np.isin(r[:, j], [1, 3]).sum() for j in cols])
            out[f"macro_{n}"] = per.mean()
            out[f"weighted_{n}"] = (per * support).sum() / support.sum() if support.sum() else 0.0
    out["em5"] = float((h[:, FIVE] == r[:, FIVE]).all(1).mean())
    return out


@settings(max_examples=30, deadline=None)
@given(matrices, st.sampled_from(CONVENTIONS))
def test_f1_equals_sklearn_every_convention(data, convention):
    n, hv, rv = data
    hyp, ref = _matrix(hv, n), _matrix(rv, n)
    metric = CheXpertRulesF1(convention=convention)
    got = _corpus(metric, hyp, ref)
    want = _sk_class(hyp, ref) if convention == "uncertain-class" else _sk_binary(hyp, ref, convention)
    for n_lab in ("14", "5"):
        for avg in ("micro", "macro", "weighted"):
            assert got[f"chexpert_rules_f1_{avg}_{n_lab}"] == pytest.approx(want[f"{avg}_{n_lab}"], abs=1e-12)
    assert got["chexpert_rules_f1"] == got["chexpert_rules_f1_micro_14"]
    assert got["chexpert_rules_em5"] == pytest.approx(want["em5"], abs=1e-12)


@settings(max_examples=20, deadline=None)
@given(matrices, st.sampled_from(("uncertain-positive", "uncertain-negative")), st.sampled_from(("14", "5")))
def test_sample_f1_is_sklearn_samples_average_with_empty_pairs_scoring_one(data, convention, label_set):
    n, hv, rv = data
    hyp, ref = _matrix(hv, n), _matrix(rv, n)
    cols = FIVE if label_set == "5" else list(range(14))
    metric = CheXpertRulesF1(convention=convention, label_set=label_set)
    rows = metric.stats_from_labels(hyp, ref)
    per = metric.sample_values(rows)["chexpert_rules_f1_sample"]
    h = (to_classes(hyp, convention) > 0).astype(int)[:, cols]
    r = (to_classes(ref, convention) > 0).astype(int)[:, cols]
    want = [f1_score(r[i : i + 1], h[i : i + 1], average="micro", zero_division=1) for i in range(n)]
    np.testing.assert_allclose(per, want, atol=1e-12)
    got = _corpus(metric, hyp, ref)
    assert got["chexpert_rules_f1_sample"] == pytest.approx(np.mean(want), abs=1e-12)
    # the headline follows the label set
    assert got["chexpert_rules_f1"] == got[f"chexpert_rules_f1_micro_{label_set}"]


def test_no_positive_pairs_are_not_punished():
    metric = CheXpertRulesF1()
    blank = np.full((1, 14), np.nan)
    neg = blank.copy()
    neg[0, CHEXPERT_OBSERVATIONS.index("Pneumothorax")] = 0.0
    rows = metric.stats_from_labels(neg, blank)
    sample = metric.sample_values(rows)
    assert sample["chexpert_rules_f1_sample"][0] == 1.0
    assert sample["chexpert_rules_em5"][0] == 1.0
    # as a one-record corpus, micro F1 is sklearn's 0/0 -> 0
    assert sample["chexpert_rules_f1_micro_14"][0] == 0.0
    # a wrong positive against a normal reference scores 0
    wrong = blank.copy()
    wrong[0, CHEXPERT_OBSERVATIONS.index("Edema")] = 1.0
    s2 = metric.sample_values(metric.stats_from_labels(wrong, blank))
    assert s2["chexpert_rules_f1_sample"][0] == 0.0 and s2["chexpert_rules_em5"][0] == 0.0


def test_em5_looks_only_at_the_five_labels():
    metric = CheXpertRulesF1()
    ref = np.full((2, 14), np.nan)
    hyp = ref.copy()
    hyp[0, CHEXPERT_OBSERVATIONS.index("Fracture")] = 1.0  # outside the 5: still an exact match
    hyp[1, CHEXPERT_OBSERVATIONS.index("Cardiomegaly")] = -1.0
    em = metric.sample_values(metric.stats_from_labels(hyp, ref))["chexpert_rules_em5"]
    assert em.tolist() == [1.0, 0.0]
    neg = CheXpertRulesF1(convention="uncertain-negative")
    assert neg.sample_values(neg.stats_from_labels(hyp, ref))["chexpert_rules_em5"].tolist() == [1.0, 1.0]
    assert set(FIVE_LABELS) == {CHEXPERT_OBSERVATIONS[i] for i in FIVE_INDEX}


def test_uncertain_class_counts_a_mixup_as_fp_and_fn():
    metric = CheXpertRulesF1(convention="uncertain-class")
    ref = np.full((1, 14), np.nan)
    hyp = ref.copy()
    j = CHEXPERT_OBSERVATIONS.index("Edema")
    ref[0, j], hyp[0, j] = 1.0, -1.0
    rows = metric.stats_from_labels(hyp, ref)
    names = metric.stat_names
    assert rows[0, names.index("tp_edema")] == 0
    assert rows[0, names.index("fp_edema")] == 1 and rows[0, names.index("fn_edema")] == 1
    pos = CheXpertRulesF1(convention="uncertain-positive")
    assert pos.stats_from_labels(hyp, ref)[0, names.index("tp_edema")] == 1


def test_from_totals_is_vectorised_over_bootstrap_axes():
    rng = np.random.default_rng(0)
    hyp = rng.choice(VALUES, size=(30, 14))
    ref = rng.choice(VALUES, size=(30, 14))
    metric = CheXpertRulesF1()
    rows = metric.stats_from_labels(hyp, ref)
    idx = rng.integers(0, 30, size=(5, 30))
    totals = rows[idx].sum(axis=1)  # (5, d)
    batched = metric.from_totals(totals)
    for b in range(5):
        single = metric.from_totals(exact_column_sums(rows[idx[b]]))
        for k in metric.keys:
            assert batched[k][b] == pytest.approx(single[k], abs=1e-12)


def test_details_match_classification_report():
    rng = np.random.default_rng(1)
    hyp = rng.choice(VALUES, size=(40, 14))
    ref = rng.choice(VALUES, size=(40, 14))
    metric = CheXpertRulesF1()
    det = metric.details(exact_column_sums(metric.stats_from_labels(hyp, ref)))
    h = (to_classes(hyp, "uncertain-positive") > 0).astype(int)
    r = (to_classes(ref, "uncertain-positive") > 0).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rep = classification_report(r, h, target_names=list(CHEXPERT_OBSERVATIONS), output_dict=True, zero_division=0)
    for obs in CHEXPERT_OBSERVATIONS:
        for k, sk in (("precision", "precision"), ("recall", "recall"), ("f1", "f1-score"), ("support", "support")):
            assert det["per_label"][obs][k] == pytest.approx(rep[obs][sk], abs=1e-12)
    for avg in ("micro", "macro", "weighted"):
        for k, sk in (("precision", "precision"), ("recall", "recall"), ("f1", "f1-score")):
            assert det["averages"][f"{avg}_14"][k] == pytest.approx(rep[f"{avg} avg"][sk], abs=1e-12)


def test_scores_reports_end_to_end_and_signature():
    metric = CheXpertRulesF1()
    hyps = ["Mild cardiomegaly. No pleural effusion.", "No acute cardiopulmonary process.", ""]
    refs = ["Mild cardiomegaly. Small left pleural effusion.", "Lungs are clear.", "Moderate pulmonary edema."]
    res = metric.score(hyps, refs)
    assert set(res.corpus) == set(metric.keys)
    assert res.sample["chexpert_rules_f1_sample"].tolist() == [pytest.approx(2 / 3), 1.0, 0.0]
    assert all(0.0 <= v <= 1.0 for v in res.corpus.values())
    sig = metric.signature
    for part in ("convention:uncertain-positive", "label_set:14", "labeler:chexpert-rules", "f1:micro-14"):
        assert part in sig
    assert "convention:uncertain-class" in CheXpertRulesF1(convention="uncertain-class").signature
    assert res.details["per_label"]["Cardiomegaly"]["tp"] == 1


class _CountingLabeler:
    def __init__(self):
        self.seen: list[str] = []

    def settings(self):
        return {"labeler": "counting"}

    def label(self, texts, *, cache=True):
        self.seen.extend(texts)
        out = np.full((len(texts), 14), np.nan)
        for i, t in enumerate(texts):
            if "effusion" in t:
                out[i, CHEXPERT_OBSERVATIONS.index("Pleural Effusion")] = 1.0
        return out


def test_reference_labels_are_cached_by_text_grpo_shape():
    metric = CheXbertF1()
    fake = _CountingLabeler()
    metric._labeler = fake
    refs = [f"reference {i % 8} effusion" for i in range(64)]
    hyps = [f"completion {i}" for i in range(64)]
    for _ in range(3):
        res = metric.score(hyps, refs)
    ref_calls = [t for t in fake.seen if t.startswith("reference")]
    assert len(ref_calls) == 8  # 8 distinct references labelled once across 3 steps
    assert len([t for t in fake.seen if t.startswith("completion")]) == 64 * 3
    assert set(res.corpus) == {k for k in metric.keys} and all(k.startswith("chexbert_") for k in res.corpus)
    assert res.corpus["chexbert_f1"] == 0.0


def test_duplicate_hypotheses_labelled_once():
    metric = CheXbertF1()
    fake = _CountingLabeler()
    metric._labeler = fake
    metric.score(["same effusion"] * 10, ["ref"] * 10)
    assert fake.seen.count("same effusion") == 1


def test_chexbert_metric_is_lazy_and_missing_model_is_a_clear_error(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    monkeypatch.setenv("RADEVAL_MODELS_DIR", str(tmp_path))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    metric = CheXbertF1(model_path=str(tmp_path / "nope" / "chexbert.pth"))
    assert metric._labeler is None  # building the metric loads nothing
    with pytest.raises(ModelNotFound, match="chexbert"):
        metric.score(["a"], ["b"])


def test_bad_options_and_inputs():
    with pytest.raises(ConfigError):
        CheXpertRulesF1(convention="uncertain-maybe")
    with pytest.raises(ConfigError):
        CheXpertRulesF1(label_set="13")
    assert CheXpertRulesF1(label_set=5).label_set == "5"
    metric = CheXpertRulesF1()
    with pytest.raises(InputError):
        metric.score([None], ["No effusion."])  # type: ignore[list-item]
    with pytest.raises((InputError, ValueError)):
        metric.score(["a", "b"], ["a"])


def test_registry_builds_both_metrics():
    import radeval

    m = radeval.get_metric("chexpert_rules", convention="uncertain-negative", label_set="5")
    assert isinstance(m, CheXpertRulesF1)
    assert "label_set:5" in m.signature and "convention:uncertain-negative" in m.signature
    c = radeval.get_metric("chexbert", convention="uncertain-class")
    assert isinstance(c, CheXbertF1) and c.convention == "uncertain-class"


def test_equals_f1chexbert_own_numbers_on_its_recorded_labels():
    """f1chexbert 0.0.2's forward() (rrg mode) on 150 pairs, recorded with its labels in
    tests/data/chexbert_parity (tests/chexbert_fixture.py): our keys from the same labels must
    equal its classification reports, its accuracy (EM5) and its per-sample accuracy."""
    import json
    from pathlib import Path

    path = Path(__file__).parent / "data" / "chexbert_parity" / "f1chexbert_labels.json"
    if not path.is_file():
        pytest.skip("f1chexbert parity fixture not present")
    doc = json.loads(path.read_text())
    names = doc["target_names"]  # CheXbert head order
    value = {1: 1.0, 0: 0.0, -1: -1.0, "": math.nan}
    labels = np.full((len(doc["labels"]), 14), math.nan)
    for i, row in enumerate(doc["labels"]):
        for name, v in zip(names, row):
            labels[i, CHEXPERT_OBSERVATIONS.index(name)] = value[v]
    n = doc["n_hyps"]
    hyp, ref = labels[:n], labels[n : n + doc["n_refs"]]
    metric = CheXbertF1()  # uncertain-positive = f1chexbert's rrg mode
    rows = metric.stats_from_labels(hyp, ref)
    got = {k: float(v) for k, v in metric.from_totals(exact_column_sums(rows)).items()}
    fwd = doc["rrg_forward"]
    for avg in ("micro", "macro", "weighted"):
        assert got[f"chexbert_f1_{avg}_14"] == pytest.approx(fwd["cr"][f"{avg} avg"]["f1-score"], abs=1e-12)
        assert got[f"chexbert_f1_{avg}_5"] == pytest.approx(fwd["cr_5"][f"{avg} avg"]["f1-score"], abs=1e-12)
    assert got["chexbert_em5"] == pytest.approx(fwd["accuracy"], abs=1e-12)
    np.testing.assert_allclose(metric.sample_values(rows)["chexbert_em5"], fwd["pe_accuracy"], atol=0)
    det = metric.details(exact_column_sums(rows))
    for name in names:
        for k, sk in (("precision", "precision"), ("recall", "recall"), ("f1", "f1-score"), ("support", "support")):
            assert det["per_label"][name][k] == pytest.approx(fwd["cr"][name][sk], abs=1e-12)


def test_chexbert_metric_end_to_end_equals_f1chexbert(tmp_path):
    """Texts in, numbers out: radeval's CheXbert labeler (tiny random-weight checkpoint built
    from the parity seed) + this F1 layer == f1chexbert's forward() on the same 150 pairs."""
    import json
    import sys
    from pathlib import Path

    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    here = Path(__file__).parent
    path = here / "data" / "chexbert_parity" / "f1chexbert_labels.json"
    if not path.is_file():
        pytest.skip("f1chexbert parity fixture not present")
    sys.path.insert(0, str(here))
    from chexbert_fixture import make_caches

    doc = json.loads(path.read_text())
    info = make_caches(tmp_path, doc["seed"], doc["config"])
    assert info["fingerprint"] == doc["weights_fingerprint"]
    n, m = doc["n_hyps"], doc["n_refs"]
    hyps, refs = doc["texts"][:n], doc["texts"][n : n + m]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        metric = CheXbertF1(
            model_path=str(info["checkpoint"]), tokenizer_path=str(info["tokenizer_dir"]), batch_size=16
        )
        res = metric.score(hyps, refs)
    finally:
        torch.set_num_threads(threads)
    fwd = doc["rrg_forward"]
    assert res.corpus["chexbert_f1"] == pytest.approx(fwd["cr"]["micro avg"]["f1-score"], abs=1e-12)
    for avg in ("micro", "macro", "weighted"):
        assert res.corpus[f"chexbert_f1_{avg}_14"] == pytest.approx(fwd["cr"][f"{avg} avg"]["f1-score"], abs=1e-12)
        assert res.corpus[f"chexbert_f1_{avg}_5"] == pytest.approx(fwd["cr_5"][f"{avg} avg"]["f1-score"], abs=1e-12)
    assert res.corpus["chexbert_em5"] == pytest.approx(fwd["accuracy"], abs=1e-12)
    np.testing.assert_array_equal(res.sample["chexbert_em5"], fwd["pe_accuracy"])
    assert "model_sha256:" in metric.signature and "convention:uncertain-positive" in metric.signature
