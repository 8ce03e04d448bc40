"""Every bad-input case of the core issue gets one clear message naming line/field, no traceback."""

from __future__ import annotations

import json

import pytest

from radeval.cli import main
from radeval.data import read_records
from radeval.errors import InputError

GOOD = {"id": "a", "prediction": "No effusion.", "reference": "No pleural effusion."}


def write_lines(path, lines):
    path.write_bytes(b"".join((ln if isinstance(ln, bytes) else ln.encode()) + b"\n" for ln in lines))
    return path


def run(argv, capsys):
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"id": "b", "prediction": "x", "reference": ', "malformed JSON"),
        ('{"id": "b", "reference": "x"}', "missing field 'prediction'"),
        ('{"id": "b", "prediction": "x"}', "missing field 'reference'"),
        ('{"prediction": "x", "reference": "y"}', "missing field 'id'"),
        ('{"id": "b", "prediction": 3, "reference": "y"}', "field 'prediction' must be a string, got int"),
        ('{"id": "b", "prediction": "x", "reference": ["y"]}', "field 'reference' must be a string, got list"),
        ('{"id": "b", "prediction": "x", "reference": "  "}', "field 'reference' is empty"),
        ('{"id": "a", "prediction": "x", "reference": "y"}', "duplicate id 'a' (first seen on line 1)"),
        ('["id", "prediction"]', "expected a JSON object, got list"),
        ('{"id": true, "prediction": "x", "reference": "y"}', "field 'id' must be a string or integer"),
    ],
)
def test_bad_line_is_named(tmp_path, capsys, line, message):
    f = write_lines(tmp_path / "p.jsonl", [json.dumps(GOOD), line])
    with pytest.raises(InputError) as e:
        read_records(f)
    assert f"{f}:2: " in str(e.value) and message in str(e.value)
    code, out, err = run(["score", str(f), "-m", "bleu"], capsys)
    assert code == 2 and message in err and "Traceback" not in err


def test_skip_invalid_reports_every_skipped_line_and_keeps_good(tmp_path, capsys):
    lines = [json.dumps(GOOD), "{broken", json.dumps({**GOOD, "id": "c"}), '{"id": "d"}']
    f = write_lines(tmp_path / "p.jsonl", lines)
    recs = read_records(f, skip_invalid=True)
    assert [r.id for r in recs] == ["a", "c"]
    assert [(s.line, s.id) for s in recs.skipped] == [(2, None), (4, "d")]
    out_dir = tmp_path / "out"
    code, out, err = run(["score", str(f), "-m", "bleu", "--skip-invalid", "-o", str(out_dir), "-q"], capsys)
    assert code == 0
    assert "line 2: malformed JSON" in err and "line 4: missing fields 'prediction', 'reference'" in err
    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary["n_records"] == 2
    assert [s["line"] for s in summary["skipped"]] == [2, 4]


def test_non_utf8_bytes_named(tmp_path, capsys):
    f = write_lines(tmp_path / "p.jsonl", [json.dumps(GOOD), b'{"id": "b", "prediction": "caf\xe9", "reference": "x"}'])
    code, out, err = run(["score", str(f), "-m", "bleu"], capsys)
    assert code == 2 and ":2: not valid UTF-8 (byte 0xe9 at column 31)" in err


def test_huge_report_rejected_with_fix(tmp_path, capsys):
    big = "no effusion " * 90_000  # ~1 MB
    f = write_lines(tmp_path / "p.jsonl", [json.dumps(GOOD), json.dumps({"id": "b", "prediction": big, "reference": "x"})])
    code, out, err = run(["score", str(f), "-m", "bleu"], capsys)
    assert code == 2 and "field 'prediction' has 1,080,000 characters" in err and "--max-report-chars" in err
    # raising the limit scores it
    code, out, err = run(["score", str(f), "-m", "bleu", "-q", "--max-report-chars", "2000000", "--bootstrap", "0"], capsys)
    assert code == 0 and json.loads(out)["n_records"] == 2


def test_empty_prediction_is_scored_not_dropped(tmp_path, capsys):
    f = write_lines(tmp_path / "p.jsonl", [json.dumps(GOOD), json.dumps({"id": "b", "prediction": "", "reference": "Clear lungs."})])
    code, out, err = run(["score", str(f), "-m", "rouge_l", "-q"], capsys)
    assert code == 0 and json.loads(out)["n_records"] == 2
    assert "1 record(s) have an empty prediction" in err


def test_unknown_metric_and_preset(tmp_path, capsys):
    f = write_lines(tmp_path / "p.jsonl", [json.dumps(GOOD)])
    code, out, err = run(["score", str(f), "-m", "bleu,bluert"], capsys)
    assert code == 2 and "unknown metric or preset 'bluert'" in err and "presets:" in err


def test_bad_metric_option(tmp_path, capsys):
    f = write_lines(tmp_path / "p.jsonl", [json.dumps(GOOD)])
    code, out, err = run(["score", str(f), "-m", "bleu", "-O", "bleu.tokenize=nope"], capsys)
    assert code == 2 and "unknown tokenize mode 'nope'" in err
    code, out, err = run(["score", str(f), "-m", "bleu", "-O", "tokenize=ptb"], capsys)
    assert code == 2 and "expected metric.option=value" in err


def test_missing_file_and_directory(tmp_path, capsys):
    code, out, err = run(["score", str(tmp_path / "nope.jsonl")], capsys)
    assert code == 2 and "no such file" in err
    code, out, err = run(["score", str(tmp_path)], capsys)
    assert code == 2 and "is a directory" in err


def test_empty_file(tmp_path, capsys):
    f = tmp_path / "p.jsonl"
    f.write_text("\n\n")
    code, out, err = run(["score", str(f), "-m", "bleu"], capsys)
    assert code == 2 and "no valid records" in err


def test_many_errors_are_summarised(tmp_path):
    f = write_lines(tmp_path / "p.jsonl", ["{"] * 30)
    with pytest.raises(InputError, match=r"(?s)30 invalid record\(s\).*… and 10 more"):
        read_records(f)


def test_csv_records_and_field_mapping(tmp_path, capsys):
    f = tmp_path / "p.csv"
    f.write_text('study,generated,gt\ns1,"No effusion, no pneumothorax.",No pleural effusion.\ns2,Cardiomegaly.,Mild cardiomegaly.\n')
    code, out, err = run(
        ["score", str(f), "-m", "bleu", "-q", "--bootstrap", "0", "--id-field", "study",
         "--prediction-field", "generated", "--reference-field", "gt"],
        capsys,
    )
    assert code == 0 and json.loads(out)["n_records"] == 2
    code, out, err = run(["score", str(f), "-m", "bleu"], capsys)
    # the header is checked once: every missing column, and the header found
    assert code == 2 and "lacks column(s) 'id', 'prediction', 'reference'" in err
    assert "header found: 'study', 'generated', 'gt'" in err


def test_extra_fields_pass_through(tmp_path):
    f = write_lines(tmp_path / "p.jsonl", [json.dumps({**GOOD, "split": "test", "image": "a.png"})])
    (r,) = read_records(f)
    assert r.extra == {"split": "test"} and r.image == "a.png"


def test_debug_shows_traceback(tmp_path):
    f = write_lines(tmp_path / "p.jsonl", ["{"])
    with pytest.raises(InputError):
        main(["score", str(f), "--debug"])
