"""``radeval label``: output contract, counts, field mapping, and the bad-input rules."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from radeval.cli import main
from radeval.labeling import count_labels, label_file, labels_to_json, read_reports
from radeval.labels import CHEXPERT_OBSERVATIONS
from radeval.metrics.chexpert_rules import RuleLabeler

HAND = Path(__file__).parent / "data" / "chexpert_hand_labeled.jsonl"


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_label_jsonl_rules(tmp_path, capsys):
    src = tmp_path / "reports.jsonl"
    rows = [json.loads(line) for line in HAND.read_text().splitlines()][:40]
    _write_jsonl(src, [{"id": r["id"], "report": r["report"], "extra": 1} for r in rows])
    out = tmp_path / "sub" / "labels.jsonl"
    assert main(["label", str(src), "--labeler", "rules", "--output", str(out)]) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [x["id"] for x in lines] == [r["id"] for r in rows]  # input order
    want = RuleLabeler().label([r["report"] for r in rows])
    for line, w in zip(lines, want):
        assert set(line) == {"id", "labeler", "labels"} and line["labeler"] == "rules"
        assert list(line["labels"]) == list(CHEXPERT_OBSERVATIONS)
        assert all(v in (1, 0, -1, None) for v in line["labels"].values())
        assert line["labels"] == labels_to_json(w)
    shown = capsys.readouterr().out
    assert "Pleural Effusion" in shown and "uncertain" in shown and "40 reports" in shown


def test_quiet_prints_counts_as_json(tmp_path, capsys):
    src = _write_jsonl(
        tmp_path / "r.jsonl",
        [
            {"id": 1, "report": "Mild cardiomegaly. No pleural effusion."},
            {"id": 2, "report": "Possible small left pleural effusion."},
            {"id": 3, "report": ""},  # an empty report is valid: nothing mentioned
        ],
    )
    out = tmp_path / "o.jsonl"
    assert main(["label", str(src), "-o", str(out), "-q"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n_records"] == 3 and summary["labeler"] == "rules"
    pe = summary["counts"]["Pleural Effusion"]
    assert pe == {"positive": 0, "negative": 1, "uncertain": 1, "blank": 1}
    assert summary["counts"]["Cardiomegaly"]["positive"] == 1
    assert summary["counts"]["No Finding"] == {"positive": 1, "negative": 0, "uncertain": 0, "blank": 2}
    assert json.loads(out.read_text().splitlines()[0])["id"] == "1"


def test_csv_and_field_mapping(tmp_path):
    src = tmp_path / "r.csv"
    with src.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["study", "impression"])
        w.writerow(["s1", "Right lower lobe pneumonia."])
        w.writerow(["s2", "No pneumothorax."])
    out = tmp_path / "o.jsonl"
    assert main(["label", str(src), "--field", "impression", "--id-field", "study", "-o", str(out), "-q"]) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines[0]["id"] == "s1" and lines[0]["labels"]["Pneumonia"] == 1
    assert lines[1]["labels"]["Pneumothorax"] == 0 and lines[1]["labels"]["No Finding"] == 1


def test_bad_records_stop_the_run_and_name_line_and_field(tmp_path, capsys):
    src = tmp_path / "bad.jsonl"
    src.write_text(
        json.dumps({"id": "a", "report": "No edema."})
        + "\n"
        + json.dumps({"id": "b"})
        + "\n"
        + json.dumps({"id": "c", "report": 5})
        + "\n"
        + "{not json\n"
        + json.dumps({"id": "a", "report": "dup"})
        + "\n"
    )
    out = tmp_path / "o.jsonl"
    assert main(["label", str(src), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "4 invalid record(s)" in err and "nothing was labelled" in err
    assert ":2: missing field 'report'" in err and "--field" in err
    assert ":3: field 'report' must be a string" in err
    assert ":4: malformed JSON" in err
    assert "duplicate id 'a'" in err
    assert not out.exists()
    # --skip-invalid labels the good lines and lists the skipped ones
    assert main(["label", str(src), "-o", str(out), "--skip-invalid", "-q"]) == 0
    captured = capsys.readouterr()
    assert "skipped 4 invalid record(s)" in captured.err
    assert [json.loads(x)["id"] for x in out.read_text().splitlines()] == ["a"]


def test_config_errors(tmp_path, capsys):
    src = _write_jsonl(tmp_path / "r.jsonl", [{"id": 1, "report": "x"}])
    assert main(["label", str(src), "-o", str(tmp_path / "o.jsonl"), "--labeler", "negbio"]) == 2
    assert "unknown labeler 'negbio'" in capsys.readouterr().err
    assert main(["label", str(tmp_path / "missing.jsonl"), "-o", str(tmp_path / "o.jsonl")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["label", str(src), "-o", str(tmp_path)]) == 2  # a directory is not an output file
    assert "is a directory" in capsys.readouterr().err


def test_library_api(tmp_path):
    src = _write_jsonl(tmp_path / "r.jsonl", [{"id": i, "report": t} for i, t in enumerate(["No edema.", "Edema."])])
    records, skipped = read_reports(src)
    assert records == [("0", "No edema."), ("1", "Edema.")] and skipped == []
    run = label_file(src, tmp_path / "o.jsonl")
    assert run.n_records == 2 and run.counts["Edema"]["positive"] == 1 and run.counts["Edema"]["negative"] == 1
    assert run.settings["labeler"] == "chexpert-rules"
    counts = count_labels(np.array([[np.nan] * 14]))
    assert all(c["blank"] == 1 for c in counts.values())


@pytest.mark.parametrize("labeler", ["chexbert"])
def test_chexbert_labeler_missing_model(tmp_path, capsys, monkeypatch, labeler):
    pytest.importorskip("torch")
    monkeypatch.setenv("RADEVAL_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    src = _write_jsonl(tmp_path / "r.jsonl", [{"id": 1, "report": "x"}])
    assert main(["label", str(src), "-o", str(tmp_path / "o.jsonl"), "--labeler", labeler]) == 4
    assert "radeval models download chexbert" in capsys.readouterr().err
