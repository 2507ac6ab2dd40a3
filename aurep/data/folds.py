"""Subject-exclusive splits: folds from the manifest, held-out validation subjects, label fractions.

Folds come from the manifest's ``fold`` column (1..K per subject, 0 = unassigned and unused).
Fold k tests on the subjects of part k and trains on the other parts; validation subjects are
drawn (seeded) from the training parts only, so model selection never sees the test part.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from aurep.data.prepared import DatasetError


@dataclass(frozen=True)
class FoldSplit:
    """Sorted subject lists of one fold; pairwise disjoint."""

    train: list[str]
    val: list[str]
    test: list[str]


def holdout_subjects(
    subjects: Sequence[str], fraction: float, seed: int, minimum: int = 1
) -> tuple[list[str], list[str]]:
    """Split ``subjects`` into (kept, held out): ``round(fraction * n)`` held out (at least
    ``minimum`` when ``fraction > 0``), chosen by ``seed``; both lists sorted."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"validation fraction must be in [0, 1), got {fraction}")
    ordered = sorted(subjects)
    count = max(minimum, round(fraction * len(ordered))) if fraction > 0 else 0
    if count >= len(ordered) and count > 0:
        raise DatasetError(
            f"cannot hold out {count} validation subjects from only {len(ordered)} subjects"
        )
    held = set(np.random.default_rng(seed).permutation(ordered)[:count].tolist())
    return [s for s in ordered if s not in held], sorted(held)


def subject_folds(manifest: pd.DataFrame, source: str) -> dict[str, int]:
    """subject -> fold (1..K) of every assigned subject; DatasetError if a subject spans folds or
    no fold is assigned. ``source`` names the dataset in messages."""
    assigned = manifest.loc[manifest["fold"] > 0, ["subject", "fold"]].drop_duplicates()
    if assigned.empty:
        raise DatasetError(
            f"{source}: no folds assigned (the manifest's fold column is 0 for every frame)"
        )
    spans = assigned.groupby("subject")["fold"].nunique()
    if (spans > 1).any():
        subject = spans.index[spans > 1][0]
        raise DatasetError(f"{source}: subject {subject} appears in several folds")
    return {str(s): int(f) for s, f in zip(assigned["subject"], assigned["fold"], strict=True)}


def fold_split(
    manifest: pd.DataFrame, fold: int, val_fraction: float, seed: int, source: str
) -> FoldSplit:
    """Subjects of fold ``fold``: test = part ``fold``, train/val = the other parts."""
    folds = subject_folds(manifest, source)
    parts = sorted(set(folds.values()))
    if fold not in parts:
        raise DatasetError(f"{source}: fold {fold} is empty; the dataset has folds {parts}")
    if len(parts) < 2:
        raise DatasetError(f"{source}: only fold {parts} is assigned; training needs another one")
    test = sorted(s for s, f in folds.items() if f == fold)
    train, val = holdout_subjects([s for s, f in folds.items() if f != fold], val_fraction, seed)
    return FoldSplit(train=train, val=val, test=test)


def sample_label_fraction(subjects: pd.Series, fraction: float, seed: int) -> np.ndarray:
    """Row positions keeping ``ceil(fraction * n_s)`` random rows of each subject's ``n_s`` rows.

    subjects: per-row subject names. Sampling is by subject (every subject keeps its share) and
    nested: for one seed, a smaller fraction's rows are a subset of a larger one's. Each
    subject's draw depends only on (seed, subject), not on the other subjects.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"label fraction must be in (0, 1], got {fraction}")
    keep = []
    for subject, positions in subjects.groupby(subjects.to_numpy(), sort=True).indices.items():
        rng = np.random.default_rng([seed, zlib.crc32(str(subject).encode())])
        count = math.ceil(fraction * len(positions))
        keep.append(np.sort(rng.permutation(positions)[:count]))
    return np.sort(np.concatenate(keep)) if keep else np.zeros(0, dtype=np.int64)
