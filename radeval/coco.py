"""The pycocoevalcap-backed pieces: the coco-caption PTB tokenizer and the METEOR 1.5 jar.

Both run Java programs shipped inside the pycocoevalcap wheel (the ``[coco]`` extra):

* :func:`ptb_tokenize` calls pycocoevalcap's own ``PTBTokenizer`` class (Stanford CoreNLP
  3.4.1, ``-preserveLines -lowerCase``, punctuation tokens dropped): it *is* the reference,
  so we only feed it one batch and map its answer back to the inputs.
* :class:`MeteorJar` keeps one ``meteor-1.5.jar ... -stdio -l en -norm`` process alive and
  pipelines ``SCORE`` lines to it (pycocoevalcap waits for one round trip per segment).

Missing pieces raise :class:`~radeval.errors.DependencyError` with the fix.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Sequence

from radeval.errors import DependencyError, RadevalError

COCO_HINT = "pip install 'radeval-toolkit[coco]'"
JAVA_HINT = "install Java 17 (a JRE with `java` on PATH), e.g. `apt-get install openjdk-17-jre-headless`"

# Characters that Stanford's PTBLexer treats as a line break. pycocoevalcap replaces only
# "\n" before writing one caption per line, so any of these would split a caption over two
# lines and shift every later caption onto the wrong image. We turn them into spaces first,
# as pycocoevalcap does for "\n" (measured with its PTBTokenizer: \r \x0b \x0c \u2028
# \u2029 break lines; \x85, tabs, NBSP and others do not).
_LINE_BREAKS = str.maketrans({c: " " for c in "\r\x0b\x0c\u2028\u2029"})


def _require_java() -> str:
    java = shutil.which("java")
    if java is None:
        raise DependencyError(f"this metric/tokenizer runs a Java program but `java` is not on PATH: {JAVA_HINT}")
    return java


def _pycocoevalcap_dir() -> str:
    try:  # pycocoevalcap is a namespace package (no __init__.py): locate it through a module
        from pycocoevalcap.meteor import meteor as coco_meteor
    except ImportError as e:
        raise DependencyError(f"pycocoevalcap is not installed ({e}): {COCO_HINT}") from e
    return os.path.dirname(os.path.dirname(os.path.abspath(coco_meteor.__file__)))


# ----------------------------------------------------------------------------------- PTB
# Tokenised text keyed by raw text: BLEU, ROUGE-L and METEOR in ptb mode tokenise the same
# hypotheses and references, and each call starts a JVM (about a second).
_PTB_CACHE: dict[str, str] = {}
_PTB_CACHE_MAX = 200_000
_PTB_LOCK = threading.Lock()


def ptb_tokenize(texts: Sequence[str]) -> list[str]:
    """pycocoevalcap's ``PTBTokenizer`` output for each text (lower-cased, punctuation dropped).

    Texts go to pycocoevalcap's class in one batch (one JVM); uncached, distinct texts only.
    Line breaks other than "\\n" become spaces first (see ``_LINE_BREAKS``); for any text
    without them the result is exactly what pycocoevalcap yields.
    """
    texts = list(texts)
    with _PTB_LOCK:
        known = {t: _PTB_CACHE[t] for t in set(texts) if t in _PTB_CACHE}
    todo = [t for t in dict.fromkeys(texts) if t not in known]
    if todo:
        tokenized = _ptb_batch(todo)
        known.update(zip(todo, tokenized))
        with _PTB_LOCK:
            if len(_PTB_CACHE) + len(todo) > _PTB_CACHE_MAX:
                _PTB_CACHE.clear()
            _PTB_CACHE.update(zip(todo, tokenized))
    return [known[t] for t in texts]


def _ptb_batch(texts: list[str]) -> list[str]:
    _pycocoevalcap_dir()
    _require_java()
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    captions = {i: [{"caption": t.translate(_LINE_BREAKS)}] for i, t in enumerate(texts)}
    try:
        out = PTBTokenizer().tokenize(captions)
    except FileNotFoundError as e:  # java vanished between the check and the call
        raise DependencyError(f"cannot run the PTB tokenizer ({e}): {JAVA_HINT}") from e
    except PermissionError as e:
        # pycocoevalcap writes its temporary input file next to the CoreNLP jar
        raise DependencyError(f"pycocoevalcap's PTBTokenizer needs write access to its package directory ({e})") from e
    if len(out) != len(texts):
        raise RadevalError(
            f"the PTB tokenizer returned {len(out)} lines for {len(texts)} texts "
            "(did the Java process fail? see its messages above)"
        )
    return [out[i][0] for i in range(len(texts))]


# -------------------------------------------------------------------------------- METEOR
class MeteorJar:
    """One long-lived ``meteor-1.5.jar - - -stdio -l en -norm`` process.

    Same jar, arguments and working directory as pycocoevalcap's ``Meteor`` (plus a GC
    flag). Requests are pipelined: a writer thread streams all lines while this thread reads
    the answers, so neither side blocks on a full pipe. Thread-safe (one batch at a time).
    """

    # pycocoevalcap's command line, plus the serial garbage collector: the jar holds ~1 GB of
    # paraphrase tables and makes short-lived garbage, and the serial GC halves the resident
    # memory (~0.6 GB instead of ~1.2 GB, measured) and uses less CPU per segment. A GC
    # choice cannot change any number the jar prints.
    ARGS = ("-XX:+UseSerialGC", "-jar", "-Xmx2G", "meteor-1.5.jar", "-", "-", "-stdio", "-l", "en", "-norm")

    def __init__(self) -> None:
        self._cwd = os.path.join(_pycocoevalcap_dir(), "meteor")
        if not os.path.isfile(os.path.join(self._cwd, "meteor-1.5.jar")):
            raise DependencyError(f"meteor-1.5.jar not found in {self._cwd}: {COCO_HINT}")
        java = _require_java()
        self._stderr = tempfile.TemporaryFile()
        try:
            self._proc = subprocess.Popen(
                [java, *self.ARGS],
                cwd=self._cwd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
            )
        except OSError as e:
            self._stderr.close()
            raise DependencyError(f"cannot start the METEOR jar ({e}): {JAVA_HINT}") from e
        self._lock = threading.Lock()

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _stderr_tail(self) -> str:
        try:
            self._stderr.seek(0)
            return self._stderr.read().decode("utf-8", "replace")[-2000:].strip()
        except (OSError, ValueError):
            return ""

    def request(self, lines: Sequence[str]) -> list[str]:
        """Send ``SCORE`` protocol lines (no line breaks inside); one answer line per line."""
        return self._exchange(lines, len(lines))

    def evaluate(self, stats_rows: Sequence[str]) -> tuple[list[float], float]:
        """The jar's ``EVAL`` of statistics lines, as pycocoevalcap sends it: one line holding
        every segment's statistics; the jar answers each segment's score, then the score of
        the summed statistics."""
        if not stats_rows:
            raise ValueError("EVAL needs at least one statistics row")
        answers = self._exchange(["EVAL ||| " + " ||| ".join(stats_rows)], len(stats_rows) + 1)
        try:
            values = [float(a) for a in answers]
        except ValueError as e:
            raise RadevalError(f"unexpected answer from the METEOR jar to EVAL: {answers[:3]!r}") from e
        return values[:-1], values[-1]

    def _exchange(self, lines: Sequence[str], n_answers: int) -> list[str]:
        if not lines:
            return []
        payload = "".join(f"{line}\n" for line in lines).encode("utf-8", "replace")
        errors: list[BaseException] = []

        def write() -> None:
            try:
                self._proc.stdin.write(payload)
                self._proc.stdin.flush()
            except BaseException as e:  # broken pipe: reported by the reader below
                errors.append(e)

        with self._lock:
            if not self.alive:
                raise RadevalError(f"the METEOR jar has exited: {self._stderr_tail()}")
            writer = threading.Thread(target=write, name="meteor-writer", daemon=True)
            writer.start()
            answers = []
            readline = self._proc.stdout.readline
            for _ in range(n_answers):
                raw = readline()
                if not raw:
                    writer.join(timeout=5)
                    raise RadevalError(
                        f"the METEOR jar stopped answering after {len(answers)} of {n_answers} lines"
                        f"{' (' + repr(errors[0]) + ')' if errors else ''}: {self._stderr_tail()}"
                    )
                answers.append(raw.decode("utf-8", "replace").strip())
            writer.join()
        return answers

    def close(self) -> None:
        proc = getattr(self, "_proc", None)
        if proc is None:
            return
        with self._lock:
            try:
                if proc.stdin and not proc.stdin.closed:
                    proc.stdin.close()  # EOF: the jar's read loop ends and it exits
                proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait()
            finally:
                if proc.stdout:
                    proc.stdout.close()
                self._stderr.close()
        self._proc = None  # type: ignore[assignment]


_JARS: list[MeteorJar] = []
_JAR_LOCK = threading.Lock()


def meteor_jars(n: int = 1) -> list[MeteorJar]:
    """``n`` shared jar processes, started on first use (each loads its tables: ~8 s of CPU)."""
    with _JAR_LOCK:
        _JARS[:] = [j for j in _JARS if j.alive]
        while len(_JARS) < n:
            _JARS.append(MeteorJar())
        return _JARS[:n]


def meteor_jar() -> MeteorJar:
    """The first shared jar process."""
    return meteor_jars(1)[0]


def meteor_score_lines(lines: Sequence[str], jars: int = 1) -> list[str]:
    """Answers to ``SCORE`` lines, split into contiguous shards over ``jars`` processes.

    Segments are scored independently, so sharding changes only the time. Each extra jar
    costs one start (~8 s CPU, ~1.2 GB resident) and pays off on multi-core machines for
    batches of a few thousand segments or more.
    """
    jars = max(1, min(int(jars), len(lines) // 200 or 1))
    if jars == 1:
        return meteor_jar().request(lines)
    pool = meteor_jars(jars)
    bounds = [round(k * len(lines) / jars) for k in range(jars + 1)]
    results: list[list[str] | None] = [None] * jars
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            results[k] = pool[k].request(lines[bounds[k] : bounds[k + 1]])
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,), name=f"meteor-shard-{k}") for k in range(jars)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return [answer for shard in results for answer in shard]  # type: ignore[union-attr]


@atexit.register
def shutdown_meteor() -> None:
    """Stop the shared jar processes (also run at interpreter exit)."""
    with _JAR_LOCK:
        for jar in _JARS:
            jar.close()
        _JARS.clear()
