"""Benchmarks carry no machine's paths and find their peers in the cache folder peers.py creates."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"


def _peers():
    if "radeval_bench_peers" in sys.modules:
        return sys.modules["radeval_bench_peers"]
    spec = importlib.util.spec_from_file_location("radeval_bench_peers", BENCH / "peers.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def test_no_machine_paths_in_benchmarks():
    pattern = re.compile(r"/(work|root|home|Users|opt|mnt)/|refvenvs")
    for f in sorted(BENCH.glob("*.py")):
        hits = [f"{f.name}:{i}: {line.strip()}" for i, line in enumerate(f.read_text().splitlines(), 1) if pattern.search(line)]
        assert not hits, hits


def test_every_peer_has_pinned_requirements():
    peers = _peers()
    for peer in peers.PEERS.values():
        lines = [ln.strip() for ln in peer.requirements.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
        assert lines, peer.name
        for ln in lines:
            assert re.fullmatch(r"[A-Za-z0-9._-]+(==|<)[^\s]+", ln), (peer.name, ln)


def test_peer_lookup_uses_the_cache_folder(tmp_path, monkeypatch):
    peers = _peers()
    monkeypatch.setenv("RADEVAL_PEERS_DIR", str(tmp_path))
    assert peers.status("radgraph") == (tmp_path / "radgraph", "missing")
    d = tmp_path / "radgraph"
    (d / "bin").mkdir(parents=True)
    assert peers.status("radgraph")[1] == "incomplete"
    sha = peers._sha256(peers.PEERS["radgraph"].requirements)
    (d / peers.MARKER).write_text(json.dumps({"requirements_sha256": sha}))
    assert peers.peer_python("radgraph") == d / "bin" / "python"
    (d / peers.MARKER).write_text(json.dumps({"requirements_sha256": "old"}))
    assert peers.status("radgraph")[1] == "stale"
    info = peers.run_info(("radgraph",))
    assert info["commit"] and info["machine"]["cores"] and "load_1_5_15" in info["machine"]
