"""``aurep infer INPUT --ckpt MODEL --out out.csv``: AU detection on a video, an image folder or
an image, one OpenFace-style CSV row per frame (see :mod:`aurep.infer.pipeline`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from aurep.infer.pipeline import DEFAULT_SIZE, AUPredictor, infer
from aurep.prepare.faces.align import ALIGN_POINTS

HELP = "detect AUs in a video, an image folder or an image (OpenFace-style CSV)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, help="video file, image folder or image")
    parser.add_argument("--ckpt", type=Path, required=True, help="AUDetector checkpoint")
    parser.add_argument("--out", type=Path, required=True, help="output CSV")
    parser.add_argument("--embeddings", type=Path, help="also save pooled features (.npy)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--size",
        type=int,
        help="crop side, resized to the model's input side (default: the training data's crop "
        f"side, else the model's input side, else {DEFAULT_SIZE})",
    )
    parser.add_argument(
        "--margin",
        type=float,
        help="crop margin (default: the one the training data was prepared with, else 0.2)",
    )
    parser.add_argument(
        "--align-points",
        choices=sorted(ALIGN_POINTS),
        help="alignment points (default: the training data's, else rigid)",
    )
    parser.add_argument("--fps", type=float, default=30.0, help="frame rate of image folders")
    parser.add_argument("--device", default="cpu", help="torch device for the model")
    parser.add_argument("--no-progress", dest="progress", action="store_false")


def run(args: argparse.Namespace) -> int:
    if not args.input.exists():
        raise ValueError(f"{args.input}: no such file or directory")
    if args.embeddings is not None and args.embeddings.suffix != ".npy":
        raise ValueError(f"--embeddings {args.embeddings}: must end in .npy")
    predictor = AUPredictor(args.ckpt, args.device)
    preprocessor = predictor.preprocessor(args.size, args.margin, args.align_points)
    with tqdm(desc="infer", unit="frame", disable=not args.progress, file=sys.stderr) as bar:
        summary = infer(
            args.input,
            predictor,
            args.out,
            embeddings=args.embeddings,
            batch_size=args.batch_size,
            preprocessor=preprocessor,
            fps=args.fps,
            progress=bar,
        )
    found = 100.0 * summary.faces / summary.frames
    print(
        f"{summary.frames} frames, faces in {summary.faces} ({found:.1f}%), "
        f"{summary.fps:.1f} frames/s -> {args.out}"
    )
    return 0 if summary.faces else 1
