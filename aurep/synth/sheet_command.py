"""``aurep contact-sheet``: a PNG grid of synthetic identities showing each AU in turn."""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from aurep.au import SYNTH_AUS
from aurep.synth.corpus import identity_of, subject_name
from aurep.synth.render import FaceRenderer

HELP = "draw a grid of synthetic identities x AUs (neutral, then each AU) as a PNG"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="docs/synth_contact_sheet.png", help="PNG to write")
    parser.add_argument("--identities", type=int, default=6, help="rows (%(default)s)")
    parser.add_argument("--size", type=int, default=112, help="cell side in px (%(default)s)")
    parser.add_argument("--intensity", type=float, default=4.0,
                        help="AU intensity shown, 0-5 (%(default)s)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="corpus seed (%(default)s)")
    parser.add_argument("--difficulty", type=float, default=0.5,
                        help="identity difficulty 0..1 (%(default)s)")  # fmt: skip


def contact_sheet(
    identities: int, size: int, intensity: float, seed: int, difficulty: float
) -> np.ndarray:
    """uint8 RGB grid: one row per identity, columns neutral + each SYNTH_AUS AU, with labels;
    faces are drawn without nuisances."""
    label_h, label_w = max(14, size // 7), max(36, size // 3)
    scale = label_h / 30
    columns = ["neutral"] + [f"AU{code}" for code in SYNTH_AUS]
    sheet = np.full((label_h + identities * size, label_w + len(columns) * size, 3), 255, np.uint8)
    for col, text in enumerate(columns):
        cv2.putText(sheet, text, (label_w + col * size + 4, label_h - 4),
                    cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)  # fmt: skip
    for row in range(identities):
        renderer = FaceRenderer(identity_of(seed, row, difficulty), size)
        y = label_h + row * size
        cv2.putText(sheet, subject_name(row), (2, y + size // 2), cv2.FONT_HERSHEY_SIMPLEX,
                    scale, (0, 0, 0), 1, cv2.LINE_AA)  # fmt: skip
        for col in range(len(columns)):
            au = np.zeros(len(SYNTH_AUS))
            if col:
                au[col - 1] = intensity
            x = label_w + col * size
            sheet[y : y + size, x : x + size] = renderer.render(au)[0]
    return sheet


def run(args: argparse.Namespace) -> int:
    if args.identities < 1:
        raise ValueError(f"--identities must be >= 1, got {args.identities}")
    if args.size < 32:
        raise ValueError(f"--size must be at least 32 px, got {args.size}")
    if not 0 <= args.intensity <= 5:
        raise ValueError(f"--intensity must be in [0, 5], got {args.intensity}")
    sheet = contact_sheet(args.identities, args.size, args.intensity, args.seed, args.difficulty)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
        raise OSError(f"{out}: could not write the PNG")
    print(f"wrote {out} ({args.identities} identities x {len(SYNTH_AUS) + 1} columns)")
    return 0
