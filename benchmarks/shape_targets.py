"""How much AU information each landmark-shape target carries: the benchmark's linear probe on
the targets themselves (no learning), an upper bound on what a linear shape regressor can
teach the features.

Rows (each frame's 136 coordinates, :func:`aurep.heads.landmark_shape.normalised_shape`):
``normalised shape`` (the ``template`` reference), ``- video mean shape`` (the shape of the
video's mean landmarks: the ``video_mean`` reference), ``- identity mean`` (each identity's mean
normalised shape over all its frames: needs identities, an ideal the heads cannot use).

    python benchmarks/shape_targets.py --corpus data/synth
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
        "normalised shape - identity mean": quality.identity_centred(shape, frames.subjects),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=Path("data/synth"))
    args = parser.parse_args()
    frames = quality.corpus_frames(args.corpus.resolve())
    for name, features in target_rows(frames).items():
        entries = quality.evaluate(frames, features.astype(np.float32), name, 0, quality.FRACTIONS)
        for entry in entries:
            print(json.dumps({"corpus": str(args.corpus), **summary(entry)}), flush=True)


if __name__ == "__main__":
    main()
