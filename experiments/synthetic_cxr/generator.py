"""Seeded procedural chest-like images with boxed findings and template reports.

Every case is a 56x56 grayscale picture of a thorax (two dark lung fields, a bright heart, the
diaphragm domes) with any of five findings drawn into it, a normalised box per finding, and a
~23-word report that states each finding or explicitly negates it, in varied phrasing.

Findings map to CheXpert observations so radeval's rule-based labeler (``chexpert_rules``)
can grade the reports; ``tests/test_synthetic_cxr.py`` checks the labeler reads every phrasing
as intended (positives positive, negations not positive).

Sides follow the radiological convention: the patient's right is the image's left.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np

SIDE = 56

#: finding key -> CheXpert observation the labeler should mark positive
FINDINGS: dict[str, str] = {
    "cardiomegaly": "Cardiomegaly",
    "effusion": "Pleural Effusion",
    "consolidation": "Consolidation",
    "pneumothorax": "Pneumothorax",
    "device": "Support Devices",
}
#: prior probability of each finding (independent)
PREVALENCE: dict[str, float] = {
    "cardiomegaly": 0.3,
    "effusion": 0.3,
    "consolidation": 0.3,
    "pneumothorax": 0.25,
    "device": 0.3,
}

# --- report phrasing (each checked against the rule-based labeler in the tests) -------------------

POSITIVE: dict[str, list[str]] = {
    "cardiomegaly": ["Cardiomegaly.", "Cardiomegaly is present.", "There is cardiomegaly."],
    "effusion": [
        "There is a {side} pleural effusion.",
        "{Side} pleural effusion.",
        "A {side} pleural effusion is present.",
    ],
    "consolidation": [
        "There is {side} lung consolidation.",
        "{Side} lung consolidation.",
        "Consolidation in the {side} lung.",
    ],
    "pneumothorax": [
        "There is a {side} pneumothorax.",
        "{Side} apical pneumothorax.",
        "A {side} pneumothorax is seen.",
    ],
    "device": {
        "tube": ["An endotracheal tube is in place.", "Endotracheal tube in place."],
        "line": ["A {side} central venous catheter is present.", "{Side} central venous catheter in place."],
    },  # type: ignore[dict-item]
}
NEGATIVE: dict[str, list[str]] = {
    "cardiomegaly": ["Heart size is normal.", "No cardiomegaly.", "The heart is normal in size."],
    "effusion": ["No pleural effusion.", "There is no pleural effusion.", "No effusion."],
    "consolidation": ["No consolidation.", "There is no focal consolidation.", "No focal consolidation."],
    "pneumothorax": ["No pneumothorax.", "There is no pneumothorax.", "No pneumothorax is seen."],
    "device": ["No tubes or lines.", "No support devices.", "No lines or tubes."],
}
ORDER = ("cardiomegaly", "device", "consolidation", "effusion", "pneumothorax")


@dataclass
class Case:
    """One synthetic study: image (uint8 array), findings with side/kind, boxes, reports."""

    id: str
    image: np.ndarray
    findings: dict[str, dict[str, Any]]  # key -> {"side": "right"/"left", "kind": ..., "box": [x1,y1,x2,y2]}
    report: str  # complete report
    reported: list[str] = field(default_factory=list)  # findings the under-reported report keeps
    report_under: str = ""  # report with a share of present findings omitted

    def boxes(self) -> dict[str, list[float]]:
        return {k: v["box"] for k, v in self.findings.items()}


# --- drawing ---------------------------------------------------------------------------------------


def _yx():
    return np.mgrid[0:SIDE, 0:SIDE].astype(np.float32)


def _ellipse(cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    y, x = _yx()
    return ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1.0


def _soft_ellipse(cx: float, cy: float, rx: float, ry: float, edge: float = 1.5) -> np.ndarray:
    y, x = _yx()
    d = np.sqrt(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2)
    return np.clip((1.0 - d) * max(rx, ry) / edge + 0.5, 0.0, 1.0)


def _box(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    x1, x2 = xs.min(), xs.max() + 1
    y1, y2 = ys.min(), ys.max() + 1
    return [round(float(v) / SIDE, 3) for v in (x1, y1, x2, y2)]


def _image_x(side: str, lungs: dict[str, tuple[float, float, float, float]]) -> tuple[float, float, float, float]:
    return lungs[side]


def draw_case(rng: random.Random, findings: dict[str, dict[str, Any]]) -> np.ndarray:
    """Draw the anatomy and the findings; fills each finding's ``box`` (normalised x1,y1,x2,y2)."""
    nrng = np.random.default_rng(rng.randrange(2**32))
    img = np.full((SIDE, SIDE), 18.0, dtype=np.float32)
    dx, dy = rng.uniform(-2, 2), rng.uniform(-2, 2)
    scale = rng.uniform(0.93, 1.05)
    cx, cy = 28 + dx, 28 + dy
    # thorax (soft tissue) and the two lung fields (dark); patient's right = image left
    img += 95 * _soft_ellipse(cx, cy + 1, 23 * scale, 25 * scale)
    lungs = {
        "right": (cx - 10 * scale, cy - 3, 8.5 * scale, 16 * scale),
        "left": (cx + 10 * scale, cy - 3, 8.5 * scale, 16 * scale),
    }
    lung_mask = np.zeros((SIDE, SIDE), bool)
    for lx, ly, rx, ry in lungs.values():
        m = _soft_ellipse(lx, ly, rx, ry)
        img -= 70 * m
        lung_mask |= m > 0.5
    # heart: bright, lower middle, toward the patient's left (image right)
    big = "cardiomegaly" in findings
    hrx = (11.5 if big else 7.0) * scale * rng.uniform(0.95, 1.05)
    hry = (9.0 if big else 7.0) * scale
    hcx, hcy = cx + 2.5, cy + 9
    heart = _soft_ellipse(hcx, hcy, hrx, hry)
    img = img * (1 - heart) + 150 * heart
    if big:
        findings["cardiomegaly"]["box"] = _box(heart > 0.5)
    # diaphragm domes
    for s in (-1, 1):
        dome = _soft_ellipse(cx + s * 10 * scale, cy + 22 * scale, 11 * scale, 6 * scale)
        img = img * (1 - dome) + 135 * dome
    below = np.zeros((SIDE, SIDE), bool)
    below[int(min(SIDE - 1, cy + 24 * scale)) :, :] = True
    img[below] = np.maximum(img[below], 120)

    if "effusion" in findings:
        lx, ly, rx, ry = lungs[findings["effusion"]["side"]]
        level = ly + ry * rng.uniform(0.15, 0.45)  # fluid level (meniscus) in the lower lung
        y, x = _yx()
        meniscus = level - 2.5 * np.abs(x - lx) / rx  # higher at the lateral wall
        m = _ellipse(lx, ly, rx + 1, ry + 1.5) & (y >= meniscus)
        img[m] = np.maximum(img[m], 138 + nrng.normal(0, 4, m.sum()))
        findings["effusion"]["box"] = _box(m)
    if "consolidation" in findings:
        lx, ly, rx, ry = lungs[findings["consolidation"]["side"]]
        ccx = lx + rng.uniform(-0.3, 0.3) * rx
        ccy = ly + rng.uniform(-0.5, 0.15) * ry
        blob = np.zeros((SIDE, SIDE), np.float32)
        for _ in range(3):  # a patchy cluster
            blob = np.maximum(
                blob,
                _soft_ellipse(
                    ccx + rng.uniform(-2.5, 2.5), ccy + rng.uniform(-3, 3), rng.uniform(3, 4.5), rng.uniform(3, 5)
                ),
            )
        blob *= _ellipse(lx, ly, rx, ry)
        img = img * (1 - 0.8 * blob) + 125 * 0.8 * blob
        findings["consolidation"]["box"] = _box(blob > 0.5)
    if "pneumothorax" in findings:
        side = findings["pneumothorax"]["side"]
        lx, ly, rx, ry = lungs[side]
        # apical air: a very dark cap over the lung apex with a bright pleural line below it
        cap = _ellipse(lx, ly - ry * 0.55, rx * 0.95, ry * 0.5) & _ellipse(lx, ly, rx + 1, ry + 1)
        img[cap] = 3 + nrng.normal(0, 2, cap.sum())
        y, x = _yx()
        edge = cap & ~_ellipse(lx, ly - ry * 0.55, rx * 0.95 - 1.2, ry * 0.5 - 1.2)
        img[edge] = 165
        findings["pneumothorax"]["box"] = _box(cap)
    if "device" in findings:
        d = findings["device"]
        m = np.zeros((SIDE, SIDE), bool)
        if d["kind"] == "tube":  # endotracheal tube down the midline from the top
            x0 = int(round(cx + rng.uniform(-1, 1)))
            y_end = int(cy - 6 + rng.uniform(-2, 2))
            m[1:y_end, x0 : x0 + 2] = True
        else:  # central line from the side of the neck toward the heart
            s = -1 if d["side"] == "right" else 1
            x_start = int(round(cx + s * 16))
            y_start = int(round(cy - 18))
            x_end, y_end = int(round(cx + s * 2)), int(round(cy + 2))
            for t in np.linspace(0, 1, 60):
                xx = int(round(x_start + (x_end - x_start) * t))
                yy = int(round(y_start + (y_end - y_start) * t))
                m[yy, xx : xx + 2] = True
        img[m] = 235
        d["box"] = _box(m)
    img += nrng.normal(0, 5, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


# --- reports -------------------------------------------------------------------------------------


def _sentence(rng: random.Random, key: str, info: dict[str, Any] | None) -> str:
    if info is None:
        return rng.choice(NEGATIVE[key])
    if key == "device":
        tmpl = rng.choice(POSITIVE["device"][info["kind"]])  # type: ignore[index]
    else:
        tmpl = rng.choice(POSITIVE[key])
    side = info.get("side", "right")
    return tmpl.format(side=side, Side=side.capitalize())


def write_report(rng: random.Random, findings: dict[str, dict[str, Any]], keep: set[str] | None = None) -> str:
    """A report with one sentence per finding key: stated when present (and kept), else negated.

    ``keep`` (under-reporting): present findings outside it are *not mentioned at all*, as when a
    radiologist omits a finding, rather than negated.
    """
    parts = []
    normal = not findings or (keep is not None and not (keep & set(findings)))
    if normal and rng.random() < 0.5:
        parts.append(rng.choice(["No acute cardiopulmonary process.", "No acute abnormality."]))
    for key in ORDER:
        if key in findings:
            if keep is not None and key not in keep:
                continue
            parts.append(_sentence(rng, key, findings[key]))
        else:
            parts.append(_sentence(rng, key, None))
    return " ".join(parts)


def sample_findings(rng: random.Random) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for key in ORDER:
        if rng.random() < PREVALENCE[key]:
            info: dict[str, Any] = {"side": rng.choice(["right", "left"])}
            if key == "device":
                info["kind"] = rng.choice(["tube", "line"])
            out[key] = info
    return out


def make_cases(n: int, seed: int, *, omit: float = 0.6, prefix: str = "case") -> list[Case]:
    """``n`` cases from ``seed``. ``omit``: probability that each present finding is left out of
    the under-reported report (the complete report always states every finding)."""
    rng = random.Random(seed)
    cases = []
    for i in range(n):
        findings = sample_findings(rng)
        image = draw_case(rng, findings)
        report = write_report(rng, findings)
        kept = [k for k in findings if rng.random() >= omit]
        under = write_report(rng, findings, keep=set(kept))
        cases.append(Case(f"{prefix}{i:05d}", image, findings, report, kept, under))
    return cases


def labels_of(findings: dict[str, Any] | list[str]) -> set[str]:
    """The CheXpert observations a report of these findings should be labeled positive for."""
    keys = list(findings)
    out = {FINDINGS[k] for k in keys}
    # CheXpert's rule: "No Finding" when nothing but support devices is positive
    if not [k for k in keys if k != "device"]:
        out.add("No Finding")
    return out


def save_png(image: np.ndarray, path) -> None:
    from PIL import Image

    Image.fromarray(image, mode="L").save(path, optimize=False)
