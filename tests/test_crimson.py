"""CRIMSON through a fake chat endpoint, with a stand-in reference package of the same shape
(the real crimson-score's prompt words are not stored here; its parity is checked by
benchmarks/peers/crimson_parity.py in the package's own venv)."""

from __future__ import annotations

import asyncio
import json
import math
import sys

import pytest
from judge_fixture import FakeServer

from radeval.errors import DependencyError

FAKE_PKG = {
    "__init__.py": "",
    "prompt_parts.py": (
        "def build_prompt(reference_findings, predicted_findings, patient_context=None,\n"
        "                 include_significance_examples=True, include_attribute_guidelines=True,\n"
        "                 include_context_guidelines=True):\n"
        "    return f'REF: {reference_findings}\\nCAND: {predicted_findings}\\n'\\\n"
        "           f'GUIDE: {include_significance_examples}{include_attribute_guidelines}'\n"
    ),
    "utils.py": (
        "import json\n\n\ndef parse_json_response(response, batch_idx=None):\n"
        "    try:\n        return json.loads(response)\n"
        "    except json.JSONDecodeError:\n        raise ValueError('Failed to parse model response as JSON')\n"
    ),
    # read for its system turn, never run
    "generate_score.py": (
        "raise RuntimeError('radeval must not execute this file')\n"
        "def f():\n    return [{'role': 'system', 'content': 'Stand-in system turn.'}, {'role': 'user', 'content': 1}]\n"
    ),
}


@pytest.fixture(autouse=True)
def fake_reference(tmp_path, monkeypatch):
    pkg = tmp_path / "site" / "CRIMSON"
    pkg.mkdir(parents=True)
    for name, text in FAKE_PKG.items():
        (pkg / name).write_text(text)
    for mod in [m for m in sys.modules if m == "CRIMSON" or m.startswith("CRIMSON.")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setenv("RADEVAL_JUDGE_CACHE", str(tmp_path / "judge-cache"))
    yield
    for mod in [m for m in sys.modules if m == "CRIMSON" or m.startswith("CRIMSON.")]:
        sys.modules.pop(mod, None)


def _f(fid, sig):
    return {"id": fid, "finding": fid, "clinical_significance": sig}


def _ev(refs, preds, matched, false=(), missing=(), attrs=()):
    return json.dumps({"reference_findings": refs, "predicted_findings": preds, "matched_findings": matched,
                       "errors": {"false_findings": list(false), "missing_findings": list(missing),
                                  "attribute_errors": list(attrs)}})  # fmt: skip


# candidate text -> (response, CRIMSON by hand)
CASES = {
    "perfect": (_ev([_f("R1", "urgent")], [_f("P1", "urgent")], [{"ref_id": "R1", "pred_id": "P1"}]), 1.0),
    # N_G = 1 + 0.5; correct 1 -> 1 / 1.5
    "missing": (
        _ev([_f("R1", "urgent"), _f("R2", "actionable_not_urgent")], [_f("P1", "urgent")],
            [{"ref_id": "R1", "pred_id": "P1"}], missing=["R2"]),
        0.6667,
    ),  # fmt: skip
    # correct 0.5, false 1.0: S = -1 < 0, excess 0.5 -> -0.5 / 1.5
    "false": (
        _ev([_f("R1", "actionable_not_urgent")], [_f("P1", "actionable_not_urgent"), _f("P2", "urgent")],
            [{"ref_id": "R1", "pred_id": "P1"}], false=["P2"]),
        -0.3333,
    ),  # fmt: skip
    # one significant attribute error on an urgent finding: credit 1 * 1 / (1 + 0.5)
    "attribute": (
        _ev([_f("R1", "urgent")], [_f("P1", "urgent")], [{"ref_id": "R1", "pred_id": "P1"}],
            attrs=[{"ref_id": "R1", "pred_id": "P1", "error_types": ["location"], "severity": "significant"}]),
        0.6667,
    ),  # fmt: skip
    # both normal: no findings, no errors -> 1
    "normal": (_ev([], [], []), 1.0),
    "prose": ("I cannot judge this.", None),  # does not parse: unscored
    "noref": (_ev([_f("R1", "urgent")], [], [{"pred_id": "P1"}]), None),  # parses, cannot score
}


def _answer(messages):
    cand = messages[-1]["content"].split("CAND: ")[1].split("\n")[0]
    return CASES[cand][0], "stop"


def test_scores_through_a_chat_endpoint_with_the_packages_conventions():
    from radeval.metrics.crimson import Crimson

    names = list(CASES)
    with FakeServer(_answer, mode="chat") as srv:
        m = Crimson(endpoint=srv.url, judge_cache=False, prices=(1.0, 2.0))
        res = m.score(names, ["the reference"] * len(names))
    got = res.sample["crimson"].tolist()
    for name, v in zip(names, got):
        want = CASES[name][1]
        assert (math.isnan(v) if want is None else v == want), name
    scored = [v for _, v in CASES.values() if v is not None]
    assert res.corpus["crimson"] == pytest.approx(sum(scored) / len(scored), abs=1e-15)
    d = res.details
    assert (d["n"], d["scored"], d["unparsed"], d["unscorable"]) == (7, 5, 1, 1)
    assert d["error_counts"]["missing_findings"] == 1 and d["error_counts"]["location_errors"] == 1
    assert d["judge"]["requests"] == 7 and d["judge"]["cost"] > 0
    # the package's OpenAI request: its system turn, the prompt, temperature 0, seed 42, JSON
    r = srv.requests[0]
    assert r["messages"][0] == {"role": "system", "content": "Stand-in system turn."}
    assert r["messages"][1]["content"].startswith("REF: the reference\nCAND: ")
    assert r["temperature"] == 0.0 and r["seed"] == 42 and r["response_format"] == {"type": "json_object"}
    assert r["max_tokens"] == 8192
    # guidelines on for a general model (the package's rule)
    assert r["messages"][1]["content"].endswith("GUIDE: TrueTrue")
    assert "guidelines:yes" in res.signature and "prompt:crimson-score-" in res.signature


def test_the_fine_tuned_model_gets_no_guidelines():
    from radeval.metrics.crimson import Crimson

    with FakeServer(_answer, mode="chat", model="rajpurkarlab/medgemma-4b-it-crimson") as srv:
        m = Crimson(endpoint=srv.url, judge_cache=False)
        m.score(["perfect"], ["r"])
    assert srv.requests[0]["messages"][1]["content"].endswith("GUIDE: FalseFalse")
    assert "guidelines:no" in m.signature


def test_async_scoring_and_reward_values():
    from radeval.metrics.crimson import Crimson

    with FakeServer(_answer, mode="chat") as srv:
        m = Crimson(endpoint=srv.url, judge_cache=False)
        stats = asyncio.run(m.astats(["perfect", "prose"], ["r", "r"]))
    v = m.sample_values(stats)["crimson"]
    assert v[0] == 1.0 and math.isnan(v[1])  # unscored stays unscored (a reward's None)


def test_missing_reference_package_names_the_install(monkeypatch):
    for mod in [m for m in sys.modules if m.startswith("CRIMSON.")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setitem(sys.modules, "CRIMSON", None)  # makes `import CRIMSON` fail
    from radeval.metrics.crimson import Crimson

    with pytest.raises(DependencyError, match="pip install 'crimson-score==0.2.2'"):
        Crimson(endpoint="http://127.0.0.1:9", endpoint_model="m")


def test_crimson_as_a_trl_reward_through_the_generic_per_key_path():
    from radeval.rewards.trl import clear_caches, make_reward

    with FakeServer(_answer, mode="chat") as srv:
        f = make_reward("crimson", metric_options={"endpoint": srv.url, "judge_cache": False}, on_error=None)
        out = f(prompts=["p"] * 3, completions=["perfect", "prose", "missing"], ground_truth=["r"] * 3)
    clear_caches()
    assert out == [1.0, None, 0.6667]  # an unparsed answer is unscored, never a number


def test_local_transformers_backend_renders_the_chat_and_decodes_only_the_answer(tmp_path, monkeypatch):
    """The judge's local path for chat metrics: the tokenizer's chat template with a generation
    prompt, greedy generation (replaced by canned answers), only the new tokens decoded."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from test_green import _train_tokenizer

    from radeval.metrics.crimson import Crimson

    d = tmp_path / "tiny-crimson"
    _train_tokenizer(d)
    tok = transformers.AutoTokenizer.from_pretrained(d)
    tok.chat_template = (
        "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}</s>\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
    )
    tok.save_pretrained(d)
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                   num_attention_heads=2, num_key_value_heads=2, bos_token_id=tok.bos_token_id,
                                   eos_token_id=tok.eos_token_id, pad_token_id=tok.eos_token_id)  # fmt: skip
    transformers.LlamaForCausalLM(cfg).save_pretrained(d, safe_serialization=True)

    m = Crimson(model_path=d, device="cpu", judge_cache=False, batch_size=2)
    backend = m._get_judge().backend
    prompts_seen = []

    def fake_generate(input_ids, attention_mask, max_new_tokens):
        rows = []
        for ids, mask in zip(input_ids.tolist(), attention_mask.tolist()):
            text = tok.decode([t for t, a in zip(ids, mask) if a])
            prompts_seen.append(text)
            cand = text.split("CAND: ")[1].split("\n")[0]
            rows.append(ids + tok(CASES[cand][0], add_special_tokens=False)["input_ids"] + [tok.eos_token_id])
        width = max(map(len, rows))
        return torch.tensor([r + [tok.eos_token_id] * (width - len(r)) for r in rows])

    monkeypatch.setattr(backend, "_generate_ids", fake_generate)
    res = m.score(["perfect", "missing", "prose"], ["r", "r", "r"])
    v = res.sample["crimson"].tolist()
    assert v[:2] == [1.0, 0.6667] and math.isnan(v[2])
    assert all(p.startswith("<|system|>\nStand-in system turn.</s>\n<|user|>\nREF: r\nCAND: ") for p in prompts_seen)
    assert all(p.endswith("<|assistant|>\n") for p in prompts_seen)
    # the package's rule: its own fine-tuned model is prompted without guidelines
    assert all("GUIDE: FalseFalse" in p for p in prompts_seen) and "guidelines:no" in res.signature
