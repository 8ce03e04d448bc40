"""Leaderboards: turn prediction files and published numbers into the tables papers print.

``build(spec, out_dir)`` reads a YAML spec (leaderboards/specs/ has the VALOR, RadVLM-GRPO and
MMedPO tables), scores every system row with radeval (cached by file hash), merges the reported
rows, ranks per dataset and column, and writes Markdown, LaTeX, HTML and CSV (+ plots).
Depends on radeval; radeval never imports this package.
"""

from __future__ import annotations

from leaderboards.build import build, compute
from leaderboards.spec import Spec, load_spec
from leaderboards.table import Table

SPECS_DIR = __import__("pathlib").Path(__file__).parent / "specs"

__all__ = ["build", "compute", "load_spec", "Spec", "Table", "SPECS_DIR"]
