"""Records: format by content, BOM everywhere, all missing columns at once, invalid Unicode, dicts."""

from __future__ import annotations

import pytest

import radeval
from radeval.cli import main
from radeval.data import as_records, detect_format, read_records
from radeval.errors import InputError

ROW = ("a", "No effusion.", "No pleural effusion.")


def write(path, text: str, bom: bool = False):
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


def table(sep: str) -> str:
    return sep.join(("id", "prediction", "reference")) + "\n" + sep.join(ROW) + "\n"


JSONL = '{"id": "a", "prediction": "No effusion.", "reference": "No pleural effusion."}\n'


@pytest.mark.parametrize(
    "name, text, fmt",
    [
        ("p.tsv", table("\t"), "tsv"),
        ("p.csv", table("\t"), "tsv"),  # tab-separated despite the extension
        ("p.csv", table(","), "csv"),
        ("p.txt", table(","), "csv"),
        ("p.jsonl", table(","), "csv"),  # a table, whatever the name says
        ("p.tsv", JSONL, "jsonl"),
        ("p.csv", JSONL, "jsonl"),
        ("p", JSONL, "jsonl"),
    ],
)
@pytest.mark.parametrize("bom", [False, True])
def test_format_from_content_and_bom(tmp_path, name, text, fmt, bom):
    f = write(tmp_path / name, text, bom)
    assert detect_format(f, None) == fmt
    recs = read_records(f)
    assert [(r.id, r.prediction, r.reference) for r in recs] == [ROW]


def test_csv_reports_every_missing_column_with_the_header(tmp_path, capsys):
    f = write(tmp_path / "p.csv", "ident,pred,reference\na,x,y\n")
    code = main(["score", str(f), "-m", "bleu"])
    err = capsys.readouterr().err
    assert code == 2
    assert "lacks column(s) 'id', 'prediction'" in err and "header found: 'ident', 'pred', 'reference'" in err
    assert err.count("\n") == 1  # one message, not one per row


def test_jsonl_reports_every_missing_field_with_those_found(tmp_path):
    f = write(tmp_path / "p.jsonl", '{"ident": "a", "pred": "x", "reference": "y"}\n')
    with pytest.raises(InputError, match=r"missing fields 'id', 'prediction' .*fields found: 'ident', 'pred', 'reference'"):
        read_records(f)


@pytest.mark.parametrize(
    "line, field, what",
    [
        ('{"id": "a\\ud800", "prediction": "x", "reference": "y"}', "id", "lone surrogate \\ud800 at character 2"),
        ('{"id": "a", "prediction": "x\\udfff y", "reference": "y"}', "prediction", "lone surrogate \\udfff"),
        ('{"id": "a", "prediction": "x", "reference": "y\\u0000"}', "reference", "NUL character at character 2"),
    ],
)
def test_invalid_unicode_is_rejected_at_validation(tmp_path, capsys, line, field, what):
    f = write(tmp_path / "p.jsonl", line + "\n")
    with pytest.raises(InputError) as e:
        read_records(f)
    assert f"{f}:1: field '{field}' contains a {what}" in str(e.value)
    out = tmp_path / "out"
    assert main(["score", str(f), "-m", "bleu", "-o", str(out), "-q"]) == 2
    assert not (out / "summary.json").exists()


def test_api_takes_plain_dicts_and_dataframes():
    rows = [dict(zip(("id", "prediction", "reference"), ROW)), {"id": 2, "prediction": "x", "reference": "y z"}]
    by_dicts = radeval.evaluate(records=rows, metrics="bleu", bootstrap=0)
    by_lists = radeval.evaluate(predictions=[ROW[1], "x"], references=[ROW[2], "y z"], ids=["a", "2"], metrics="bleu", bootstrap=0)
    assert by_dicts.corpus == by_lists.corpus
    with pytest.raises(InputError, match="<records>:2: missing field 'reference'"):
        as_records([rows[0], {"id": "b", "prediction": "x"}])
    pd = pytest.importorskip("pandas")
    assert radeval.evaluate(records=pd.DataFrame(rows), metrics="bleu", bootstrap=0).corpus == by_dicts.corpus
