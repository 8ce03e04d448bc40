"""The synthetic chest X-ray benchmark (experiments/synthetic_cxr): generator, labels, smoke run."""

from __future__ import annotations

import itertools
import json
import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from experiments.synthetic_cxr import generator as G  # noqa: E402


def _positives(labels_row) -> set[str]:
    from radeval.metrics.chexpert_rules import CHEXPERT_OBSERVATIONS

    # uncertain (-1) counts as positive in the F1 convention we report, so it must not appear either
    return {CHEXPERT_OBSERVATIONS[j] for j, v in enumerate(labels_row) if v in (1.0, -1.0)}


def test_every_phrasing_is_labeled_as_intended():
    """Each positive template (both sides) is read as its observation; each negation as nothing."""
    from radeval.metrics.chexpert_rules import label_reports

    texts, expected = [], []
    for key, templates in G.POSITIVE.items():
        flat = list(itertools.chain.from_iterable(templates.values())) if isinstance(templates, dict) else templates
        for tmpl, side in itertools.product(flat, ("right", "left")):
            texts.append(tmpl.format(side=side, Side=side.capitalize()))
            expected.append({G.FINDINGS[key]} | ({"No Finding"} if key == "device" else set()))
    for templates in G.NEGATIVE.values():
        for tmpl in templates:
            texts.append(tmpl)
            expected.append({"No Finding"})
    labels = label_reports(texts)
    wrong = [(t, e, _positives(row)) for t, e, row in zip(texts, expected, labels) if _positives(row) != e]
    assert not wrong, wrong


def test_generated_reports_label_correctly_complete_and_under_reported():
    from radeval.metrics.chexpert_rules import label_reports

    cases = G.make_cases(150, seed=11)
    labels = label_reports([c.report for c in cases] + [c.report_under for c in cases])
    for i, c in enumerate(cases):
        assert _positives(labels[i]) == G.labels_of(c.findings), c.report
        assert _positives(labels[len(cases) + i]) == G.labels_of(c.reported), c.report_under
    # under-reporting drops findings: about 60% of the present ones
    present = sum(len(c.findings) for c in cases)
    kept = sum(len(c.reported) for c in cases)
    assert 0.25 < kept / present < 0.55
    # reports are short (~20 words) and vary in phrasing
    words = [len(c.report.split()) for c in cases]
    assert 14 <= np.mean(words) <= 30
    assert len({c.report for c in cases}) > 100


def test_generator_is_seeded_and_boxes_mark_drawn_findings():
    a, b = G.make_cases(20, seed=5), G.make_cases(20, seed=5)
    assert all(np.array_equal(x.image, y.image) and x.report == y.report for x, y in zip(a, b))
    c = G.make_cases(20, seed=6)
    assert any(not np.array_equal(x.image, y.image) for x, y in zip(a, c))
    cases = G.make_cases(200, seed=7)
    counts = {k: 0 for k in G.FINDINGS}
    for case in cases:
        assert case.image.shape == (G.SIDE, G.SIDE) and case.image.dtype == np.uint8
        for k, box in case.boxes().items():
            counts[k] += 1
            x1, y1, x2, y2 = box
            assert 0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1
    assert all(v > 20 for v in counts.values()), counts
    # a drawn finding changes the pixels inside its box: pneumothorax darkens, devices brighten
    px = [c for c in cases if "pneumothorax" in c.findings]
    dev = [c for c in cases if "device" in c.findings]

    def inside(c, k):
        x1, y1, x2, y2 = (int(round(v * G.SIDE)) for v in c.boxes()[k])
        return c.image[y1:y2, x1:x2]

    assert np.mean([np.median(inside(c, "pneumothorax")) for c in px]) < 20  # air: darker than lung (~45)
    assert np.mean([inside(c, "device").max() for c in dev]) > 200


@pytest.mark.slow
def test_smoke_run_end_to_end(tmp_path):
    pytest.importorskip("trl")
    pytest.importorskip("open_clip")
    from experiments.synthetic_cxr import run

    rc = run.main(["--out", str(tmp_path), "--smoke", "--workers", "1"])
    assert rc == 0
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["seed_level"]["clean"]["greedy"]["visual"]
    assert res["seed_level"]["under"]["sampled"]["sft_more"]
    assert (tmp_path / "SUMMARY.md").is_file()
    assert (tmp_path / "tables" / "synthetic_cxr_table1_greedy.md").is_file()
    assert (tmp_path / "plots" / "attention_clean.png").is_file()
    assert (tmp_path / "expert" / "open_clip_model.safetensors").is_file()
