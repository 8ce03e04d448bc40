"""Small human-judgement fixtures in the real formats (ReXVal CSVs, RadPref JSON, RadJudge's
test_cases.py), written for radeval's tests: the reports are invented, not the data sets'."""

from __future__ import annotations

import csv
import json
from pathlib import Path

REPORTS = [
    "Heart size is normal. No pleural effusion. No pneumothorax.",
    "Small left pleural effusion. Mild cardiomegaly.",
    "Right lower lobe consolidation concerning for pneumonia.",
    "Endotracheal tube tip 4 cm above the carina. Lungs are clear.",
    "Moderate pulmonary edema. Bilateral small effusions.",
    "No acute cardiopulmonary process.",
]
KINDS = ["radgraph", "bertscore", "s_emb", "bleu"]


def candidates_for(ref: str) -> dict[str, str]:
    """Four candidates from close to far (the human error counts below follow this order)."""
    words = ref.split()
    return {
        "radgraph": ref,
        "bertscore": " ".join(words[: max(1, len(words) - 2)]) + ".",
        "s_emb": " ".join(reversed(words)),
        "bleu": "Large right pneumothorax with mediastinal shift.",
    }


def write_rexval(root: Path, *, study_number: str = "id", shuffle_columns: bool = True) -> Path:
    """study_number "id" (= study_id values), "pos0" (0-based rows) or "pos1" (1-based)."""
    root.mkdir(parents=True, exist_ok=True)
    cols = ["study_id", "gt_report", *KINDS]
    if shuffle_columns:
        cols = ["bleu", "gt_report", "s_emb", "study_id", "radgraph", "bertscore"]  # read by name
    with open(root / "50_samples_gt_and_candidates.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for i, ref in enumerate(REPORTS[:4]):
            w.writerow({"study_id": f"s{100 + i}", "gt_report": ref, **candidates_for(ref)})
    rcols = ["rater_index", "error_category", "study_number", "candidate_type", "clinically_significant", "num_errors"]
    with open(root / "6_valid_raters_per_rater_error_categories.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=rcols)
        w.writeheader()
        for i in range(4):
            sn = {"id": f"s{100 + i}", "pos0": str(i), "pos1": str(i + 1)}[study_number]
            for rater in range(3):
                for k, kind in enumerate(KINDS):
                    for cat in (1, 2, 3, 4, 5, 6):
                        n = (k + rater + i) % 3 if cat <= k + 1 else 0
                        w.writerow({"study_number": sn, "candidate_type": kind, "rater_index": rater,
                                    "error_category": cat, "clinically_significant": "True" if cat % 2 else "False",
                                    "num_errors": n})  # fmt: skip
    return root


def rexval_expected(study: int, kind: str) -> tuple[float, float]:
    """(mean total errors, mean clinically significant errors) the fixture encodes."""
    k = KINDS.index(kind)
    tot, sig = 0.0, 0.0
    for rater in range(3):
        for cat in range(1, 7):
            n = (k + rater + study) % 3 if cat <= k + 1 else 0
            tot += n
            sig += n if cat % 2 else 0
    return tot / 3, sig / 3


def write_radpref(root: Path) -> Path:
    d = root / "RadPref"
    (d / "radiologist_annotations").mkdir(parents=True, exist_ok=True)
    cases = []
    for i, ref in enumerate(REPORTS[:5]):
        c = candidates_for(ref)
        cases.append({"id": f"case{i}", "ground_truth_report": ref, "ground_truth_findings": [ref],
                      "C1_report": c["bertscore"], "C1_findings": [], "C1_source": "x",
                      "C2_report": c["bleu"] if i % 2 else c["s_emb"], "C2_findings": [], "C2_source": "y",
                      "PatientAge": "70", "PatientSex": "F", "Indication": "cough", "Comparison": "",
                      "StudyDescription": "CXR"})  # fmt: skip
    (d / "preference_data.json").write_text(json.dumps(cases, indent=2))
    for u in (1, 2, 3):
        ann = {}
        for i in range(5):
            ann[f"case{i}"] = {
                "C1": {"finding_errors": {}, "missing_findings": {}, "rating": 4 if (i + u) % 4 else 3},
                "C2": {"finding_errors": {}, "missing_findings": {}, "rating": 1 + (i + u) % 3},
            }
        (d / "radiologist_annotations" / f"user_{u}.json").write_text(json.dumps({"user_id": str(u), "annotations": ann}))
    return root


RADJUDGE_SOURCE = '''"""Stand-in test cases in RadJudge's layout (radeval tests)."""
raise SystemExit("this file is read, never run")

RANKING_TESTS = [
    {
        "category": "Copies",
        "description": "identical text scores equal",
        "tests": [
            {"id": "1a", "ground_truth": "Small left pleural effusion.",
             "candidates": {"C1": {"text": "Small left pleural effusion."},
                            "C2": {"text": "Large right pneumothorax."}},
             "expected_ranking": "C1 > C2"},
            {"id": "1b", "ground_truth": "Mild cardiomegaly.",
             "candidates": {"C1": {"text": "Mild cardiomegaly.", "context": {"age": "25"}},
                            "C2": {"text": "Mild cardiomegaly.", "context": {"age": "80"}}},
             "expected_ranking": "C1 = C2"},
        ],
    },
    {
        "category": "Chains",
        "description": "lists must all hold",
        "tests": [
            {"id": "2a", "ground_truth": "Right lower lobe pneumonia.",
             "candidates": {"C1": {"text": "Right lower lobe pneumonia."},
                            "C2": {"text": "Right lower lobe opacity."},
                            "C3": {"text": "Normal chest."}},
             "expected_ranking": ["C1 > C2", "C2 > C3"]},
            {"id": "2b", "ground_truth": "Normal chest.",
             "candidates": {"C1": {"text": "Normal chest."}, "C2": {"text": "Pneumothorax."}},
             "expected_ranking": "C2 > C1"},
        ],
    },
]
'''


def write_radjudge(root: Path) -> Path:
    d = root / "RadJudge"
    d.mkdir(parents=True, exist_ok=True)
    (d / "test_cases.py").write_text(RADJUDGE_SOURCE)
    return root
