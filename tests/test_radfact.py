"""RadFact through a fake chat endpoint, with stand-in prompt files and a stand-in langchain-core
of the same shapes (RadFact's own prompts are fetched by `radeval models download
radfact-prompts`; parity with RadFact's code: benchmarks/peers/radfact_parity.py)."""

from __future__ import annotations

import json
import math
import sys

import pytest
import yaml
from judge_fixture import FakeServer

from radeval.errors import DependencyError, InputError, ModelNotFound

EV_SHOTS = [
    {
        "example_id": "s1",
        "input": {"phrases_A": ["Effusion on the left."], "phrases_B": ["Left effusion.", "Normal heart."]},
        "output": {
            "phrases_A_evidenced": [{"phrase": "Effusion on the left.", "evidence": ["Left effusion."], "status": "entailment"}],
            "phrases_B_evidenced": [
                {"phrase": "Left effusion.", "evidence": ["Effusion on the left."], "status": "entailment"},
                {"phrase": "Normal heart.", "evidence": [], "status": "neutral"},
            ],
        },
        "rationale": "stand-in",
        "study_id": "x",
    }
]  # fmt: skip
PHRASE_SHOTS = [
    {"example_id": "p1", "findings_text": "Heart normal. Lungs clear.", "study_id": "x", "example_rationale": "",
     "parsed_report": {"id": "shot1", "sentence_list": [{"orig": "Heart normal.", "new": ["Heart normal."]},
                                                         {"orig": "Lungs clear.", "new": ["Lungs clear."]}]}},
]  # fmt: skip
SCHEMA_PY = '''
class SentenceWithRephrases:
    """Stand-in: a sentence and its phrases."""


class ParsedReport:
    """
    Stand-in: a parsed report.
    """
'''
FILES = {
    "nli_system_message_ev_singlephrase.txt": "Stand-in: say whether the hypothesis follows from the reference.",
    "nli_few_shot_examples.json": json.dumps(EV_SHOTS),
    "report_to_phrases_system_message.txt": "Stand-in: split the report into phrases.",
    "report_to_phrases_few_shot_examples.json": json.dumps(PHRASE_SHOTS),
    "report_to_phrases_schema.py": SCHEMA_PY,
}
LANGCHAIN = {
    "langchain_core/__init__.py": "",
    "langchain_core/output_parsers/__init__.py": "",
    "langchain_core/output_parsers/pydantic.py": "_PYDANTIC_FORMAT_INSTRUCTIONS = 'Stand-in schema: {schema}'\n",
    "langchain_core/utils/__init__.py": "",
    "langchain_core/utils/json.py": (
        "import json\n\n\ndef parse_json_markdown(text):\n"
        "    text = text.strip()\n    if text.startswith('```'):\n"
        "        text = text.split('\\n', 1)[1].rsplit('```', 1)[0]\n    return json.loads(text)\n"
    ),
}


@pytest.fixture(autouse=True)
def stand_ins(tmp_path, monkeypatch):
    d = tmp_path / "models" / "radfact-prompts"
    d.mkdir(parents=True)
    for name, text in FILES.items():
        (d / name).write_text(text)
    site = tmp_path / "site"
    for name, text in LANGCHAIN.items():
        (site / name).parent.mkdir(parents=True, exist_ok=True)
        (site / name).write_text(text)
    for mod in [m for m in sys.modules if m == "langchain_core" or m.startswith("langchain_core.")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("RADEVAL_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("RADEVAL_JUDGE_CACHE", str(tmp_path / "judge-cache"))
    yield
    for mod in [m for m in sys.modules if m == "langchain_core" or m.startswith("langchain_core.")]:
        sys.modules.pop(mod, None)


def _answer(messages):
    """Entailment when the hypothesis is one of the reference phrases, else neutral; reports are
    split at '. '."""
    last = messages[-1]["content"]
    q = yaml.safe_load(last) if "hypothesis:" in last else None
    if isinstance(q, dict):
        hyp, ref = q["hypothesis"], q["reference"] or []
        if hyp == "Odd one.":  # evidence that is not in the other report: the sample is invalid
            return yaml.dump({"phrase": hyp, "evidence": ["Invented."], "status": "contradiction"}, sort_keys=False), "stop"
        if hyp in ref:
            return "```yaml\n" + yaml.dump({"phrase": hyp, "evidence": [hyp], "status": "entailment"}, sort_keys=False) + "```", "stop"
        return yaml.dump({"phrase": hyp, "evidence": [], "status": "neutral"}, sort_keys=False), "stop"
    if last == "Unsplittable.":
        return "no JSON here", "stop"
    sents = [s if s.endswith(".") else s + "." for s in last.split(". ") if s]
    return json.dumps({"sentence_list": [{"orig": s, "new": [s]} for s in sents]}), "stop"


def test_messages_follow_radfacts_structured_processor():
    from radeval.metrics.radfact import Prompts

    p = Prompts()
    msgs = p.ev_messages(["A.", "B."], "C.")
    # system, then the few-shot turns: A's phrases against B (B_to_A) first, statuses made binary
    assert msgs[0] == ("system", FILES["nli_system_message_ev_singlephrase.txt"])
    assert [r for r, _ in msgs[1:-1]] == ["user", "assistant"] * 3
    assert yaml.safe_load(msgs[1][1]) == {"reference": ["Left effusion.", "Normal heart."], "hypothesis": "Effusion on the left."}
    assert msgs[6][1] == yaml.dump({"phrase": "Normal heart.", "evidence": [], "status": "not_entailment"}, sort_keys=False)
    assert msgs[-1] == ("user", "reference:\n- A.\n- B.\nhypothesis: C.\n")
    ph = p.phrases_messages("Heart normal.")
    # the system prompt ends with the JSON schema of ParsedReport (its docstrings, pydantic v1 layout)
    schema = json.loads(ph[0][1].split("Stand-in schema: ")[1])
    assert schema["description"] == "Stand-in: a parsed report." and schema["required"] == ["sentence_list"]
    assert ph[2] == ("assistant", '{"id": "shot1", "sentence_list": [{"orig": "Heart normal.", "new": ["Heart normal."]}, '
                                  '{"orig": "Lungs clear.", "new": ["Lungs clear."]}]}')  # fmt: skip


def test_narrative_scores_through_a_chat_endpoint():
    from radeval.metrics.radfact import RadFact

    refs = ["Small left effusion. Heart is normal.", "No pneumothorax.", "Heart is normal.", "Unsplittable."]
    hyps = ["Small left effusion. No pneumothorax.", "No pneumothorax.", "Odd one.", "Heart is normal."]
    with FakeServer(_answer, mode="chat") as srv:
        res = RadFact(endpoint=srv.url, judge_cache=False).score(hyps, refs)
    s = res.sample
    assert s["radfact_logical_precision"][:2].tolist() == [0.5, 1.0]
    assert s["radfact_logical_recall"][:2].tolist() == [0.5, 1.0]
    assert s["radfact_logical_f1"][:2].tolist() == [0.5, 1.0]
    assert all(math.isnan(v) for v in s["radfact_logical_precision"][2:])  # invalid sample, unsplittable report
    assert res.corpus["radfact_logical_precision"] == 0.75 and res.corpus["radfact_logical_f1"] == 0.75
    d = res.details
    assert (d["num_samples"], d["num_invalid_processed_samples"], d["phrase_parse_failures"]) == (2, 1, 1)
    assert d["judge"]["requests"] > 0 and "input:narrative" in res.signature
    r = srv.requests[-1]
    assert r["temperature"] == 0.0 and r["top_p"] == 1.0 and r["max_tokens"] == 1024


def test_grounded_spatial_and_grounding_precision_recall():
    from radeval.metrics.radfact import RadFactGrounded

    box_a = {"x_min": 0.0, "y_min": 0.0, "x_max": 0.5, "y_max": 0.5}
    box_b = {"x_min": 0.5, "y_min": 0.5, "x_max": 1.0, "y_max": 1.0}
    ref = [{"text": "Small left effusion.", "boxes": [box_a]}, {"text": "Heart is normal.", "boxes": None}]
    cand = [{"text": "Small left effusion.", "boxes": [box_a]}, {"text": "No pneumothorax.", "boxes": [box_b]}]
    with FakeServer(_answer, mode="chat") as srv:
        m = RadFactGrounded(endpoint=srv.url, judge_cache=False)
        res = m.score([json.dumps(cand)], [json.dumps(ref)])
    v = {k: float(x[0]) for k, x in res.sample.items()}
    assert v["radfact_grounded_logical_precision"] == 0.5 and v["radfact_grounded_logical_recall"] == 0.5
    # candidate: 2 boxed phrases, 1 entailed with matching boxes -> spatial 1/2, grounding 1/1
    assert v["radfact_grounded_spatial_precision"] == 0.5 and v["radfact_grounded_grounding_precision"] == 1.0
    # reference: 1 boxed phrase, entailed, evidence box identical -> 1 and 1
    assert v["radfact_grounded_spatial_recall"] == 1.0 and v["radfact_grounded_grounding_recall"] == 1.0
    with pytest.raises(InputError, match="record 0: prediction: phrase 0"):
        m.score([json.dumps([{"text": "x", "boxes": [{"x_min": 0.9, "y_min": 0, "x_max": 0.1, "y_max": 1}]}])], [json.dumps(ref)])


@pytest.mark.parametrize(
    "text,expected",
    [
        ("phrase: A\nevidence: [B]\nstatus: entailment\n", ("A", ["B"], "entailment")),
        ("Sure:\n```yaml\nphrase: A\nevidence: []\nstatus: neutral\n```", ("A", [], "neutral")),
        ("phrase: 12\nevidence: [1.5]\nstatus: contradiction\n", ("12", ["1.5"], "contradiction")),  # v1 coercion
        ("phrase: A\nevidence: []\nstatus: entailment\n", None),  # entailed needs evidence
        ("phrase: A\nevidence: [B]\nstatus: neutral\n", None),  # neutral has none
        ("phrase: A\nevidence: B\nstatus: neutral\n", None),  # a string is not a list
        ("phrase: A\nstatus: neutral\n", None),
        ("phrase: A\nevidence: []\nstatus: maybe\n", None),
        ("just prose", None),
        ("phrase: [unclosed\n", None),
    ],
)
def test_entailment_answer_parsing(text, expected):
    from radeval.metrics.radfact import parse_evidenced

    assert parse_evidenced(text) == expected


def test_missing_prompts_and_missing_langchain(tmp_path, monkeypatch):
    from radeval.metrics.radfact import RadFact

    monkeypatch.setenv("RADEVAL_MODELS_DIR", str(tmp_path / "none"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    with pytest.raises(ModelNotFound, match="radeval models download radfact-prompts"):
        RadFact(endpoint="http://127.0.0.1:9")
    monkeypatch.undo()
    for mod in [m for m in sys.modules if m.startswith("langchain_core.")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setitem(sys.modules, "langchain_core", None)
    with pytest.raises(DependencyError, match="langchain-core"):
        from radeval.metrics.radfact import Prompts

        Prompts(tmp_path / "models" / "radfact-prompts")
