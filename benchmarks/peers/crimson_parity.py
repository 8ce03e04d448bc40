"""CRIMSON parity: radeval's ``crimson`` metric against the reference package crimson-score 0.2.2.

Run in the package's own venv (built by ``benchmarks/peers/build_crimson_env.sh``), with this
repository on PYTHONPATH::

    PYTHONPATH=$PWD ~/.cache/radeval-peers/crimson/bin/python benchmarks/peers/crimson_parity.py --cases 600

Responses are constructed (random evaluations in the package's JSON shape, plus the damaged
forms its parser repairs or rejects: smart quotes, invalid escapes, orphan keys, missing keys,
prose, arrays). Each case goes

* through the package: ``CRIMSONScore.evaluate`` on its OpenAI path with a stand-in client that
  records the request and returns the constructed response (prompt, parser, formula: all its own);
* through radeval: ``Crimson(endpoint=...)`` against a fake OpenAI-compatible chat server on
  loopback that returns the same response.

It compares the requests (messages, temperature, seed, response format), which cases are
unscored, and the scores (largest absolute difference), per sample and for the corpus.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

SIG = ["urgent", "actionable_not_urgent", "not_actionable_not_urgent", "benign_expected", "", "odd"]
SEV = ["significant", "negligible", "", "other"]
TYPES = ["location", "severity", "descriptor", "measurement", "certainty", "unspecific", "overinterpretation",
         "temporal"]  # fmt: skip


def _finding(rng, fid, text):
    f = {"id": fid, "finding": text}
    lab = rng.choice(SIG)
    if lab != "":
        f["clinical_significance"] = lab
    return f


def make_evaluation(rng: random.Random) -> dict:
    refs = [_finding(rng, f"R{i + 1}", f"ref finding {i}") for i in range(rng.randint(0, 5))]
    preds = [_finding(rng, f"P{i + 1}", f"pred finding {i}") for i in range(rng.randint(0, 5))]
    rid = [r["id"] for r in refs] + ["R9"]
    pid = [p["id"] for p in preds] + ["P9"]
    matched = [{"ref_id": rng.choice(rid), "pred_id": rng.choice(pid)} for _ in range(rng.randint(0, 4))]
    attrs = []
    for _ in range(rng.randint(0, 3)):
        a = {"ref_id": rng.choice(rid), "pred_id": rng.choice(pid),
             "error_types": rng.sample(TYPES, rng.randint(0, 3)), "explanation": "x"}  # fmt: skip
        sev = rng.choice(SEV)
        if sev:
            a["severity"] = sev
        attrs.append(a)
    return {
        "reference_findings": refs,
        "predicted_findings": preds,
        "matched_findings": matched,
        "errors": {
            "false_findings": rng.sample(pid, rng.randint(0, min(2, len(pid)))),
            "missing_findings": rng.sample(rid, rng.randint(0, min(2, len(rid)))),
            "attribute_errors": attrs,
        },
    }


def damage(rng: random.Random, text: str, ev: dict) -> str:
    """One of the forms a model produces; most still parse after the package's repairs."""
    kind = rng.randrange(10)
    if kind == 0:  # smart quotes inside a value
        return text.replace('"x"', '"the \u201cnew\u201d opacity"', 1)
    if kind == 1:  # invalid backslash escape
        return text.replace('"x"', '"L\\_base"', 1)
    if kind == 2:  # orphan key
        return text.replace('"pred_id"', '"pred_old", "pred_id"', 1)
    if kind == 3:  # a matched finding without ref_id: parses, cannot be scored
        if ev["matched_findings"]:
            bad = json.loads(text)
            bad["matched_findings"][0].pop("ref_id")
            return json.dumps(bad)
        return text
    if kind == 4:
        return "I cannot evaluate this report."
    if kind == 5:
        return "[" + text + "]"
    if kind == 6:  # unescaped quotes in prose
        return text.replace('"x"', '"said "stable" here"', 1)
    if kind == 7:  # missing opening quote on a key
        return text.replace(', "errors"', ', errors"', 1)
    return text


def build_cases(n: int, seed: int) -> list[tuple[str, str, str]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        ev = make_evaluation(rng)
        text = json.dumps(ev, separators=(",", ":") if rng.random() < 0.5 else (", ", ": "))
        out.append((f"Case {i} reference: effusion.", f"Case {i} candidate: opacity.", damage(rng, text, ev)))
    return out


def case_of(text: str) -> int:
    return int(re.search(r"Case (\d+) candidate", text).group(1))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=600)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    cases = build_cases(args.cases, args.seed)

    # --- the package ---
    from CRIMSON.generate_score import CRIMSONScore

    pkg_requests = {}

    def create(**kw):
        i = case_of(kw["messages"][-1]["content"])
        pkg_requests[i] = kw
        return SimpleNamespace(choices=[SimpleNamespace(message=SimpleNamespace(content=cases[i][2]))])

    scorer = CRIMSONScore.__new__(CRIMSONScore)  # its OpenAI path, without an OpenAI client
    scorer.api, scorer.model_name = "openai", "judge-test"
    scorer.client = SimpleNamespace(chat=SimpleNamespace(completions=SimpleNamespace(create=create)))
    pkg = []
    for ref, hyp, _ in cases:
        try:
            pkg.append(scorer.evaluate(ref, hyp)["crimson_score"])
        except Exception:  # evaluate_batch / evaluate_reports.py: the sample is unscored
            pkg.append(None)

    # --- radeval through a fake chat server ---
    ours_requests = {}

    class H(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            i = case_of(body["messages"][-1]["content"])
            ours_requests[i] = body
            out = json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": cases[i][2]},
                                           "finish_reason": "stop"}],
                              "usage": {"prompt_tokens": 1, "completion_tokens": 1}}).encode()  # fmt: skip
            self.send_response(200)
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    from radeval.metrics.crimson import Crimson

    m = Crimson(endpoint=f"http://127.0.0.1:{httpd.server_address[1]}", endpoint_model="judge-test",
                judge_cache=False)  # fmt: skip
    res = m.score([c[1] for c in cases], [c[0] for c in cases])
    httpd.shutdown()
    ours = [None if math.isnan(v) else float(v) for v in res.sample["crimson"]]

    # --- compare ---
    same_requests = sum(
        1
        for i in range(len(cases))
        if ours_requests[i]["messages"] == pkg_requests[i]["messages"]
        and ours_requests[i]["temperature"] == pkg_requests[i]["temperature"]
        and ours_requests[i]["seed"] == pkg_requests[i]["seed"]
        and ours_requests[i]["response_format"] == pkg_requests[i]["response_format"]
    )
    both = [(a, b) for a, b in zip(pkg, ours) if a is not None and b is not None]
    unscored_same = sum(1 for a, b in zip(pkg, ours) if (a is None) == (b is None))
    max_diff = max((abs(a - b) for a, b in both), default=0.0)
    pkg_scored = [a for a in pkg if a is not None]
    pkg_corpus = sum(pkg_scored) / len(pkg_scored)
    import importlib.metadata

    report = {
        "reference": f"crimson-score {importlib.metadata.version('crimson-score')}",
        "python": sys.version.split()[0],
        "cases": len(cases),
        "requests_identical": same_requests,
        "unscored_agree": unscored_same,
        "unscored_package": sum(a is None for a in pkg),
        "unscored_radeval": sum(b is None for b in ours),
        "scored_both": len(both),
        "max_abs_diff_per_sample": max_diff,
        "corpus_package": pkg_corpus,
        "corpus_radeval": res.corpus["crimson"],
        "corpus_abs_diff": abs(pkg_corpus - res.corpus["crimson"]),
        "details_unparsed": res.details["unparsed"],
        "details_unscorable": res.details["unscorable"],
    }
    print(json.dumps(report, indent=2))
    ok = (same_requests == len(cases) and unscored_same == len(cases) and max_diff == 0.0
          and report["corpus_abs_diff"] < 1e-12)  # fmt: skip
    print("PARITY OK" if ok else "PARITY FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
