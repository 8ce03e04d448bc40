"""CIDEr-D: pycocoevalcap parity in every tokenisation mode, the DF corpus rules, runner, CLI, reward."""

from __future__ import annotations

import importlib.util
import json
import shutil

import numpy as np
import pytest

try:
    from report_corpus import report_pairs  # pytest puts tests/ on sys.path
except ImportError:  # pragma: no cover
    from tests.report_corpus import report_pairs

from radeval.cli import main
from radeval.errors import ConfigError
from radeval.metrics.cider import Cider, build_df_table
from radeval.tokenize import TOKENIZE_MODES, normalize

HAS_COCO = importlib.util.find_spec("pycocoevalcap") is not None
HAS_JAVA = shutil.which("java") is not None
needs_coco = pytest.mark.skipif(not HAS_COCO, reason="pycocoevalcap is not installed (the [coco] extra)")
TOL = 1e-9
N_PAIRS = 500
SEED = 20251122


@pytest.fixture(scope="module")
def pairs():
    return report_pairs(N_PAIRS, seed=SEED)


def _coco_cider(hyps_n, refs_n):
    from pycocoevalcap.cider.cider import Cider as CocoCider

    gts = {i: [r] for i, r in enumerate(refs_n)}
    res = {i: [h] for i, h in enumerate(hyps_n)}
    return CocoCider().compute_score(gts, res)


MODES = [
    pytest.param(m, marks=pytest.mark.skipif(not HAS_JAVA, reason="ptb needs java")) if m == "ptb" else m
    for m in TOKENIZE_MODES
]


@needs_coco
@pytest.mark.parametrize("mode", MODES)
def test_matches_pycocoevalcap(pairs, mode):
    hyps, refs = [h for h, _ in pairs], [r for _, r in pairs]
    corpus, per_sample = _coco_cider(normalize(hyps, mode), normalize(refs, mode))
    ours = Cider(tokenize=mode).score(hyps, refs)
    np.testing.assert_allclose(ours.sample["cider"], per_sample, rtol=0, atol=TOL)
    assert ours.corpus["cider"] == pytest.approx(corpus, abs=TOL)
    assert len(set(np.round(per_sample, 6))) > 100 and per_sample.max() > 3  # spread, x10 scale


@needs_coco
def test_df_from_all_references_makes_chunking_irrelevant(pairs):
    """The first pass fixes DF on every reference: chunked stats equal one pycocoevalcap call."""
    hyps, refs = [h for h, _ in pairs[:200]], [r for _, r in pairs[:200]]
    _, per_sample = _coco_cider(normalize(hyps, "r2gen-mimic"), normalize(refs, "r2gen-mimic"))
    m = Cider()
    m.fit_references(refs)
    rows = np.concatenate([m.stats(hyps[i : i + 37], refs[i : i + 37]) for i in range(0, 200, 37)])
    np.testing.assert_allclose(m.sample_values(rows)["cider"], per_sample, rtol=0, atol=TOL)
    assert "df:test-refs(n=200," in m.signature


def test_fixed_df_table_cli_and_reward(tmp_path, pairs):
    refs = [r for _, r in pairs[:100]]
    src = tmp_path / "train.jsonl"
    src.write_text("".join(json.dumps({"reference": r}) + "\n" for r in refs))
    table = tmp_path / "df.json"
    assert main(["cider-df", str(src), "-o", str(table)]) == 0
    obj = json.loads(table.read_text())
    assert obj["n_refs"] == 100 and obj == build_df_table(refs)

    hyps = [h for h, _ in pairs[100:110]]
    test_refs = [r for _, r in pairs[100:110]]
    a = Cider(df_corpus=str(table))
    b = Cider(df_corpus=refs)  # same corpus as texts: same numbers
    sa, sb = a.score(hyps, test_refs), b.score(hyps, test_refs)
    np.testing.assert_array_equal(sa.sample["cider"], sb.sample["cider"])
    a.fit_references(test_refs)  # a fixed table is not re-fitted by the evaluator's first pass
    np.testing.assert_array_equal(a.score(hyps, test_refs).sample["cider"], sa.sample["cider"])
    # a batch's values do not depend on the rest of the batch (the reward property)
    one = Cider(df_corpus=str(table)).score(hyps[:1], test_refs[:1]).sample["cider"]
    assert one[0] == sa.sample["cider"][0]
    with pytest.raises(ConfigError, match="tokenize"):
        Cider(tokenize="whitespace", df_corpus=str(table))

    from radeval.rewards.trl import clear_caches, make_reward

    clear_caches()
    f = make_reward("cider", metric_options={"df_corpus": str(table)})
    got = f(prompts=["p"] * 3, completions=hyps[:3], ground_truth=test_refs[:3])
    np.testing.assert_allclose(got, sa.sample["cider"][:3], rtol=0, atol=1e-12)
    assert f(prompts=["p"], completions=[""], ground_truth=[test_refs[0]]) == [0.0]


def test_runner_first_pass_matches_one_call(tmp_path, pairs):
    from radeval.runner import score_file

    sub = pairs[:120]
    src = tmp_path / "in.jsonl"
    src.write_text(
        "".join(json.dumps({"id": f"r{i:03d}", "prediction": h, "reference": r}) + "\n" for i, (h, r) in enumerate(sub))
    )
    whole = Cider().score([h for h, _ in sub], [r for _, r in sub])
    res = score_file(src, "cider", tmp_path / "out", bootstrap=50, chunk_size=16)
    lines = [json.loads(x) for x in (tmp_path / "out" / "per_sample.jsonl").read_text().splitlines()]
    np.testing.assert_allclose([x["cider"] for x in lines], whole.sample["cider"], rtol=0, atol=1e-12)
    assert res.corpus["cider"] == pytest.approx(whole.corpus["cider"], abs=1e-12)
    # the table is named in the signature, hence in a resumed run's manifest check
    assert "df:test-refs(n=120," in res.signatures["cider"]


def test_edge_cases():
    m = Cider()
    s = m.score(["", "no effusion", "heart size is normal ."], ["no effusion", "", "heart size is normal ."])
    assert np.isfinite(s.sample["cider"]).all() and s.sample["cider"][0] == 0.0
    assert Cider().score(["a b c"], ["a b c"]).sample["cider"][0] == 0.0  # N = 1: log(1) - log(1) = 0
    with pytest.raises(ConfigError):
        Cider(sigma=0)
    with pytest.raises(ConfigError):
        Cider(df_corpus=[])


def test_runner_workers_get_the_fitted_table(tmp_path, pairs):
    """--workers: each worker rebuilds the metric from the main process's first-pass table."""
    from radeval.runner import score_file

    sub = pairs[:90]
    src = tmp_path / "in.jsonl"
    src.write_text(
        "".join(json.dumps({"id": f"r{i:03d}", "prediction": h, "reference": r}) + "\n" for i, (h, r) in enumerate(sub))
    )
    score_file(src, "cider", tmp_path / "one", bootstrap=20, chunk_size=16)
    score_file(src, "cider", tmp_path / "two", bootstrap=20, chunk_size=16, workers=2)
    for name in ("per_sample.jsonl", "summary.json"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
