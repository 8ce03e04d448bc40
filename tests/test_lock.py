"""constraints.txt is a tested lock: it pins every direct dependency of '.[dev]' within the bounds
pyproject.toml declares, and the suite runs on exactly those versions (the README and CI install
with ``-c constraints.txt``). Regenerate with ``python scripts/lock.py > constraints.txt``."""

from __future__ import annotations

import os
import re
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "radeval-toolkit"


def lock() -> dict[str, str]:
    pins: dict[str, str] = {}
    for n, line in enumerate((ROOT / "constraints.txt").read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9._-]+)==([^\s;]+)", line)
        assert m, f"constraints.txt:{n}: not an exact pin: {line!r}"
        pins[canonicalize_name(m.group(1))] = m.group(2)
    return pins


def direct_requirements(extra: str = "dev") -> list[Requirement]:
    """Direct dependencies of the project with ``extra`` (self-referencing extras expanded)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    out: list[Requirement] = [Requirement(r) for r in project["dependencies"]]
    todo, seen = [extra], set()
    while todo:
        e = todo.pop()
        if e in seen:
            continue
        seen.add(e)
        for line in extras[e]:
            req = Requirement(line)
            if canonicalize_name(req.name) == PROJECT:
                todo.extend(req.extras)
            else:
                out.append(req)
    return [r for r in out if r.marker is None or r.marker.evaluate()]


def test_every_direct_dependency_is_pinned_within_its_bounds():
    pins = lock()
    for req in direct_requirements():
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} (pyproject.toml) has no pin in constraints.txt"
        assert req.specifier.contains(Version(pins[name]), prereleases=True), (
            f"constraints.txt pins {req.name}=={pins[name]}, outside pyproject's {req.specifier}"
        )


def test_fast_moving_dependencies_have_an_upper_bound():
    for req in direct_requirements():
        if canonicalize_name(req.name) in ("tomli",):
            continue
        assert any(s.operator in ("<", "<=", "==", "~=") for s in req.specifier), f"{req} has no upper bound"


def test_the_suite_runs_on_the_locked_versions():
    if os.environ.get("RADEVAL_UNLOCKED") == "1":
        pytest.skip("RADEVAL_UNLOCKED=1: running on versions other than the lock on purpose")
    pins = lock()
    drift = []
    for req in direct_requirements():
        try:
            have = version(req.name)
        except PackageNotFoundError:
            continue  # an extra not installed here: its pin is checked above
        want = pins.get(canonicalize_name(req.name))
        if want is not None and Version(have) != Version(want):
            drift.append(f"{req.name} {have} (lock: {want})")
    assert not drift, (
        "installed versions differ from constraints.txt: " + ", ".join(drift)
        + ". Install with -c constraints.txt, or regenerate the lock (scripts/lock.py) after a passing run."
    )
