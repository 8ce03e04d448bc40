"""`radeval bench human` on small fixtures in the ReXVal / RadPref / RadJudge formats."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from human_fixture import (
    RADJUDGE_SOURCE,
    REPORTS,
    rexval_expected,
    write_radjudge,
    write_radpref,
    write_rexval,
)
from scipy.stats import kendalltau

from radeval.bench import human as H
from radeval.bench import human_data as D
from radeval.errors import InputError, RadevalError


@pytest.mark.parametrize("numbering", ["id", "pos0", "pos1"])
def test_rexval_loader_reads_columns_by_name_and_averages_raters(tmp_path, numbering):
    data = D.load_rexval(write_rexval(tmp_path / "rexval", study_number=numbering))
    assert len(data.candidates) == 4 * 4 and data.primary == "-errors"
    for c in data.candidates:
        study = int(c.case[1:]) - 100
        tot, sig = rexval_expected(study, c.name)
        assert c.human["-errors"] == pytest.approx(-tot) and c.human["-significant_errors"] == pytest.approx(-sig)
        assert c.reference == REPORTS[study]


def test_rexval_bad_input_names_file_line_and_field(tmp_path):
    root = write_rexval(tmp_path / "r")
    f = root / "6_valid_raters_per_rater_error_categories.csv"
    lines = f.read_text().splitlines()
    bad = lines[:3] + [lines[3].rsplit(",", 1)[0] + ",many"] + lines[4:]
    f.write_text("\n".join(bad) + "\n")
    with pytest.raises(InputError, match=r"6_valid_raters_per_rater_error_categories.csv:4: column 'num_errors'"):
        D.load_rexval(root)
    with pytest.raises(InputError, match="pass the folder"):
        D.load("rexval", None)


def test_radpref_tau_and_pairwise_accuracy_match_a_direct_computation(tmp_path):
    data = D.load_radpref(write_radpref(tmp_path))
    assert len(data.candidates) == 10
    res = H.run(data, ["bleu:bleu_4", "rouge_l"], bootstrap=200, seed=1)
    h = np.array([c.human["rating"] for c in data.candidates])
    from radeval.registry import get_metric

    s = get_metric("bleu").score([c.text for c in data.candidates], [c.reference for c in data.candidates]).sample["bleu_4"]
    assert res.metrics["bleu:bleu_4"]["tau_b"] == pytest.approx(kendalltau(s, h).statistic)
    # pairwise: C1 vs C2 of each case, where the mean ratings differ
    hits, n = 0.0, 0
    for i in range(0, 10, 2):
        if h[i] != h[i + 1]:
            n += 1
            d = s[i] - s[i + 1]
            hits += 0.5 if d == 0 else float((d > 0) == (h[i] > h[i + 1]))
    m = res.metrics["bleu:bleu_4"]
    assert m["pairs"] == n and m["pairwise_accuracy"] == pytest.approx(hits / n)
    lo, hi = m["tau_b_ci95"]
    assert -1 <= lo <= hi <= 1


def test_rexval_run_with_a_lower_is_better_metric_is_sign_aligned(tmp_path, monkeypatch):
    from radeval import registry
    from radeval.metric import MeanMetric

    class Len(MeanMetric):
        """Candidate length in words; declared lower-is-better to check the sign alignment."""

        name = "len_test"
        keys = ("len_test",)
        directions = {"len_test": False}

        def settings(self):
            return {}

        def values(self, hyps, refs, images=None):
            return {"len_test": np.array([float(len(h.split())) for h in hyps])}

    monkeypatch.setitem(registry._REGISTRY, "len_test", registry.MetricSpec("len_test", "x:y", ("len_test",), "test"))
    monkeypatch.setattr(registry, "_import", lambda target: Len)
    data = D.load_rexval(write_rexval(tmp_path / "r"))
    res = H.run(data, ["len_test"], bootstrap=0)
    s = -np.array([len(c.text.split()) for c in data.candidates], dtype=float)
    h = np.array([c.human["-errors"] for c in data.candidates])
    assert res.metrics["len_test"]["tau_b"] == pytest.approx(kendalltau(s, h).statistic)
    assert res.metrics["len_test"]["tau_b_ci95"] is None
    assert res.metrics["len_test"]["pairs"] == sum(
        1 for case in range(4) for a in range(4) for b in range(a + 1, 4)
        if h[case * 4 + a] != h[case * 4 + b]
    )  # fmt: skip


def test_radjudge_counts_cases_whose_orderings_all_hold(tmp_path):
    data = D.load_radjudge(write_radjudge(tmp_path))  # the file's `raise SystemExit` never runs
    res = H.run(data, ["bleu"], bootstrap=0)
    m = res.metrics["bleu"]
    # copies beat a different report, identical texts tie, the chain holds, 2b expects the worse one first
    assert m["cases"] == {"1a": True, "1b": True, "2a": True, "2b": False}
    assert (m["passed"], m["total"]) == (3, 4)


def test_cli_writes_report_json_and_plot(tmp_path):
    root = write_radpref(tmp_path / "data")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "radeval.cli", "bench", "human", "radpref", "--data", str(root),
           "-m", "bleu,rouge_l", "-o", str(out), "--bootstrap", "100"]  # fmt: skip
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "Kendall τ-b" in p.stdout and "bleu" in p.stdout
    report = json.loads((out / "bench-human.json").read_text())
    assert report["dataset"] == "radpref" and set(report["metrics"]) == {"bleu", "rouge_l"}
    assert (out / "report.md").read_text().startswith("# Agreement with radiologists — RadPref")
    assert (out / "report.html").exists() and (out / "tau.png").exists()
    # a missing default download is a usage error naming the command that fetches it
    p = subprocess.run([sys.executable, "-m", "radeval.cli", "bench", "human", "radjudge"], capture_output=True,
                       text=True, timeout=120, env={**__import__("os").environ, "RADEVAL_DATA_DIR": str(tmp_path / "none")})  # fmt: skip
    assert p.returncode == 2 and "radeval data download radjudge" in p.stderr


def test_data_download_checks_hashes_against_a_loopback_host(tmp_path, monkeypatch):
    served = {f"/{D.CRIMSON_REPO}/{D.CRIMSON_COMMIT}/RadJudge/test_cases.py": RADJUDGE_SOURCE.encode()}

    class Hd(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            body = served.get(self.path)
            self.send_response(200 if body else 404)
            self.end_headers()
            self.wfile.write(body or b"")

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Hd)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("RADEVAL_GIT_RAW_BASE", f"http://127.0.0.1:{httpd.server_address[1]}")
        with pytest.raises(RadevalError, match="expected " + D.DOWNLOADS["radjudge"][0][1]):
            D.download("radjudge", tmp_path / "dl")
        assert not (tmp_path / "dl").exists()
        good = hashlib.sha256(RADJUDGE_SOURCE.encode()).hexdigest()
        monkeypatch.setitem(D.DOWNLOADS, "radjudge", (("RadJudge/test_cases.py", good),))
        root = D.download("radjudge", tmp_path / "dl")
        assert len(D.load_radjudge(root).orderings) == 4
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_an_llm_judge_in_bench_human_through_the_cli(tmp_path):
    """GREEN on a fake server that answers one choice per request, options through -O."""
    import os

    from judge_fixture import FakeServer
    from test_green import FAKE_UTILS, NO_ERRORS, WELL_FORMED

    def answer(prompt):
        ref = prompt.split("Reference Report:\n    ")[1].split("\n")[0]
        cand = prompt.split("Candidate Report:\n    ")[1].split("\n")[0]
        return "\n" + (NO_ERRORS if ref == cand else WELL_FORMED), "stop"  # GREEN 1.0 or 0.6

    (tmp_path / "models" / "green-prompt").mkdir(parents=True)
    (tmp_path / "models" / "green-prompt" / "utils.py").write_text(FAKE_UTILS)
    root = write_radjudge(tmp_path / "data")
    env = {**os.environ, "RADEVAL_MODELS_DIR": str(tmp_path / "models")}
    with FakeServer(answer, mode="one") as srv:
        cmd = [sys.executable, "-m", "radeval.cli", "bench", "human", "radjudge", "--data", str(root), "-m", "green",
               "-O", f"green.endpoint={srv.url}", "-O", "green.judge_cache=false", "-o", str(tmp_path / "out")]  # fmt: skip
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode == 0, p.stderr
    m = json.loads((tmp_path / "out" / "bench-human.json").read_text())["metrics"]["green"]
    # 1a copy > other, 1b equal texts, 2a: C2 and C3 tie at 0.6 (fails "C2 > C3"), 2b expects the worse first
    assert m["cases"] == {"1a": True, "1b": True, "2a": False, "2b": False}
