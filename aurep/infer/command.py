"""``aurep infer INPUT --ckpt MODEL --out out.csv``: AU detection on a video, an image folder or
an image, one OpenFace-style CSV row per face per frame (see :mod:`aurep.infer.pipeline`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
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
    parser.add_argument(
        "--max-faces",
        type=int,
        default=1,
        help="most faces per frame, each a CSV row with a face_id stable across frames (1)",
    )
    parser.add_argument("--device", default="cpu", help="torch device for the model")
    parser.add_argument(
        "--no-blendshapes",
        dest="blendshapes",
        action="store_false",
        help="leave out MediaPipe's 52 blendshape scores (bs_* columns)",
    )
    parser.add_argument("--no-progress", dest="progress", action="store_false")


def check_outputs(args: argparse.Namespace) -> None:
    """ValueError when ``--out`` or ``--embeddings`` would replace an input, each other or an
    existing file that is not of their own kind (a CSV, a .npy)."""
    inputs = {args.input.resolve(): "the input", args.ckpt.resolve(): "the checkpoint"}
    outputs = [("--out", args.out, ".csv")]
    if args.embeddings is not None:
        outputs.append(("--embeddings", args.embeddings, ".npy"))
    for flag, path, suffix in outputs:
        if path.resolve() in inputs:
            raise ValueError(
                f"{flag} {path}: is {inputs[path.resolve()]}; refusing to replace it "
                f"(give a new {suffix} path)"
            )
        if path.is_dir():
            raise ValueError(f"{flag} {path}: is a folder (give a {suffix} file path)")
        if path.exists() and path.suffix.lower() != suffix:
            raise ValueError(
                f"{flag} {path}: exists and is not a {suffix} file; refusing to replace it "
                f"(give a new {suffix} path)"
            )
        inputs[path.resolve()] = f"{flag}'s file"
    if args.embeddings is not None and args.embeddings.suffix != ".npy":
        raise ValueError(f"--embeddings {args.embeddings}: must end in .npy")


def check_settings(args: argparse.Namespace) -> None:
    """ValueError naming the option for a value that cannot work (before anything is loaded)."""
    if args.fps <= 0:
        raise ValueError(f"--fps {args.fps:g}: the frame rate must be > 0")
    if args.size is not None and args.size < 8:
        raise ValueError(f"--size {args.size}: the crop side must be >= 8 px")
    if args.margin is not None and not 0 <= args.margin < 1:
        raise ValueError(f"--margin {args.margin:g}: must be in [0, 1)")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size {args.batch_size}: must be >= 1")
    if args.max_faces < 1:
        raise ValueError(f"--max-faces {args.max_faces}: must be >= 1")
    try:
        device = torch.device(args.device)
    except RuntimeError:
        raise ValueError(
            f"--device {args.device}: not a torch device (e.g. cpu, cuda, cuda:1)"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {args.device}: no CUDA GPU is available here; use --device cpu")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ValueError(
            f"--device {args.device}: only {torch.cuda.device_count()} CUDA GPU(s) here"
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"--device {args.device}: MPS is not available here; use --device cpu")


def run(args: argparse.Namespace) -> int:
    if not args.input.exists():
        raise ValueError(f"{args.input}: no such file or directory")
    check_settings(args)
    check_outputs(args)
    predictor = AUPredictor(args.ckpt, args.device)
    if predictor.trained_on_synthetic:
        print(
            f"warning: {args.ckpt} was trained on synthetic faces only "
            f"({predictor.training_root}); its AU outputs are not meaningful on real faces",
            file=sys.stderr,
        )
    if not predictor.training_data:
        print(
            f"warning: {args.ckpt}: no record of its training data (dataset "
            f"{predictor.training_root or 'not saved'} not found): the crop is aurep's default; "
            "set --size/--margin/--align-points to match its training data",
            file=sys.stderr,
        )
    aligner = predictor.aligner(args.size, args.margin, args.align_points)
    with tqdm(desc="infer", unit="frame", disable=not args.progress, file=sys.stderr) as bar:
        summary = infer(
            args.input,
            predictor,
            args.out,
            embeddings=args.embeddings,
            batch_size=args.batch_size,
            aligner=aligner,
            fps=args.fps,
            blendshapes=args.blendshapes,
            max_faces=args.max_faces,
            progress=bar,
        )
    for problem in summary.unreadable:
        print(f"warning: {problem}", file=sys.stderr)
    found = 100.0 * summary.face_frames / summary.frames
    several = f", {summary.faces} faces" if args.max_faces > 1 else ""
    print(
        f"{summary.frames} frames, faces in {summary.face_frames} ({found:.1f}%){several}, "
        f"{summary.fps:.1f} frames/s -> {args.out}"
    )
    return 0 if summary.faces else 1
