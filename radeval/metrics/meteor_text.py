"""The text side of METEOR 1.5 ``-stdio -l en -norm`` as the jar does it, in Python.

One ``SCORE ||| ref ||| hyp`` line is split on '|||' (Java ``String.split``: trailing empty
parts dropped), each part ``trim()``-ed, run through the jar's English ``Normalizer
.normalizeLine(line, en, keepPunctuation=true)`` (a Moses-tokenizer variant), lower-cased and cut
into words with ``StringTokenizer`` (space, tab, newline, carriage return, form feed only).

Java regular expressions differ from Python's in a few places that matter here, so the
patterns are written out with explicit classes: Java's ``\\s`` is ASCII whitespace plus
vertical tab, ``\\p{Digit}`` is ASCII 0-9 and ``\\p{Lower}`` ASCII a-z.
"""

from __future__ import annotations

import re
from functools import lru_cache

# The jar's letter ranges (Western European and Cyrillic), verbatim from its constant pool.
_ALPHA = "A-Za-z\u0160\u017d\u0161\u017e\u0178\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u017e" + (
    "\u0400-\u04ff\u0500-\u0527\ua640-\ua66e\ua67e-\ua697\u1d00-\u1d7f"
)
_ALNUM = "0-9" + _ALPHA
_JAVA_S = " \t\n\x0b\x0c\r"

_SEP_OTHER = re.compile(f"([^{_ALNUM}{_JAVA_S}.'`,\\-\u2018\u2019])")
_MULTI_DOT = re.compile(r"\.([.]+)")
_MULTI_DOT2 = re.compile(r"DOTMULTI\.([^.])")
_COMMA = re.compile(r"([^0-9])[,]([^0-9])")
_COMMA2 = re.compile(r"([0-9])[,]([^0-9])")
_COMMA3 = re.compile(r"([^0-9])[,]([0-9])")
_QUOTE = re.compile("([`\u2018\u2019])")
_QUOTE2 = re.compile("([\u201c\u201d]|'')")
_RM_DASH = re.compile(f"([{_ALNUM}.])[\\-]([{_ALNUM}])")
_CONT1 = re.compile(f"([^{_ALPHA}])[']([^{_ALPHA}])")
_CONT2 = re.compile(f"([^{_ALPHA}0-9])[']([{_ALPHA}])")
_CONT3 = re.compile(f"([{_ALPHA}])[']([^{_ALPHA}])")
_CONT4 = re.compile(f"([{_ALPHA}])[']([{_ALPHA}])")
_CONT5 = re.compile(r"([0-9])[']([s])")
_NBP_ALPHA = re.compile(f"[{_ALPHA}]")
_WHITE = re.compile("[ \u2000-\u200a\u202f\u205f\u3000\u00a0]+")
_TOKENIZER = re.compile("[ \t\n\r\x0c]+")  # java.util.StringTokenizer's default delimiters
_JAVA_TRIM = "".join(chr(c) for c in range(0x21))  # String.trim(): every char <= U+0020

NBP_ANY, NBP_NUM_ONLY = 1, 2


def java_trim(s: str) -> str:
    return s.strip(_JAVA_TRIM)


def string_tokenize(s: str) -> list[str]:
    return [w for w in _TOKENIZER.split(s) if w]


def parse_prefixes(text: str) -> dict[str, int]:
    """The jar's nonbreaking-prefix list (``nonbreaking/english.prefixes``) as its ``nbpList``."""
    nbp: dict[str, int] = {}
    for line in re.split(r"\r\n|\r|\n", text):
        tok = string_tokenize(line)
        if not tok or tok[0].startswith("#"):
            continue
        nbp[tok[0]] = NBP_NUM_ONLY if len(tok) > 1 and tok[1] == "#NUMERIC_ONLY#" else NBP_ANY
    return nbp


def normalize_line(line: str, nbp: dict[str, int]) -> str:
    """``Normalizer.normalizeLine(line, LANG_EN, true)``, step for step."""
    s = " " + line + " "
    s = _SEP_OTHER.sub(r" \1 ", s)
    s = _MULTI_DOT.sub(r" DOTMULTI\1", s)
    while "DOTMULTI." in s:
        s = _MULTI_DOT2.sub(r"DOTDOTMULTI \1", s)
        s = s.replace("DOTMULTI.", "DOTDOTMULTI")
    s = _COMMA.sub(r"\1 , \2", s)
    s = _COMMA2.sub(r"\1 , \2", s)
    s = _COMMA3.sub(r"\1 , \2", s)
    s = _QUOTE.sub("'", s)
    s = _QUOTE2.sub(' " ', s)
    s = s.replace("\u2013", "-").replace("--", "-")
    s = _RM_DASH.sub(r"\1 \2", s)
    s = _CONT1.sub(r"\1 ' \2", s)
    s = _CONT2.sub(r"\1 ' \2", s)
    s = _CONT3.sub(r"\1 ' \2", s)
    s = _CONT4.sub(r"\1 '\2", s)
    s = _CONT5.sub(r"\1 '\2", s)
    words = string_tokenize(s)
    out = []
    last = len(words) - 1
    for i, w in enumerate(words):
        if len(w) > 1 and w.endswith("."):
            pre = w[:-1]
            kind = nbp.get(pre)
            nxt = words[i + 1] if i < last else ""
            if "." in pre and _NBP_ALPHA.search(pre):
                out.append(w.replace(".", ""))  # U.S. -> US
            elif kind == NBP_ANY or ("a" <= nxt[:1] <= "z"):
                out.append(w)
            elif kind == NBP_NUM_ONLY and "0" <= nxt[:1] <= "9":
                out.append(w)
            else:
                out.append(pre + " .")
        else:
            out.append(w)
        out.append(" ")
    s = "".join(out)
    while "DOTDOTMULTI" in s:
        s = s.replace("DOTDOTMULTI", "DOTMULTI.")
    s = s.replace("DOTMULTI", ".")
    return java_trim(_WHITE.sub(" ", s))


# Cutting a line into pieces normalised on their own (see line_words): tokens made of ASCII
# letters and digits only, and lone '.' and ',', are left as they are by every rule, and a
# rule's match never spans the space next to such a token, so only the runs of other tokens
# need the regular expressions.
_PIECEWISE_UNSAFE = re.compile("[\x00-\x1f\u00a0\u2000-\u200a\u202f\u205f\u3000]|DOTMULTI")


# A character that makes its token "other": outside ASCII letters, digits, '.', ',' and the
# separator, or a '.' / ',' inside a longer token. Lone '.' and ',' count as plain (no rule
# changes a lone '.'; a lone ',' only gains spaces).
# (Every branch starts with a character class, so the regex engine skips plain text in C.)
_NOT_PLAIN_CHAR = re.compile(r"[^A-Za-z0-9 .,]")
_OTHER_CHAR = re.compile(r"[^A-Za-z0-9 .,]|[.,](?:(?<=[^ ][.,])|(?=[^ ]))")


def _is_plain(token: str) -> bool:
    """ASCII letters and digits only (str.isalnum alone would admit other scripts), or a lone
    '.' or ','."""
    return (token.isascii() and token.isalnum()) or token == "." or token == ","


def piecewise_safe(line: str) -> bool:
    """Whether ``line_words`` may normalise this line piece by piece (no other white space,
    control character or placeholder word; else it goes whole)."""
    return (line.isascii() and line.isprintable() and "DOTMULTI" not in line) or _PIECEWISE_UNSAFE.search(line) is None


def sentence_keys(line: str) -> list[str] | None:
    """A trimmed line cut after each of its " . " separators into pieces that normalise on
    their own: a piece ends with its separator's "." (the one neighbour a rule looks at is the
    next word's first character, here that "."), so the line's words are the pieces' words
    (``line_words`` of each) in order. None where the line must be normalised whole."""
    if not piecewise_safe(line):
        return None
    # (a safe line holds no control character, so NUL can mark the cuts)
    return line.replace(" . ", " .\x00").split("\x00")


def line_words(line: str, nbp: dict[str, int], runs: dict[str, list[str]]) -> list[str]:
    """``string_tokenize(normalize_line(line, nbp).lower())`` for a trimmed line, computed
    piece by piece: plain tokens (ASCII letters and digits, lone '.' and ',') pass through,
    each maximal run of other tokens (as spaced in the line) is normalised alone, with the
    next token's first character after it (then dropped), and cached in ``runs``. Exact,
    because no rule changes a plain token or reaches across the space beside it, lower-casing
    is per word, and the only rule that looks at a neighbour (a word ending in '.') looks at
    the next word's first character. Lines with other white space, control characters or the
    normaliser's placeholder word go whole (tests/test_meteor_native.py checks the equality)."""
    if _NOT_PLAIN_CHAR.search(line) is None and "DOTMULTI" not in line:
        # the common case (r2gen-normalised text), checked without _OTHER_CHAR's slower scan:
        # only plain characters, and every '.' and ',' a token of its own
        words = line.lower().split()
        if line.count(".") + line.count(",") == words.count(".") + words.count(","):
            return words
    if not piecewise_safe(line):
        return string_tokenize(normalize_line(line, nbp).lower())
    # Only ' ' separates tokens here (the check above), and the line holds an other token (else
    # the plain-line check would have returned), so the search below finds one.
    m = _OTHER_CHAR.search(line)
    n = len(line)
    out: list[str] = []
    done = 0  # line[:done] is in out
    while m is not None:
        start = line.rfind(" ", 0, m.start()) + 1  # the other token's start
        end = line.find(" ", m.start())
        end = n if end < 0 else end
        nxt = ""  # first character of the plain token after the run, if any
        while end < n:  # extend the run over the following other tokens
            j = end
            while line[j] == " ":  # a trimmed line does not end in a space
                j += 1
            stop = line.find(" ", j)
            stop = n if stop < 0 else stop
            if _is_plain(line[j:stop]):
                nxt = line[j]
                break
            end = stop
        out += line[done:start].lower().split()
        run = line[start:end]
        piece = f"{run} {nxt}" if nxt else run
        got = runs.get(piece)
        if got is None:
            got = string_tokenize(normalize_line(piece, nbp).lower())
            if nxt:
                got.pop()  # the borrowed character, a word of its own
            if len(runs) >= 100_000:
                runs.clear()
            runs[piece] = got
        out += got
        done = end
        m = _OTHER_CHAR.search(line, end)
    out += line[done:].lower().split()
    return out


def split_score_line(line: str) -> list[str]:
    """``line.split("\\\\|\\\\|\\\\|")`` with Java's dropping of trailing empty strings."""
    parts = line.split("|||")
    while parts and parts[-1] == "":
        parts.pop()
    return parts


@lru_cache(maxsize=1 << 18)
def java_hash(word: str) -> int:
    """``String.hashCode()`` (UTF-16 code units, 32-bit wrap-around): the jar's Stage compares
    words by this number, not by the text, so two colliding words count as an exact match."""
    h = 0
    data = word.encode("utf-16-le")
    for k in range(0, len(data), 2):
        h = (31 * h + (data[k] | (data[k + 1] << 8))) & 0xFFFFFFFF
    return h - (1 << 32) if h & 0x80000000 else h


def java_length(word: str) -> int:
    """``String.length()``: UTF-16 code units."""
    return len(word.encode("utf-16-le")) // 2
