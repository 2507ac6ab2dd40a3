"""``aurep infer`` frames per second end to end vs the bare detector on the same aligned frames.

Usage: .venv/bin/python benchmarks/infer_throughput.py [--frames 300 --side 360
--batch-size 32 --backbone resnet18 --size 112 --out benchmarks/results/infer_throughput.md]

Encodes a talking-head-like test video with PyAV (the astronaut photograph from scikit-image,
its head moving and turning slightly, ``--side`` px square, 25 fps, MPEG-4), saves a randomly
initialised :class:`AUDetector` (speed does not depend on the weights) and measures in one run:

* decode: PyAV decoding to RGB arrays alone;
* faces: decoding + MediaPipe landmarks + alignment, sequential, one thread;
* model: the bare detector (backbone + head) on the aligned crops, batches of ``--batch-size``;
* infer: ``aurep.infer.pipeline.infer`` end to end (faces in a producer thread overlapped with
  the model, CSV written), the number that matters.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pytorch_lightning as pl
import skimage.data
import torch

from aurep.au import BP4D_AUS
from aurep.infer.pipeline import AUPredictor, infer
from aurep.prepare.faces.preprocessor import FacePreprocessor
from aurep.prepare.frames import encode_video, iter_frames
from aurep.tasks.detector import AUDetector


def moving_head(count: int, side: int) -> list[np.ndarray]:
    """``count`` frames of the astronaut's head drifting and turning slightly."""
    head = skimage.data.astronaut()[0:360, 60:420]
    frames = []
    for t in range(count):
        phase = 2 * np.pi * t / 50
        matrix = cv2.getRotationMatrix2D((180, 160), 6 * np.sin(phase), 1 + 0.05 * np.cos(phase))
        matrix[:, 2] += (10 * np.sin(phase / 2), 5 * np.cos(phase))
        moved = cv2.warpAffine(head, matrix, (360, 360), borderMode=cv2.BORDER_REFLECT)
        frames.append(cv2.resize(moved, (side, side), interpolation=cv2.INTER_AREA))
    return frames


def save_detector(path: Path, backbone: str, size: int) -> None:
    model = AUDetector(backbone=backbone, mode="finetune", au_codes=list(BP4D_AUS)).eval()
    torch.save(
        {
            "state_dict": model.state_dict(),
            "hyper_parameters": dict(model.hparams),
            "datamodule_hyper_parameters": {"image_size": size},
            "pytorch-lightning_version": pl.__version__,
        },
        path,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--side", type=int, default=360)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        video, ckpt = Path(tmp) / "talk.mp4", Path(tmp) / "detector.ckpt"
        encode_video(video, moving_head(args.frames, args.side))
        save_detector(ckpt, args.backbone, args.size)
        predictor = AUPredictor(ckpt)

        start = time.perf_counter()
        decoded = sum(1 for _ in iter_frames(video))
        decode_fps = decoded / (time.perf_counter() - start)

        preprocessor = FacePreprocessor(args.size)
        start = time.perf_counter()
        sequence = preprocessor.sequence(iter_frames(video))
        faces_fps = len(sequence.numbers) / (time.perf_counter() - start)

        crops = sequence.frames[sequence.success == 1]
        predictor(crops[: args.batch_size])  # warm-up
        start = time.perf_counter()
        for begin in range(0, len(crops), args.batch_size):
            predictor(crops[begin : begin + args.batch_size])
        model_fps = len(crops) / (time.perf_counter() - start)

        summary = infer(video, predictor, Path(tmp) / "au.csv", batch_size=args.batch_size)

    rows = [
        ("decode only (PyAV)", decode_fps),
        ("decode + landmarks + align (sequential)", faces_fps),
        (f"bare model, {args.backbone} {args.size} px, batch {args.batch_size}", model_fps),
        ("`aurep infer` end to end (pipelined)", summary.fps),
    ]
    bottleneck = "face finding" if faces_fps < model_fps else "the model"
    command = "python benchmarks/infer_throughput.py " + " ".join(sys.argv[1:])
    lines = [
        "# `aurep infer` throughput (CPU)",
        "",
        f"Command: `{command.strip()}`",
        "",
        f"Machine: {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} torch threads, torch {torch.__version__}; load average "
        f"{load_before:.1f} before / {os.getloadavg()[0]:.1f} after (other jobs share the cores "
        "when it is above 0).",
        f"Input: {args.frames} frames of {args.side} x {args.side} px MPEG-4 (moving astronaut "
        f"head), faces found in {summary.faces}/{summary.frames}.",
        "",
        "| stage | frames/s |",
        "|---|---|",
        *[f"| {name} | {fps:.1f} |" for name, fps in rows],
        "",
        f"Inside the end-to-end run the model took {summary.model_seconds:.2f} s of "
        f"{summary.seconds:.2f} s. End to end runs at {100 * summary.fps / model_fps:.0f}% of the "
        "bare model's rate: decoding and face finding run in a producer thread that overlaps "
        f"with the model; the slower stage alone is {bottleneck} "
        f"({min(faces_fps, model_fps):.1f} frames/s), and on a 2-core CPU both stages share the "
        "cores. Goal: >= 30 frames/s end to end.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
