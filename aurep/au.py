"""Facial action unit codes, names and the column names used throughout aurep."""

from __future__ import annotations

AU_NAMES: dict[int, str] = {
    1: "inner brow raiser",
    2: "outer brow raiser",
    4: "brow lowerer",
    6: "cheek raiser",
    7: "lid tightener",
    9: "nose wrinkler",
    10: "upper lip raiser",
    12: "lip corner puller",
    14: "dimpler",
    15: "lip corner depressor",
    17: "chin raiser",
    23: "lip tightener",
    24: "lip pressor",
    25: "lips part",
    26: "jaw drop",
}

BP4D_AUS: tuple[int, ...] = (1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24)
DISFA_AUS: tuple[int, ...] = (1, 2, 4, 6, 9, 12, 25, 26)
GFT_AUS: tuple[int, ...] = (1, 2, 4, 6, 10, 12, 14, 15, 23, 24)
SYNTH_AUS: tuple[int, ...] = tuple(sorted(AU_NAMES))

OCCURRENCE_VALUES = (-1, 0, 1)  # -1 = unknown, masked out of every loss and metric
OCCURRENCE_THRESHOLD = 2.0  # intensity >= 2 (FACS B) counts as present (DISFA convention)


def au_column(code: int) -> str:
    """Occurrence column name for an AU code: 1 -> 'AU01'."""
    return f"AU{code:02d}"


def au_intensity_column(code: int) -> str:
    """Intensity column name for an AU code: 12 -> 'AU12_int'."""
    return f"{au_column(code)}_int"
