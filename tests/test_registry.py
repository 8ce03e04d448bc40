"""The registry's declared keys match what each metric really produces; plug-ins load by entry point."""

from __future__ import annotations

import importlib.metadata as md

import pytest

from radeval import registry
from radeval.errors import DependencyError, ModelNotFound
from radeval.metric import Metric


@pytest.mark.parametrize("name", sorted(registry.specs()))
def test_declared_keys_match_the_metric(name):
    spec = registry.specs()[name]
    try:
        metric = registry.get_metric(name)
        signature = metric.signature  # may need the model file (its hash is part of it)
    except (DependencyError, ModelNotFound) as e:
        pytest.skip(f"{name}: {str(e).splitlines()[0]}")
    assert tuple(metric.keys) == spec.keys
    assert metric.name == name
    assert signature.startswith(name + "|")
    assert set(metric.directions) <= set(metric.keys)


def test_entry_point_plugin(monkeypatch):
    class Dummy(Metric):
        name = "dummy_len"
        keys = ("dummy_len",)
        stat_names = ("len", "n")

        def settings(self):
            return {"unit": "chars"}

        def stats(self, hyps, refs, images=None):
            import numpy as np

            return np.array([[len(h), 1.0] for h in hyps]).reshape(len(hyps), 2)

        def from_totals(self, totals):
            return {"dummy_len": totals[..., 0] / totals[..., 1]}

    import sys
    import types

    mod = types.ModuleType("radeval_dummy_plugin")
    mod.factory = lambda **kw: Dummy()
    monkeypatch.setitem(sys.modules, "radeval_dummy_plugin", mod)
    ep = md.EntryPoint(name="dummy_len", value="radeval_dummy_plugin:factory", group=registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "entry_points", lambda group: [ep] if group == registry.ENTRY_POINT_GROUP else [])
    monkeypatch.setattr(registry, "_ENTRY_POINTS_LOADED", False)
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    import radeval

    r = radeval.evaluate(predictions=["abc", "abcde"], references=["x", "y"], metrics=["dummy_len"], bootstrap=0)
    assert r.corpus["dummy_len"] == 4.0
    assert r.signatures["dummy_len"].startswith("dummy_len|unit:chars")
