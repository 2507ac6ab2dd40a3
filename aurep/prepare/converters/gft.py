"""``aurep prepare gft SRC --out DIR``: GFT (Sayette Group Formation Task, 96 participants, 10 AUs).

GFT has no public peer code fixing a layout, so aurep reads this one (documented in the README):

- videos ``SRC/Videos/<subject>.<ext>`` or frame folders ``SRC/Images/<subject>/<n>.jpg``;
- labels ``SRC/AUCoding/<subject>.csv``: header ``frame`` + AU columns (``1``, ``AU01``...),
  values 0/1, 9 or 999 = unknown; label frame = video frame index + ``--label-frame-base``
  (frame folders: the number in the file name is used as is);
- the official subject split ``SRC/split.csv`` (or ``--split FILE``): lines
  ``subject,train`` or ``subject,test`` (a header line ``subject,split`` is allowed; a subject
  listed as both is an error).

Folds: the official split is written as fold 1 = test subjects, fold 2 = train subjects, so
evaluating ``fold=1`` trains on the official training subjects (minus held-out validation ones)
and tests on the official test subjects. Fold 2 (the reverse) is not an official protocol.
"""

from __future__ import annotations

import argparse
import csv
from functools import partial
from pathlib import Path

from aurep.au import GFT_AUS
from aurep.data.prepared import DatasetError
from aurep.prepare.converters.common import read_occurrence_csv
from aurep.prepare.frames import image_files, is_video
from aurep.prepare.jobs import (
    VideoJob,
    add_preprocess_arguments,
    prepare_from_args,
)

HELP = "prepare GFT (videos or frame folders + AUCoding CSVs, official train/test split)"
SPLIT_FOLDS = {"test": 1, "train": 2}


def read_split(path: Path) -> dict[str, int]:
    """``subject,train|test`` lines -> subject -> fold (test 1, train 2). A subject listed as
    both train and test is an error naming both lines."""
    if not path.is_file():
        raise ValueError(f"{path}: missing: GFT needs its official train/test split file")
    folds, lines = {}, {}
    with open(path, newline="", encoding="utf-8-sig") as handle:  # a BOM is dropped
        for line_number, row in enumerate(csv.reader(handle), start=1):
            cells = [cell.strip() for cell in row]
            if not any(cells) or (line_number == 1 and cells[:2] == ["subject", "split"]):
                continue
            if len(cells) != 2 or cells[1].lower() not in SPLIT_FOLDS:
                raise DatasetError(f"{path}: line {line_number}: expected 'subject,train|test'")
            subject, fold = cells[0], SPLIT_FOLDS[cells[1].lower()]
            if folds.get(subject, fold) != fold:
                raise DatasetError(
                    f"{path}: lines {lines[subject]} and {line_number}: subject {subject} is "
                    "listed as both train and test"
                )
            folds[subject], lines[subject] = fold, line_number
    if not folds:
        raise DatasetError(f"{path}: no subjects listed")
    return folds


def discover(root: Path, split: Path, label_frame_base: int) -> list[VideoJob]:
    folds = read_split(split)
    sources = {}
    if (root / "Videos").is_dir():
        sources |= {p.stem: p for p in sorted((root / "Videos").iterdir()) if is_video(p)}
    if (root / "Images").is_dir():
        for folder in sorted(p for p in (root / "Images").iterdir() if p.is_dir()):
            if folder.name in sources:
                raise ValueError(f"{root}: subject {folder.name} has both a video and frames")
            if image_files(folder):
                sources[folder.name] = folder
    if not sources:
        raise ValueError(f"{root}: no videos in Videos/ or frame folders in Images/")
    jobs = []
    for subject, source in sorted(sources.items()):
        path = root / "AUCoding" / f"{subject}.csv"
        labels = partial(read_occurrence_csv, path, GFT_AUS, "frame")
        offset = label_frame_base if source.is_file() else 0
        fold = folds.get(subject, 0)
        jobs.append(
            VideoJob(subject, subject, source, fold, labels, offset, (path,))
        )  # fold: recorded
    if not any(job.inputs[0].is_file() for job in jobs):
        raise ValueError(
            f"{root / 'AUCoding'}: no label file (<subject>.csv) for any of the {len(jobs)} "
            "subjects: not a labelled GFT tree"
        )
    return jobs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_preprocess_arguments(parser, "GFT root folder")
    parser.add_argument("--split", type=Path, help="official split file (default: SRC/split.csv)")
    parser.add_argument(
        "--label-frame-base", type=int, default=1,
        help="label frame number of a video's first frame",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    if not args.src.is_dir():
        raise ValueError(f"{args.src}: no such directory")
    split = args.split or args.src / "split.csv"
    jobs = discover(args.src, split, args.label_frame_base)
    unassigned = sorted(job.subject for job in jobs if job.fold == 0)
    if unassigned:
        print(f"warning: subjects not in the split file get fold 0 (unused): {unassigned}")
    meta = {
        "au_codes": list(GFT_AUS),
        "source": "gft",
        "folds": {"1": "official test subjects", "2": "official train subjects"},
    }
    return prepare_from_args(jobs, args, meta, inputs=[split])
