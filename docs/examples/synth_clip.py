"""Write a synthetic face video for trying `aurep infer` and `aurep plot` (the README's example).

One clip of an identity no default corpus holds (seed 7), 112 px synthetic frames upscaled 2x
onto a 384 x 288 grey canvas, 25 fps MPEG-4:

    python docs/examples/synth_clip.py /tmp/synth_clip.mp4
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from aurep.prepare.frames import encode_video
from aurep.synth.corpus import SynthSettings, render_clip


def canvas_frames(frames: np.ndarray, scale: int = 2, size=(288, 384)) -> list[np.ndarray]:
    """uint8 (T, S, S, 3) crops -> T uint8 (H, W, 3) frames, each crop upscaled and centred."""
    height, width = size
    side = frames.shape[1] * scale
    top, left = (height - side) // 2, (width - side) // 2
    out = []
    for frame in frames:
        canvas = np.full((height, width, 3), 96, np.uint8)
        canvas[top : top + side, left : left + side] = cv2.resize(
            frame, (side, side), interpolation=cv2.INTER_CUBIC
        )
        out.append(canvas)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="output video (.mp4)")
    parser.add_argument("--frames", type=int, default=60)
    args = parser.parse_args()
    clip = render_clip(SynthSettings(frames=args.frames, seed=7), identity=0, clip=0)
    count = encode_video(args.out, canvas_frames(clip.frames))
    print(f"{count} frames -> {args.out}")


if __name__ == "__main__":
    main()
