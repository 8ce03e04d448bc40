"""Coverage-guided fuzzing (atheris / libFuzzer) of everything that parses user input.

Each target runs in its own process for a bounded time; an input that raises anything other
than the documented error (RadevalError for bad input; rewards never raise) is a crash, saved
under benchmarks/out/fuzz/ — turn it into a test. Prints inputs tried per target.

    pip install atheris
    python benchmarks/fuzz.py --seconds 60            # every target
    python benchmarks/fuzz.py --targets jsonl boxes   # some
"""

from __future__ import annotations

import argparse
import io
import math
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out" / "fuzz"


def _jsonl(data: bytes) -> None:
    from radeval.data import _jsonl_objects, validate_objects
    from radeval.errors import RadevalError

    try:
        validate_objects(_jsonl_objects(iter(data.splitlines(keepends=True))), skip_invalid=False)
    except RadevalError:
        pass


def _csv(data: bytes) -> None:
    from radeval.data import _csv_objects, validate_objects
    from radeval.errors import RadevalError

    try:
        validate_objects(_csv_objects(io.BufferedReader(io.BytesIO(data))), skip_invalid=True)
    except RadevalError:
        pass


def _options(data: bytes) -> None:
    from radeval.commands.score import parse_options
    from radeval.errors import RadevalError

    text = data.decode("utf-8", "replace")
    try:
        parse_options(text.split("\n"), None, ["bleu"])
    except RadevalError:
        pass


def _tokenize(data: bytes) -> None:
    from radeval.tokenize import normalize

    text = data.decode("utf-8", "replace")
    for mode in ("r2gen-mimic", "r2gen-iu", "whitespace"):
        out = normalize([text], mode)
        assert isinstance(out[0], str)


def _extract(data: bytes) -> None:
    from radeval.rewards.extract import extract_report, format_reward

    text = data.decode("utf-8", "replace")
    assert isinstance(extract_report(text), str)
    r = format_reward(prompts=[""], completions=[text])
    assert all(isinstance(v, float) and math.isfinite(v) for v in r)


def _rewards(data: bytes) -> None:
    from radeval.rewards.trl import make_reward

    text = data.decode("utf-8", "replace")
    for name in ("bleu_4", "rouge_l", "chexpert_rules_f1_sample"):
        r = make_reward(name)(prompts=[""], completions=[text], ground_truth=["No acute cardiopulmonary process."])
        assert all(v is None or (isinstance(v, float) and math.isfinite(v)) for v in r)


def _boxes(data: bytes) -> None:
    from radeval.rewards.boxes import parse_boxes

    text = data.decode("utf-8", "replace")
    for box in parse_boxes(text):
        assert len(box) == 4 and all(math.isfinite(v) for v in box)


_CONFIG_FILE = None


def _config(data: bytes) -> None:
    """A YAML stage config (file) plus key=value overrides, as `radeval train` reads them."""
    import tempfile

    from radeval.errors import RadevalError
    from trainers.config import load_config

    global _CONFIG_FILE
    if _CONFIG_FILE is None:
        _CONFIG_FILE = Path(tempfile.mkdtemp()) / "stage.yaml"
    text = data.decode("utf-8", "replace")
    head, _, tail = text.partition("\x00")
    _CONFIG_FILE.write_text(head, encoding="utf-8")
    try:
        load_config(_CONFIG_FILE, [o for o in tail.split("\n") if o], stage="text")
    except RadevalError:
        pass


TARGETS = {
    "jsonl": _jsonl,
    "csv": _csv,
    "options": _options,
    "tokenize": _tokenize,
    "extract": _extract,
    "rewards": _rewards,
    "boxes": _boxes,
    "config": _config,
}

SEEDS = {
    "jsonl": [b'{"id": "a", "prediction": "No effusion.", "reference": "No pleural effusion."}\n'],
    "csv": [b"id,prediction,reference\na,No effusion.,No pleural effusion.\n"],
    "options": [b"bleu.tokenize=ptb\nrouge_l.beta=1.2"],
    "tokenize": [b"1. Heart size normal.. 2. No effusion___\n"],
    "extract": [b"<think>x</think><report>No effusion.</report>"],
    "rewards": [b"<report>Mild cardiomegaly. No effusion.</report>"],
    "boxes": [b"The effusion is at [0.1, 0.2, 0.5, 0.9] and [10, 20, 30, 40]"],
    "config": [b"stage: text\ntrain:\n  learning_rate: 1.0e-6\n\x00rewards.k_clin=4\n"],
}


def run_target(name: str) -> None:
    """Child process: run one target under atheris until libFuzzer's time limit."""
    import atheris

    with atheris.instrument_imports():
        import radeval  # noqa: F401

    fn = TARGETS[name]
    atheris.Setup(sys.argv, fn)
    atheris.Fuzz()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--targets", nargs="+", default=list(TARGETS))
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args, rest = ap.parse_known_args()
    if args.child:
        sys.argv = [sys.argv[0], *rest]
        run_target(args.child)
        return
    OUT.mkdir(parents=True, exist_ok=True)
    print(f"{'target':10} {'inputs':>10} {'crashes':>8}")
    for name in args.targets:
        corpus = OUT / f"corpus-{name}"
        corpus.mkdir(exist_ok=True)
        for i, seed in enumerate(SEEDS.get(name, [])):
            (corpus / f"seed{i}").write_bytes(seed)
        cmd = [sys.executable, __file__, "--child", name, f"-max_total_time={args.seconds}",
               "-print_final_stats=1", f"-artifact_prefix={OUT}/crash-{name}-", "-rss_limit_mb=4096", str(corpus)]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        log = proc.stdout + proc.stderr
        (OUT / f"{name}.log").write_text(log[-20000:])
        m = re.search(r"stat::number_of_executed_units:\s*(\d+)", log)
        crashes = len(list(OUT.glob(f"crash-{name}-*")))
        print(f"{name:10} {m.group(1) if m else '?':>10} {crashes:>8}" + ("" if proc.returncode == 0 else f"  (exit {proc.returncode}; see {OUT}/{name}.log)"), flush=True)


if __name__ == "__main__":
    main()
