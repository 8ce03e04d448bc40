"""Reading and validating prediction records from JSONL, CSV or TSV (detected by content).

A record is ``{"id", "prediction", "reference", "image"?}``; other fields are kept in
``Record.extra`` and passed through. Field names can be mapped (``--prediction-field`` …).

Bad-line policy (documented in the README):
* default: every line is checked; if any is bad, nothing is scored and one ``InputError``
  lists the bad lines (up to 20, then a count) with line number, field and the fix;
* ``skip_invalid=True``: bad lines are skipped, each is reported in ``Records.skipped``
  (line, id if known, reason), and ``summary.json`` lists them — nothing is dropped silently.

An empty or whitespace-only *prediction* is a valid record (a generator that writes nothing
must score 0, not vanish from the average); an empty *reference* is invalid (nothing to
compare against). Reports longer than ``max_chars`` (default 100,000 characters, ~50 times a
long MIMIC-CXR report) are rejected so a runaway generation is noticed rather than silently
costing minutes; raise the limit to score them.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radeval.errors import InputError

DEFAULT_MAX_CHARS = 100_000
MAX_ERRORS_SHOWN = 20
FORMATS = ("jsonl", "csv", "tsv")
BOM = "\ufeff"
#: a NUL or a lone surrogate (JSON's "\ud800" escape decodes to one): not encodable as UTF-8,
#: so such text would crash the writer after scoring has been paid for
_NOT_UNICODE = re.compile("[\x00\ud800-\udfff]")


def check_unicode(value: str, name: str) -> str:
    """``value`` unchanged, or ValueError naming the field and the first offending character."""
    m = _NOT_UNICODE.search(value)
    if m is not None:
        ch = m.group()
        if ch == "\x00":
            what = "a NUL character", "text never holds one; the CSV writer and C-based tools choke on it"
        else:
            what = f"a lone surrogate \\u{ord(ch):04x}", "not valid Unicode: it cannot be written as UTF-8"
        raise ValueError(
            f"field {name!r} contains {what[0]} at character {m.start() + 1} ({what[1]}); "
            "fix the text or the tool that wrote it"
        )
    return value


def drop_non_text(value: str) -> str:
    """``value`` without NULs and lone surrogates: for text a *model* wrote (a byte-level tokenizer
    can decode to a NUL), which validation would otherwise reject as a broken file."""
    return _NOT_UNICODE.sub("", value)


@dataclass
class Record:
    id: str
    prediction: str
    reference: str
    image: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    line: int = 0


@dataclass(frozen=True)
class Skipped:
    line: int
    id: str | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "id": self.id, "reason": self.reason}


class Records(list):
    """A list of :class:`Record` that also carries the lines that were skipped and why."""

    def __init__(self, items: Sequence[Record] = (), skipped: Sequence[Skipped] = (), source: str = ""):
        super().__init__(items)
        self.skipped: list[Skipped] = list(skipped)
        self.source = source


@dataclass(frozen=True)
class FieldMap:
    id: str = "id"
    prediction: str = "prediction"
    reference: str = "reference"
    image: str = "image"


def check_object(obj: Any) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    return obj


def check_id(obj: dict[str, Any], name: str) -> str:
    """The record id (string or integer, non-empty) or ValueError naming the field."""
    rid = obj.get(name)
    if rid is None:
        raise ValueError(f"missing field {name!r} (the record id; map another field with --id-field)")
    if isinstance(rid, bool) or not isinstance(rid, (str, int)):
        raise ValueError(f"field {name!r} must be a string or integer, got {type(rid).__name__}")
    rid = str(rid)
    if not rid.strip():
        raise ValueError(f"field {name!r} is empty")
    return check_unicode(rid, name)


def check_text(obj: dict[str, Any], name: str, role: str, option: str, max_chars: int) -> str:
    """A report field (present, a string, within ``max_chars``) or ValueError naming it and the fix."""
    if name not in obj or obj[name] is None:
        raise ValueError(f"missing field {name!r} (the {role}; map another field with {option})")
    value = obj[name]
    if not isinstance(value, str):
        raise ValueError(f"field {name!r} must be a string, got {type(value).__name__}")
    if len(value) > max_chars:
        raise ValueError(
            f"field {name!r} has {len(value):,} characters (limit {max_chars:,}); "
            "raise the limit with --max-report-chars or truncate the text"
        )
    return check_unicode(value, name)


_ROLES = (("id", "the record id"), ("prediction", "the generated report"), ("reference", "the reference report"))


def check_required(obj: dict[str, Any], fields: FieldMap) -> None:
    """Every missing required field in one message, with the fields the record has."""
    missing = [(getattr(fields, role), role, what) for role, what in _ROLES if obj.get(getattr(fields, role)) is None]
    if len(missing) < 2:
        return  # one missing field: check_id/check_text name it (with the option that maps it)
    found = ", ".join(repr(k) for k in obj) or "none"
    names = ", ".join(repr(name) for name, _, _ in missing)
    options = ", ".join(f"--{role}-field" for _, role, _ in missing)
    raise ValueError(f"missing fields {names} (map them with {options}); fields found: {found}")


def _validate(obj: Any, line: int, fields: FieldMap, max_chars: int) -> Record:
    """Turn one parsed object into a Record or raise ValueError with a message naming the field."""
    obj = check_object(obj)
    check_required(obj, fields)
    rid = check_id(obj, fields.id)
    texts = {
        role: check_text(obj, name, role, f"--{role}-field", max_chars)
        for role, name in (("prediction", fields.prediction), ("reference", fields.reference))
    }
    if not texts["reference"].strip():
        raise ValueError(f"field {fields.reference!r} is empty: there is nothing to compare against")
    image = obj.get(fields.image)
    if image is not None and not isinstance(image, str):
        if isinstance(image, list) and image and all(isinstance(p, str) for p in image):
            image = image[0]  # R2Gen-style image_path lists: the first view is the one scored
        else:
            raise ValueError(f"field {fields.image!r} must be a path string, got {type(image).__name__}")
    if image is not None:
        check_unicode(image, fields.image)
    known = {fields.id, fields.prediction, fields.reference, fields.image}
    extra = {k: v for k, v in obj.items() if k not in known}
    return Record(rid, texts["prediction"], texts["reference"], image, extra, line)


def _jsonl_objects(lines: Iterator[bytes]) -> Iterator[tuple[int, Any | Exception]]:
    for lineno, raw in enumerate(lines, start=1):
        raw = raw.rstrip(b"\r\n")
        if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]  # a UTF-8 BOM (Windows editors write one); CSV/TSV skip it too
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            yield lineno, ValueError(
                f"not valid UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1}); re-encode the file as UTF-8"
            )
            continue
        if not text.strip():
            continue  # blank lines are not records
        try:
            yield lineno, json.loads(text)
        except json.JSONDecodeError as e:
            yield lineno, ValueError(f"malformed JSON ({e.msg} at column {e.colno})")


def _csv_objects(
    handle: io.BufferedReader, delimiter: str, path: Path, required: Sequence[str] | None
) -> Iterator[tuple[int, Any | Exception]]:
    text = io.TextIOWrapper(handle, encoding="utf-8-sig", newline="")
    reader = csv.DictReader(text, delimiter=delimiter)
    try:
        header = reader.fieldnames or []
        missing = [f for f in (required or ()) if f not in header]
        if missing and header:
            kind = "TSV" if delimiter == "\t" else "CSV"
            raise InputError(
                f"{path}: {kind} header lacks column(s) {', '.join(repr(m) for m in missing)}; header found: "
                f"{', '.join(repr(h) for h in header)}. Rename the columns or map them "
                "(--id-field, --prediction-field, --reference-field)."
            )
        for row in reader:
            if None in row:
                yield reader.line_num, ValueError("more values than header columns")
                continue
            yield reader.line_num, row
    except UnicodeDecodeError as e:
        yield reader.line_num + 1, ValueError(f"not valid UTF-8 (byte 0x{e.object[e.start]:02x}); re-encode the file as UTF-8")
    except csv.Error as e:
        yield reader.line_num, ValueError(f"malformed CSV ({e})")


def iter_objects(
    path: str | Path, fmt: str | None = None, required: Sequence[str] | None = None
) -> Iterator[tuple[int, Any | Exception]]:
    """Stream (line number, parsed object or the parse error) from a JSONL, CSV or TSV file.

    ``required``: field names a CSV/TSV header must have; all missing ones are reported at
    once, with the header found, before any row is read.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, expected a JSONL, CSV or TSV file")
    fmt = detect_format(path, fmt)
    with open(path, "rb") as handle:
        if fmt in ("csv", "tsv"):
            yield from _csv_objects(handle, "\t" if fmt == "tsv" else ",", path, required)
        else:
            yield from _jsonl_objects(iter(handle))


def _first_line(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            head = f.read(65536)
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror})") from e
    text = head.decode("utf-8", errors="replace").lstrip(BOM)
    for line in text.splitlines():
        if line.strip():
            return line
    return ""


def detect_format(path: Path, fmt: str | None) -> str:
    """jsonl, csv or tsv: from the content (a first line that is a JSON object is JSONL; else the
    delimiter the header uses), with the extension deciding only what the content leaves open."""
    if fmt:
        if fmt not in FORMATS:
            raise InputError(f"unknown input format {fmt!r}; use {', '.join(FORMATS)}")
        return fmt
    ext = path.suffix.lower()
    line = _first_line(path)
    if line.lstrip().startswith(("{", "[")):
        return "jsonl"
    tabs, commas = line.count("\t"), line.count(",")
    if ext in (".jsonl", ".json", ".ndjson") and not (tabs or commas):
        return "jsonl"  # not JSON and not a table either: let the JSON parser name the line
    if tabs > commas:
        return "tsv"
    if commas > tabs:
        return "csv"
    if ext in (".tsv", ".tab"):
        return "tsv"
    return "csv" if ext == ".csv" else "jsonl"


def read_records(
    path: str | Path,
    *,
    fields: FieldMap | None = None,
    skip_invalid: bool = False,
    max_chars: int = DEFAULT_MAX_CHARS,
    fmt: str | None = None,
) -> Records:
    """Read and validate every record of a JSONL, CSV or TSV file (see the module doc for the policy)."""
    fields = fields or FieldMap()
    return validate_objects(
        iter_objects(path, fmt, required_fields(fields)), fields=fields, skip_invalid=skip_invalid, max_chars=max_chars, source=str(path)
    )


def required_fields(fields: FieldMap) -> tuple[str, str, str]:
    return (fields.id, fields.prediction, fields.reference)


class Validator:
    """Checks parsed objects one by one (streaming), remembering ids to catch duplicates."""

    def __init__(self, fields: FieldMap | None = None, max_chars: int = DEFAULT_MAX_CHARS):
        self.fields = fields or FieldMap()
        self.max_chars = max_chars
        self.first_line: dict[str, int] = {}

    def check(self, lineno: int, obj: Any) -> Record | Skipped:
        f = self.fields
        rid = obj.get(f.id) if isinstance(obj, dict) else None
        rid = str(rid) if isinstance(rid, (str, int)) and not isinstance(rid, bool) else None
        try:
            if isinstance(obj, Exception):
                raise obj
            rec = _validate(obj, lineno, f, self.max_chars)
            if rec.id in self.first_line:
                raise ValueError(f"duplicate id {rec.id!r} (first seen on line {self.first_line[rec.id]})")
        except ValueError as e:
            return Skipped(lineno, rid, str(e))
        self.first_line[rec.id] = lineno
        return rec


def invalid_records_error(bad: Sequence[Skipped], source: str) -> InputError:
    shown = "\n".join(f"  {source}:{s.line}: {s.reason}" for s in bad[:MAX_ERRORS_SHOWN])
    more = f"\n  … and {len(bad) - MAX_ERRORS_SHOWN} more" if len(bad) > MAX_ERRORS_SHOWN else ""
    return InputError(
        f"{len(bad)} invalid record(s) in {source}; nothing was scored:\n{shown}{more}\n"
        "Fix them, or pass --skip-invalid to score the valid records and list the skipped ones."
    )


def validate_objects(
    objects: Iterator[tuple[int, Any]] | Sequence[tuple[int, Any]],
    *,
    fields: FieldMap | None = None,
    skip_invalid: bool = False,
    max_chars: int = DEFAULT_MAX_CHARS,
    source: str = "<records>",
) -> Records:
    validator = Validator(fields, max_chars)
    good: list[Record] = []
    bad: list[Skipped] = []
    for lineno, obj in objects:
        item = validator.check(lineno, obj)
        (bad if isinstance(item, Skipped) else good).append(item)
    if bad and not skip_invalid:
        raise invalid_records_error(bad, source)
    if not good:
        raise InputError(f"{source}: no valid records to score")
    return Records(good, bad, source)


def as_records(items: Any, fields: FieldMap | None = None, max_chars: int = DEFAULT_MAX_CHARS) -> Sequence[Record]:
    """Records from what the Python API is given: Record objects (as they are), or plain dicts,
    a pandas DataFrame, or a Hugging Face ``datasets.Dataset`` (rows as dicts), validated exactly
    like a file's lines (line = 1-based row number)."""
    if isinstance(items, Records):
        return items
    if hasattr(items, "to_dict") and hasattr(items, "columns"):  # pandas.DataFrame
        items = items.to_dict("records")
    rows = list(items)
    if all(isinstance(r, Record) for r in rows):
        return rows
    if not all(isinstance(r, dict) or isinstance(r, Record) for r in rows):
        bad = next(r for r in rows if not isinstance(r, (dict, Record)))
        raise InputError(f"records must be dicts or radeval.data.Record objects, got {type(bad).__name__}")
    objs = [
        (i, r if isinstance(r, dict) else {"id": r.id, "prediction": r.prediction, "reference": r.reference, "image": r.image, **r.extra})
        for i, r in enumerate(rows, start=1)
    ]
    return validate_objects(objs, fields=fields, max_chars=max_chars, source="<records>")


def records_from_lists(
    predictions: Sequence[str],
    references: Sequence[str],
    ids: Sequence[str] | None = None,
    images: Sequence[str | None] | None = None,
    max_chars: int = DEFAULT_MAX_CHARS,
) -> Records:
    """Build validated records from parallel lists (the Python API's convenience path)."""
    if len(predictions) != len(references):
        raise InputError(f"{len(predictions)} predictions but {len(references)} references")
    if ids is None:
        ids = [str(i) for i in range(len(predictions))]
    if len(ids) != len(predictions) or (images is not None and len(images) != len(predictions)):
        raise InputError("ids/images must have one entry per prediction")
    objs = []
    for i, (rid, p, r) in enumerate(zip(ids, predictions, references)):
        o = {"id": rid, "prediction": p, "reference": r}
        if images is not None:
            o["image"] = images[i]
        objs.append((i + 1, o))
    return validate_objects(objs, max_chars=max_chars, source="<lists>")
