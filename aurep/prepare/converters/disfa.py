"""``aurep prepare disfa SRC --out DIR``: DISFA (27 subjects, left camera) with AU intensities 0-5.

Layout (docs/method.md, "Datasets and their layouts"):
videos ``SRC/Videos_LeftCamera/LeftVideoSN001_comp.avi`` and
labels ``SRC/ActionUnit_Labels/SN001/SN001_au1.txt``, one file per AU, lines
``frame,intensity`` with 1-based frame numbers (video frame 0 = label frame 1). Occurrence is
intensity >= 2 (:data:`aurep.au.OCCURRENCE_THRESHOLD`); intensities are stored as ``AUxx_int``.
Only the standard 8 AUs (:data:`aurep.au.DISFA_AUS`) are kept. A missing AU file leaves that AU
unknown; malformed lines (non-integer frames or intensities) and frames listed with conflicting
intensities are skipped and reported. Folds: the standard 3-fold split.
"""

from __future__ import annotations

import argparse
import re
from functools import partial
from pathlib import Path

import numpy as np

from aurep.au import DISFA_AUS, OCCURRENCE_THRESHOLD
from aurep.prepare.converters.common import empty_labels, fold_table, integer, keep_consistent
from aurep.prepare.jobs import (
    FrameLabels,
    VideoJob,
    add_preprocess_arguments,
    prepare_from_args,
)
from aurep.prepare.report import condense

HELP = "prepare DISFA (left-camera videos + ActionUnit_Labels, standard 3 folds)"
FOLDS = fold_table(
    "SN001 SN002 SN009 SN010 SN016 SN026 SN027 SN030 SN032",
    "SN006 SN011 SN012 SN013 SN018 SN021 SN024 SN028 SN031",
    "SN003 SN004 SN005 SN007 SN008 SN017 SN023 SN025 SN029",
)
_VIDEO = re.compile(r"^LeftVideo(SN\d{3})_comp\.avi$", re.IGNORECASE)


def read_intensity_file(path: Path) -> tuple[dict[int, float], list[str]]:
    """``frame,intensity`` lines (integers; intensity 0-5) -> ({frame: intensity}, problems
    naming malformed lines and frames listed with conflicting intensities)."""
    rows, malformed = [], []
    text = path.read_text(encoding="utf-8-sig")  # a BOM is dropped
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            frame_text, value_text = line.split(",")
            frame = integer(frame_text, "frame number")
            value = integer(value_text, "intensity")
            if not 0 <= value <= 5:
                raise ValueError(f"intensity {value} outside 0-5")
        except ValueError as error:
            malformed.append(f"{path}: line {line_number}: malformed, skipped ({error})")
            continue
        rows.append((line_number, frame, (float(value),)))
    kept, conflicts = keep_consistent(path, rows)
    problems = condense(malformed, f"{path}: {{count}} more malformed lines skipped") + conflicts
    return {frame: values[0] for frame, values in kept.items()}, problems


def read_labels(folder: Path, subject: str, au_codes: tuple[int, ...]) -> FrameLabels:
    """Intensity files ``folder/SUBJECT_auK.txt`` -> occurrence + intensity by frame number."""
    if not folder.is_dir():
        return empty_labels(
            au_codes, f"label folder {folder} is missing: its frames are unlabelled", True
        )
    per_au, problems = {}, []
    for code in au_codes:
        path = folder / f"{subject}_au{code}.txt"
        if path.is_file():
            per_au[code], file_problems = read_intensity_file(path)
            problems += file_problems
        else:
            problems.append(f"label file {path} is missing: AU{code} is unknown")
    numbers = np.array(sorted({f for values in per_au.values() for f in values}), dtype=np.int64)
    intensity = np.full((len(numbers), len(au_codes)), np.nan, dtype=np.float32)
    for index, code in enumerate(au_codes):
        for row, frame in enumerate(numbers):
            intensity[row, index] = per_au.get(code, {}).get(int(frame), np.nan)
    occurrence = np.where(np.isnan(intensity), -1, intensity >= OCCURRENCE_THRESHOLD)
    return FrameLabels(au_codes, numbers, occurrence.astype(np.int8), intensity, problems)


def discover(root: Path) -> list[VideoJob]:
    videos_dir = root / "Videos_LeftCamera"
    if not videos_dir.is_dir():
        raise ValueError(f"{root}: no Videos_LeftCamera folder (is this the DISFA root?)")
    jobs = []
    for path in sorted(videos_dir.iterdir()):
        match = _VIDEO.match(path.name)
        if not match:
            continue
        subject = match.group(1).upper()
        folder = root / "ActionUnit_Labels" / subject
        labels = partial(read_labels, folder, subject, DISFA_AUS)
        fold = FOLDS.get(subject, 0)
        jobs.append(VideoJob(subject, subject, path, fold, labels, 1, inputs=(folder,)))
    if not jobs:
        raise ValueError(f"{videos_dir}: no LeftVideoSNxxx_comp.avi videos found")
    if not any(job.inputs[0].is_dir() for job in jobs):
        raise ValueError(
            f"{root / 'ActionUnit_Labels'}: no label folder (SNxxx/) for any of the {len(jobs)} "
            "videos: not a labelled DISFA tree"
        )
    return jobs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_preprocess_arguments(parser, "DISFA root folder")


def run(args: argparse.Namespace) -> int:
    jobs = discover(args.src)
    meta = {
        "au_codes": list(DISFA_AUS),
        "source": "disfa",
        "occurrence_threshold": OCCURRENCE_THRESHOLD,
    }
    return prepare_from_args(jobs, args, meta)
