"""Reward benchmark: each perturbation does what it claims, and the numbers are computed as defined."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from radeval.bench.perturb import KINDS, NORMAL_TEMPLATE, perturb, sentences, wrap
from radeval.bench.rewards_bench import DEFAULT_REPORTS, read_reports, run_benchmark
from radeval.errors import InputError

R = "Small left pleural effusion. Mild cardiomegaly, new since the prior study. A 2 cm nodule in the right upper lobe. No pneumothorax."
PLAIN = "The heart is normal."  # one sentence, no laterality, size, location, or time words


def words(t):
    return sorted(re.findall(r"[a-z0-9]+", t.lower()))


def test_synonym_swap_keeps_meaning_words_changed():
    from radeval.bench.perturb import _SYNONYMS

    out = perturb("synonym_swap", R)
    assert out != R
    swapped = [(a, b) for a, b in _SYNONYMS if a in R.lower() and b in out.lower()]
    assert len(swapped) == 1  # one equivalent phrase replaced by its synonym
    a, b = swapped[0]
    assert out.lower().replace(b, a) == R.lower()


def test_reorder_keeps_the_same_sentences():
    out = perturb("sentence_reorder", R)
    assert out != R and sorted(sentences(out)) == sorted(sentences(R))
    assert perturb("sentence_reorder", PLAIN) is None  # one sentence: does not apply


def test_format_kinds_keep_the_words():
    for kind in ("format_case", "format_spacing"):
        assert words(perturb(kind, R)) == words(R)
    numbered = perturb("format_numbering", R)
    assert numbered.startswith("1. ") and " 2. " in numbered


def test_negation_flip_inverts_a_finding():
    out = perturb("negation_flip", R, seed=0)
    assert out != R
    flipped_neg = "There is pneumothorax." in out
    flipped_pos = bool(re.search(r"\bNo (small|mild|a 2 cm)", out))
    assert flipped_neg or flipped_pos
    assert perturb("negation_flip", "No acute cardiopulmonary process.") is None


def test_laterality_swap_changes_exactly_one_side_word():
    out = perturb("laterality_swap", R)
    assert ("Small right pleural effusion" in out) != ("right upper lobe" not in out)
    assert perturb("laterality_swap", PLAIN) is None


def test_severity_location_temporal_size():
    assert "Large left" in perturb("severity_change", "Small left pleural effusion.")
    assert perturb("severity_change", "Moderate edema.") == "Severe edema."
    assert "lower lobe" in perturb("wrong_location", "A nodule in the right upper lobe.")
    assert "unchanged since" in perturb("wrong_temporal", "Cardiomegaly, new since the prior study.")
    assert "6 cm" in perturb("wrong_size", "A 2 cm nodule.")
    for kind in ("severity_change", "wrong_location", "wrong_temporal", "wrong_size"):
        assert perturb(kind, PLAIN) is None, kind


def test_omit_and_hallucinate():
    out = perturb("omit_finding", R)
    assert len(sentences(out)) == len(sentences(R)) - 1 and "No pneumothorax." in out
    assert perturb("omit_finding", "No pneumothorax.") is None
    added = perturb("hallucinate_finding", "The lungs are clear.")
    assert len(sentences(added)) == 2


def test_degenerate_outputs():
    assert perturb("empty", R) == ""
    assert perturb("normal_template", R) == NORMAL_TEMPLATE
    rep = perturb("repeated_sentences", R)
    assert rep.count("Small left pleural effusion.") == 6
    assert perturb("reference_plus_junk", R).startswith(R)
    assert len(perturb("very_long", R)) == 12 * len(R) + 11
    assert wrap("missing_tags", "x") == "x" and wrap("broken_tags", "x") == "<report>x"
    assert wrap("synonym_swap", "x") == "<report>x</report>"


def test_deterministic():
    for k in KINDS:
        assert perturb(k.name, R, seed=3, index=5) == perturb(k.name, R, seed=3, index=5)


def test_shipped_reports_cover_every_kind():
    reports = read_reports(None)
    assert len(reports) >= 30
    for k in KINDS:
        applies = sum(perturb(k.name, r, index=i) is not None for i, (_, r) in enumerate(reports))
        assert applies >= 5, k.name


def test_bad_report_file(tmp_path):
    f = tmp_path / "r.jsonl"
    f.write_text('{"id": "a", "reference": "x"}\n{"id": "b"}\n')
    with pytest.raises(InputError, match=":2: needs a non-empty string field 'reference'"):
        read_reports(f)


def test_sensitivity_and_exposure_definitions(tmp_path):
    reports = read_reports(DEFAULT_REPORTS)[:6]
    res = run_benchmark(reports, ["rouge_l", "valor_format"], bootstrap=50)
    # recompute clinical sensitivity from the raw per-reference scores
    sc = {k: np.array([np.nan if v is None else v for v in vals]) for k, vals in res.scores["rouge_l"].items()}
    wins = pairs = 0.0
    errors = [k.name for k in KINDS if k.family == "error"]
    paras = [k.name for k in KINDS if k.family == "paraphrase"]
    for i in range(len(reports)):
        for e in errors:
            for p in paras:
                if not (np.isnan(sc[e][i]) or np.isnan(sc[p][i])):
                    pairs += 1
                    wins += 1.0 if sc[e][i] < sc[p][i] else 0.5 if sc[e][i] == sc[p][i] else 0.0
    assert res.sensitivity["rouge_l"]["value"] == pytest.approx(wins / pairs)
    # the format reward pays the tagged outputs 1 and the broken/missing tags 0
    assert res.mean["valor_format"]["synonym_swap"] == 1.0
    assert res.mean["valor_format"]["missing_tags"] == 0.0 and res.mean["valor_format"]["broken_tags"] == 0.0
    assert res.exposure["rouge_l"]["empty"]["value"] < 0.2


def test_cli_writes_outputs_and_human_agreement(tmp_path):
    from radeval.cli import main

    human = tmp_path / "h.jsonl"
    rows = [
        {"prediction": "No pleural effusion.", "reference": "No pleural effusion.", "errors": 0},
        {"prediction": "Small pleural effusion.", "reference": "No pleural effusion.", "errors": 1},
        {"prediction": "Large right pneumothorax. Cardiomegaly.", "reference": "No pleural effusion.", "errors": 3},
        {"prediction": "No effusion.", "reference": "No pleural effusion.", "errors": 0},
    ]
    human.write_text("".join(json.dumps(r) + "\n" for r in rows))
    reports = tmp_path / "refs.jsonl"
    reports.write_text("".join(DEFAULT_REPORTS.read_text().splitlines(keepends=True)[:5]))
    out = tmp_path / "bench"
    assert main(["bench", "rewards", str(reports), "-m", "bleu_4,rouge_l", "-o", str(out), "--bootstrap", "20",
                 "--human", str(human), "-q"]) == 0
    data = json.loads((out / "bench.json").read_text())
    assert data["rewards"] == ["bleu_4", "rouge_l"]
    assert data["human_agreement"]["rouge_l"]["tau_b"] > 0
    assert (out / "report.md").read_text().startswith("# Reward benchmark")
