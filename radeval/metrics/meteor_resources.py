"""The English resources METEOR 1.5 aligns with, read from the installed pycocoevalcap.

* function words, nonbreaking prefixes and the WordNet-derived synonym files live inside
  ``meteor-1.5.jar`` (a zip); we read them from there at first use (a few hundred ms);
* the paraphrase table ``meteor/data/paraphrase-en.gz`` (5.3 M entries) is parsed once into a
  compact cache of 64-bit phrase keys under the user's cache directory (``$XDG_CACHE_HOME`` or
  ``~/.cache``, then ``radeval/meteor-1.5``; ``RADEVAL_METEOR_CACHE`` overrides), which later
  processes memory-map. Nothing from these files is shipped in radeval itself.

Phrase keys: each word gets a 64-bit value (blake2b of its UTF-8 bytes), a phrase of n words
is folded as ``k = k * P + w`` modulo 2**64 and then salted with its length. The jar compares
paraphrase phrases word for word; with 64-bit keys a false match needs a collision between
two of a few million phrases (probability about 1e-6 per *table*, not per segment), which we
accept and document instead of keeping 270 MB of strings in memory.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import zipfile
from pathlib import Path

import numpy as np

from radeval.errors import DependencyError
from radeval.metrics.meteor_text import parse_prefixes, string_tokenize

CACHE_FORMAT = 1
_P = np.uint64(0x100000001B3)  # FNV prime: odd, so the fold is a bijection per step
_LEN_SALT = np.uint64(0x9E3779B97F4A7C15)
_LINES = re.compile(r"\r\n|\r|\n")  # BufferedReader.readLine's line ends


def pycocoevalcap_meteor_dir() -> Path:
    from radeval.coco import _pycocoevalcap_dir

    return Path(_pycocoevalcap_dir()) / "meteor"


def _jar_text(name: str) -> str:
    jar = pycocoevalcap_meteor_dir() / "meteor-1.5.jar"
    if not jar.is_file():
        from radeval.coco import COCO_HINT

        raise DependencyError(f"meteor-1.5.jar not found in {jar.parent}: {COCO_HINT}")
    with zipfile.ZipFile(jar) as z:
        return z.read(name).decode("utf-8", errors="replace")


def _read_lines(text: str) -> list[str]:
    lines = _LINES.split(text)
    if lines and lines[-1] == "":
        lines.pop()  # readLine gives no empty line after a final line end
    return lines


def function_words() -> frozenset[str]:
    return frozenset(_read_lines(_jar_text("function/english.words")))


def nonbreaking_prefixes() -> dict[str, int]:
    return parse_prefixes(_jar_text("nonbreaking/english.prefixes"))


class Synonyms:
    """``SynonymDictionary``: word -> WordNet synset ids, with the exception list and WordNet's
    suffix rules (``morph``) for inflected forms. (The relations file is never used by the jar.)"""

    # WordNet 3 morphology tables as the jar lists them: noun, verb, adjective suffixes
    SUFX = (
        "s",
        "ses",
        "xes",
        "zes",
        "ches",
        "shes",
        "men",
        "ies",
        "s",
        "ies",
        "es",
        "es",
        "ed",
        "ed",
        "ing",
        "ing",
        "er",
        "est",
        "er",
        "est",
    )
    ADDR = ("", "s", "x", "z", "ch", "sh", "man", "y", "", "y", "e", "", "e", "", "e", "", "", "", "e", "e")

    def __init__(self) -> None:
        self.word_to_bases: dict[str, list[str]] = {}
        lines = _read_lines(_jar_text("synonym/english.exceptions"))
        for base, forms in zip(lines[0::2], lines[1::2]):
            for form in string_tokenize(forms):
                self.word_to_bases.setdefault(form, []).append(base)
        self.word_to_synsets: dict[str, frozenset[int]] = {}
        lines = _read_lines(_jar_text("synonym/english.synsets"))
        for word, ids in zip(lines[0::2], lines[1::2]):
            self.word_to_synsets[word] = frozenset(int(x) for x in string_tokenize(ids))
        self._cache: dict[str, frozenset[int]] = {}

    def synsets(self, word: str) -> frozenset[int]:
        """``getSynSets(w) ∪ getStemSynSets(w)``, what SynonymMatcher compares."""
        got = self._cache.get(word)
        if got is None:
            got = self.word_to_synsets.get(word, frozenset())
            bases = self.word_to_bases.get(word)
            if bases is not None:
                for b in bases:
                    got = got | self.word_to_synsets.get(b, frozenset())
            else:
                got = got | self.word_to_synsets.get(self._morph(word), frozenset())
            self._cache[word] = got
        return got

    def _morph(self, word: str) -> str:
        from radeval.metrics.meteor_text import java_length

        # The jar notes a "ful" ending, then overwrites the stripped form before using it,
        # so only the "ful" re-appended to a found base survives; kept as it behaves.
        end = "ful" if word.endswith("ful") else ""
        if word.endswith("ss") or java_length(word) <= 2:
            return word
        for suf, add in zip(self.SUFX, self.ADDR):
            if word.endswith(suf):
                cand = word[: len(word) - len(suf)] + add
                if cand in self.word_to_synsets:
                    return cand + end
        return ""


# ------------------------------------------------------------------------------ paraphrases
def cache_root() -> Path:
    env = os.environ.get("RADEVAL_METEOR_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "radeval" / "meteor-1.5"


def word_key(word: str) -> int:
    return int.from_bytes(hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest(), "little")


def fold_keys(word_keys: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Phrase keys for rows of ``word_keys`` (n, width), row i using its first lengths[i]."""
    n, width = word_keys.shape
    k = np.zeros(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for c in range(width):
            live = lengths > c
            k = np.where(live, k * _P + word_keys[:, c], k)
        return k ^ (lengths.astype(np.uint64) * _LEN_SALT)


class Paraphrases:
    """``ParaphraseTransducer`` as sorted arrays.

    ``ref_keys`` (sorted, unique) are the table's left-hand phrases; entries
    ``starts[r]:starts[r+1]`` are its paraphrases *in file order* (the order the jar's trie
    emits them), each as a phrase key and a length in words."""

    FILES = ("ref_keys", "starts", "para_keys", "para_lens")

    def __init__(self, arrays: dict[str, np.ndarray]):
        # plain ndarray views of the memory maps (pages load on first touch; no memmap wrapper)
        self.ref_keys = np.asarray(arrays["ref_keys"])
        self.starts = np.asarray(arrays["starts"])
        self.para_keys = np.asarray(arrays["para_keys"])
        self.para_lens = np.asarray(arrays["para_lens"])
        self.max_ref_len = int(arrays["max_ref_len"][0])
        self.max_para_len = int(arrays["max_para_len"][0])

    @classmethod
    def load(cls) -> Paraphrases:
        src = pycocoevalcap_meteor_dir() / "data" / "paraphrase-en.gz"
        if not src.is_file():
            from radeval.coco import COCO_HINT

            raise DependencyError(f"the METEOR paraphrase table is missing ({src}): {COCO_HINT}")
        st = src.stat()
        folder = cache_root() / f"paraphrase-en-v{CACHE_FORMAT}-{st.st_size}-{int(st.st_mtime)}"
        names = (*cls.FILES, "max_ref_len", "max_para_len")
        if not all((folder / f"{n}.npy").is_file() for n in names):
            folder.parent.mkdir(parents=True, exist_ok=True)
            # one builder at a time (e.g. several ranks starting together); the others wait and
            # then find the finished files
            with open(folder.parent / ".build.lock", "w") as lock:
                try:
                    import fcntl

                    fcntl.flock(lock, fcntl.LOCK_EX)
                except ImportError:  # not POSIX: builders may race; each file still lands whole
                    pass
                if not all((folder / f"{n}.npy").is_file() for n in names):
                    _build(src, folder)
        return cls({n: np.load(folder / f"{n}.npy", mmap_mode="r") for n in names})


def _build(src: Path, folder: Path) -> None:
    """Parse the gzip table (prob / phrase / paraphrase line triples) into the key arrays."""
    from array import array

    vocab: dict[str, int] = {}
    ids = array("q")
    lens = array("q")  # ref, para, ref, para, ...
    get = vocab.setdefault
    # The file has no carriage returns, tabs or form feeds (checked at build: otherwise the
    # slower exact tokenizer runs), so splitting on "\n" and " " is BufferedReader + StringTokenizer.
    with gzip.open(src, "rb") as f:
        k = 0
        for bline in f:
            if k % 3:
                side = bline.decode("utf-8", errors="replace").rstrip("\n")
                if "\t" in side or "\x0c" in side or "\r" in side:
                    words = string_tokenize(side)
                else:
                    words = [w for w in side.split(" ") if w]
                lens.append(len(words))
                ids.extend(get(w, len(vocab)) for w in words)
            k += 1
    if len(lens) % 2:
        lens.pop()  # a truncated final entry: the jar would fail on it; keep what is whole
    both = np.frombuffer(lens, dtype=np.int64).copy()
    rl, pl = both[0::2], both[1::2]
    wkeys = np.array([word_key(w) for w in vocab], dtype=np.uint64)
    del vocab
    flat = wkeys[np.frombuffer(ids, dtype=np.int64)]
    del ids
    n = len(rl)
    offsets = np.concatenate(([0], np.cumsum(both)))
    width = int(both.max()) if n else 1
    mat = np.zeros((2 * n, max(width, 1)), dtype=np.uint64)
    for c in range(width):
        live = both > c
        mat[live, c] = flat[offsets[:-1][live] + c]
    keys = fold_keys(mat, both)
    del mat, flat
    ref_k, para_k = keys[0::2], keys[1::2]
    # an empty left-hand phrase sits on the trie's root, which the jar never emits: drop it
    keep = rl > 0
    ref_k, para_k, pl_k = ref_k[keep], para_k[keep], pl[keep]
    order = np.argsort(ref_k, kind="stable")  # stable: file order within one phrase
    ref_sorted = ref_k[order]
    uniq, first = np.unique(ref_sorted, return_index=True)
    starts = np.concatenate((first, [len(ref_sorted)])).astype(np.int64)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    out = {
        "ref_keys": uniq,
        "starts": starts,
        "para_keys": para_k[order],
        "para_lens": pl_k[order].astype(np.int16),
        "max_ref_len": np.array([int(rl.max()) if n else 0]),
        "max_para_len": np.array([int(pl.max()) if n else 0]),
    }
    for name, arr in out.items():
        np.save(tmp / f"{name}.npy", arr)
    for name in out:  # each file lands whole; a reader sees either none or a complete one
        os.replace(tmp / f"{name}.npy", folder / f"{name}.npy")
    tmp.rmdir()
