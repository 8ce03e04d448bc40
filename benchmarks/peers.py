"""Peer packages' environments for the benchmarks, and what every results file records.

Each peer (the package a benchmark compares radeval against) lives in its own virtual
environment, because most cannot share ours: RadEval imports as ``radeval`` too, f1chexbert and
radgraph need transformers 4, RaTEScore's medspaCy needs numpy < 2. This script creates them
from the pinned requirement files in ``benchmarks/peer_requirements/`` in a cache folder:

    $RADEVAL_PEERS_DIR, else $XDG_CACHE_HOME/radeval-peers, else ~/.cache/radeval-peers

    python benchmarks/peers.py setup [NAME ...]      # all peers when no name is given
    python benchmarks/peers.py setup radgraph --force # rebuild from scratch
    python benchmarks/peers.py list                   # where each peer is and whether it is ready

Benchmarks find a peer's Python there (``peer_python``); ``--peer-python PATH`` overrides it.
A peer folder counts as ready only once ``radeval-peer.json`` is written (last step), and it is
rebuilt when its requirements file changed. Nothing here knows a particular machine's paths.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from contextlib import redirect_stdout
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = Path(__file__).resolve().parent / "peer_requirements"
MARKER = "radeval-peer.json"


@dataclass(frozen=True)
class Peer:
    name: str
    summary: str
    used_by: tuple[str, ...]
    #: installed after the pinned set with --no-deps (their declared deps cannot be met, e.g.
    #: a torchvision that does not match the CPU torch wheel); the pins provide what they use
    no_deps: tuple[str, ...] = ()

    @property
    def requirements(self) -> Path:
        return REQUIREMENTS / f"{self.name}.txt"


PEERS = {
    p.name: p
    for p in (
        Peer("f1chexbert", "f1chexbert 0.0.2 on transformers 4.57.6 + scikit-learn 1.7.2", ("bench_chexbert",)),
        Peer("radgraph", "radgraph 0.1.18 on transformers 4.57.6", ("bench_radgraph",)),
        Peer("ratescore", "RaTEScore 0.6.0 with medspaCy (numpy < 2)", ("bench_ratescore",)),
        Peer(
            "radeval",
            "RadEval 2.2.1 (PyPI 'radeval'; imports as radeval, like us)",
            ("bench_nlg", "bench_rewards"),
            no_deps=("radeval==2.2.1",),
        ),
    )
}


def peers_dir() -> Path:
    if os.environ.get("RADEVAL_PEERS_DIR"):
        return Path(os.environ["RADEVAL_PEERS_DIR"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "radeval-peers"


def _bin(venv: Path) -> Path:
    return venv / ("Scripts" if os.name == "nt" else "bin")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def status(name: str) -> tuple[Path, str]:
    """(venv folder, "ready" | "missing" | "incomplete" | "stale")."""
    peer = PEERS[name]
    d = peers_dir() / name
    marker = d / MARKER
    if not d.exists():
        return d, "missing"
    if not marker.is_file():
        return d, "incomplete"
    try:
        info = json.loads(marker.read_text())
    except ValueError:
        return d, "incomplete"
    return d, "ready" if info.get("requirements_sha256") == _sha256(peer.requirements) else "stale"


def peer_python(name: str, override: str | os.PathLike[str] | None = None) -> Path:
    """The Python of peer ``name``: ``override`` (--peer-python) if given, else the cache folder's."""
    if override:
        p = Path(override).expanduser()
        if not p.exists():
            sys.exit(f"--peer-python {p}: no such file")
        return p
    d, state = status(name)
    if state != "ready":
        sys.exit(
            f"peer {name!r} is {state} at {d}. Create it with:  python benchmarks/peers.py setup {name}"
            f"{' --force' if state in ('stale', 'incomplete') else ''}\n(or pass --peer-python PATH)"
        )
    return _bin(d) / "python"


def setup(name: str, *, python: str = sys.executable, force: bool = False) -> Path:
    """Create (or rebuild) peer ``name``'s venv from its pinned requirements."""
    peer = PEERS[name]
    d, state = status(name)
    if state == "ready" and not force:
        print(f"{name}: ready at {d}")
        return d
    if d.exists():
        shutil.rmtree(d)
    d.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    print(f"{name}: creating {d} ({peer.summary})", flush=True)
    subprocess.run([python, "-m", "venv", str(d)], check=True)
    py = _bin(d) / "python"
    pip = [str(py), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "-r", str(peer.requirements)], check=True)
    if peer.no_deps:
        subprocess.run([*pip, "--no-deps", *peer.no_deps], check=True)
    freeze = subprocess.run([str(py), "-m", "pip", "freeze"], check=True, capture_output=True, text=True).stdout
    info = {
        "name": name,
        "requirements": str(peer.requirements.relative_to(ROOT)),
        "requirements_sha256": _sha256(peer.requirements),
        "python": subprocess.run([str(py), "-V"], capture_output=True, text=True).stdout.strip(),
        "freeze": freeze.splitlines(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    (d / MARKER).write_text(json.dumps(info, indent=2) + "\n")  # last: marks the folder ready
    print(f"{name}: ready at {d} in {info['seconds']} s", flush=True)
    return d


# ----- what a results file records ------------------------------------------------------------


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def run_info(peers: tuple[str, ...] = ()) -> dict:
    """Command, commit, machine (cores, load) and versions of this run and of its peers."""
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    info = {
        "command": [Path(sys.executable).name, *sys.argv],
        "commit": _git("rev-parse", "HEAD"),
        "dirty": bool(dirty) if dirty is not None else None,
        "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "cpu": _cpu_model(),
            "cores": os.cpu_count(),
            "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "load_1_5_15": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
            "platform": platform.platform(),
        },
        "versions": {
            "python": platform.python_version(),
            **{d: _version(d) for d in ("radeval-toolkit", "numpy", "torch", "transformers", "pycocoevalcap")},
        },
        "env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "HF_HUB_OFFLINE") if k in os.environ},
        "peers": {},
    }
    for name in peers:
        d, state = status(name)
        entry: dict = {"state": state}
        if state in ("ready", "stale"):
            entry.update({k: v for k, v in json.loads((d / MARKER).read_text()).items() if k != "seconds"})
        info["peers"][name] = entry
    return info


def run_and_record(main, bench: str, peers: tuple[str, ...] = ()) -> None:
    """Run a benchmark's ``main`` (its printout still goes to the terminal), then write
    benchmarks/results/<bench>.json (or $RADEVAL_BENCH_RESULTS/<bench>.json) with the run's
    command, commit, machine, versions, what it printed, and what ``main`` returned."""
    info = run_info(peers)
    buf = io.StringIO()

    class _Tee(io.TextIOBase):
        def write(self, s: str) -> int:
            sys.__stdout__.write(s)
            buf.write(s)
            return len(s)

        def flush(self) -> None:
            sys.__stdout__.flush()

    t0 = time.perf_counter()
    with redirect_stdout(_Tee()):
        data = main()
    info["wall_s"] = round(time.perf_counter() - t0, 2)
    info["load_1_5_15_after"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    info["output"] = buf.getvalue().splitlines()
    if data is not None:
        info["data"] = data
    out_dir = Path(os.environ.get("RADEVAL_BENCH_RESULTS", ROOT / "benchmarks" / "results"))
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{bench}.json"
    path.write_text(json.dumps(info, indent=2, default=str) + "\n")
    print(f"results: {path}", file=sys.stderr)


def _main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("setup", help="create peer environments")
    s.add_argument("names", nargs="*", help=f"peers (default: all): {', '.join(PEERS)}")
    s.add_argument("--force", action="store_true", help="rebuild even if ready")
    s.add_argument("--python", default=sys.executable, help="interpreter the venvs are made from")
    sub.add_parser("list", help="where each peer is and whether it is ready")
    args = ap.parse_args()
    if args.cmd == "list":
        for name, peer in PEERS.items():
            d, state = status(name)
            print(f"{name:11} {state:10} {d}  ({peer.summary}; used by {', '.join(peer.used_by)})")
        return
    unknown = [n for n in args.names if n not in PEERS]
    if unknown:
        sys.exit(f"unknown peer(s) {', '.join(unknown)}; known: {', '.join(PEERS)}")
    for name in args.names or list(PEERS):
        setup(name, python=args.python, force=args.force)


if __name__ == "__main__":
    _main()
