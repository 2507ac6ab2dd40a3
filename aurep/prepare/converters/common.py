"""Helpers shared by the BP4D/DISFA/GFT converters: fold tables and occurrence CSV files."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from aurep.data.prepared import DatasetError
from aurep.prepare.jobs import FrameLabels
from aurep.prepare.report import condense


def fold_table(*parts: str) -> dict[str, int]:
    """Whitespace-separated subject lists, one per part -> subject -> fold (1-based)."""
    return {subject: fold for fold, part in enumerate(parts, 1) for subject in part.split()}


def empty_labels(au_codes: Sequence[int], problem: str, intensity: bool = False) -> FrameLabels:
    """No label rows (every frame unknown), with ``problem`` to report."""
    codes = tuple(au_codes)
    return FrameLabels(
        codes,
        np.zeros(0, np.int64),
        np.zeros((0, len(codes)), np.int8),
        np.zeros((0, len(codes)), np.float32) if intensity else None,
        [problem],
    )


def _au_code(name: str) -> int | None:
    """Header cell -> AU code: '12', 'AU12', 'au12', 'AU12_c' -> 12; else None."""
    text = name.strip().lower().removeprefix("au").removesuffix("_c")
    return int(text) if text.isdigit() else None


def integer(cell: str, what: str) -> int:
    """An integer-valued cell (``3``, ``3.0``) as int; ValueError naming ``what`` for any other
    (``0.6``, ``11.9``, text), never rounded."""
    value = float(cell)
    if not value.is_integer():
        raise ValueError(f"{what} {cell.strip()!r} is not an integer")
    return int(value)


def keep_consistent(
    path: Path, rows: list[tuple[int, int, tuple]]
) -> tuple[dict[int, tuple], list[str]]:
    """(line, frame, labels) rows -> ({frame: labels}, problems). A frame listed again with the
    same labels is kept once; listed with other labels, it is dropped (unlabelled) and named."""
    first: dict[int, tuple[int, tuple]] = {}
    conflicts: dict[int, list[int]] = {}
    for line, frame, labels in rows:
        if frame not in first:
            first[frame] = (line, labels)
        elif first[frame][1] != labels:
            conflicts.setdefault(frame, [first[frame][0]]).append(line)
    problems = [
        f"{path}: lines {', '.join(map(str, lines))}: frame {frame} has conflicting labels: "
        "left unlabelled"
        for frame, lines in conflicts.items()
    ]
    kept = {frame: labels for frame, (_, labels) in first.items() if frame not in conflicts}
    return kept, condense(problems, f"{path}: {{count}} more frames with conflicting labels")


def read_occurrence_csv(
    path: Path,
    au_codes: Sequence[int],
    frame_column: str,
    unknown_values: Sequence[int] = (9, 999),
) -> FrameLabels:
    """Occurrence labels from a CSV with a header row: ``frame_column`` holds the frame number,
    AU columns are named by code (``12``, ``AU12``); values 0/1, ``unknown_values`` -> -1.

    A missing file gives no rows (all unknown) and a problem; a malformed line is skipped and
    reported with its line number; a header without the frame column raises DatasetError.
    AUs the file lacks are unknown (-1) and reported."""
    codes = tuple(au_codes)
    if not path.is_file():
        return empty_labels(codes, f"label file {path} is missing: its frames are unlabelled")
    problems = []
    with open(path, newline="", encoding="utf-8-sig") as handle:  # a BOM is dropped
        rows = list(csv.reader(handle))
    if not rows:
        return empty_labels(codes, f"label file {path} is empty: its frames are unlabelled")
    header = [cell.strip() for cell in rows[0]]
    if frame_column not in header:
        raise DatasetError(f"{path}: line 1: header has no frame column {frame_column!r}")
    frame_index = header.index(frame_column)
    columns = {
        _au_code(cell): i for i, cell in enumerate(header) if i != frame_index and _au_code(cell)
    }
    missing = [code for code in codes if code not in columns]
    if missing:
        problems.append(f"{path}: no column for AUs {missing}: they are unknown")
    parsed, malformed = [], []
    unknown = set(unknown_values)
    for line_number, row in enumerate(rows[1:], start=2):
        if not row or all(not cell.strip() for cell in row):
            continue
        try:
            if len(row) != len(header):
                raise ValueError(f"{len(row)} fields, the header has {len(header)}")
            frame = integer(row[frame_index], "frame number")
            occurrence = []
            for code in codes:
                value = integer(row[columns[code]], f"AU{code} code") if code in columns else -1
                value = -1 if value in unknown else value
                if value not in (-1, 0, 1):
                    raise ValueError(f"AU{code} value {value} is not 0, 1 or unknown")
                occurrence.append(value)
        except ValueError as error:
            malformed.append(f"{path}: line {line_number}: malformed, skipped ({error})")
            continue
        parsed.append((line_number, frame, tuple(occurrence)))
    problems += condense(malformed, f"{path}: {{count}} more malformed lines skipped")
    kept, conflicts = keep_consistent(path, parsed)
    problems += conflicts
    return FrameLabels(
        codes,
        np.array(list(kept), dtype=np.int64),
        np.array(list(kept.values()), dtype=np.int8).reshape(len(kept), len(codes)),
        problems=problems,
    )
