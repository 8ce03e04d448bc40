"""RadFact parity: radeval's ``radfact`` / ``radfact_grounded`` against microsoft/RadFact's own code.

Run in RadFact's venv (``benchmarks/peers/build_radfact_env.sh``: langchain 0.2.17, pydantic
1.10.17, RadFact's source at the pinned commit), with this repository and RadFact's ``src`` on
PYTHONPATH, and the prompt files that ``radeval models download radfact-prompts`` fetches::

    PYTHONPATH=$PWD:~/.cache/radeval-peers/radfact/src RADEVAL_MODELS_DIR=... \\
        ~/.cache/radeval-peers/radfact/bin/python benchmarks/peers/radfact_parity.py

Both sides get the same constructed LLM answers (a deterministic function of the request): the
reference through a langchain chat model stand-in plugged into RadFact's own processors
(``get_report_to_phrases_processor``, ``ReportGroundingNLIProcessor``), its evidence attachment
and ``RadFactMetric.compute_radfact_score`` / ``aggregate_results``; radeval through a fake
OpenAI-compatible chat server on loopback. Answers include the forms RadFact repairs or rejects
(fenced YAML/JSON, truncated JSON, rewritten phrases, missing evidence, evidence from nowhere,
numbers for strings, prose). RadFact's Azure/Hydra/Redis engine is not imported: the harness
stubs that import and calls the processors directly, as the engine does row by row.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import sys
import threading
import types
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# RadFact's processors import its engine module (Azure, Redis, Hydra): not needed to run them
_eng = types.ModuleType("radfact.llm_utils.engine.engine")
_eng.LLMEngine = object
_eng.get_subfolder = lambda root, subfolder: root
sys.modules["radfact.llm_utils.engine"] = types.ModuleType("radfact.llm_utils.engine")
sys.modules["radfact.llm_utils.engine.engine"] = _eng
for name in ("hydra", "hydra.core", "hydra.core.global_hydra", "omegaconf"):
    sys.modules.setdefault(name, types.ModuleType(name))
sys.modules["hydra.core.global_hydra"].GlobalHydra = object
sys.modules["omegaconf"].DictConfig = dict
try:
    import pandas  # noqa: F401
except ImportError:
    _pd = types.ModuleType("pandas")
    _pd.Series = _pd.DataFrame = object
    sys.modules["pandas"] = _pd

import yaml  # noqa: E402

SENTENCES = [
    "Heart size is normal.", "Small left pleural effusion.", "No pneumothorax.", "Mild cardiomegaly.",
    "Right lower lobe consolidation.", "Endotracheal tube tip 4 cm above the carina.", "Lungs are clear.",
    "Moderate pulmonary edema.", "Left basilar atelectasis.", "No focal consolidation.",
    "Stable mediastinal contours.", "Degenerative changes of the spine.",
]  # fmt: skip


def _h(*parts) -> int:
    return int(hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:8], 16)


def answer(messages: list[dict]) -> str:
    """The constructed answer to a request (only the last user turn matters)."""
    content = messages[-1]["content"]
    try:
        q = yaml.safe_load(content)
    except yaml.YAMLError:
        q = None
    if isinstance(q, dict) and "hypothesis" in q and "reference" in q:
        return _ev_answer(q["reference"] or [], str(q["hypothesis"]))
    return _phrases_answer(content)


def _phrases_answer(text: str) -> str:
    sents = [s if s.endswith(".") else s + "." for s in (x.strip() for x in text.split(". ")) if s]
    k = _h("p", text) % 12
    sl = [{"orig": s, "new": [s]} for s in sents]
    if k == 1 and sl:
        sl[0]["new"] = [sl[0]["orig"].rstrip(".") + " (part one).", "second part."]
    if k == 2 and sl:
        sl[-1]["new"].append("")
    body = json.dumps({"sentence_list": sl})
    if k == 3:
        return "```json\n" + body + "\n```"
    if k == 4:
        return body[:-3]  # truncated: langchain's partial-JSON repair decides
    if k == 5:
        return "I'm sorry, I cannot split this report."
    if k == 6 and sl:
        sl[0].pop("new")
        return json.dumps({"sentence_list": sl})
    if k == 7:
        return json.dumps({"id": 7, "sentence_list": sl})
    return body


def _ev_answer(refs: list, hyp: str) -> str:
    rng = random.Random(_h("e", hyp, refs))
    same = [r for r in refs if str(r).lower().strip(". ") == hyp.lower().strip(". ")]
    k = rng.randrange(20)
    ev_ok = [same[0]] if same else ([rng.choice(refs)] if refs else [])
    obj: dict
    if same and k < 12:
        obj = {"phrase": hyp, "evidence": ev_ok, "status": "entailment"}
    elif k < 4:
        obj = {"phrase": hyp, "evidence": [], "status": "neutral"}
    elif k < 6 and refs:
        obj = {"phrase": hyp, "evidence": ev_ok, "status": "contradiction"}
    elif k < 8:
        obj = {"phrase": hyp, "evidence": ev_ok, "status": "not_entailment"}
    elif k < 10 and refs:
        obj = {"phrase": hyp, "evidence": ev_ok, "status": "entailment"}
    elif k == 10:
        obj = {"phrase": hyp, "evidence": [], "status": "entailment"}  # invalid: entailed without evidence
    elif k == 11:
        return "The phrase is supported."  # prose
    elif k == 12:
        obj = {"phrase": hyp.upper(), "evidence": ev_ok, "status": "entailment" if ev_ok else "neutral"}
        if not ev_ok:
            obj["evidence"] = []
    elif k == 13:
        return "```yaml\n" + yaml.dump({"phrase": hyp, "evidence": [], "status": "neutral"}, sort_keys=False) + "```"
    elif k == 14 and rng.random() < 0.3:
        obj = {"phrase": hyp, "evidence": ["an invented finding"], "status": "contradiction"}  # invalidates the sample
    elif k == 15:
        obj = {"phrase": hyp, "evidence": "not a list", "status": "neutral"}
    elif k == 16:
        obj = {"phrase": 12345, "evidence": [], "status": "neutral"}  # number coerced to str, then put back
    else:
        obj = {"phrase": hyp, "evidence": [], "status": "not_entailment"}
    return yaml.dump(obj, sort_keys=False)


def build_cases(n: int, seed: int, grounded: bool) -> list[tuple]:
    rng = random.Random(seed)

    def boxes():
        if rng.random() < 0.3:
            return None
        out = []
        for _ in range(rng.randint(1, 2)):
            x0, y0 = rng.random() * 0.6, rng.random() * 0.6
            out.append({"x_min": x0, "y_min": y0, "x_max": x0 + rng.random() * 0.4, "y_max": y0 + rng.random() * 0.4})
        return out

    cases = []
    for _ in range(n):
        ref = rng.sample(SENTENCES, rng.randint(1, 4))
        cand = [s for s in ref if rng.random() < 0.7] + rng.sample(SENTENCES, rng.randint(0, 2))
        cand = list(dict.fromkeys(cand)) or [rng.choice(SENTENCES)]
        if grounded:
            rb = {s: boxes() for s in ref}
            # a copied phrase keeps (or moves) its boxes, so some phrases are spatially entailed
            cand_g = [{"text": s, "boxes": (rb.get(s) if rng.random() < 0.6 else boxes())} for s in cand]
            cases.append(([{"text": s, "boxes": rb[s]} for s in ref], cand_g))
        else:
            cases.append((" ".join(ref), " ".join(cand)))
    return cases


class _Server:
    def __init__(self):
        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                text = answer(body["messages"])
                out = json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                               "finish_reason": "stop"}], "usage": {}}).encode()  # fmt: skip
                self.send_response(200)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


def reference_side(cases, grounded: bool):
    from langchain_core.language_models.chat_models import BaseChatModel
    from langchain_core.messages import AIMessage
    from langchain_core.outputs import ChatGeneration, ChatResult
    from radfact.data_utils.grounded_phrase_list import GroundedPhraseList
    from radfact.llm_utils.nli.processor import ReportGroundingNLIProcessor
    from radfact.llm_utils.nli.schema import NLIQuerySample
    from radfact.llm_utils.report_to_phrases.processor import get_report_to_phrases_processor
    from radfact.metric.radfact import RadFactMetric
    from radfact.metric.schema import GroundedPhraseEvidenced, PerSampleNLIResult

    role = {"system": "system", "human": "user", "ai": "assistant"}

    class Fake(BaseChatModel):
        @property
        def _llm_type(self) -> str:
            return "radeval-parity"

        def _generate(self, messages, stop=None, run_manager=None, **kw):
            text = answer([{"role": role[m.type], "content": m.content} for m in messages])
            return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])

    metric = RadFactMetric.__new__(RadFactMetric)
    metric.image_size, metric.box_precision_threshold = 224, 0.5
    metric.is_narrative_text, metric.meta_metrics = not grounded, {}
    nli = ReportGroundingNLIProcessor()
    nli.set_model(Fake())
    phr = get_report_to_phrases_processor(log_dir=None)
    phr.set_model(Fake())

    def to_gpl(x):
        if grounded:
            return GroundedPhraseList.from_list_of_dicts(x)
        out = phr.run(query=GroundedPhraseList([x]).get_all_text(), query_id="q")
        return None if out is None else out.to_grounded_phrases_list()

    per_sample, results = [], []
    for i, (ref, cand) in enumerate(cases):
        c, r = to_gpl(cand), to_gpl(ref)
        if c is None or r is None:  # dropped by RadFact (the phrase engine skipped the study)
            per_sample.append(None)
            continue
        sample = nli.run(NLIQuerySample.from_grounded_phrases_list_pair(example_id=str(i), candidate=c, reference=r),
                         query_id=str(i))  # fmt: skip
        if sample is None:
            per_sample.append(None)
            results.append(PerSampleNLIResult(study_id=str(i)))
            continue
        cg, rg = c.get_all_grounded_phrases(True), r.get_all_grounded_phrases(True)
        ce = GroundedPhraseEvidenced.attach_evidence_to_all_hypotheses(
            evidenced_phrases=sample.output.phrases_A_evidenced, hypothesis_grounded_phrases=cg,
            premise_grounded_phrases=rg)  # fmt: skip
        re_ = GroundedPhraseEvidenced.attach_evidence_to_all_hypotheses(
            evidenced_phrases=sample.output.phrases_B_evidenced, hypothesis_grounded_phrases=rg,
            premise_grounded_phrases=cg)  # fmt: skip
        score = metric.compute_radfact_score(ce, re_)
        per_sample.append(score)
        results.append(PerSampleNLIResult(study_id=str(i), scores=score))
    try:
        _, agg = metric.aggregate_results(results)
    except ZeroDivisionError:  # its F1 of 0 and 0
        agg = None
    return per_sample, agg, nli.get_processor_stats()


def _same(a, b) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def compare(cases, grounded: bool, prompt_path: str | None) -> dict:
    from radeval.metrics.radfact import RadFact, RadFactGrounded

    srv = _Server()
    cls = RadFactGrounded if grounded else RadFact
    m = cls(endpoint=srv.url, endpoint_model="judge-test", judge_cache=False, prompt_path=prompt_path)
    hyps = [json.dumps(c) if grounded else c for _, c in cases]
    refs = [json.dumps(r) if grounded else r for r, _ in cases]
    res = m.score(hyps, refs)
    srv.httpd.shutdown()
    ref_ps, agg, stats = reference_side(cases, grounded)
    fields = ["logical_precision", "logical_recall"] + (
        ["spatial_precision", "spatial_recall", "grounding_precision", "grounding_recall"] if grounded else [])
    prefix = m.name
    worst, compared, unscored_agree = 0.0, 0, 0
    for i, ps in enumerate(ref_ps):
        ours_unscored = math.isnan(res.sample[f"{prefix}_logical_precision"][i]) and math.isnan(
            res.sample[f"{prefix}_logical_recall"][i]) and m.last_results[i].get("unscored")  # fmt: skip
        unscored_agree += (ps is None) == bool(ours_unscored)
        if ps is None:
            continue
        for f in fields:
            a, b = float(getattr(ps, f)), float(res.sample[f"{prefix}_{f}"][i])
            compared += 1
            if not _same(a, b):
                worst = max(worst, abs(a - b) if not (math.isnan(a) or math.isnan(b)) else math.inf)
    corpus = {}
    if agg is not None:
        for f in fields + ["logical_f1"] + (["spatial_f1", "grounding_f1"] if grounded else []):
            corpus[f] = (agg[f], res.corpus[f"{prefix}_{f}"])
    d = res.details
    return {
        "metric": prefix,
        "cases": len(cases),
        "scored_by_reference": sum(p is not None for p in ref_ps),
        "unscored_agree": unscored_agree,
        "values_compared": compared,
        "max_abs_diff_per_sample": worst,
        "corpus (reference, radeval)": corpus,
        "corpus_max_abs_diff": max((abs(a - b) for a, b in corpus.values()), default=0.0),
        "invalid (reference, radeval)": (sum(1 for p in ref_ps if p is None), d["num_invalid_processed_samples"]
                                         + d["phrase_parse_failures"]),  # fmt: skip
        "llm_failures (reference, radeval)": (stats["num_llm_failures"], d["num_llm_failures"]),
        "phrase_rewrites (reference, radeval)": (stats["num_llm_phrase_rewrites"], d["num_llm_phrase_rewrites"]),
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=120)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--prompt-path", default=None, help="radfact-prompts folder (default: the model manager's)")
    args = ap.parse_args()
    import importlib.metadata as md

    out = {"reference": "microsoft/RadFact @72463ac (langchain {}, pydantic {})".format(md.version("langchain"),
                                                                                    md.version("pydantic")),  # fmt: skip
           "narrative": compare(build_cases(args.cases, args.seed, False), False, args.prompt_path),
           "grounded": compare(build_cases(args.cases, args.seed + 1, True), True, args.prompt_path)}  # fmt: skip
    print(json.dumps(out, indent=2))
    ok = all(r["max_abs_diff_per_sample"] == 0 and r["unscored_agree"] == r["cases"] and r["corpus_max_abs_diff"] < 1e-12
             and r["llm_failures (reference, radeval)"][0] == r["llm_failures (reference, radeval)"][1]
             for r in (out["narrative"], out["grounded"]))  # fmt: skip
    print("PARITY OK" if ok else "PARITY FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
