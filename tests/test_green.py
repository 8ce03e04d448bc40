"""GREEN: prompt contract, response parser, transformers backend (tiny random Llama) and the
OpenAI-compatible endpoint backend (a local stdlib HTTP server)."""

from __future__ import annotations

import hashlib
import json
import math
import threading
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from radeval.errors import ConfigError, ModelNotFound, RadevalError
from radeval.metrics import green as G


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """Tiny models on a shared 2-core machine: extra torch threads only add contention."""
    try:
        import torch
    except ImportError:
        yield
        return
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ----- prompt contract -----------------------------------------------------------------------
# GREEN's prompt is GREEN's text, not ours: it is fetched by `radeval models download
# green-prompt` and never stored here. The tests use a stand-in with the same shape (a
# make_prompt whose f-string holds the two reports), written for these tests.
FAKE_UTILS = (
    "import re\n\n\n"
    "def make_prompt(text1, text2, max_len=300):\n"
    '    """stand-in written for radeval\'s tests, same shape as GREEN\'s"""\n'
    '    text1 = " ".join(text1.split()[:max_len])\n'
    '    text2 = " ".join(text2.split()[:max_len])\n'
    '    prompt = f"Compare two chest X-ray reports.\\n\\n    Reference Report:\\n    {text1}\\n\\n'
    '    Candidate Report:\\n    {text2}\\n\\n    Reply in the bracketed format.\\n"\n'
    "    return prompt\n"
)
FAKE_TEMPLATE = G.template_from_source(FAKE_UTILS, "test")


@pytest.fixture(autouse=True)
def _judge_env(tmp_path, monkeypatch):
    """The stand-in template in a models folder, and a fresh judge response cache per test."""
    d = tmp_path / "models" / "green-prompt"
    d.mkdir(parents=True)
    (d / "utils.py").write_text(FAKE_UTILS)
    monkeypatch.setenv("RADEVAL_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("RADEVAL_JUDGE_CACHE", str(tmp_path / "judge-cache"))


def test_the_pinned_prompt_hash_is_the_one_the_tests_pinned():
    # computed on GREEN's own make_prompt("REF", "CAND") when the prompt lived in radeval's code
    assert G.PROMPT_SHA256 == "4e621f21f3a8802263136333c20f59e6b103d87179c675cea196e36e81cf6eb0"


def test_real_greens_prompt_when_downloaded(monkeypatch):
    """Byte-for-byte check of GREEN's own prompt, where it was downloaded (skipped otherwise)."""
    monkeypatch.delenv("RADEVAL_MODELS_DIR")
    from radeval import models

    res = models.locate("green-prompt")
    if res.path is None:
        pytest.skip("GREEN's prompt template is not downloaded (radeval models download green-prompt)")
    t = G.load_template()
    assert hashlib.sha256(G.make_prompt("REF", "CAND", template=t).encode()).hexdigest() == G.PROMPT_SHA256


def test_template_is_read_not_executed_and_slots_follow_the_arguments():
    t = G.template_from_source(FAKE_UTILS.replace("import re", "raise SystemExit"))
    assert t.render("R", "C").startswith("Compare two chest X-ray reports.\n\n    Reference Report:\n    R\n")
    assert not t.is_greens and len(t.sha256) == 64
    with pytest.raises(ConfigError, match="no make_prompt"):
        G.template_from_source("def other(a, b):\n    return f'{a}{b}'\n")
    with pytest.raises(ConfigError, match="found 0"):
        G.template_from_source("def make_prompt(a, b):\n    return f'{a!r}{b}'\n")


def test_missing_template_gets_the_model_managers_message(monkeypatch, tmp_path):
    monkeypatch.setenv("RADEVAL_MODELS_DIR", str(tmp_path / "nowhere"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    with pytest.raises(ModelNotFound, match="radeval models download green-prompt"):
        G.make_prompt("a", "b")


def test_download_fetches_the_pinned_file_and_checks_both_hashes(tmp_path, monkeypatch):
    """`radeval models download green-prompt` against a stand-in raw-file host on loopback:
    the file's sha256 and the rendered prompt's sha256 (GREEN's pinned hash) are both checked."""
    from radeval import models

    spec = models.get_spec("green-prompt")
    repo, commit, ((src, _),) = spec.git_files
    served = {}

    class H(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            body = served.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.end_headers()
            self.wfile.write(body or b"")

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("RADEVAL_GIT_RAW_BASE", f"http://127.0.0.1:{httpd.server_address[1]}")
        monkeypatch.setenv("RADEVAL_MODELS_DIR", str(tmp_path / "m"))
        served[f"/{repo}/{commit}/{src}"] = FAKE_UTILS.encode()
        # other bytes than the pinned file: refused before anything is written
        with pytest.raises(ModelNotFound, match="expected " + spec.sha256["utils.py"]):
            models.download("green-prompt")
        assert not (tmp_path / "m" / "green-prompt" / "utils.py").exists()
        # the file hash matches (spec pinned to the stand-in) but the prompt is not GREEN's
        fake_sha = hashlib.sha256(FAKE_UTILS.encode()).hexdigest()
        monkeypatch.setitem(models.MODELS, "green-prompt", replace(spec, sha256={"utils.py": fake_sha}))
        with pytest.raises(ModelNotFound, match=G.PROMPT_SHA256):
            models.download("green-prompt")
        # and both checks pass when the rendered prompt has the pinned hash
        monkeypatch.setattr(G, "PROMPT_SHA256", FAKE_TEMPLATE.sha256)
        path = models.download("green-prompt")
        assert (path / "utils.py").read_bytes() == FAKE_UTILS.encode()
        assert models.read_record("green-prompt")["commit"] == commit
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_prompt_truncates_each_report_to_300_words_and_normalises_whitespace():
    ref = " ".join(f"w{i}" for i in range(400))
    p = G.make_prompt(ref, "Heart\n\nnormal.\t No  effusion.")
    assert "w299" in p and "w300" not in p
    assert "\n    Heart normal. No effusion.\n" in p
    # empty reports keep their indented (blank) line, as in GREEN's f-string
    assert "Reference Report:\n    \n\n    Candidate Report:\n    \n\n" in G.make_prompt("", "  ")


def test_render_input_matches_greens_chat_template_rendering():
    text = G.render_input("PROMPT", "</s>")
    assert text == "<|user|>\nPROMPT</s>\n<|assistant|>\n</s>\n<|assistant|>\n"


# ----- parser --------------------------------------------------------------------------------
WELL_FORMED = """[Explanation]:
The candidate misses the effusion and calls the opacity left-sided.

[Clinically Significant Errors]:
(a) False report of a finding in the candidate: 0.
(b) Missing a finding present in the reference: 1. Small right pleural effusion
(c) Misidentification of a finding's anatomic location/position: 1. Opacity side
(d) Misassessment of the severity of a finding: 0.
(e) Mentioning a comparison that isn't in the reference: 0.
(f) Omitting a comparison detailing a change from a prior study: 0.

[Clinically Insignificant Errors]:
(a) False report of a finding in the candidate: 1. Mild degenerative change
(b) Missing a finding present in the reference: 0.
(c) Misidentification of a finding's anatomic location/position: 0.
(d) Misassessment of the severity of a finding: 0.
(e) Mentioning a comparison that isn't in the reference: 0.
(f) Omitting a comparison detailing a change from a prior study: 0.

[Matched Findings]:
3. Normal heart size; No pneumothorax; Clear upper lobes
"""

NO_ERRORS = """[Explanation]:
Both reports agree.

[Clinically Significant Errors]:
No clinically significant errors.

[Clinically Insignificant Errors]:
No clinically insignificant errors.

[Matched Findings]:
2. Normal heart; No effusion
"""

# (response, green, significant counts, matched, malformed); values as GREEN's
# compute_green / parse_error_counts give them for the same text.
CASES = [
    (WELL_FORMED, 3 / 5, (0, 1, 1, 0, 0, 0), 3, False),
    (NO_ERRORS, 1.0, (0,) * 6, 2, False),
    # matched 0 and errors 0 -> 0 (GREEN returns 0 whenever matched is 0)
    (NO_ERRORS.replace("2. Normal heart; No effusion", "0. None"), 0.0, (0,) * 6, 0, False),
    # matched section starting with "No" -> 0 matched -> 0
    (NO_ERRORS.replace("2. Normal heart; No effusion", "No matched findings."), 0.0, (0,) * 6, 0, False),
    # categories out of order and repeated: sorted, the later fragment of a category wins
    (
        "[Clinically Significant Errors]:\n(c) Misidentification: 2. x\n(a) False: 1. y\n(a) False: 4. z\n\n"
        "[Matched Findings]:\n4. a; b; c; d",
        4 / 10,
        (4, 0, 2, 0, 0, 0),
        4,
        False,
    ),
    # GPT-4 style numbered categories
    (
        "[Clinically Significant Errors]:\n(1) False report: 1. x\n(6) Omitting: 2. y\n\n[Matched Findings]:\n1. z",
        1 / 4,
        (1, 0, 0, 0, 0, 2),
        1,
        False,
    ),
    # a count needs ": " before it and "." after it
    (
        "[Clinically Significant Errors]:\n(a) False report:2. x\n(b) Missing: 3 y\n(c) Mis: 5.\n\n"
        "[Matched Findings]:\n5. a",
        5 / 10,
        (0, 0, 5, 0, 0, 0),
        5,
        False,
    ),
    # the matched count must open the section and be followed by "."
    ("[Clinically Significant Errors]:\nNo errors.\n\n[Matched Findings]:\nThere are 3. a", 0.0, (0,) * 6, 0, False),
    # the significant section ends at the first blank line: later "(x)" lines don't count
    (
        "[Clinically Significant Errors]:\n(a) F: 1. x\n\n(b) M: 7. y\n\n[Matched Findings]:\n1. z",
        1 / 2,
        (1, 0, 0, 0, 0, 0),
        1,
        False,
    ),
    # malformed: no matched-findings section -> 0 (GREEN's value), flagged
    ("[Clinically Significant Errors]:\n(a) F: 1. x\n", 0.0, (1, 0, 0, 0, 0, 0), 0, True),
    # malformed: no significant section, matched present -> matched / matched = 1 (GREEN's value)
    ("[Matched Findings]:\n2. a; b", 1.0, (0,) * 6, 2, True),
    # truncated mid-way through the errors
    ("[Explanation]:\nThe cand", 0.0, (0,) * 6, 0, True),
    ("", 0.0, (0,) * 6, 0, True),
    ("lorem ipsum \x00 \u00e9\u00e8 (a) : 3.", 0.0, (0,) * 6, 0, True),
    # a count with more digits than Python converts: defined, not a crash
    (
        "[Clinically Significant Errors]:\n(a) F: " + "9" * 5000 + ". x\n\n[Matched Findings]:\n1. y",
        0.0,
        (0,) * 6,
        0,
        True,
    ),
]


@pytest.mark.parametrize("text,green,sig,matched,malformed", CASES)
def test_parser_cases(text, green, sig, matched, malformed):
    p = G.parse_response(text)
    assert p.green == pytest.approx(green, abs=0)
    assert p.significant == sig
    assert p.matched == matched
    assert p.malformed is malformed


def test_parser_insignificant_counts_do_not_enter_the_score():
    p = G.parse_response(WELL_FORMED)
    assert p.insignificant == (1, 0, 0, 0, 0, 0)
    assert p.green == 3 / 5


def test_clean_response_follows_greens_clean_responses():
    full = "<|user|>\nprompt [Explanation]:\n    <Explanation>\n</s>\n<|assistant|>\n" + WELL_FORMED + "</s>"
    cleaned = G.clean_response(full)
    assert cleaned.startswith("\nThe candidate misses")  # after the *generated* [Explanation]:
    assert "</s>" not in cleaned and G.parse_response(cleaned).green == 3 / 5
    assert G.clean_response("a<unk>b</s>") == "ab"


_fragment = st.sampled_from(
    [
        "[Clinically Significant Errors]:", "[Clinically Insignificant Errors]:", "[Matched Findings]:",
        "[Explanation]:", "(a) F: 1.", "(b) M: 2. x", "(c) ", "(d) D: 0.", "(1) X: 3.", "No errors.",
        "3. a; b", "0.", "\n", "\n\n", ": ", ".", "12", " ", "<|assistant|>", "</s>", "é", "(f) O: 7. y",
    ]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_fragment, st.text(max_size=8)), max_size=30))
def test_parser_never_raises_and_stays_in_range(parts):
    text = G.clean_response("".join(parts))
    p = G.parse_response(text)
    assert 0.0 <= p.green <= 1.0 and not math.isnan(p.green)
    row = G.stats_row(p, truncated=False)
    assert row.shape == (len(G.STAT_NAMES),) and np.isfinite(row).all()


# ----- a tiny random Llama with a locally trained tokenizer -----------------------------------
def _train_tokenizer(dest: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = [G.make_prompt("Heart size is normal.", "No pleural effusion.", template=FAKE_TEMPLATE), WELL_FORMED, NO_ERRORS] * 3
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<unk>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    fast.save_pretrained(dest)


@pytest.fixture(scope="module")
def tiny_green(tmp_path_factory) -> Path:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    dest = tmp_path_factory.mktemp("tiny-green")
    _train_tokenizer(dest)
    tok = transformers.AutoTokenizer.from_pretrained(dest)
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.eos_token_id,
    )
    transformers.LlamaForCausalLM(cfg).save_pretrained(dest, safe_serialization=True)
    return dest


PAIRS = [
    ("Small right effusion. Normal heart.", "Normal heart. No effusion."),
    ("No acute process.", "No acute process."),
    ("Mild cardiomegaly with a long description " * 5, "Cardiomegaly."),
    ("No acute process.", "No acute process."),  # duplicate pair: generated once
]


def test_transformers_backend_gibberish_is_malformed_not_a_crash(tiny_green):
    m = G.Green(model_path=tiny_green, max_new_tokens=6, batch_size=3, device="cpu")
    res = m.score([h for h, _ in PAIRS], [r for _, r in PAIRS])
    assert res.sample["green"].tolist() == [0.0] * 4
    assert res.corpus["green"] == 0.0
    assert res.details["malformed"] == 4 and res.details["n"] == 4
    assert (
        "backend:transformers" in res.signature and "model:StanfordAIMI/GREEN-RadLlama2-7b@local-path" in res.signature
    )
    assert len(m.last_responses) == 4


def test_transformers_backend_plumbing_with_well_formed_generations(tiny_green, monkeypatch):
    """Generation replaced by canned answers: checks prompt ids, left padding, batching order,
    decoding, cleaning, the pair cache and the statistics."""
    m = G.Green(model_path=tiny_green, batch_size=2, device="cpu")
    backend = m._get_backend()
    tok = backend.tokenizer
    long_cut = "[Explanation]:\nThe candidate " + "blah " * 600  # longer than the budget below
    answers = {PAIRS[0]: WELL_FORMED, PAIRS[1]: NO_ERRORS, PAIRS[2]: long_cut}
    expected_ids = {k: m._ids.ids(G.make_prompt(*k)) for k in answers}
    for k, ids in expected_ids.items():
        assert ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id
        assert tok.decode(ids[1:-1]) == G.render_input(G.make_prompt(*k))
    seen = []

    def fake_generate(input_ids, attention_mask, max_new_tokens):
        import torch

        rows = []
        for ids, mask in zip(input_ids.tolist(), attention_mask.tolist()):
            prompt = [t for t, a in zip(ids, mask) if a]
            assert mask == [0] * (len(ids) - len(prompt)) + [1] * len(prompt)  # left padding
            key = next(k for k, v in expected_ids.items() if v == prompt)
            seen.append(key)
            ans = tok(answers[key], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
            rows.append(ids + ans[:max_new_tokens])  # greedy stops at EOS or at the budget
        width = max(map(len, rows))
        return torch.tensor([r + [tok.eos_token_id] * (width - len(r)) for r in rows])

    monkeypatch.setattr(backend, "_generate_ids", fake_generate)
    monkeypatch.setattr(m, "max_new_tokens", 800)
    assert len(tok(WELL_FORMED)["input_ids"]) < 800 < len(tok(long_cut)["input_ids"])
    res = m.score([p[1] for p in PAIRS], [p[0] for p in PAIRS])
    assert sorted(seen, key=str) == sorted([PAIRS[0], PAIRS[1], PAIRS[2]], key=str)  # duplicate generated once
    assert res.sample["green"].tolist() == [3 / 5, 1.0, 0.0, 1.0]
    assert res.corpus["green"] == pytest.approx((3 / 5 + 1 + 0 + 1) / 4)
    d = res.details
    assert d["std"] == pytest.approx(float(np.std([3 / 5, 1.0, 0.0, 1.0])))
    assert d["malformed"] == 1 and d["truncated"] == 1
    assert d["significant_errors"]["(b) Missing a finding present in the reference"] == 1
    assert d["insignificant_errors"]["(a) False report of a finding in the candidate"] == 1
    assert d["matched_findings"] == 3 + 2 + 0 + 2
    assert d["accuracy"]["(c) Misidentification of a finding's anatomic location/position"] == 0.75
    # a second call hits the cache: no generation at all
    seen.clear()
    again = m.score([PAIRS[1][1]], [PAIRS[1][0]])
    assert seen == [] and again.sample["green"].tolist() == [1.0]


def test_missing_model_names_the_places_searched(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.delenv("RADEVAL_MODELS_DIR", raising=False)
    with pytest.raises(ModelNotFound, match="radeval models download green"):
        G.Green()


def test_bad_options():
    with pytest.raises(ConfigError):
        G.Green(backend="nope")
    with pytest.raises(ConfigError):
        G.Green(backend="endpoint")
    with pytest.raises(ConfigError):
        G.Green(endpoint="ftp://x", endpoint_model="m").settings()


# ----- endpoint backend ----------------------------------------------------------------------
class _Server:
    """A tiny OpenAI-shaped server: /v1/models and /v1/completions (choices in reverse order)."""

    def __init__(self, answer, fail_first: int = 0):
        self.requests: list[dict] = []
        self.fail_first = fail_first
        outer = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):  # keep pytest output clean
                pass

            def _send(self, code, obj):
                body = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path == "/v1/models":
                    self._send(200, {"object": "list", "data": [{"id": "green-test", "object": "model"}]})
                else:
                    self._send(404, {"error": "no"})

            def do_POST(self):
                n = int(self.headers.get("Content-Length", 0))
                payload = json.loads(self.rfile.read(n))
                if outer.fail_first > 0:
                    outer.fail_first -= 1
                    self._send(503, {"error": "busy"})
                    return
                outer.requests.append(payload)
                choices = []
                for i, prompt in enumerate(payload["prompt"]):
                    text, finish = answer(prompt)
                    choices.append({"index": i, "text": text, "finish_reason": finish, "logprobs": None})
                self._send(200, {"id": "cmpl-1", "object": "text_completion", "model": payload["model"],
                                 "choices": choices[::-1], "usage": {}})  # fmt: skip

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def _answer(prompt: str):
    if "Candidate Report:\n    Truncated" in prompt:
        return " [Explanation]:\nThe candidate", "length"
    if "Candidate Report:\n    Perfect ." in prompt:
        return "\n" + NO_ERRORS.replace("2. Normal heart", "2 . Normal heart"), "stop"
    return "\n" + WELL_FORMED, "stop"


def test_endpoint_backend_end_to_end():
    refs = ["Ref one.", "Ref two.", "Ref three.", "Ref one."]
    hyps = ["Some hyp.", "Perfect .", "Truncated", "Some hyp."]
    with _Server(_answer) as srv:
        m = G.Green(endpoint=srv.url, batch_size=2, endpoint_concurrency=2)
        res = m.score(hyps, refs)
    # 3 distinct pairs in batches of 2 -> 2 requests; the duplicate pair is not sent again
    assert sorted(len(r["prompt"]) for r in srv.requests) == [1, 2]
    sent = [p for r in srv.requests for p in r["prompt"]]
    assert G.render_input(G.make_prompt("Ref two.", "Perfect .")) + "</s>" in sent
    for r in srv.requests:
        assert r["model"] == "green-test" and r["temperature"] == 0.0
        assert r["max_tokens"] == G.ENDPOINT_DEFAULT_MAX_TOKENS
    # the "2 ." is cleaned up as transformers' decode does -> parsed as 2 matched
    assert res.sample["green"].tolist() == [3 / 5, 1.0, 0.0, 3 / 5]
    assert res.details["truncated"] == 1 and res.details["malformed"] == 1
    assert "model:endpoint:green-test" in res.signature and "backend:endpoint" in res.signature


def test_endpoint_retries_on_503_then_succeeds():
    with _Server(_answer, fail_first=2) as srv:
        m = G.Green(endpoint=srv.url + "/v1", endpoint_model="served", endpoint_retries=3)
        res = m.score(["Some hyp."], ["Ref."])
    assert res.sample["green"].tolist() == [3 / 5] and srv.requests[0]["model"] == "served"


def test_endpoint_gives_up_with_a_clear_error():
    with _Server(_answer, fail_first=10) as srv:
        m = G.Green(endpoint=srv.url, endpoint_model="x", endpoint_retries=1)
        with pytest.raises(RadevalError, match="no answer after 2 tries"):
            m.score(["h"], ["r"])
    # nothing listening: connection refused, retried, then one error naming the URL
    m = G.Green(endpoint=srv.url, endpoint_model="x", endpoint_retries=0, endpoint_timeout=2)
    with pytest.raises(RadevalError, match=srv.url.replace(".", r"\.")):
        m.score(["h"], ["r"])
