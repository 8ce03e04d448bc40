"""Controlled, deterministic perturbations of reference reports, each with its expected effect.

Three families:
* ``paraphrase``: meaning-preserving rewrites — a good metric should barely move;
* ``error``: one clinically significant error — a good metric should drop below the paraphrases;
* ``degenerate``: outputs a policy can learn to exploit — a robust reward pays little for them.

Every perturbation is a function ``(report, rng) -> str | None``; ``None`` means "does not
apply to this report" (e.g. a laterality swap on a report without left/right), and the
benchmark records that instead of scoring an unchanged copy. All randomness comes from the
``random.Random`` passed in, seeded per (seed, kind, report), so results are reproducible.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass

Perturb = Callable[[str, random.Random], "str | None"]

NORMAL_TEMPLATE = "No acute cardiopulmonary process. Heart size is normal. The lungs are clear. No pleural effusion or pneumothorax."
DEFAULT_PROMPT = "Describe the findings of this chest X-ray. Write the report inside <report></report> tags."
JUNK = " ".join(["the", "of", "and", "is", "no", "with", "seen", "in"] * 8)

_SENT = re.compile(r"(?<=[.!?])\s+")


def sentences(text: str) -> list[str]:
    return [s for s in _SENT.split(text.strip()) if s]


def _swap_words(text: str, pairs: list[tuple[str, str]], rng: random.Random, one_sentence: bool = True) -> str | None:
    """Swap each word of a pair with the other (case kept), within one sentence that has any."""
    table = {}
    for a, b in pairs:
        table[a] = b
        table[b] = a
    pattern = re.compile(r"\b(" + "|".join(sorted(map(re.escape, table), key=len, reverse=True)) + r")\b", re.I)
    sents = sentences(text)
    hits = [i for i, s in enumerate(sents) if pattern.search(s)]
    if not hits:
        return None
    targets = [rng.choice(hits)] if one_sentence else hits

    def repl(m: re.Match) -> str:
        word = m.group(0)
        new = table[word.lower()]
        return new[0].upper() + new[1:] if word[0].isupper() else new

    for i in targets:
        sents[i] = pattern.sub(repl, sents[i])
    return " ".join(sents)


# ----- paraphrases -------------------------------------------------------------------------
_SYNONYMS = [
    ("cardiomegaly", "enlarged cardiac silhouette"),
    ("heart size is normal", "the cardiac silhouette is normal in size"),
    ("the lungs are clear", "the lungs are well aerated and clear"),
    ("no acute cardiopulmonary process", "no acute cardiopulmonary abnormality"),
    ("pleural effusion", "pleural fluid collection"),
    ("pleural effusions", "pleural fluid collections"),
    ("pulmonary edema", "pulmonary oedema"),
    ("opacity", "opacification"),
    ("compared to the prior study", "in comparison with the previous examination"),
    ("since the prior study", "since the previous examination"),
]


def synonym_swap(text: str, rng: random.Random) -> str | None:
    low = text.lower()
    usable = [(a, b) for a, b in _SYNONYMS if a in low]
    if not usable:
        return None
    a, b = rng.choice(usable)
    return re.sub(re.escape(a), lambda m: b if m.group(0)[0].islower() else b[0].upper() + b[1:], text, flags=re.I)


def sentence_reorder(text: str, rng: random.Random) -> str | None:
    sents = sentences(text)
    if len(sents) < 2:
        return None
    order = list(range(len(sents)))
    while order == sorted(order):
        rng.shuffle(order)
    return " ".join(sents[i] for i in order)


def format_numbering(text: str, rng: random.Random) -> str | None:
    sents = sentences(text)
    if len(sents) < 2:
        return None
    return " ".join(f"{i + 1}. {s}" for i, s in enumerate(sents))


def format_case(text: str, rng: random.Random) -> str | None:
    return text.upper() if rng.random() < 0.5 else text.lower()


def format_spacing(text: str, rng: random.Random) -> str | None:
    return "\n".join(sentences(text)).replace(" ", "  ") + "\n"


# ----- clinically significant errors --------------------------------------------------------
def negation_flip(text: str, rng: random.Random) -> str | None:
    sents = sentences(text)
    negated = [i for i, s in enumerate(sents) if re.match(r"(?i)no (?!acute)", s)]
    positive = [i for i, s in enumerate(sents) if not re.search(r"(?i)\bno\b|normal|clear|unchanged|stable", s)]
    if negated and (not positive or rng.random() < 0.5):
        i = rng.choice(negated)
        body = re.sub(r"(?i)^no (evidence of )?", "", sents[i]).rstrip(".")
        sents[i] = f"There is {body}."
    elif positive:
        i = rng.choice(positive)
        body = sents[i].rstrip(".")
        sents[i] = f"No {body[0].lower() + body[1:]}."
    else:
        return None
    return " ".join(sents)


def laterality_swap(text: str, rng: random.Random) -> str | None:
    return _swap_words(text, [("left", "right")], rng)


def severity_change(text: str, rng: random.Random) -> str | None:
    return _swap_words(text, [("mild", "severe"), ("small", "large"), ("minimal", "marked")], rng) or _replace_word(
        text, "moderate", "severe"
    )


def _replace_word(text: str, old: str, new: str) -> str | None:
    pat = re.compile(rf"\b{old}\b", re.I)
    if not pat.search(text):
        return None
    return pat.sub(lambda m: new if m.group(0)[0].islower() else new.capitalize(), text, count=1)


_FINDING = re.compile(
    r"(?i)cardiomegaly|effusion|pneumothorax|consolidation|opacit|edema|atelectasis|nodule|mass|pneumonia|fracture|tube|catheter|pacemaker"
)


def omit_finding(text: str, rng: random.Random) -> str | None:
    sents = sentences(text)
    positive = [i for i, s in enumerate(sents) if _FINDING.search(s) and not re.match(r"(?i)no\b", s)]
    if len(sents) < 2 or not positive:
        return None
    drop = rng.choice(positive)
    return " ".join(s for i, s in enumerate(sents) if i != drop)


_HALLUCINATIONS = [
    ("pneumothorax", "There is a large right pneumothorax."),
    ("effusion", "Moderate left pleural effusion."),
    ("consolidation", "New right lower lobe consolidation."),
    ("cardiomegaly", "Severe cardiomegaly."),
    ("nodule", "A 3 cm nodule in the left upper lobe."),
]


def hallucinate_finding(text: str, rng: random.Random) -> str | None:
    low = text.lower()
    usable = [s for key, s in _HALLUCINATIONS if key not in low]
    if not usable:
        return None
    sents = sentences(text)
    sents.insert(rng.randrange(len(sents) + 1), rng.choice(usable))
    return " ".join(sents)


def wrong_location(text: str, rng: random.Random) -> str | None:
    return _swap_words(text, [("upper", "lower"), ("apical", "basilar"), ("apex", "base")], rng)


def wrong_temporal(text: str, rng: random.Random) -> str | None:
    return _swap_words(
        text, [("new", "unchanged"), ("increased", "decreased"), ("improvement", "worsening"), ("worsened", "improved")], rng
    ) or _replace_word(text, "stable", "new")


def wrong_size(text: str, rng: random.Random) -> str | None:
    pat = re.compile(r"\b(\d+(?:\.\d+)?)\s?(cm|mm)\b")
    m = pat.search(text)
    if not m:
        return None
    value = float(m.group(1)) * 3
    new = f"{value:g} {m.group(2)}"
    return text[: m.start()] + new + text[m.end() :]


# ----- degenerate outputs -------------------------------------------------------------------
def empty(text: str, rng: random.Random) -> str | None:
    return ""


def normal_template(text: str, rng: random.Random) -> str | None:
    return NORMAL_TEMPLATE


def repeated_sentences(text: str, rng: random.Random) -> str | None:
    first = sentences(text)[0]
    return " ".join([first] * 6)


def reference_plus_junk(text: str, rng: random.Random) -> str | None:
    return f"{text} {JUNK}"


def very_long(text: str, rng: random.Random) -> str | None:
    return " ".join([text] * 12)


def prompt_echo(text: str, rng: random.Random) -> str | None:
    return DEFAULT_PROMPT


# tag variants are handled by the benchmark (they change the wrapping, not the text)
MISSING_TAGS = "missing_tags"
BROKEN_TAGS = "broken_tags"


@dataclass(frozen=True)
class Kind:
    name: str
    family: str  # paraphrase | error | degenerate
    fn: Perturb | None
    effect: str  # expected clinical effect, for the report


KINDS: tuple[Kind, ...] = (
    Kind("synonym_swap", "paraphrase", synonym_swap, "same findings, equivalent wording"),
    Kind("sentence_reorder", "paraphrase", sentence_reorder, "same findings, other order"),
    Kind("format_numbering", "paraphrase", format_numbering, "same text as a numbered list"),
    Kind("format_case", "paraphrase", format_case, "same text in upper or lower case"),
    Kind("format_spacing", "paraphrase", format_spacing, "same text, one sentence per line, double spaces"),
    Kind("negation_flip", "error", negation_flip, "a finding's presence is inverted"),
    Kind("laterality_swap", "error", laterality_swap, "left and right swapped in one sentence"),
    Kind("severity_change", "error", severity_change, "mild/small/minimal swapped with severe/large/marked"),
    Kind("omit_finding", "error", omit_finding, "one positive finding dropped"),
    Kind("hallucinate_finding", "error", hallucinate_finding, "a finding absent from the image added"),
    Kind("wrong_location", "error", wrong_location, "upper/lower, apical/basilar swapped"),
    Kind("wrong_temporal", "error", wrong_temporal, "new/unchanged, increased/decreased swapped"),
    Kind("wrong_size", "error", wrong_size, "a measurement tripled"),
    Kind("empty", "degenerate", empty, "nothing written"),
    Kind("normal_template", "degenerate", normal_template, "a fixed 'normal' report"),
    Kind("repeated_sentences", "degenerate", repeated_sentences, "the first sentence six times"),
    Kind("reference_plus_junk", "degenerate", reference_plus_junk, "the reference with function words appended"),
    Kind("very_long", "degenerate", very_long, "the reference repeated twelve times"),
    Kind("prompt_echo", "degenerate", prompt_echo, "the instruction echoed back"),
    Kind(MISSING_TAGS, "degenerate", None, "a paraphrase (sentences reordered) without <report> tags"),
    Kind(BROKEN_TAGS, "degenerate", None, "a paraphrase (sentences reordered) with an unclosed <report> tag"),
)
KIND_BY_NAME = {k.name: k for k in KINDS}


def rng_for(seed: int, kind: str, index: int) -> random.Random:
    return random.Random(f"{seed}|{kind}|{index}")


def wrap(kind: str, text: str) -> str:
    """The completion a policy would emit: tagged, except for the tag-hack kinds."""
    if kind == MISSING_TAGS:
        return text
    if kind == BROKEN_TAGS:
        return f"<report>{text}"
    return f"<report>{text}</report>"


def perturb(kind: str, report: str, *, seed: int = 0, index: int = 0) -> str | None:
    """The text of one perturbation (unwrapped); None where it does not apply."""
    k = KIND_BY_NAME[kind]
    if k.fn is None:
        # the tag hacks carry a paraphrase, so their exposure isolates the tags' effect
        # (the unperturbed reference would score above every paraphrase for that reason alone)
        rng = rng_for(seed, "sentence_reorder", index)
        return sentence_reorder(report, rng) or format_spacing(report, rng)
    out = k.fn(report, rng_for(seed, kind, index))
    if out is not None and k.family != "degenerate" and out == report:
        return None  # a rewrite that changed nothing is not that perturbation
    return out
