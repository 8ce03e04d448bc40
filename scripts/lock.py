"""Write constraints.txt: the full set of packages ``pip install -e '.[dev]'`` resolved to.

Run it in the venv the test suite has just passed in:

    python scripts/lock.py > constraints.txt

It walks the installed metadata from radeval-toolkit[dev] (extras followed, environment markers
evaluated for this interpreter and platform), so packages other projects put in the same venv
are left out. Why the full resolved set and not only direct dependencies: transitive packages
(huggingface_hub, tokenizers, numpy, scikit-learn, pyarrow) have broken this project as often as
direct ones, and a constraints file only limits versions, it never installs anything, so the
core install with ``-c constraints.txt`` stays core.
"""

from __future__ import annotations

import platform
import sys
from importlib.metadata import PackageNotFoundError, distribution

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PROJECT = "radeval-toolkit"


def closure(root: str, extras: tuple[str, ...]) -> dict[str, str]:
    """Canonical name -> installed version of every package the root (with extras) needs."""
    seen: dict[str, str] = {}
    todo: list[tuple[str, frozenset[str]]] = [(root, frozenset(extras))]
    done: set[tuple[str, frozenset[str]]] = set()
    while todo:
        name, want = todo.pop()
        key = (canonicalize_name(name), want)
        if key in done:
            continue
        done.add(key)
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            sys.exit(f"lock: {name} is required but not installed; install '.[dev]' first")
        if canonicalize_name(name) != PROJECT:
            seen[canonicalize_name(name)] = dist.version
        for line in dist.requires or []:
            req = Requirement(line)
            envs = [{"extra": e} for e in want] or [{"extra": ""}]
            if req.marker is not None and not any(req.marker.evaluate(env) for env in envs):
                continue
            todo.append((req.name, frozenset(req.extras)))
    return seen


def main() -> None:
    pins = closure(PROJECT, ("dev",))
    print("# Lock of `pip install -e '.[dev]'`: every package it resolved to (scripts/lock.py), tested")
    print(f"# by the full test suite on Python {platform.python_version()} / {sys.platform}-{platform.machine()}.")
    print("# Use it for every install: pip install -c constraints.txt -e '.[dev]'  (or '.' / '.[EXTRA]').")
    print("# torch and torchvision are a pair: torchvision must match torch or transformers/open_clip")
    print("# fail at import (shared/DESIGN.md, 'Environment facts'). Other branches: add your package")
    print("# to pyproject.toml, install it with this file as constraint, then rerun scripts/lock.py.")
    for name in sorted(pins):
        print(f"{name}=={pins[name]}")


if __name__ == "__main__":
    main()
