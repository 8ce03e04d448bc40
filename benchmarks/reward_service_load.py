"""Load test on loopback: the LitServe reward service vs the retired stdlib lock server.

N concurrent clients (default 1, 4, 16) each send GRPO-shaped requests — 8 prompts x G = 8
completions = 64 per request, OpenRLHF's ``{"query", "prompts", "labels"}`` form, which both
servers accept — scored with BERTScore-MiniLM (``bertscore_minilm_f1``), the rule-based CheXpert
F1 (``chexpert_rules_f1_sample``) and BLEU-4 (``bleu_4``), weights 1. Every request carries new
completions (sentences of the reference mixed with sentences of other reports, seeded), so the
per-pair cache never answers for the server; references come from the bench corpus and repeat
across requests as they do across GRPO steps.

Per (server, clients): throughput (completions/s), p50/p99 request latency, lost requests (HTTP
error, exception, or a wrong number of values: must be 0), unscored samples, wall time and the
CPU seconds of the server's whole process group (LitServe's API server and inference worker
included) from /proc. Both servers run side by side, each warmed up with one request (model
loading), and each client count is measured ``--reps`` times per server in ABBA order (service,
lock, lock, service, ...) so drifting load on a shared machine hits both alike.

Run (take the measurement lock; the machine is shared):

    flock /tmp/radeval-measure.lock env HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 PYTHONPATH=. \\
        python benchmarks/reward_service_load.py [--clients 1 4 16] [--requests 32] \\
        [--out benchmarks/results/reward_service_load.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REWARDS = ["bertscore_minilm_f1", "chexpert_rules_f1_sample", "bleu_4"]
PROMPTS, G = 8, 8
PROMPT = "Describe the findings of this chest X-ray.\n"


def corpus() -> list[str]:
    path = ROOT / "radeval" / "resources" / "bench_reports.jsonl"
    return [json.loads(line)["reference"] for line in path.read_text().splitlines() if line.strip()]


def sentences(text: str) -> list[str]:
    return [s.strip() + "." for s in text.split(".") if s.strip()]


def make_request(reports: list[str], seed: int) -> dict:
    rng = random.Random(seed)
    queries, prompts, labels = [], [], []
    for _p in range(PROMPTS):
        ref = rng.choice(reports)
        own = sentences(ref)
        for _g in range(G):
            other = sentences(rng.choice(reports))
            picked = rng.sample(own, k=rng.randint(0, len(own))) + rng.sample(
                other, k=rng.randint(0, min(2, len(other)))
            )
            rng.shuffle(picked)
            body = " ".join(picked) + f" Seed {seed}."  # never the same pair twice
            queries.append(PROMPT + f"<report>{body}</report>")
            prompts.append(PROMPT)
            labels.append(ref)
    return {"query": queries, "prompts": prompts, "labels": labels}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_health(url: str, proc: subprocess.Popen, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.5)
    raise RuntimeError("server did not come up")


def group_cpu_seconds(pgid: int) -> float:
    """utime + stime (+ reaped children) of every live process in the group."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # field 5 (pgrp), after the state
            total += int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
    return total / tick


def start(kind: str, port: int, batch_size: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if kind == "service":
        cmd = [sys.executable, "-m", "radeval.rewards.service", "--port", str(port)]
        cmd += ["--max-batch-size", str(batch_size), "--batch-timeout", "0.01"]
    else:
        cmd = [sys.executable, "-W", "ignore::FutureWarning", "-m", "radeval.rewards.server", "--port", str(port)]
    for r in REWARDS:
        cmd += ["--reward", r]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    health = f"http://127.0.0.1:{port}/health" if kind == "service" else f"http://127.0.0.1:{port}/"
    wait_health(health, proc)
    return proc


def stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def post(url: str, payload: dict, timeout: float = 600) -> tuple[int, dict | None]:
    req = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST")
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, None
    except Exception:
        return -1, None


def run_load(url: str, reports: list[str], clients: int, per_client: int, seed0: int) -> dict:
    latencies: list[float] = []
    lost = unscored = done = 0
    lock = threading.Lock()

    def client(c: int) -> None:
        nonlocal lost, unscored, done
        for k in range(per_client):
            payload = make_request(reports, seed0 + c * 10_000 + k)
            t0 = time.perf_counter()
            status, body = post(url, payload)
            dt = time.perf_counter() - t0
            with lock:
                ok = status == 200 and body is not None and len(body.get("rewards") or []) == PROMPTS * G
                if ok:
                    latencies.append(dt)
                    done += 1
                    unscored += sum(v is None for v in body["rewards"])
                else:
                    lost += 1

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    lat = sorted(latencies)

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(round(p / 100 * (len(lat) - 1))))] if lat else float("nan")

    return {
        "clients": clients,
        "requests": clients * per_client,
        "completions_per_s": done * PROMPTS * G / wall,
        "p50_s": pct(50),
        "p99_s": pct(99),
        "mean_s": statistics.fmean(lat) if lat else float("nan"),
        "lost": lost,
        "unscored_samples": unscored,
        "wall_s": wall,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--requests", type=int, default=32, help="requests per configuration (split over clients)")
    ap.add_argument("--batch-size", type=int, default=16, help="service max_batch_size (requests)")
    ap.add_argument("--servers", nargs="+", default=["service", "lock_server"])
    ap.add_argument("--reps", type=int, default=2, help="runs per server and client count (ABBA order)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    reports = corpus()
    rows = []
    procs: dict[str, subprocess.Popen] = {}
    urls: dict[str, str] = {}
    startup: dict[str, float] = {}
    try:
        # both servers up at once, each warmed (model loading), then the configurations run in
        # ABBA order so drifting load on a shared machine hits both alike
        for kind in args.servers:
            port = free_port()
            t0 = time.perf_counter()
            procs[kind] = start(kind, port, args.batch_size)
            urls[kind] = f"http://127.0.0.1:{port}/get_reward"
            post(urls[kind], make_request(reports, 999_999))
            startup[kind] = time.perf_counter() - t0
        for n in args.clients:
            per = max(1, args.requests // n)
            order = []
            for rep in range(args.reps):
                order += args.servers if rep % 2 == 0 else list(reversed(args.servers))
            for rep, kind in enumerate(order):
                proc = procs[kind]
                cpu0, self0 = group_cpu_seconds(proc.pid), time.process_time()
                row = run_load(urls[kind], reports, n, per, seed0=n * 1_000_000 + rep * 100_000)
                row.update(
                    server=kind,
                    rep=rep,
                    server_cpu_s=group_cpu_seconds(proc.pid) - cpu0,
                    client_cpu_s=time.process_time() - self0,
                    startup_s=startup[kind],
                )
                rows.append(row)
                print(
                    f"{kind:12s} clients={n:3d} req={row['requests']:3d} "
                    f"{row['completions_per_s']:8.1f} compl/s  p50={row['p50_s']:.2f}s p99={row['p99_s']:.2f}s "
                    f"lost={row['lost']} unscored={row['unscored_samples']} wall={row['wall_s']:.1f}s "
                    f"server_cpu={row['server_cpu_s']:.1f}s",
                    flush=True,
                )
    finally:
        for proc in procs.values():
            stop(proc)
    if args.out:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        import litserve

        args.out.write_text(
            json.dumps(
                {
                    "command": " ".join(sys.argv),
                    "commit": commit,
                    "machine": {
                        "cpus": os.cpu_count(),
                        "platform": platform.platform(),
                        "python": sys.version.split()[0],
                    },
                    "versions": {"litserve": litserve.__version__},
                    "rewards": REWARDS,
                    "shape": {"prompts": PROMPTS, "G": G},
                    "rows": rows,
                },
                indent=2,
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
