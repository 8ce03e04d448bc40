"""Seeded generator of varied, realistic chest X-ray report pairs (prediction, reference).

Parity tests and benchmarks need text that exercises every corner of the tokenisers and
metrics: negations, laterality, sizes, numbered impressions ("1. ... 2. ..."), section
headers, newlines (also Windows ``\\r\\n``), mixed case, punctuation runs (".." "..." "___"),
quotes and slashes, parentheses, empty and whitespace-only predictions, one-word and very
long reports, and a few non-ASCII characters (degree sign, en dash, multiplication sign,
accented words). Predictions are realistic *perturbations* of their reference (dropped,
reordered, negation-flipped, side-swapped, re-styled sentences) plus some unrelated reports,
so scores spread over the whole [0, 1] range.

Usage::

    from tests.report_corpus import report_pairs
    pairs = report_pairs(500, seed=0)   # list of (prediction, reference)

The same (n, seed) always gives the same pairs; the first ``n`` pairs of a larger ``n`` are
the same as those of a smaller one (each pair has its own seeded generator).
"""

from __future__ import annotations

import random

__all__ = ["report_pairs", "report_text"]

SIDES = ("left", "right")
SIDE_WORDS = (
    "left",
    "right",
    "bilateral",
    "left basilar",
    "right basilar",
    "left apical",
    "right upper lobe",
    "left lower lobe",
    "right middle lobe",
    "lingular",
)
SIZES = ("small", "moderate", "large", "trace", "tiny", "moderate-sized", "minimal")
DEGREES = ("mild", "moderate", "severe", "mild to moderate", "minimal", "subtle")
TIMES = (
    "___",
    "__ __",
    "the prior study",
    "the previous radiograph",
    "___ at 08:15",
    "radiograph from ___",
    "CT from 2019",
    "chest x-ray of ___",
)

# Each entry: (normal phrasing options, abnormal phrasing templates). Templates take
# {side} {size} {deg} {cm} {mm} {time} fields.
FINDINGS: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (
        (
            "The heart size is normal.",
            "Heart size is within normal limits.",
            "Cardiomediastinal silhouette is normal.",
            "The cardiac silhouette is not enlarged.",
            "Normal heart size.",
            "Heart size and mediastinal contours are normal.",
        ),
        (
            "The heart is {deg}ly enlarged.",
            "There is {deg} cardiomegaly.",
            "Cardiomegaly, {deg}, unchanged from {time}.",
            "Heart size is top-normal to {deg}ly enlarged.",
            "Stable {deg} enlargement of the cardiac silhouette.",
        ),
    ),
    (
        (
            "No pleural effusion.",
            "There is no pleural effusion.",
            "No effusion.",
            "No pleural effusion or pneumothorax.",
            "Costophrenic angles are sharp.",
        ),
        (
            "There is a {size} {side} pleural effusion.",
            "{Size} {side} pleural effusion.",
            "{Size} bilateral pleural effusions, {side} greater than {other}.",
            "Blunting of the {side} costophrenic angle, likely a {size} effusion.",
            "{Size} {side} effusion has increased since {time}.",
        ),
    ),
    (
        ("No pneumothorax.", "There is no pneumothorax.", "No evidence of pneumothorax.", "No PTX."),
        (
            "There is a {size} {side} apical pneumothorax.",
            "{Size} {side} pneumothorax, measuring {cm} cm.",
            "Interval increase in the {side} pneumothorax.",
            "A {size} {side}-sided pneumothorax is seen (approximately {mm} mm).",
        ),
    ),
    (
        (
            "The lungs are clear.",
            "Lungs are clear bilaterally.",
            "No focal consolidation.",
            "There is no focal consolidation, effusion, or pneumothorax.",
            "No focal airspace disease.",
            "Lungs are well expanded and clear.",
        ),
        (
            "There is {side} airspace opacity, concerning for pneumonia.",
            "Patchy {side} opacity may reflect atelectasis or pneumonia.",
            "Focal consolidation in the {side}, compatible with pneumonia.",
            "Streaky {side} opacities likely reflect atelectasis.",
            "{Deg} {side} atelectasis.",
        ),
    ),
    (
        ("No pulmonary edema.", "There is no pulmonary vascular congestion.", "Pulmonary vasculature is normal."),
        (
            "There is {deg} pulmonary edema.",
            "{Deg} pulmonary vascular congestion.",
            "Interstitial edema has worsened since {time}.",
            "Findings are consistent with {deg} congestive heart failure.",
        ),
    ),
    (
        (
            "No acute osseous abnormality.",
            "The osseous structures are intact.",
            "No displaced rib fractures.",
            "Bony structures are unremarkable.",
        ),
        (
            "Degenerative changes of the thoracic spine.",
            "Old healed {side} rib fractures.",
            "There is a displaced fracture of the {side} {nth} rib.",
            "Multilevel degenerative disc disease, {deg}.",
            "Osteopenia.",
        ),
    ),
    (
        (
            "The mediastinum is not widened.",
            "Hilar contours are normal.",
            "Mediastinal and hilar contours are unremarkable.",
        ),
        (
            "The {side} hilum is enlarged.",
            "Mediastinal widening, {deg}.",
            "Calcified {side} hilar lymph nodes.",
            "Tortuous, calcified aorta.",
        ),
    ),
    (
        (),
        (
            "An endotracheal tube terminates {cm} cm above the carina.",
            "Right IJ central venous catheter tip in the mid SVC.",
            "A {side} PICC line ends in the cavoatrial junction.",
            "Nasogastric tube courses below the diaphragm; tip is not seen.",
            "Left-sided pacemaker/ICD with leads in the right atrium and ventricle.",
            "Sternotomy wires and mediastinal clips are intact.",
            "Enteric tube tip in the stomach.",
            "Tubes/lines are unchanged in position.",
        ),
    ),
    (
        (),
        (
            "A {mm} mm nodule projects over the {side} lung.",
            "Nodular opacity in the {side}, {cm} x {cm2} cm, recommend CT.",
            "{Size} calcified granuloma in the {side}.",
            "Mass in the {side} measuring {cm} × {cm2} cm.",
            "Emphysematous changes with hyperinflation.",
        ),
    ),
    (
        ("No free air under the diaphragm.", "Upper abdomen is unremarkable."),
        (
            "Elevation of the {side} hemidiaphragm.",
            "Free air is seen under the {side} hemidiaphragm.",
            "Hiatal hernia.",
            "Surgical clips in the right upper quadrant.",
        ),
    ),
)

IMPRESSIONS_NORMAL = (
    "No acute cardiopulmonary process.",
    "No acute cardiopulmonary abnormality.",
    "Normal chest radiograph.",
    "No acute intrathoracic process.",
    "No radiographic evidence of acute disease.",
)
HEADERS = (
    ("FINDINGS:", "IMPRESSION:"),
    ("Findings:", "Impression:"),
    ("findings:", "impression:"),
    ("FINDINGS", "IMPRESSION"),
    ("", ""),
    ("", ""),
    ("", "Impression:"),
)
COMPARISONS = (
    "COMPARISON: ___.",
    "Comparison: Chest radiograph ___.",
    "Comparison: None.",
    "Comparison is made to {time}.",
    "",
)
TECHNIQUES = (
    "PA and lateral views of the chest.",
    "AP portable upright view of the chest.",
    "Single frontal view of the chest.",
    "AP/PA and lateral chest radiographs.",
    "Portable semi-erect AP view.",
    "",
)
NTH = ("4th", "5th", "sixth", "7th", "eighth", "9th")
NON_ASCII = ("°", "–", "×", "é", "µ", "≥", "’", "“", "”")
UNUSUAL = (
    "Patient rotated; limited evaluation.",
    "Low lung volumes..",
    "Exam limited by motion...",
    "Slight improvement (compared with 'prior').",
    'Stable "ground-glass" opacity.',
    "Heart: normal; lungs: clear!",
    "?? effusion",
    "Dr. ___ was notified at 10:30 a.m. on ___ by phone.",
    "ET tube -- repositioned.",
    "Lines/tubes: no change\\",
    "Lungs hyper-expanded; flattened diaphragms (COPD)",
    "Café-au-lait? No, cardiac silhouette ≥ normal at 45° rotation.",
    "Status post CABG. Median sternotomy.",
    "NO ACUTE FINDINGS.",
    "…",
    "Bibasilar atelectasis {deg}, not significantly changed.",
    "a | b findings",
    "Findings: n/a",
    "10 mm ^ 2 & 5% {change}",
    "",
    "s/p L lobectomy; R lung clear",
)


def _fill(template: str, rng: random.Random) -> str:
    side = rng.choice(SIDE_WORDS)
    size = rng.choice(SIZES)
    deg = rng.choice(DEGREES)
    other = "right" if side.startswith("left") else "left"
    fields = {
        "side": side,
        "other": other,
        "size": size,
        "Size": size.capitalize(),
        "deg": deg,
        "Deg": deg.capitalize(),
        "time": rng.choice(TIMES),
        "cm": f"{rng.randint(1, 9)}.{rng.randint(0, 9)}",
        "cm2": str(rng.randint(1, 6)),
        "mm": str(rng.randint(2, 30)),
        "nth": rng.choice(NTH),
        "change": "",
    }
    return template.format(**fields)


def _sentences(rng: random.Random, abnormal_rate: float) -> list[tuple[int, bool, str]]:
    """(finding index, abnormal?, sentence) for a random subset of findings, in report order."""
    out = []
    for i, (normals, abnormals) in enumerate(FINDINGS):
        if rng.random() < 0.25:
            continue
        abnormal = (not normals) or rng.random() < abnormal_rate
        if abnormal and abnormals:
            if not normals and rng.random() < 0.5:
                continue  # devices / nodules only sometimes present
            out.append((i, True, _fill(rng.choice(abnormals), rng)))
        elif normals:
            out.append((i, False, rng.choice(normals)))
    return out


def _numbered(items: list[str], rng: random.Random) -> str:
    sep = rng.choice((" ", "\n", "  ", "\n\n"))
    return sep.join(f"{k}. {s}" for k, s in enumerate(items, 1))


def _assemble(sents: list[str], impression: list[str], rng: random.Random, style: dict) -> str:
    h_find, h_imp = style["headers"]
    nl = style["nl"]
    parts = []
    if style["comparison"]:
        parts.append(_fill(style["comparison"], rng))
    if style["technique"]:
        parts.append(style["technique"])
    body = style["joiner"].join(sents)
    parts.append(f"{h_find} {body}".strip() if h_find else body)
    if impression:
        imp = _numbered(impression, rng) if style["numbered"] and len(impression) > 1 else " ".join(impression)
        parts.append(f"{h_imp} {imp}".strip() if h_imp else imp)
    text = nl.join(p for p in parts if p)
    return _restyle(text, rng, style)


def _restyle(text: str, rng: random.Random, style: dict) -> str:
    case = style["case"]
    if case == "upper":
        text = text.upper()
    elif case == "lower":
        text = text.lower()
    elif case == "nopunct":
        text = "".join(ch for ch in text.lower() if ch not in ".,;:()")
    if style["dots"]:
        text = text.replace(". ", rng.choice(("..", "... ", ". . ", "..  ")), 1)
    if style["unusual"]:
        text = text + rng.choice((" ", "\n", "  ")) + _fill(rng.choice(UNUSUAL), rng)
    if style["non_ascii"]:
        words = text.split(" ")
        k = rng.randrange(len(words))
        words[k] = words[k] + rng.choice(NON_ASCII)
        text = " ".join(words)
    if style["crlf"]:
        text = text.replace("\n", "\r\n")
    if style["pad"]:
        text = rng.choice(("  ", "\n", " \t")) + text + rng.choice(("  ", "\n", ""))
    return text


def _style(rng: random.Random) -> dict:
    return {
        "headers": rng.choice(HEADERS),
        "nl": rng.choice(("\n", " ", "\n\n", " \n ")),
        "joiner": rng.choice((" ", " ", "  ", "\n", " ")),
        "comparison": rng.choice(COMPARISONS) if rng.random() < 0.4 else "",
        "technique": rng.choice(TECHNIQUES) if rng.random() < 0.3 else "",
        "numbered": rng.random() < 0.5,
        "case": rng.choices(("as-is", "upper", "lower", "nopunct"), (0.75, 0.07, 0.12, 0.06))[0],
        "dots": rng.random() < 0.12,
        "unusual": rng.random() < 0.2,
        "non_ascii": rng.random() < 0.06,
        "crlf": rng.random() < 0.04,
        "pad": rng.random() < 0.08,
    }


def _impression(found: list[tuple[int, bool, str]], rng: random.Random) -> list[str]:
    abn = [s for _, a, s in found if a]
    if not abn:
        return [rng.choice(IMPRESSIONS_NORMAL)]
    picks = rng.sample(abn, k=min(len(abn), rng.randint(1, 4)))
    return [p.split(",")[0].rstrip(".") + "." for p in picks]


def _flip_negation(sentence: str, rng: random.Random) -> str:
    if sentence.lower().startswith("no "):
        return sentence[3:4].upper() + sentence[4:].replace(".", " is present.", 1)
    if sentence.lower().startswith("there is no "):
        return "There is a " + sentence[12:]
    if sentence.lower().startswith("there is a"):
        return "There is no " + sentence[11:]
    return "No " + sentence[0].lower() + sentence[1:]


def _swap_side(sentence: str) -> str:
    if "left" in sentence:
        return sentence.replace("left", "right")
    if "right" in sentence:
        return sentence.replace("right", "left")
    return sentence


def report_text(rng: random.Random) -> tuple[list[tuple[int, bool, str]], str]:
    """One random reference report (its sentences, and the text)."""
    found = _sentences(rng, abnormal_rate=rng.choice((0.1, 0.3, 0.6)))
    style = _style(rng)
    return found, _assemble([s for _, _, s in found], _impression(found, rng), rng, style)


def _prediction(found: list[tuple[int, bool, str]], rng: random.Random) -> str:
    kind = rng.choices(
        ("perturb", "copy", "empty", "short", "long", "unrelated", "restyle"),
        (0.62, 0.06, 0.04, 0.08, 0.05, 0.08, 0.07),
    )[0]
    if kind == "empty":
        return rng.choice(("", "", " ", "\n", "..."))
    if kind == "short":
        return rng.choice(
            (
                "Normal.",
                "No acute findings",
                "normal chest",
                "Cardiomegaly.",
                "Unremarkable",
                "no",
                "Pneumonia",
                "IMPRESSION: none",
                "1. Normal.",
            )
        )
    if kind == "unrelated":
        return report_text(rng)[1]
    sents = [s for _, _, s in found]
    if kind == "long":
        extra = [_fill(rng.choice(rng.choice(FINDINGS)[1] or ("Stable.",)), rng) for _ in range(rng.randint(20, 60))]
        return _assemble(sents + extra, _impression(found, rng), rng, _style(rng))
    if kind == "copy":
        return _assemble(sents, _impression(found, rng), rng, _style(rng))
    if kind == "restyle":
        style = _style(rng)
        style["case"] = rng.choice(("upper", "lower", "nopunct"))
        return _assemble(sents, _impression(found, rng), rng, style)
    out = []
    for _, _abnormal, s in found:
        r = rng.random()
        if r < 0.15:
            continue  # omission
        if r < 0.25:
            s = _flip_negation(s, rng)
        elif r < 0.32:
            s = _swap_side(s)
        elif r < 0.42:
            normals, abnormals = rng.choice(FINDINGS)
            s = rng.choice(normals) if normals and rng.random() < 0.5 else _fill(rng.choice(abnormals), rng)
        out.append(s)
    if len(out) > 1 and rng.random() < 0.3:
        rng.shuffle(out)
    if rng.random() < 0.2:
        out.append(_fill(rng.choice(rng.choice(FINDINGS)[1]), rng))  # hallucinated finding
    return _assemble(out, _impression(found, rng), rng, _style(rng))


def report_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """``n`` (prediction, reference) pairs, deterministic in (n, seed)."""
    pairs = []
    for i in range(n):
        rng = random.Random(f"{seed}:{i}")
        found, reference = report_text(rng)
        if rng.random() < 0.01:
            reference = rng.choice(("Normal.", "No acute cardiopulmonary process."))
        pairs.append((_prediction(found, rng), reference))
    return pairs


if __name__ == "__main__":  # a quick look at the corpus
    for h, r in report_pairs(8, seed=0):
        print("HYP:", repr(h))
        print("REF:", repr(r))
        print()
