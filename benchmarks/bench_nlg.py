"""Speed of radeval's NLG suite against pycocoevalcap on the same pairs, numbers checked equal.

    PYTHONPATH=. python benchmarks/bench_nlg.py [--n 10000] [--seed 0] [--modes r2gen-mimic,whitespace]

For each tokenisation mode it times, on ``--n`` generated report pairs (tests/report_corpus.py):

* radeval: ``Bleu``, ``RougeL`` and METEOR ``.score()`` on the raw texts (normalisation
  included in radeval's time; caches emptied and METEOR's resources reloaded — the native
  backend's data files, or a JVM start with ``--meteor-backend jar`` — before each mode, as a
  fresh ``radeval score`` run does; ``--meteor-jars`` counts always time the jar);
* pycocoevalcap: ``Bleu(4)``, ``Rouge()`` and ``Meteor()`` (constructor = JVM start included)
  ``.compute_score()`` on the texts radeval normalised (pycocoevalcap's side gets that for
  free, so the ratio is conservative);

then checks every corpus and per-sample value agrees to 1e-9 and prints the times and ratios.
``--meteor-backends 1000,10000`` times METEOR alone in three implementations on the same pairs
(tokenize ``--modes``' first mode): radeval's native METEOR (``meteor_native``, no Java), radeval
driving the jar, and pycocoevalcap's ``Meteor``; each cold (a fresh process: imports, JVM start
or resource loading, scoring; CPU time includes the JVM's) and warm (resources loaded, caches
emptied), plus a reward-sized call (64 completions x 8 references = 512 pairs, warm), with the
native path's peak memory (paraphrase table loaded). ``--only-meteor`` skips the suite table.
With the ``radeval`` peer (``python benchmarks/peers.py setup radeval``, or ``--peer-python``) it also times RadEval's
BLEU in that venv on the same raw pairs (RadEval imports as ``radeval`` too, so it cannot share
our environment).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from peers import peer_python, run_and_record, status

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from radeval import coco, tokenize  # noqa: E402
from radeval.metrics import meteor as meteor_mod  # noqa: E402
from radeval.metrics import nlg  # noqa: E402
from radeval.metrics.meteor import Meteor, MeteorNative, one_line  # noqa: E402
from radeval.metrics.nlg import Bleu, RougeL  # noqa: E402
from radeval.tokenize import DEFAULT_TOKENIZE, normalize  # noqa: E402
from tests.report_corpus import report_pairs  # noqa: E402

TOL = 1e-9


def _clear_caches() -> None:
    tokenize.clear_caches()
    nlg._reference_info.cache_clear()
    nlg._coco_ref_tokens.cache_clear()
    coco._PTB_CACHE.clear()
    meteor_mod._CACHE.clear()
    meteor_mod._NATIVE_CACHE.clear()
    meteor_mod._ALIGNER = None  # the native path reloads its resources, as a fresh run does
    coco.shutdown_meteor()


def _clear_text_caches() -> None:
    """Forget every text seen (normalised text, METEOR lines, the native aligner's per-text
    word ids), keeping what is loaded: a warm process meeting new texts."""
    tokenize.clear_caches()
    meteor_mod._CACHE.clear()
    meteor_mod._NATIVE_CACHE.clear()
    if meteor_mod._ALIGNER is not None:
        meteor_mod._ALIGNER.clear_text_caches()


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def _children_cpu() -> float:
    """CPU seconds of finished child processes (the JVMs), to show where METEOR's time goes."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


JVM_CPU: dict[str, float] = {}


def run_radeval(hyps, refs, mode, jars, backend="native"):
    _clear_caches()
    times, results = {}, {}
    results["bleu"], times["bleu"] = _timed(lambda: Bleu(tokenize=mode).score(hyps, refs))
    results["rouge_l"], times["rouge_l"] = _timed(lambda: RougeL(tokenize=mode).score(hyps, refs))
    for j in jars:  # METEOR with each jar count, from a cold start each time
        if j != jars[0]:
            _clear_caches()
        key = "meteor" if j == jars[0] else f"meteor_jars{j}"
        cpu = _children_cpu()
        metric = MeteorNative(tokenize=mode) if backend == "native" and j == jars[0] else Meteor(tokenize=mode, jars=j)
        results[key], times[key] = _timed(lambda m=metric: m.score(hyps, refs))
        coco.shutdown_meteor()  # reap the jars so their CPU time is counted
        JVM_CPU[f"radeval:{key}"] = _children_cpu() - cpu
    return results, times


def run_coco(hn, rn):
    from pycocoevalcap.bleu.bleu import Bleu as CocoBleu
    from pycocoevalcap.meteor.meteor import Meteor as CocoMeteor
    from pycocoevalcap.rouge.rouge import Rouge as CocoRouge

    gts = {i: [r] for i, r in enumerate(rn)}
    res = {i: [h] for i, h in enumerate(hn)}
    times, results = {}, {}
    results["bleu"], times["bleu"] = _timed(lambda: CocoBleu(4).compute_score(gts, res, verbose=0))
    results["rouge_l"], times["rouge_l"] = _timed(lambda: CocoRouge().compute_score(gts, res))
    # the jar protocol is one line per segment: pycocoevalcap gets single-line text, as radeval sends
    gts1 = {i: [one_line(r)] for i, r in enumerate(rn)}
    res1 = {i: [one_line(h)] for i, h in enumerate(hn)}

    def meteor():
        scorer = CocoMeteor()
        try:
            return scorer.compute_score(gts1, res1)
        finally:
            scorer.meteor_p.stdin.close()
            scorer.meteor_p.kill()
            scorer.meteor_p.wait()

    cpu = _children_cpu()
    results["meteor"], times["meteor"] = _timed(meteor)
    JVM_CPU["coco:meteor"] = _children_cpu() - cpu
    return results, times


def max_diffs(ours, theirs) -> dict[str, float]:
    out = {}
    corpus, sample = theirs["bleu"]
    for k in range(4):
        key = f"bleu_{k + 1}"
        out[key] = max(
            abs(ours["bleu"].corpus[key] - corpus[k]),
            float(np.max(np.abs(ours["bleu"].sample[key] - np.asarray(sample[k])))),
        )
    for key in ("rouge_l", "meteor"):
        corpus, sample = theirs[key]
        out[key] = max(
            abs(ours[key].corpus[key] - float(corpus)),
            float(np.max(np.abs(ours[key].sample[key] - np.asarray(sample)))),
        )
    return out


RADEVAL_BLEU_SCRIPT = r"""
import json, sys, time
pairs = json.load(open(sys.argv[1]))
hyps = [h for h, _ in pairs]; refs = [r for _, r in pairs]
t = time.perf_counter()
from radeval import RadEval  # RadEval's own package, in its own venv
ev = RadEval(metrics=["bleu"], detailed=True, show_progress=False)
load = time.perf_counter() - t
t = time.perf_counter()
out = ev(refs=refs, hyps=hyps)
print(json.dumps({"load_s": load, "score_s": time.perf_counter() - t, "result": out}, default=str))
"""


def _radeval_python(override: str | None) -> Path | None:
    if override:
        return peer_python("radeval", override)
    d, state = status("radeval")
    return peer_python("radeval") if state == "ready" else None


def run_radeval_peer(python: Path | None, pairs) -> dict | None:
    if python is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "pairs.json"
        data.write_text(json.dumps(pairs))
        script = Path(tmp) / "bleu.py"
        script.write_text(RADEVAL_BLEU_SCRIPT)
        env = dict(os.environ, HF_HUB_OFFLINE="1")
        env.pop("PYTHONPATH", None)
        proc = subprocess.run(
            [str(python), str(script), str(data)], capture_output=True, text=True, env=env, cwd=tmp, timeout=3600
        )
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


METEOR_COLD_SCRIPT = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
backend, n, seed, mode = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
from tests.report_corpus import report_pairs
pairs = report_pairs(n, seed=seed)
hyps, refs = [h for h, _ in pairs], [r for _, r in pairs]
if backend == "coco":  # pycocoevalcap gets radeval's normalised text for free
    from radeval.metrics.meteor import one_line
    from radeval.tokenize import normalize
    hn, rn = normalize(hyps, mode), normalize(refs, mode)
c0 = time.process_time()
t0 = time.perf_counter()
if backend == "native":
    from radeval.metrics.meteor import MeteorNative
    values = MeteorNative(tokenize=mode).score(hyps, refs).sample["meteor"].tolist()
elif backend == "jar":
    from radeval import coco
    from radeval.metrics.meteor import Meteor
    values = Meteor(tokenize=mode).score(hyps, refs).sample["meteor"].tolist()
    coco.shutdown_meteor()
else:
    from pycocoevalcap.meteor.meteor import Meteor as CocoMeteor
    scorer = CocoMeteor()
    _, values = scorer.compute_score({i: [one_line(r)] for i, r in enumerate(rn)}, {i: [one_line(h)] for i, h in enumerate(hn)})
    scorer.meteor_p.stdin.close(); scorer.meteor_p.kill(); scorer.meteor_p.wait()
    values = [float(v) for v in values]
wall = time.perf_counter() - t0
kids = resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = time.process_time() - c0 + kids.ru_utime + kids.ru_stime
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"wall_s": wall, "cpu_s": cpu, "maxrss_mb": rss / 1024, "jvm_maxrss_mb": kids.ru_maxrss / 1024, "values": values}))
"""


def meteor_cold(backend: str, n: int, seed: int, mode: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "cold.py"
        script.write_text(METEOR_COLD_SCRIPT)
        env = dict(os.environ, OMP_NUM_THREADS="1")
        proc = subprocess.run(
            [sys.executable, str(script), str(ROOT), backend, str(n), str(seed), mode],
            capture_output=True, text=True, env=env, timeout=7200,
        )
    if proc.returncode != 0:
        raise RuntimeError(f"cold METEOR run ({backend}) failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _pid_cpu(pid: int | None) -> float:
    """CPU seconds used so far by a live process (Linux /proc), 0 where unknown."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def meteor_warm(sizes: list[int], seed: int, mode: str) -> dict:
    """Warm timings in this process: every backend loaded and warmed on other pairs first."""
    from pycocoevalcap.meteor.meteor import Meteor as CocoMeteor

    from radeval.metrics.meteor import MeteorNative

    native, jar, cocom = MeteorNative(tokenize=mode), Meteor(tokenize=mode), CocoMeteor()
    warm = report_pairs(200, seed=seed + 101)
    wh, wr = [h for h, _ in warm], [r for _, r in warm]
    native.score(wh, wr)
    jar.score(wh, wr)
    jvm = {"native": None, "jar": coco.meteor_jar()._proc.pid, "coco": cocom.meteor_p.pid}
    out: dict = {}
    try:
        for n in sizes:
            pairs = report_pairs(n, seed=seed)
            hyps, refs = [h for h, _ in pairs], [r for _, r in pairs]
            hn, rn = normalize(hyps, mode), normalize(refs, mode)
            row = {}
            for name, fn in (
                ("native", lambda h=hyps, r=refs: native.score(h, r)),
                ("jar", lambda h=hyps, r=refs: jar.score(h, r)),
                ("coco", lambda g={i: [one_line(r)] for i, r in enumerate(rn)}, s={i: [one_line(h)] for i, h in enumerate(hn)}: cocom.compute_score(g, s)),
            ):
                _clear_text_caches()
                c0, j0 = time.process_time(), _pid_cpu(jvm[name])
                _, wall = _timed(fn)
                row[name] = {"wall_s": wall, "cpu_s": time.process_time() - c0 + _pid_cpu(jvm[name]) - j0}
            out[n] = row
        # reward-sized calls: 64 completions x 8 references, fresh pairs each call
        calls = 5
        pairs = report_pairs(512 * calls, seed=seed + 7)
        for name, metric in (("native", native), ("jar", jar)):
            _clear_text_caches()
            c0, j0 = time.process_time(), _pid_cpu(jvm[name])
            t0 = time.perf_counter()
            for k in range(calls):
                chunk = pairs[512 * k : 512 * (k + 1)]
                metric.score([h for h, _ in chunk], [r for _, r in chunk])
            cpu = time.process_time() - c0 + _pid_cpu(jvm[name]) - j0
            out.setdefault("reward_512", {})[name] = {
                "wall_s_per_call": (time.perf_counter() - t0) / calls,
                "cpu_s_per_call": cpu / calls,
            }
    finally:
        cocom.meteor_p.stdin.close()
        cocom.meteor_p.kill()
        cocom.meteor_p.wait()
        coco.shutdown_meteor()
    return out


def bench_meteor_backends(sizes: list[int], seed: int, mode: str) -> bool:
    print(f"\n== METEOR backends, tokenize={mode} (cold: fresh process; CPU includes the JVM's, warm too)")
    equal = True
    print(f"{'pairs':>7} {'backend':<8}{'cold wall s':>12}{'cold CPU s':>12}{'peak MB':>9}")
    for n in sizes:
        cold = {b: meteor_cold(b, n, seed, mode) for b in ("native", "jar", "coco")}
        ref = np.asarray(cold["coco"]["values"])
        for b, r in cold.items():
            d = float(np.max(np.abs(np.asarray(r["values"]) - ref))) if n else 0.0
            equal &= d <= TOL
            peak = r["maxrss_mb"] if b == "native" else max(r["maxrss_mb"], r["jvm_maxrss_mb"])
            print(f"{n:>7} {b:<8}{r['wall_s']:>12.2f}{r['cpu_s']:>12.2f}{peak:>9.0f}   max |diff| vs pycocoevalcap {d:.1e}")
        nat, coc = cold["native"], cold["coco"]
        print(
            f"{n:>7} cold native vs pycocoevalcap: {coc['cpu_s'] / nat['cpu_s']:.1f}x CPU, "
            f"{coc['wall_s'] / nat['wall_s']:.1f}x wall"
        )
    warm = meteor_warm(sizes, seed, mode)
    print(f"{'pairs':>7} {'backend':<8}{'warm wall s':>12}{'CPU s':>9}{'CPU ms/segment':>16}")
    for n in sizes:
        for b, r in warm[n].items():
            print(f"{n:>7} {b:<8}{r['wall_s']:>12.2f}{r['cpu_s']:>9.2f}{1e3 * r['cpu_s'] / max(n, 1):>16.3f}")
        w = warm[n]
        print(
            f"{n:>7} warm per segment, native vs jar: {w['jar']['cpu_s'] / w['native']['cpu_s']:.1f}x CPU, "
            f"{w['jar']['wall_s'] / w['native']['wall_s']:.1f}x wall; vs pycocoevalcap: "
            f"{w['coco']['cpu_s'] / w['native']['cpu_s']:.1f}x CPU"
        )
    for b, r in warm["reward_512"].items():
        print(f"reward call (64x8 = 512 pairs) {b:<7} {r['wall_s_per_call']:.3f} s wall, {r['cpu_s_per_call']:.3f} s CPU")
    rw = warm["reward_512"]
    print(
        f"reward call native vs jar: {rw['jar']['cpu_s_per_call'] / rw['native']['cpu_s_per_call']:.1f}x CPU, "
        f"{rw['jar']['wall_s_per_call'] / rw['native']['wall_s_per_call']:.1f}x wall"
    )
    print(f"METEOR backends equal to pycocoevalcap to 1e-9: {'yes' if equal else 'NO'}")
    return equal


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--modes", default=f"{DEFAULT_TOKENIZE},whitespace")
    ap.add_argument(
        "--meteor-jars",
        default="1",
        help="comma list of METEOR jar-process counts to time radeval with (first one counts in totals)",
    )
    ap.add_argument(
        "--meteor-backend", default="native", choices=("native", "jar"), help="radeval's METEOR in the suite table"
    )
    ap.add_argument("--meteor-backends", default="", help="comma list of pair counts, e.g. 1000,10000")
    ap.add_argument("--only-meteor", action="store_true", help="only the --meteor-backends table")
    ap.add_argument("--peer-python", default=None, help="RadEval's Python (default: the radeval peer, if set up)")
    args = ap.parse_args()
    if args.meteor_backends:
        sizes = [int(x) for x in args.meteor_backends.split(",")]
        ok = bench_meteor_backends(sizes, args.seed, args.modes.split(",")[0])
        if args.only_meteor:
            sys.exit(0 if ok else 1)

    pairs = report_pairs(args.n, seed=args.seed)
    hyps, refs = [h for h, _ in pairs], [r for _, r in pairs]
    words = [len(t.split()) for t in hyps + refs]
    print(
        f"{args.n} pairs (seed {args.seed}), {len(set(pairs))} distinct; words per text: "
        f"mean {np.mean(words):.1f}, max {max(words)}; cpus: {os.cpu_count()}, "
        f"load avg at start: {os.getloadavg()[0]:.1f}"
    )
    grand = {"radeval": 0.0, "coco": 0.0}
    whitespace_bleu: dict = {}
    all_equal = True
    for mode in args.modes.split(","):
        jars = [int(j) for j in args.meteor_jars.split(",")]
        ours, t_ours = run_radeval(hyps, refs, mode, jars, args.meteor_backend)
        hn, rn = normalize(hyps, mode), normalize(refs, mode)
        theirs, t_theirs = run_coco(hn, rn)
        diffs = max_diffs(ours, theirs)
        equal = all(d <= TOL for d in diffs.values())
        all_equal &= equal
        print(
            f"\n== tokenize={mode}  (numbers equal to 1e-9: {'yes' if equal else 'NO'}; "
            f"max |diff| {max(diffs.values()):.1e})"
        )
        print(f"{'metric':<10}{'radeval s':>12}{'pycocoevalcap s':>18}{'ratio':>9}")
        for key in ("bleu", "rouge_l", "meteor"):
            print(f"{key:<10}{t_ours[key]:>12.2f}{t_theirs[key]:>18.2f}{t_theirs[key] / t_ours[key]:>8.1f}x")
        for j in jars[1:]:
            key = f"meteor_jars{j}"
            same = np.array_equal(ours[key].sample["meteor"], ours["meteor"].sample["meteor"])
            print(
                f"{'meteor':<10}{t_ours[key]:>12.2f}{t_theirs['meteor']:>18.2f}"
                f"{t_theirs['meteor'] / t_ours[key]:>8.1f}x   <- {j} jar processes (same values: {same})"
            )
        print("  METEOR JVM CPU s (start ~8 s + alignment): " + ", ".join(f"{k} {v:.1f}" for k, v in JVM_CPU.items()))
        JVM_CPU.clear()
        tot_o = t_ours["bleu"] + t_ours["rouge_l"] + t_ours["meteor"]
        tot_t = sum(t_theirs.values())
        print(f"{'total':<10}{tot_o:>12.2f}{tot_t:>18.2f}{tot_t / tot_o:>8.1f}x")
        print(
            f"corpus: bleu_4 {ours['bleu'].corpus['bleu_4']:.6f}  rouge_l {ours['rouge_l'].corpus['rouge_l']:.6f}"
            f"  meteor {ours['meteor'].corpus['meteor']:.6f}"
        )
        if mode == "whitespace":
            whitespace_bleu.update(result=ours["bleu"], time=t_ours["bleu"])
        grand["radeval"] += tot_o
        grand["coco"] += tot_t
    print(
        f"\nall modes: radeval {grand['radeval']:.2f} s, pycocoevalcap {grand['coco']:.2f} s, "
        f"ratio {grand['coco'] / grand['radeval']:.1f}x; numbers equal: {'yes' if all_equal else 'NO'}"
    )
    coco.shutdown_meteor()

    peer = run_radeval_peer(_radeval_python(args.peer_python), pairs)
    if peer is None:
        print("RadEval BLEU: skipped (no radeval peer: python benchmarks/peers.py setup radeval)")
    elif "error" in peer:
        print(f"RadEval BLEU: failed ({peer['error']})")
    else:
        got = {k: float(v) for k, v in peer["result"].items()}
        ws = whitespace_bleu.get("result")
        # RadEval rounds its outputs to 4 decimals
        same = ws is not None and all(
            abs(got[k] - ws.corpus[f"bleu_{n}"]) <= 5e-5 + 1e-12
            for k, n in (("bleu_1", 1), ("bleu_2", 2), ("bleu_3", 3), ("bleu", 4))
            if k in got
        )
        print(
            f"RadEval BLEU-1..4 (its own venv): import+init {peer['load_s']:.2f} s, score {peer['score_s']:.2f} s"
            + (
                f"; radeval whitespace BLEU {whitespace_bleu['time']:.2f} s -> "
                f"{peer['score_s'] / whitespace_bleu['time']:.1f}x; equal to radeval tokenize=whitespace: "
                f"{'yes' if same else 'NO'} (to its 4 decimals)"
                if ws is not None
                else ""
            )
            + f"; RadEval: {got}"
        )
    if not all_equal:
        sys.exit(1)


if __name__ == "__main__":
    run_and_record(main, "bench_nlg", ("radeval",))
