"""Radiologist-judgement data sets for ``radeval bench human``: loaders and explicit downloads.

No such data ships with radeval (licences and provenance differ). The user passes a folder, or
asks ``radeval data download radpref|radjudge`` to fetch the public files of
rajpurkarlab/CRIMSON (MIT) at a pinned commit, checked by sha256.

* **ReXVal** (PhysioNet, credentialed; the user's folder): ``50_samples_gt_and_candidates.csv``
  (``study_id``, ``gt_report``, one column per candidate type) and
  ``6_valid_raters_per_rater_error_categories.csv`` (``study_number``, ``candidate_type``,
  ``rater_index``, ``error_category``, ``clinically_significant``, ``num_errors``), read by
  column name. Per candidate: each rater's total error count (sum of ``num_errors`` over the
  categories; and over the clinically significant rows), averaged over the raters who rated
  that study. ``study_number`` is matched to ``study_id`` when every value is one; otherwise it
  must be a row position of the candidates file (0-based, or 1-based when the values run 1..n).
* **RadPref** (``RadPref/preference_data.json`` + ``RadPref/radiologist_annotations/user_*.json``):
  per case a reference and candidates C1, C2, each rated 1-5 by three radiologists; per
  candidate the mean rating, per case the preferred candidate (higher mean; equal means: no
  preference).
* **RadJudge** (``RadJudge/test_cases.py``): cases with a reference, candidates and expected
  orderings ("C1 > C2"; "C1 = C2"; a list that must all hold). The file is Python: its
  ``RANKING_TESTS`` literal is read with ``ast.literal_eval``, never executed. "=" means the two
  scores differ by less than 0.01, the tolerance of RadJudge's own ``test_suite.py``. Candidate
  patient context is not passed to metrics (none of radeval's metrics take it).
"""

from __future__ import annotations

import ast
import csv
import hashlib
import json
import math
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radeval.errors import InputError, RadevalError

CRIMSON_REPO = "rajpurkarlab/CRIMSON"
CRIMSON_COMMIT = "07e333152f2cb9c3429ec4d4eba12a1a7fce979e"
RADJUDGE_TOLERANCE = 0.01

#: name -> files (path in the repository, sha256), fetched at CRIMSON_COMMIT
DOWNLOADS: dict[str, tuple[tuple[str, str], ...]] = {
    "radpref": (
        ("RadPref/preference_data.json", "8e7d74ca1c2d5082b39ee0f9ccfcfd7c0ba7b8363378538152504ae6d7790841"),
        ("RadPref/radiologist_annotations/user_1.json", "b3f65de868c9124db880d238bb74bf3dd302b3af6be3cb980c402d8cfb5fd481"),
        ("RadPref/radiologist_annotations/user_2.json", "89ca347cccd9fd0b27e7cfc6da2025f49ec0337e44c5b27b46606ed49d3a23b6"),
        ("RadPref/radiologist_annotations/user_3.json", "9fa291d8f1c75606ec0b4bc17c4484468baef3cd48157bda4d0f789e9540ffc5"),
    ),
    "radjudge": (
        ("RadJudge/test_cases.py", "2a2a461b6ce3a5e100b5ce0377a6890b3da1f65329abc072b890106df0db0f15"),
    ),
}
NOTES = {
    "radpref": "RadPref (rajpurkarlab/CRIMSON, MIT); its references appear to come from a non-commercial dataset: "
    "check the terms before use",
    "radjudge": "RadJudge (rajpurkarlab/CRIMSON, MIT)",
}


@dataclass
class Candidate:
    case: str
    name: str
    reference: str
    text: str
    #: human scores, higher is better (e.g. "rating", "-errors", "-significant_errors")
    human: dict[str, float] = field(default_factory=dict)


@dataclass
class HumanData:
    name: str
    source: str
    candidates: list[Candidate]
    #: the human score that τ and pairwise accuracy use, higher is better
    primary: str
    #: RadJudge: (case id, candidate -> index into candidates, expected orderings)
    orderings: list[tuple[str, dict[str, int], list[str]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# ----- downloads -----------------------------------------------------------------------------
def data_dir() -> Path:
    v = os.environ.get("RADEVAL_DATA_DIR")
    if v:
        return Path(v).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "radeval" / "data"


def download(name: str, dest: str | os.PathLike[str] | None = None) -> Path:
    """Fetch a data set's public files at the pinned commit, check each sha256, write them
    under ``dest`` (default: the radeval data folder / name) in the repository's layout."""
    from radeval import models

    if name not in DOWNLOADS:
        raise InputError(f"unknown data set {name!r}; downloadable: {', '.join(sorted(DOWNLOADS))}")
    root = Path(dest) if dest is not None else data_dir() / name
    blobs = {}
    for path, want in DOWNLOADS[name]:
        data = models.fetch_pinned(CRIMSON_REPO, CRIMSON_COMMIT, path)
        got = hashlib.sha256(data).hexdigest()
        if got != want:
            raise RadevalError(
                f"{CRIMSON_REPO}@{CRIMSON_COMMIT[:12]}/{path}: sha256 {got}, expected {want}; nothing was written"
            )
        blobs[path] = data
    for path, data in blobs.items():
        f = root / path
        f.parent.mkdir(parents=True, exist_ok=True)
        tmp = f.with_name(f.name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(f)
    return root


def _find(root: Path, rel: str, dataset: str) -> Path:
    """``rel`` under ``root``, or under ``root`` when the user passed the data set's own folder."""
    rest = rel.split("/", 1)[1]
    for cand in (root / rel, root / rest):
        if cand.is_file():
            return cand
    hint = f" or run: radeval data download {dataset}" if dataset in DOWNLOADS else ""
    raise InputError(f"{dataset}: {rel} not found under {root}{hint}")


def default_folder(dataset: str) -> Path:
    return data_dir() / dataset


# ----- ReXVal --------------------------------------------------------------------------------
REXVAL_CANDIDATES = "50_samples_gt_and_candidates.csv"
REXVAL_RATERS = "6_valid_raters_per_rater_error_categories.csv"


def _read_csv(path: Path, needed: tuple[str, ...]) -> list[dict[str, str]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            cols = reader.fieldnames or []
            missing = [c for c in needed if c not in cols]
            if missing:
                raise InputError(f"{path}: missing column(s) {', '.join(missing)} (has: {', '.join(cols)})")
            return list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise InputError(f"{path}: cannot read ({e})") from e


def _num(path: Path, line: int, col: str, v: str) -> float:
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise InputError(f"{path}:{line}: column {col!r} must be a number, got {v!r}") from None
    if not math.isfinite(x):
        raise InputError(f"{path}:{line}: column {col!r} must be finite, got {v!r}")
    return x


def _truthy(path: Path, line: int, v: str) -> bool:
    s = str(v).strip().lower()
    if s in ("1", "1.0", "true", "yes", "y", "t"):
        return True
    if s in ("0", "0.0", "false", "no", "n", "f", ""):
        return False
    raise InputError(f"{path}:{line}: column 'clinically_significant' must be true/false or 1/0, got {v!r}")


def load_rexval(folder: str | os.PathLike[str]) -> HumanData:
    root = Path(folder)
    cpath, rpath = root / REXVAL_CANDIDATES, root / REXVAL_RATERS
    for p in (cpath, rpath):
        if not p.is_file():
            raise InputError(f"rexval: {p.name} not found in {root} (ReXVal is on PhysioNet; pass its folder)")
    rows = _read_csv(cpath, ("study_id", "gt_report"))
    kinds = [c for c in (csv.DictReader(open(cpath, encoding="utf-8-sig")).fieldnames or [])
             if c not in ("study_id", "gt_report") and c.strip()]  # fmt: skip
    if not kinds:
        raise InputError(f"{cpath}: no candidate columns besides study_id and gt_report")
    ids = [r["study_id"].strip() for r in rows]
    raters = _read_csv(rpath, ("study_number", "candidate_type", "rater_index", "error_category",
                               "clinically_significant", "num_errors"))  # fmt: skip
    numbers = {r["study_number"].strip() for r in raters}
    if numbers <= set(ids):
        study_of = {s: s for s in numbers}
    else:
        try:
            ints = {int(float(s)) for s in numbers}
        except ValueError:
            raise InputError(f"{rpath}: study_number values are neither study_ids nor row positions") from None
        offset = 1 if min(ints) >= 1 and max(ints) == len(ids) else 0
        if min(ints) - offset < 0 or max(ints) - offset >= len(ids):
            raise InputError(f"{rpath}: study_number out of range for {len(ids)} studies in {cpath.name}")
        study_of = {s: ids[int(float(s)) - offset] for s in numbers}
    total: dict[tuple[str, str, str], float] = defaultdict(float)
    sig: dict[tuple[str, str, str], float] = defaultdict(float)
    raters_of: dict[str, set[str]] = defaultdict(set)
    for line, r in enumerate(raters, start=2):
        study = study_of[r["study_number"].strip()]
        kind = r["candidate_type"].strip()
        if kind not in kinds:
            raise InputError(f"{rpath}:{line}: candidate_type {kind!r} is not a column of {cpath.name} ({', '.join(kinds)})")
        cat = _num(rpath, line, "error_category", r["error_category"])
        if cat not in (1, 2, 3, 4, 5, 6):
            raise InputError(f"{rpath}:{line}: error_category must be 1-6, got {r['error_category']!r}")
        n = _num(rpath, line, "num_errors", r["num_errors"])
        rater = r["rater_index"].strip()
        raters_of[study].add(rater)
        total[(study, kind, rater)] += n
        if _truthy(rpath, line, r["clinically_significant"]):
            sig[(study, kind, rater)] += n
    cands = []
    for line, r in enumerate(rows, start=2):
        study = r["study_id"].strip()
        who = raters_of.get(study)
        if not who:
            continue  # a study nobody rated has no human score
        for kind in kinds:
            text = r.get(kind)
            if text is None:
                raise InputError(f"{cpath}:{line}: no {kind!r} value")
            k = len(who)
            cands.append(Candidate(study, kind, r["gt_report"], text, {
                "-errors": -sum(total[(study, kind, w)] for w in who) / k,
                "-significant_errors": -sum(sig[(study, kind, w)] for w in who) / k,
            }))  # fmt: skip
    if not cands:
        raise InputError(f"{rpath}: no rated study matches {cpath.name}")
    return HumanData("rexval", str(root), cands, "-errors",
                     notes=["human score: minus the raters' mean total error count (also reported: clinically significant)"])  # fmt: skip


# ----- RadPref -------------------------------------------------------------------------------
def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: not readable JSON ({e})") from e


def load_radpref(folder: str | os.PathLike[str]) -> HumanData:
    root = Path(folder)
    data_path = _find(root, "RadPref/preference_data.json", "radpref")
    ann_dir = data_path.parent / "radiologist_annotations"
    users = sorted(ann_dir.glob("user_*.json"))
    if not users:
        raise InputError(f"radpref: no radiologist_annotations/user_*.json next to {data_path}")
    cases = _json(data_path)
    if not isinstance(cases, list):
        raise InputError(f"{data_path}: expected a list of cases")
    ratings: dict[tuple[str, str], list[float]] = defaultdict(list)
    for u in users:
        obj = _json(u)
        ann = obj.get("annotations") if isinstance(obj, dict) else None
        if not isinstance(ann, dict):
            raise InputError(f"{u}: expected an object with 'annotations'")
        for cid, per in ann.items():
            for cand in ("C1", "C2"):
                r = per.get(cand, {}).get("rating") if isinstance(per, dict) else None
                if r is None:
                    continue
                if isinstance(r, bool) or not isinstance(r, (int, float)) or not 1 <= r <= 5:
                    raise InputError(f"{u}: case {cid} {cand}: rating must be 1-5, got {r!r}")
                ratings[(cid, cand)].append(float(r))
    cands = []
    for i, c in enumerate(cases):
        if not isinstance(c, dict):
            raise InputError(f"{data_path}: case {i} is not an object")
        for key in ("id", "ground_truth_report", "C1_report", "C2_report"):
            if not isinstance(c.get(key), str):
                raise InputError(f"{data_path}: case {i}: field {key!r} must be a string")
        for cand in ("C1", "C2"):
            rs = ratings.get((c["id"], cand))
            if rs:
                cands.append(Candidate(c["id"], cand, c["ground_truth_report"], c[f"{cand}_report"],
                                       {"rating": sum(rs) / len(rs)}))  # fmt: skip
    if not cands:
        raise InputError(f"radpref: no rated candidate in {data_path}")
    return HumanData("radpref", str(root), cands, "rating",
                     notes=[f"{len(users)} radiologists; human score: the mean 1-5 rating", NOTES["radpref"]])  # fmt: skip


# ----- RadJudge ------------------------------------------------------------------------------
def _ranking_tests(path: Path) -> list:
    try:
        tree = ast.parse(path.read_bytes())
    except SyntaxError as e:
        raise InputError(f"{path}: not Python source ({e})") from None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "RANKING_TESTS" for t in node.targets):
            try:
                return ast.literal_eval(node.value)
            except ValueError as e:
                raise InputError(f"{path}: RANKING_TESTS is not a plain literal ({e})") from None
    raise InputError(f"{path}: no RANKING_TESTS assignment")


def load_radjudge(folder: str | os.PathLike[str]) -> HumanData:
    path = _find(Path(folder), "RadJudge/test_cases.py", "radjudge")
    cands: list[Candidate] = []
    orderings = []
    for cat in _ranking_tests(path):
        for t in cat.get("tests", []) if isinstance(cat, dict) else []:
            try:
                tid, gt, cs, exp = t["id"], t["ground_truth"], t["candidates"], t["expected_ranking"]
            except (KeyError, TypeError):
                raise InputError(f"{path}: a test lacks id/ground_truth/candidates/expected_ranking") from None
            exps = exp if isinstance(exp, list) else [exp]
            index = {}
            for cname, info in cs.items():
                index[cname] = len(cands)
                cands.append(Candidate(str(tid), cname, gt, info["text"]))
            for e in exps:
                op = " > " if " > " in e else " = " if " = " in e else None
                if op is None or any(x.strip() not in index for x in e.split(op)):
                    raise InputError(f"{path}: test {tid}: cannot read expected ranking {e!r}")
            orderings.append((str(tid), index, [str(e) for e in exps]))
    if not orderings:
        raise InputError(f"{path}: no test cases")
    return HumanData("radjudge", str(Path(folder)), cands, "", orderings,
                     notes=[f"'=' holds when scores differ by < {RADJUDGE_TOLERANCE}", NOTES["radjudge"],
                            "candidate patient context is not passed to metrics"])  # fmt: skip


LOADERS = {"rexval": load_rexval, "radpref": load_radpref, "radjudge": load_radjudge}


def load(dataset: str, folder: str | os.PathLike[str] | None) -> HumanData:
    if dataset not in LOADERS:
        raise InputError(f"unknown human-judgement data set {dataset!r}; known: {', '.join(LOADERS)}")
    if folder is None:
        if dataset == "rexval":
            raise InputError("rexval: pass the folder of the ReXVal files (PhysioNet, credentialed access): --data DIR")
        folder = default_folder(dataset)
        if not folder.is_dir():
            raise InputError(f"{dataset}: no --data folder given and {folder} does not exist; "
                             f"run: radeval data download {dataset}")  # fmt: skip
    return LOADERS[dataset](folder)
