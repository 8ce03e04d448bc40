"""The offline rule-based CheXpert-style labeler: the CheXpert labeler's samples, a hand-labelled
set written for these tests, and its individual rules (cleaning, unmentions, aggregation...)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from radeval.errors import InputError
from radeval.labels import CHEXPERT_OBSERVATIONS, FIVE_LABELS
from radeval.metrics.chexpert_rules import DATA_DIR, RuleLabeler, clean, sentences

HERE = Path(__file__).parent
HAND = HERE / "data" / "chexpert_hand_labeled.jsonl"
SAMPLES = HERE / "data" / "chexpert_labeled_reports.csv"


@pytest.fixture(scope="module")
def labeler() -> RuleLabeler:
    return RuleLabeler()


def one(labeler: RuleLabeler, text: str) -> dict[str, float]:
    row = labeler.label([text])[0]
    return {o: v for o, v in zip(CHEXPERT_OBSERVATIONS, row) if not math.isnan(v)}


def _expected(labels: dict[str, float]) -> np.ndarray:
    row = np.full(len(CHEXPERT_OBSERVATIONS), np.nan)
    for k, v in labels.items():
        row[CHEXPERT_OBSERVATIONS.index(k)] = v
    return row


def _agreement(got: np.ndarray, want: np.ndarray) -> tuple[float, float]:
    same = (got == want) | (np.isnan(got) & np.isnan(want))
    mentioned = ~(np.isnan(got) & np.isnan(want))
    return float(same.mean()), float(same[mentioned].mean())


def test_chexpert_sample_reports_exact(labeler):
    with SAMPLES.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and list(rows[0])[1:] == list(CHEXPERT_OBSERVATIONS)
    got = labeler.label([r["Reports"] for r in rows])
    want = np.array([[float(r[o]) if r[o] else np.nan for o in CHEXPERT_OBSERVATIONS] for r in rows])
    np.testing.assert_array_equal(got, want)  # NaN == NaN for assert_array_equal


def test_hand_labelled_reports_agreement(labeler):
    records = [json.loads(line) for line in HAND.read_text().splitlines()]
    assert len(records) >= 100
    got = labeler.label([r["report"] for r in records])
    want = np.stack([_expected(r["labels"]) for r in records])
    cells, mentioned = _agreement(got, want)
    bad = [
        (r["id"], r["report"][:60]) for r, g, w in zip(records, got, want) if not np.array_equal(g, w, equal_nan=True)
    ]
    # goal: >= 95% label-level agreement; counted on all cells and on cells either side labels
    assert cells >= 0.95 and mentioned >= 0.95, bad
    assert len(bad) <= len(records) // 20, bad


def test_output_contract(labeler):
    out = labeler.label(["No pneumothorax.", "", "Large right pleural effusion."])
    assert out.shape == (3, 14) and out.dtype == np.float64
    assert set(np.unique(out[~np.isnan(out)])) <= {1.0, 0.0, -1.0}
    # an empty report mentions nothing, so the labeler's rule gives No Finding = 1
    assert one(labeler, "") == {"No Finding": 1.0}
    assert labeler.label([]).shape == (0, 14)
    s = labeler.settings()
    assert s["labeler"] == "chexpert-rules" and "44ddeb3" in s["phrases"]
    with pytest.raises(InputError, match="report 1"):
        labeler.label(["ok", None])  # type: ignore[list-item]
    with pytest.raises(InputError):
        labeler.label("a single string")  # type: ignore[arg-type]
    # cache=False gives the same labels
    np.testing.assert_array_equal(labeler.label(["Mild edema."], cache=False), labeler.label(["Mild edema."]))


def test_cleaning_as_the_labeler_cleans():
    assert clean("Atelectasis and/or  Consolidation") == "atelectasis or consolidation"
    assert clean("effusion/pneumothorax") == "effusion or pneumothorax"
    assert clean("No edema..Clear,lungs") == "no edema. clear, lungs"
    assert clean("1. A\n\n2. B") == "1. a 2. b"
    assert sentences("no edema. clear lungs. ") == ["no edema.", "clear lungs."]


def test_slash_between_letters_becomes_or(labeler):
    assert one(labeler, "Atelectasis/consolidation at the left base.") == {
        "Atelectasis": -1.0,
        "Consolidation": -1.0,
    }


def test_unmentions(labeler):
    # pericardial effusion is not a pleural effusion; "massive" is not a mass
    assert "Pleural Effusion" not in one(labeler, "Small pericardial effusion.")
    assert "Lung Lesion" not in one(labeler, "Massive cardiomegaly.")
    # positional phrases: an opacity projecting over the heart says nothing about the heart
    assert "Cardiomegaly" not in one(labeler, "Opacity projecting over the heart.")
    assert one(labeler, "Opacity projecting over the heart.")["Lung Opacity"] == 1.0
    # a calcified nodule is not a lung lesion mention (and blocks No Finding)
    assert one(labeler, "Calcified nodule in the right upper lobe.") == {}


def test_aggregation_rules(labeler):
    # negative + positive -> positive
    assert one(labeler, "No left effusion. Small right pleural effusion.")["Pleural Effusion"] == 1.0
    # negative + uncertain -> uncertain
    assert one(labeler, "No right effusion. Possible small left effusion.")["Pleural Effusion"] == -1.0
    # uncertain + positive -> positive
    assert one(labeler, "Possible left effusion. Right pleural effusion.")["Pleural Effusion"] == 1.0
    # all negative -> negative
    assert one(labeler, "No effusion. No pleural fluid.")["Pleural Effusion"] == 0.0


def test_heart_failure_adds_uncertain_cardiomegaly(labeler):
    assert one(labeler, "Congestive heart failure.") == {"Edema": 1.0, "Cardiomegaly": -1.0}
    assert one(labeler, "No evidence of CHF.") == {"Edema": 0.0, "No Finding": 1.0}
    # with a positive cardiomegaly mention the aggregate stays positive
    assert one(labeler, "Cardiomegaly and CHF.")["Cardiomegaly"] == 1.0


def test_no_finding_rules(labeler):
    # only negative mentions: No Finding
    assert one(labeler, "No pleural effusion or pneumothorax.")["No Finding"] == 1.0
    # support devices do not block it
    assert one(labeler, "Endotracheal tube in place.") == {"Support Devices": 1.0, "No Finding": 1.0}
    # findings outside the 13 observations (no_finding.txt) block it when positive or uncertain
    assert "No Finding" not in one(labeler, "Degenerative changes of the spine.")
    assert "No Finding" not in one(labeler, "Possible emphysema.")
    assert one(labeler, "No emphysema.") == {"No Finding": 1.0}
    # any positive or uncertain observation blocks it; it is never 0
    assert "No Finding" not in one(labeler, "Possible pneumonia.")
    assert 0.0 not in labeler.label(["Mild cardiomegaly.", "No edema."])[:, 0]


@pytest.mark.parametrize(
    "text, want",
    [
        ("No edema or pneumonia.", {"Edema": 0.0, "Pneumonia": 0.0, "No Finding": 1.0}),
        (
            "No focal consolidation, effusion or pneumothorax.",
            {"Consolidation": 0.0, "Pleural Effusion": 0.0, "Pneumothorax": 0.0, "No Finding": 1.0},
        ),
        ("No pneumothorax, but a small left effusion.", {"Pneumothorax": 0.0, "Pleural Effusion": 1.0}),
        ("No change in mild cardiomegaly.", {"Cardiomegaly": 1.0}),
        ("No new consolidation.", {"Consolidation": -1.0}),
        ("Cannot rule out pneumonia.", {"Pneumonia": -1.0}),
        ("Pneumonia is not excluded.", {"Pneumonia": -1.0}),
        ("Stable cardiomediastinal silhouette.", {"Enlarged Cardiomediastinum": -1.0}),
        (
            "The cardiomediastinal silhouette is stable and normal.",
            {"Enlarged Cardiomediastinum": 0.0, "No Finding": 1.0},
        ),
        (
            "Heart size and mediastinal contours are normal.",
            {"Cardiomegaly": 0.0, "Enlarged Cardiomediastinum": 0.0, "No Finding": 1.0},
        ),
        ("Mild cardiomegaly and the lungs are clear.", {"Cardiomegaly": 1.0}),
        ("Cardiomegaly with normal pulmonary vascularity.", {"Cardiomegaly": 1.0}),
        ("Heart size normal.", {"Cardiomegaly": 0.0, "No Finding": 1.0}),
        ("Left lower lobe opacity may represent atelectasis.", {"Lung Opacity": 1.0, "Atelectasis": -1.0}),
        ("Atelectasis versus pneumonia.", {"Atelectasis": -1.0, "Pneumonia": -1.0}),
        ("Mild pulmonary vascular congestion.", {"Edema": -1.0}),
        ("No pulmonary vascular congestion.", {"Edema": 0.0, "No Finding": 1.0}),
        ("The chest tube has been removed.", {"Support Devices": 0.0, "No Finding": 1.0}),
        ("The previously seen right effusion has resolved.", {"Pleural Effusion": 0.0, "No Finding": 1.0}),
        ("No suspicious nodule.", {"Lung Lesion": 0.0, "No Finding": 1.0}),
        ("Findings suspicious for pneumonia.", {"Pneumonia": -1.0}),
        ("Borderline heart size.", {"Cardiomegaly": -1.0}),
        ("The heart is not enlarged.", {"Cardiomegaly": 0.0, "No Finding": 1.0}),
    ],
)
def test_cue_scopes(labeler, text, want):
    assert one(labeler, text) == want


def test_five_labels_are_observations():
    assert set(FIVE_LABELS) <= set(CHEXPERT_OBSERVATIONS)


def test_phrase_lists_ship_with_their_licence():
    assert (DATA_DIR / "LICENSE").read_text().startswith("MIT License")
    assert "Stanford Machine Learning Group" in (DATA_DIR / "LICENSE").read_text()
    stems = {p.stem for p in (DATA_DIR / "phrases" / "mention").glob("*.txt")}
    assert len(stems) == 14
    for name in ("negation.txt", "pre_negation_uncertainty.txt", "post_negation_uncertainty.txt"):
        assert (DATA_DIR / "patterns" / name).is_file()


def test_fast_enough_for_a_reward(labeler):
    import time

    texts = [
        f"Report {i}. Mild cardiomegaly. No pleural effusion or pneumothorax. Possible left basilar atelectasis."
        for i in range(500)
    ]
    t0 = time.perf_counter()
    labeler.label(texts, cache=False)
    dt = time.perf_counter() - t0
    assert dt < 10.0  # measured ~0.1 s; a loose bound for a loaded CI machine


# ------------------------------------------------------------------ de-identification placeholders
PLACEHOLDER_CASES = [
    # (sentence, observation, expected label); IU X-ray redacts words as "XXXX", MIMIC as "___"
    ("There are no XXXX of a pleural effusion.", "Pleural Effusion", 0.0),
    ("No XXXX of pleural effusions.", "Pleural Effusion", 0.0),
    ("No XXXX of pneumothorax or pleural effusion.", "Pneumothorax", 0.0),
    ("No XXXX of pneumothorax or pleural effusion.", "Pleural Effusion", 0.0),
    ("No XXXX XXXX of pneumothorax.", "Pneumothorax", 0.0),
    ("There is no XXXX pneumothorax.", "Pneumothorax", 0.0),
    ("No ___ of pneumothorax.", "Pneumothorax", 0.0),
    ("No pneumothorax, ___ effusion.", "Pleural Effusion", 0.0),
    ("Possible XXXX of pneumonia.", "Pneumonia", -1.0),
    ("XXXX pleural effusion may be present.", "Pleural Effusion", -1.0),
    # a placeholder does not invent a negation, and "of" after an ordinary noun still ends a scope
    ("There is XXXX opacity in the right lower lobe.", "Lung Opacity", 1.0),
    ("No change of the XXXX pleural effusion.", "Pleural Effusion", 1.0),
]


@pytest.mark.parametrize(("sentence", "observation", "expected"), PLACEHOLDER_CASES)
def test_scopes_pass_over_deidentification_placeholders(sentence, observation, expected):
    from radeval.labels import OBSERVATION_INDEX
    from radeval.metrics.chexpert_rules import RuleLabeler

    row = RuleLabeler().label([sentence])[0]
    assert row[OBSERVATION_INDEX[observation]] == expected


def test_placeholder_negation_gives_no_finding():
    from radeval.labels import OBSERVATION_INDEX
    from radeval.metrics.chexpert_rules import RuleLabeler

    row = RuleLabeler().label(["The heart is normal in size. There are no XXXX of a pleural effusion or pneumothorax."])[0]
    assert row[OBSERVATION_INDEX["No Finding"]] == 1.0
