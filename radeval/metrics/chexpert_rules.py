"""A fast, offline, rule-based CheXpert-style labeler (pure Python, no parser, no model).

It follows the CheXpert labeler (Irvin et al. 2019, github.com/stanfordmlgroup/chexpert-labeler)
step by step and reads the labeler's own phrase lists (package data in
``radeval/resources/chexpert/``, MIT licence):

1. **Cleaning** as the labeler cleans: lower case, ``and/or`` -> ``or``, a ``/`` between two
   letters -> `` or ``, ``..`` -> ``.``, a space after every ``.`` and ``,``, whitespace runs
   collapsed; then sentences (split after ``.``/``?``/``!``).
2. **Mentions**: every line of ``phrases/mention/<observation>.txt`` found in a sentence
   (``_`` means a space), unless it overlaps an *unmention* phrase of that observation (the
   list files plus the labeler's generated positional phrases for Cardiomegaly and Enlarged
   Cardiomediastinum, e.g. ``over the heart``).
3. **Classification of each mention**. The labeler matches NegBio Semgrex patterns over a
   dependency parse: pre-negation uncertainty first, then negation, then post-negation
   uncertainty, else positive. We keep that order and reach the same decisions with *cue
   words and their scope* on a token sequence: a forward cue ("no", "without", "possible")
   governs the coordinated noun-phrase list after it ("no edema or pneumonia"); a backward
   cue ("is normal", "has resolved", "cannot be excluded") governs the subject noun phrase(s)
   before it ("heart size and mediastinal contours are normal"); modal hedges ("may
   represent", "could be due to") govern the rest of their clause; "or"/"versus" make both
   sides uncertain. Each cue is the word-level reading of one or more of the pattern
   comments in ``patterns/*.txt`` (kept in the package data for reference).
4. **Aggregation** per observation: no mention -> blank (NaN); one label -> it; several:
   {negative, uncertain} -> uncertain, any positive -> positive. A positive or uncertain
   mention that is exactly ``chf`` or ``heart failure`` also adds an uncertain Cardiomegaly.
5. **No Finding** = 1 when no observation other than Support Devices (including the extra
   findings in ``no_finding.txt``) has a positive or uncertain mention, else blank.

Known departures from the parse-based rules (a parser reads some sentences differently; we
chose the reading that most reports intend): "X is not seen/identified/present" counts as
negative; "not widened/dilated" like "not enlarged".

Measured (tests/test_chexpert_rules.py): the labeler's 4 sample reports exactly; 216 reports
written for the tests with labels assigned by hand from the labeler's rules. Those labels are
our reading of its patterns, so they measure the rules as we read them, not the parser's
idiosyncrasies; a hold-out set labelled by the real labeler is the real test.
Speed: reports and sentences are cached (an lru cache each), so a repeated reference costs a
dictionary lookup and a GRPO completion pays only for sentences not seen before
(benchmarks/bench_rules_labeler.py).
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from radeval.errors import InputError
from radeval.labels import CHEXPERT_OBSERVATIONS, OBSERVATION_INDEX

DATA_DIR = Path(__file__).resolve().parent.parent / "resources" / "chexpert"
#: the CheXpert labeler commit the phrase lists come from
PHRASES_SOURCE = "stanfordmlgroup/chexpert-labeler@44ddeb3"
RULES_VERSION = "2"  # 2: scopes pass over de-identification placeholders

NO_FINDING = "No Finding"
SUPPORT_DEVICES = "Support Devices"
CARDIOMEGALY = "Cardiomegaly"

POS, NEG, UNC = 1, 0, -1


# ---------------------------------------------------------------------------------------------
# 1. cleaning and sentences
# ---------------------------------------------------------------------------------------------
_SLASH = re.compile(r"(?<=[a-zA-Z])/(?=[a-zA-Z])")
_SENT_END = re.compile(r"(?<=[.?!])\s+")


def clean(report: str) -> str:
    """The CheXpert labeler's report cleaning (see module docstring, step 1)."""
    text = report.lower().replace("and/or", "or")
    text = _SLASH.sub(" or ", text)
    text = text.replace("..", ".").replace(".", ". ").replace(",", ", ")
    return " ".join(text.split())


def sentences(cleaned: str) -> list[str]:
    return [s for s in _SENT_END.split(cleaned) if s]


# ---------------------------------------------------------------------------------------------
# 2. phrase lists
# ---------------------------------------------------------------------------------------------
def _read_lines(path: Path) -> list[str]:
    # the labeler strips each line and reads "_" as a space ("_line_" -> " line ")
    return [ln.strip().replace("_", " ") for ln in path.read_text().splitlines() if ln.strip()]


def _observation_name(stem: str) -> str:
    return stem.replace("_", " ").title()


class _Phrases:
    """Mention and unmention phrases per observation, loaded once from the package data."""

    def __init__(self, root: Path = DATA_DIR / "phrases") -> None:
        self.mention: dict[str, list[str]] = {}
        self.unmention: dict[str, list[str]] = {}
        for path in sorted((root / "mention").glob("*.txt")):
            self.mention[_observation_name(path.stem)] = _read_lines(path)
        for path in sorted((root / "unmention").glob("*.txt")):
            self.unmention[_observation_name(path.stem)] = _read_lines(path)
        missing = set(CHEXPERT_OBSERVATIONS) - set(self.mention)
        if missing:  # a broken install, not a user error
            raise RuntimeError(f"CheXpert phrase lists missing for {sorted(missing)} in {root}")
        # The labeler's generated positional unmentions ("over the heart", "in the left heart"):
        # an opacity projecting over the heart is not a finding about the heart.
        for obs in (CARDIOMEGALY, "Enlarged Cardiomediastinum"):
            phrases = self.mention[obs]
            if obs == CARDIOMEGALY:
                phrases = [p.replace("the ", "") for p in phrases if p not in ("cardiomegaly", "cardiac enlargement")]
            extra = [
                f"{prep}{pos} {p}"
                for prep in ("over the", "overly the", "in the")
                for pos in ("", " superior", " left", " right")
                for p in phrases
            ]
            self.unmention[obs] = self.unmention.get(obs, []) + extra
        # one alternation per observation: a sentence without any of its phrases is skipped
        # before the per-phrase search (most sentences mention few observations)
        self.any_mention = {
            obs: re.compile("|".join(re.escape(p) for p in phrases)) for obs, phrases in self.mention.items()
        }
        # every phrase of this commit is a plain string; fall back to re if one ever is not
        meta = set(".^$*+?{}[]\\|()")
        self.literal = all(not (set(p) & meta) for ps in (*self.mention.values(), *self.unmention.values()) for p in ps)


def _find_all(text: str, phrase: str) -> list[tuple[int, int]]:
    """Non-overlapping left-to-right matches, as ``re.finditer`` on a literal pattern gives."""
    out = []
    n = len(phrase)
    i = text.find(phrase)
    while i != -1:
        out.append((i, i + n))
        i = text.find(phrase, i + n)
    return out


# ---------------------------------------------------------------------------------------------
# 3. cues and scopes
# ---------------------------------------------------------------------------------------------
# a run of underscores is one token: MIMIC-CXR's de-identification mark "___"
_TOKEN = re.compile(r"[a-z0-9]+|_+|\S")
#: de-identification placeholders: IU X-ray's "XXXX" (lower-cased by cleaning), MIMIC's "___".
#: They stand for a redacted word, most often the noun of "no XXXX of effusion" (= "no
#: evidence of"), so scopes pass over them (see _Sentence.np_forward).
_PLACEHOLDER = re.compile(r"x{3,}|_{2,}")


def is_placeholder(word: str) -> bool:
    return _PLACEHOLDER.fullmatch(word) is not None


def _np_word(w: str) -> bool:
    """A word that can sit inside a noun phrase (placeholders included)."""
    return w[0].isalnum() or w in "-'" or w[0] == "_"


COORD = frozenset({",", "and", "or", "nor"})
# clause boundaries: nothing scopes across them
HARD = frozenset(
    '. ; : ? ! ( ) [ ] " but however although though whereas while which who whom whose where '
    "when except aside apart since because if unless then also".split()
)
PREP = frozenset(
    "of in at on with within without from to for by over under into onto along across "
    "overlying involving near than after before through throughout between about above below "
    "beneath behind via per around toward towards compared projecting including versus vs "
    "like as against upon beyond due secondary consistent compatible post".split()
)
# an item starting with one of these after a list comma opens a new clause
NEW_SUBJECT = frozenset({"the", "there", "this", "these", "it", "they", "a", "an"})
# "previously seen effusion": a participle after these adverbs is an adjective, not a verb
ADJECTIVAL = frozenset({"previously", "recently", "newly", "partially", "already"})
VERB = frozenset(
    "is are was were be been being has have had may might could would should can cannot will "
    "does do did seen noted identified demonstrated visualized appreciated present suggest "
    "suggests suggesting represent represents representing reflect reflects reflecting "
    "indicate indicates indicating persist persists persisting remain remains remained "
    "remaining appear appears appeared seem seems there that this these it they shows show "
    "showing demonstrates demonstrating measures measuring extends extending terminates "
    "terminating ends resolved cleared removed excluded exclude obscures obscured obscuring "
    "not no without possibly likely unlikely".split()
)
COPULA = frozenset(
    "is are was were be been appear appears appeared remain remains remained seem seems look looks".split()
)
ADVERB = frozenset(
    "now again otherwise also still grossly essentially overall stably relatively largely "
    "entirely likely probably completely totally currently radiographically roughly generally "
    "unchanged stable and".split()
)
AUXILIARY = COPULA | frozenset({"has", "have", "had", "being", "also"})
# words between a copula and "normal": "is within normal limits", "at the upper limits of
# normal", "top-normal", "high normal"
NORMAL_PREFIX = frozenset("within at the upper top high low limits limit of - borderline in near a on".split())
DEGREE = frozenset(
    "trace tiny minimal mild mildly small moderate moderately large severe severely marked massive medium".split()
)
# lemmas of the "stable/unchanged silhouette" uncertainty rules
HEART_WORDS = frozenset(
    "cardiomediastinal pericardial mediastinal mediastinum cardiomediastinum contour contours "
    "configuration silhouette silhouettes size heart shadow".split()
)
# Edema mentions the post-negation rules always call uncertain ("vascular congestion" ...)
INTRINSIC_UNCERTAIN = frozenset(
    ("vascular congestion", "pulmonary congestion", "indistinctness", "vascular prominence")
)


class _Sentence:
    """Tokens of one cleaned sentence and the scope helpers the cues use."""

    __slots__ = ("text", "words", "starts", "ends", "n")

    def __init__(self, text: str) -> None:
        self.text = text
        toks = list(_TOKEN.finditer(text))
        words = [m.group() for m in toks]
        # "moderate to large effusion" is one noun phrase (the parser hangs the noun under
        # "to"; negation.txt's "no moderate to XXX"): such a "to" is not a preposition here
        for k in range(1, len(words) - 1):
            if words[k] == "to" and words[k - 1] in DEGREE and words[k + 1] in DEGREE:
                words[k] = "-"
        self.words = words
        self.starts = [m.start() for m in toks]
        self.ends = [m.end() for m in toks]
        self.n = len(toks)

    def token_span(self, start: int, end: int) -> tuple[int, int]:
        """Token range [a, b) overlapping the character span [start, end)."""
        a = bisect_right(self.ends, start)
        b = bisect_left(self.starts, end)
        return a, b

    def is_np(self, i: int) -> bool:
        """Whether token i can be part of a noun phrase (a word that is no boundary)."""
        if i < 0 or i >= self.n:
            return False
        w = self.words[i]
        if w in HARD or w in VERB or w in PREP or w in COORD:
            return False
        return _np_word(w)

    # -- scopes ------------------------------------------------------------------------------
    def np_forward(self, i: int, allow_of: bool = False) -> set[int]:
        """The coordinated noun-phrase list starting at token i ("edema, effusion, or pneumonia").

        A later list item that is really a new clause ("no effusion, the heart is enlarged")
        is cut off: one that starts with a determiner or pronoun and runs into a verb.
        """
        words = self.words
        items: list[list[int]] = []
        cur: list[int] = []
        j = i
        stopped_by_verb = False
        while j < self.n:
            w = words[j]
            if w in COORD:
                if cur:
                    items.append(cur)
                    cur = []
                elif not items:
                    break  # the cue is followed directly by a coordinator: nothing to govern
                j += 1
                continue
            if w in VERB and ((j > i and words[j - 1] in ADJECTIVAL) or (j == i and w.endswith("ed"))):
                # "previously seen effusion", "no visualized consolidation": adjectives here
                cur.append(j)
                j += 1
                continue
            if w in PREP and w in ("of", "for") and j > i and is_placeholder(words[j - 1]):
                # "no XXXX of effusion": the redacted word is the head noun ("evidence",
                # "signs"), so the scope goes on into its "of"/"for" phrase as the parser's
                # "no evidence of" pattern does
                cur.append(j)
                j += 1
                continue
            if w in HARD or w in VERB or (w in PREP and not (allow_of and w in ("of", "in"))):
                stopped_by_verb = w in VERB
                break
            if not _np_word(w):
                break
            cur.append(j)
            j += 1
        if cur:
            items.append(cur)
        out: set[int] = set()
        for k, toks in enumerate(items):
            if k > 0 and k == len(items) - 1 and stopped_by_verb and words[toks[0]] in NEW_SUBJECT:
                break
            out.update(toks)
        return out

    def np_backward(self, i: int) -> set[int]:
        """The subject noun phrase(s) ending just before token i ("A, B and C are normal").

        Crosses "of" ("the size of the heart is normal"); crosses commas only in a list that
        is closed by "and"/"or" nearer the cue, or before a plural verb whose nearest subject
        is singular ("heart size, mediastinal silhouette, vascularity are normal"). If the
        scan ends on a verb or preposition, what lies beyond the last comma is an opening
        phrase ("given the rotation, X and Y are unchanged") and, with no comma, the items
        before the first coordinator belong to another clause ("there is X and the lungs are
        clear").
        """
        words = self.words
        plural_verb = i < self.n and words[i] in ("are", "were")
        items: list[list[int]] = []
        cur: list[int] = []
        seen_conj = False
        at_comma: int | None = None  # number of items nearer the cue than the last comma
        j = i - 1
        stopped = False
        while j >= 0:
            w = words[j]
            if w in COORD:
                if cur:
                    items.append(cur)
                    cur = []
                if w == ",":
                    nearest = items[0] if items else None
                    if not seen_conj and not (plural_verb and nearest and not words[nearest[0]].endswith("s")):
                        break
                    at_comma = len(items)
                else:
                    seen_conj = True
                j -= 1
                continue
            if w in VERB and j > 0 and words[j - 1] in ADJECTIVAL:
                cur.append(j)
                j -= 1
                continue
            if w in HARD or w in VERB or (w in PREP and w != "of"):
                stopped = True
                break
            if not _np_word(w):
                break
            cur.append(j)
            j -= 1
        if cur:
            items.append(cur)
        if stopped and len(items) > 1:
            items = items[: at_comma or 1]
        # "mild cardiomegaly and the lungs are clear": a bare noun phrase before "and the ..."
        # is a clause of its own, not a co-subject
        for k in range(len(items) - 1):
            if words[items[k][-1]] == "the" and words[items[k + 1][-1]] != "the":
                items = items[: k + 1]
                break
        return {t for item in items for t in item}

    def skip_auxiliaries(self, i: int) -> int:
        """Index of the first auxiliary before token i ("X | has been removed"), else i."""
        j = i - 1
        while j >= 0 and (self.words[j] in AUXILIARY or self.words[j] in ADVERB):
            j -= 1
        return j + 1

    def clause_forward(self, i: int) -> set[int]:
        j = i
        while j < self.n and self.words[j] not in HARD:
            j += 1
        return set(range(i, j))


# A cue: (regex, scope kind, restriction). Scope kinds: "fwd" (noun-phrase list after),
# "fwd_of" (same, crossing "of"), "back" (subject noun phrase(s) before), "both",
# "clause" (rest of the clause). Restriction: None, "heart" (the mention must contain one
# of HEART_WORDS inside the scope), "silhouette".
# Triggers: substrings one of which the sentence must contain for the regex to be tried at all
# (a cheap prefilter; a cue without triggers is always tried).
_Cue = tuple[re.Pattern, str, str | None, tuple[str, ...]]


def _c(pattern: str, scope: str, restrict: str | None = None, triggers: tuple[str, ...] = ()) -> _Cue:
    return (re.compile(pattern), scope, restrict, triggers)


_NOT_EXCLUDED = (
    r"\b(?:can ?not|can't|could not|couldn't|may not|might not|not)\s+(?:be\s+|been\s+|have\s+been\s+)?"
    r"(?:entirely\s+|completely\s+|totally\s+|definitely\s+|definitively\s+|fully\s+|reliably\s+)?"
    r"(?:excluded|exclude|ruled out|rule out)\b"
)

PRE_UNCERTAINTY: tuple[_Cue, ...] = (
    # cannot exclude / cannot rule out XXX; XXX is not excluded / cannot be ruled out
    _c(_NOT_EXCLUDED, "both", None, ("exclu", "rule")),
    # no new XXX; no new area of XXX
    _c(r"\bno\s+new\b", "fwd_of", None, ("new",)),
    # no evidence to rule out XXX
    _c(r"\bno evidence to rule out\b", "fwd", None, ("rule",)),
)

NEGATION: tuple[_Cue, ...] = (
    # no XXX / general negative case (+ its coordinated list: "no edema or pneumonia")
    _c(r"\bno\b", "fwd", None, ("no",)),
    # no evidence of / without evidence of / no focus of / no area of / no development of
    _c(
        r"\b(?:no|without)\s+(?:[a-z]+\s+){0,2}?(?:evidence|findings?|focus|foci|areas?|"
        r"development)\s+(?:of|for)\b(?:\s+developing\b)?",
        "fwd",
        None,
        ("evidence", "finding", "focus", "foci", "area", "development"),
    ),
    # there is no NN to suggest/explain XXX
    _c(
        r"\bno\s+(?:[a-z]+\s+){1,4}?to\s+(?:suggest|explain|diagnose)\b",
        "fwd",
        None,
        ("suggest", "explain", "diagnose"),
    ),
    _c(r"\bwithout\b", "fwd", None, ("without",)),
    # negative for / free of / clear(ing) of / resolution, removal, history, disappearance,
    # drainage of / rule out / exclude / rather than XXX
    _c(
        r"\b(?:negative for|free of|absence of|clear of|clearing of|(?:interval\s+)?resolution of|"
        r"removal of|history of|disappearance of|drainage of|(?:rule|ruled|rules|ruling) out|"
        r"exclude|excluding|rather than)\b",
        "fwd",
        None,
        (
            "negative",
            "free",
            "absence",
            "clear",
            "resolution",
            "removal",
            "history",
            "disappearance",
            "drainage",
            "out",
            "exclud",
            "rather",
        ),
    ),
    # XXX is not enlarged / not seen ... (see the module docstring for "not seen")
    _c(
        r"\bnot\s+(?:(?!clearly|well)[a-z]+ly\s+)?(?:enlarged|seen|identified|demonstrated|present|noted|evident|apparent|"
        r"visible|detected|widened|dilated|increased)\b",
        "back",
        None,
        ("not",),
    ),
    # XXX is no longer seen
    _c(
        r"\bno\s+longer\s+(?:[a-z]+\s+)?(?:seen|visualized|visible|present|identified|evident|"
        r"apparent|demonstrated|noted|appreciated)\b",
        "back",
        None,
        ("longer",),
    ),
    # XXX has resolved / has cleared; XXX cleared
    _c(r"\b(?:has|have|had)\s+(?:[a-z]+\s+){0,2}?(?:resolved|cleared)\b", "back", None, ("resolved", "cleared")),
    _c(r"\bcleared\b", "back", None, ("cleared",)),
    # XXX removed / absent / excluded
    _c(r"\b(?:removed|absent|excluded)\b", "back", None, ("removed", "absent", "excluded")),
    # XXX is clear
    _c(r"\b(?:is|are|was|were|remains?|remained|appears?)\s+(?:[a-z]+\s+)?clear\b", "back", None, ("clear",)),
    # obscuring the cardiac silhouette (the silhouette rule of negation.txt)
    _c(r"\bobscur[a-z]*\b", "fwd", "silhouette", ("obscur",)),
)

POST_UNCERTAINTY: tuple[_Cue, ...] = (
    # possible / probable / questionable / suspect(ed) / suspicious for / question of ...
    _c(
        r"\b(?:possible|probable|questionable|suspicious(?:\s+for)?|suspected|suspect|"
        r"presumably|question(?:\s+of)?|suggestion\s+of|suspicion\s+(?:for|of)|concern\s+for|"
        r"concerning\s+for|worrisome\s+for|favor|favored|favoring|consider|considered|maybe|"
        r"secondary\s+to|differential\s+(?:diagnosis\s+)?(?:includes?|including|of)|"
        r"(?:be|is|are|was|were|may|could|would)\s+(?:also\s+)?compatible\s+with|"
        r"correlat[a-z]*\s+(?:clinically\s+)?for(?:\s+(?:evidence|signs?|symptoms?)\s+of)?)\b",
        "fwd",
        None,
        (
            "possib",
            "probab",
            "question",
            "suspic",
            "suspect",
            "presum",
            "suggestion",
            "concern",
            "worrisome",
            "favor",
            "consider",
            "maybe",
            "secondary",
            "differential",
            "compatible",
            "correlat",
        ),
    ),
    # XXX versus YYY; XXX or YYY; XXX is less likely
    _c(r"\b(?:versus|vs|or)\b", "both", None, ("or", "vs", "versus")),
    _c(r"\bless\s+likely\b", "both", None, ("less",)),
    # may/might/could/would/can represent, reflect, be due to ...; possibly reflecting XXX
    _c(
        r"\b(?:may|might|could|would|can|possibly)\b",
        "clause",
        None,
        ("may", "might", "could", "would", "can", "possibly"),
    ),
    # XXX may/might/could (also) have this appearance
    _c(
        r"\b(?:may|might|could)\s+(?:also\s+)?have\s+(?:this|a\s+similar|similar)\s+appearance\b",
        "back",
        None,
        ("appearance",),
    ),
    # XXX may be present / could appear
    _c(
        r"\b(?:may|might|could|can|possibly)\s+(?:also\s+)?(?:be\s+)?(?:present|appear)\b",
        "back",
        None,
        ("present", "appear"),
    ),
    # XXX is suspected / questionable / poorly evaluated / not well visualized / obscured ...
    _c(
        r"\b(?:(?:is|are|was|were|be|been)\s+(?:also\s+)?(?:suspected|questioned|possible|"
        r"questionable|obscured)|suspected(?=\s*(?:[.;,]|$))|"
        r"(?:poorly|incompletely)\s+(?:seen|visualized|evaluated|assessed)|"
        r"not\s+(?:well\s+|clearly\s+)(?:seen|visualized|evaluated|assessed)|"
        r"not\s+(?:visualized|evaluated|appreciated|assessed))\b",
        "back",
        None,
        ("suspected", "questioned", "possible", "questionable", "obscured", "poorly", "incompletely", "not"),
    ),
    # obscuring the XXX
    _c(r"\bobscur[a-z]*\b", "fwd", None, ("obscur",)),
    # borderline heart size
    _c(r"\bborderline\b", "fwd", "heart", ("borderline",)),
    # no change in the cardiac silhouette
    _c(r"\bno\s+(?:[a-z]+\s+)?change\s+(?:in|of)\b", "fwd_of", "heart", ("change",)),
    # heart size is similar to prior; cardiac silhouette has not changed
    _c(r"\b(?:similar\s+to|(?:has|have)\s+not\s+(?:[a-z]+\s+)?changed)\b", "back", "heart", ("similar", "changed")),
)


def _adjective_cue(s: _Sentence, k: int, allow_of: bool = True) -> tuple[set[int], set[int]]:
    """Scopes of a predicate/attributive adjective at token k ("normal", "stable").

    Attributive ("normal heart size", "stable appearance of the silhouette") governs the
    phrase after it; predicative ("heart size is normal", "heart size normal", "within
    normal limits", "at the upper limits of normal") governs the subject before it.
    """
    j = k - 1
    copula = False
    while j >= 0:
        w = s.words[j]
        if w in COPULA:
            copula = True
            j -= 1
            continue
        if w in NORMAL_PREFIX or w in ADVERB:
            j -= 1
            continue
        break
    nxt = k + 1
    if nxt < s.n and s.words[nxt] == "limits":
        nxt += 1
    forward = s.np_forward(nxt, allow_of=allow_of) if s.is_np(nxt) else set()
    if nxt < s.n and s.words[nxt] in ("in", "for") and allow_of:
        forward = s.np_forward(nxt + 1)  # "normal in size and contour"
    backward = s.np_backward(j + 1) if (copula or not s.is_np(nxt)) else set()
    return forward, backward


class _Scopes:
    """The cue scopes of one sentence, each class computed on first need (most mentions are
    settled by the first class that governs them, so later classes are often never built)."""

    __slots__ = ("s", "_pre", "_neg", "_post")

    def __init__(self, s: _Sentence) -> None:
        self.s = s
        self._pre: list[tuple[set[int], str | None]] | None = None
        self._neg: list[tuple[set[int], str | None]] | None = None
        self._post: list[tuple[set[int], str | None]] | None = None

    @property
    def pre(self) -> list[tuple[set[int], str | None]]:
        if self._pre is None:
            self._pre = self._collect(self.s, PRE_UNCERTAINTY)
        return self._pre

    @property
    def neg(self) -> list[tuple[set[int], str | None]]:
        if self._neg is None:
            s = self.s
            self._neg = self._collect(s, NEGATION)
            for k, w in enumerate(s.words):
                if w == "normal" or w == "unremarkable":
                    f, b = _adjective_cue(s, k)
                    self._neg.append((f | b, None))
        return self._neg

    @property
    def post(self) -> list[tuple[set[int], str | None]]:
        if self._post is None:
            s = self.s
            self._post = self._collect(s, POST_UNCERTAINTY)
            for k, w in enumerate(s.words):
                if w == "stable" or w == "unchanged":
                    # "stable appearance of the silhouette" crosses "of"; "stable prominence of
                    # the cardiac silhouette" does not (the pattern needs the silhouette itself)
                    f, b = _adjective_cue(s, k, allow_of=k + 1 < s.n and s.words[k + 1] == "appearance")
                    self._post.append((f | b, "heart"))
        return self._post

    @staticmethod
    def _collect(s: _Sentence, cues: Sequence[_Cue]) -> list[tuple[set[int], str | None]]:
        out = []
        text = s.text
        for regex, kind, restrict, triggers in cues:
            if triggers and not any(t in text for t in triggers):
                continue
            for m in regex.finditer(text):
                a, b = s.token_span(m.start(), m.end())
                if kind == "fwd":
                    scope = s.np_forward(b)
                elif kind == "fwd_of":
                    scope = s.np_forward(b, allow_of=True)
                elif kind == "back":
                    scope = s.np_backward(s.skip_auxiliaries(a))
                elif kind == "both":
                    scope = s.np_backward(s.skip_auxiliaries(a)) | s.np_forward(b)
                else:  # clause
                    scope = s.clause_forward(b)
                if scope:
                    out.append((scope, restrict))
        return out


def _governed(mention: range, words: list[str], scopes: list[tuple[set[int], str | None]]) -> bool:
    for scope, restrict in scopes:
        hit = [t for t in mention if t in scope]
        if not hit:
            continue
        if restrict is None:
            return True
        if restrict == "heart" and any(words[t] in HEART_WORDS for t in hit):
            return True
        if restrict == "silhouette" and any(words[t].startswith("silhouette") for t in hit):
            return True
    return False


def _classify(s: _Sentence, scopes: _Scopes, start: int, end: int, text: str) -> int:
    a, b = s.token_span(start, end)
    mention = range(a, b)
    if _governed(mention, s.words, scopes.pre):
        return UNC
    if _governed(mention, s.words, scopes.neg):
        return NEG
    if text in INTRINSIC_UNCERTAIN or _governed(mention, s.words, scopes.post):
        return UNC
    return POS


# ---------------------------------------------------------------------------------------------
# 4./5. the labeler
# ---------------------------------------------------------------------------------------------
def _aggregate(labels: list[int]) -> float:
    distinct = set(labels)
    if len(distinct) == 1:
        return float(labels[0])
    if POS in distinct:
        return 1.0
    return -1.0  # {negative, uncertain}


class RuleLabeler:
    """CheXpert-style labels from report text; same contract as ``CheXbertLabeler``.

    ``label(texts)`` returns an ``(n, 14)`` float64 array in CHEXPERT_OBSERVATIONS order:
    1.0 positive, 0.0 negative, -1.0 uncertain, NaN not mentioned.
    """

    name = "chexpert-rules"

    def __init__(self) -> None:
        self._phrases = _phrases()
        observations = [o for o in self._phrases.mention]  # includes "No Finding" extras
        self._observations = observations
        self._cache = lru_cache(maxsize=1 << 16)(self._label_one)
        # sentences repeat across reports ("No pneumothorax."): label each distinct one once
        self._sentences = lru_cache(maxsize=1 << 17)(self._sentence_labels)

    def settings(self) -> dict[str, Any]:
        return {"labeler": self.name, "phrases": PHRASES_SOURCE, "rules": RULES_VERSION}

    def label(self, texts: Sequence[str], *, cache: bool = True) -> np.ndarray:
        """``(n, 14)`` labels; ``cache=False`` labels without remembering (one-off texts)."""
        if isinstance(texts, str):
            raise InputError("RuleLabeler.label takes a list of reports, not one string")
        out = np.full((len(texts), len(CHEXPERT_OBSERVATIONS)), np.nan)
        one = self._cache if cache else self._label_one
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise InputError(f"report {i}: expected a string, got {type(text).__name__}")
            out[i] = one(text)
        return out

    # -- one report ------------------------------------------------------------------------
    def _mentions(self, sent: str) -> list[tuple[str, int, int, str]]:
        found = []
        ph = self._phrases
        for obs in self._observations:
            if ph.literal and not ph.any_mention[obs].search(sent):
                continue
            spans = []
            for phrase in ph.mention[obs]:
                if phrase in sent:
                    spans.extend(
                        _find_all(sent, phrase) if ph.literal else [m.span() for m in re.finditer(phrase, sent)]
                    )
            if not spans:
                continue
            blocks = []
            for un in ph.unmention.get(obs, ()):
                if un in sent:
                    blocks.extend(_find_all(sent, un) if ph.literal else [m.span() for m in re.finditer(un, sent)])
            for start, end in spans:
                if any(start < ue and end > us for us, ue in blocks):
                    continue
                found.append((obs, start, end, sent[start:end]))
        return found

    def _sentence_labels(self, sent_text: str) -> tuple[tuple[str, int, str], ...]:
        """(observation, label, matched text) of every mention in one cleaned sentence."""
        mentions = self._mentions(sent_text)
        if not mentions:
            return ()
        s = _Sentence(sent_text)
        scopes = _Scopes(s)
        return tuple((obs, _classify(s, scopes, start, end, text), text) for obs, start, end, text in mentions)

    def _label_one(self, report: str) -> tuple[float, ...]:
        per_obs: dict[str, list[int]] = {}
        no_finding = True
        for sent_text in sentences(clean(report)):
            for obs, label, text in self._sentences(sent_text):
                if obs != SUPPORT_DEVICES and label != NEG:
                    no_finding = False
                if obs == NO_FINDING:
                    continue  # its phrases only block No Finding
                if label != NEG and text in ("chf", "heart failure"):
                    per_obs.setdefault(CARDIOMEGALY, []).append(UNC)
                per_obs.setdefault(obs, []).append(label)
        row = [float("nan")] * len(CHEXPERT_OBSERVATIONS)
        for obs, labels in per_obs.items():
            row[OBSERVATION_INDEX[obs]] = _aggregate(labels)
        if no_finding:
            row[OBSERVATION_INDEX[NO_FINDING]] = 1.0
        return tuple(row)


@lru_cache(maxsize=1)
def _phrases() -> _Phrases:
    return _Phrases()


def label_reports(texts: Sequence[str]) -> np.ndarray:
    """Convenience: label reports with a shared :class:`RuleLabeler`."""
    return _default_labeler().label(texts)


@lru_cache(maxsize=1)
def _default_labeler() -> RuleLabeler:
    return RuleLabeler()
