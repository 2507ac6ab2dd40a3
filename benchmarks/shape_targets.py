"""How much AU information each landmark-shape target carries: the benchmark's linear probe on
the targets themselves (no learning), an upper bound on what a linear shape regressor can
teach the features.

Rows (each frame's 136 coordinates, :func:`aurep.heads.landmark_shape.normalised_shape`):
``normalised shape`` (the ``template`` reference), ``- video mean shape`` (the shape of the
video's mean landmarks: the ``video_mean`` reference), ``- video's frames' mean`` (the mean
normalised shape of the video's frames: what ``clip_relative`` regresses when the clip is the
whole video, its upper bound, as clips are shorter), ``- identity mean`` (each identity's mean
normalised shape over all its frames: about the ``subject_mean`` reference).

``--explained R ...`` adds, per row and share R, the row standardised plus independent Gaussian
noise that leaves a share R of each coordinate's variance to the signal: the AU F1 a head's
prediction could give if its errors were unstructured, to set beside a head's measured fit on
unseen people (``benchmarks/head_transfer.py``).

    python benchmarks/shape_targets.py --corpus data/synth [--explained 0.85 0.72 0.5]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import quality  # noqa: E402 (the benchmark's protocol, imported from its script)
from probe_checkpoints import summary  # noqa: E402

from aurep.heads.landmark_shape import normalised_shape  # noqa: E402


def shape_of(points: np.ndarray) -> np.ndarray:
    """(..., 68, 2) pixels -> (..., 68, 2) float64 normalised shapes."""
    return normalised_shape(torch.from_numpy(points).double()).numpy()


def target_rows(frames: quality.CorpusFrames) -> dict[str, np.ndarray]:
    """Row name -> (N, 136) targets of the probed frames."""
    dataset = frames.dataset
    points = quality.video_arrays(dataset, frames, dataset.landmarks)  # (N, 68, 2)
    shape = shape_of(points).reshape(len(points), -1)
    video_mean = {v: points[frames.videos == v].mean(axis=0) for v in np.unique(frames.videos)}
    reference = shape_of(np.stack([video_mean[v] for v in frames.videos]))
    return {
        "normalised shape": shape,
        "normalised shape - video mean shape": shape - reference.reshape(len(points), -1),
        "normalised shape - video's frames' mean": quality.identity_centred(shape, frames.videos),
        "normalised shape - identity mean": quality.identity_centred(shape, frames.subjects),
    }


def with_noise(target: np.ndarray, explained: float, seed: int = 0) -> np.ndarray:
    """(N, D) target -> (N, D): each column standardised, plus independent N(0, 1/R - 1) noise,
    so a share R (0 < R <= 1) of every column's variance is the target's."""
    if not 0 < explained <= 1:
        raise ValueError(f"explained share must be in (0, 1], got {explained}")
    spread = target.std(axis=0)
    standard = (target - target.mean(axis=0)) / np.where(spread > 0, spread, 1)
    noise = np.random.default_rng(seed).normal(0, np.sqrt(1 / explained - 1), target.shape)
    return standard + noise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=Path("data/synth"))
    parser.add_argument("--explained", type=float, nargs="*", default=[], metavar="R")
    args = parser.parse_args()
    frames = quality.corpus_frames(args.corpus.resolve())
    rows = target_rows(frames)
    for name, target in list(rows.items()):
        rows |= {f"{name}, explained {r}": with_noise(target, r) for r in args.explained}
    for name, features in rows.items():
        entries = quality.evaluate(frames, features.astype(np.float32), name, 0, quality.FRACTIONS)
        for entry in entries:
            print(json.dumps({"corpus": str(args.corpus), **summary(entry)}), flush=True)


if __name__ == "__main__":
    main()
