"""The CheXpert observation names, spelled and ordered as the CheXpert labeler writes them.

Both labelers (the rule-based one and CheXbert) return ``(n, 14)`` float arrays whose columns
follow :data:`CHEXPERT_OBSERVATIONS`, with 1.0 positive, 0.0 negative, -1.0 uncertain and NaN
for "not mentioned" (the labeler's blank cell).
"""

from __future__ import annotations

#: The 14 observations in the CheXpert labeler's output order (its labeled_reports.csv header).
CHEXPERT_OBSERVATIONS: tuple[str, ...] = (
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Lesion",
    "Lung Opacity",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
)

#: The 5-observation subset most papers also report (CheXpert competition tasks).
FIVE_LABELS: tuple[str, ...] = (
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Pleural Effusion",
)

#: Column index of each observation.
OBSERVATION_INDEX: dict[str, int] = {name: i for i, name in enumerate(CHEXPERT_OBSERVATIONS)}

#: Column indices of :data:`FIVE_LABELS` (in CHEXPERT_OBSERVATIONS order).
FIVE_INDEX: tuple[int, ...] = tuple(sorted(OBSERVATION_INDEX[name] for name in FIVE_LABELS))

POSITIVE, NEGATIVE, UNCERTAIN = 1.0, 0.0, -1.0
