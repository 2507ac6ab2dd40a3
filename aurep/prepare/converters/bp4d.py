"""``aurep prepare bp4d SRC --out DIR``: BP4D (41 subjects x 8 tasks) with its 12 AU occurrence labels.

Layout (docs/method.md, "Datasets and their layouts"):
frame folders ``<images>/F001/T1/2440.jpg`` (the number in the
name is the frame, padding ignored; ``<images>`` is ``SRC`` or one folder below it, e.g.
``BP4D-training``) and labels ``SRC/AUCoding/AU_OCC/F001_T1.csv`` (header of column numbers,
column ``0`` = frame, column ``k`` = AU k, 0/1, 9 = unknown -> -1, only coded frames listed).
Every image becomes a frame; frames without a label row get -1 and label rows without an image
are counted and named per video. A tree without any label file is refused. Folds: the standard subject-exclusive 3-fold split (``fold`` column 1-3).
"""

from __future__ import annotations

import argparse
import re
from functools import partial
from pathlib import Path

from aurep.au import BP4D_AUS
from aurep.prepare.converters.common import fold_table, read_occurrence_csv
from aurep.prepare.jobs import (
    VideoJob,
    add_preprocess_arguments,
    prepare_from_args,
)

HELP = "prepare BP4D (frames + AUCoding/AU_OCC labels, standard 3 folds)"
FOLDS = fold_table(
    "F001 F002 F008 F009 F010 F016 F018 F023 M001 M004 M007 M008 M012 M014",
    "F003 F005 F011 F013 F020 F022 M002 M005 M010 M011 M013 M016 M017 M018",
    "F004 F006 F007 F012 F014 F015 F017 F019 F021 M003 M006 M009 M015",
)
_SUBJECT = re.compile(r"^[FM]\d{3}$")
_TASK = re.compile(r"^T\d+$")


def sequence_folders(root: Path) -> list[Path]:
    """``SUBJECT/TASK`` frame folders directly under ``root`` or one level below it."""
    found = []
    for base in [root, *sorted(p for p in root.iterdir() if p.is_dir())]:
        for subject in sorted(p for p in base.iterdir() if p.is_dir() and _SUBJECT.match(p.name)):
            found += sorted(p for p in subject.iterdir() if p.is_dir() and _TASK.match(p.name))
        if found:
            return found
    return found


def discover(root: Path) -> list[VideoJob]:
    if not root.is_dir():
        raise ValueError(f"{root}: no such directory")
    folders = sequence_folders(root)
    if not folders:
        raise ValueError(f"{root}: no BP4D frame folders (SUBJECT/TASK, e.g. F001/T1) found")
    labels_dir = root / "AUCoding" / "AU_OCC"
    jobs = []
    for folder in folders:
        subject, task = folder.parent.name, folder.name
        path = labels_dir / f"{subject}_{task}.csv"
        labels = partial(read_occurrence_csv, path, BP4D_AUS, "0")
        fold = FOLDS.get(subject, 0)
        jobs.append(VideoJob(f"{subject}_{task}", subject, folder, fold, labels, inputs=(path,)))
    if not any(job.inputs[0].is_file() for job in jobs):
        raise ValueError(
            f"{labels_dir}: no label file (SUBJECT_TASK.csv) for any of the {len(jobs)} "
            "sequences: not a labelled BP4D tree (`aurep prepare videos` prepares frames alone)"
        )
    return jobs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_preprocess_arguments(parser, "BP4D root folder")


def run(args: argparse.Namespace) -> int:
    jobs = discover(args.src)
    unassigned = sorted({job.subject for job in jobs if job.fold == 0})
    if unassigned:
        print(f"warning: subjects outside the standard folds get fold 0: {unassigned}")
    return prepare_from_args(jobs, args, {"au_codes": list(BP4D_AUS), "source": "bp4d"})
