"""benchmarks/shape_targets.py: the landmark-shape targets probed as features."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from aurep.heads.landmark_shape import normalised_shape

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import quality  # noqa: E402
import shape_targets  # noqa: E402


def test_targets_are_the_shapes_relative_to_each_reference(tiny_corpus):
    """One row per probed frame; the video-relative row is each frame's shape minus the shape
    of its own video's mean landmarks; the identity row sums to zero over each identity."""
    frames = quality.corpus_frames(tiny_corpus)
    rows = shape_targets.target_rows(frames)
    shape = rows["normalised shape"]
    assert all(values.shape == (len(frames.labels), 136) for values in rows.values())
    points = quality.video_arrays(frames.dataset, frames, frames.dataset.landmarks)
    video = frames.videos == frames.videos[0]
    mean_shape = normalised_shape(torch.from_numpy(points[video].mean(axis=0)).double())
    expected = shape[video] - mean_shape.numpy().reshape(1, 136)
    np.testing.assert_allclose(rows["normalised shape - video mean shape"][video], expected)
    centred = rows["normalised shape - identity mean"]
    for subject in np.unique(frames.subjects):
        np.testing.assert_allclose(centred[frames.subjects == subject].sum(axis=0), 0, atol=1e-9)
    assert np.abs(rows["normalised shape - video mean shape"]).max() > 1e-3  # not all zero
    frames_mean = rows["normalised shape - video's frames' mean"]
    np.testing.assert_allclose(frames_mean[video], shape[video] - shape[video].mean(axis=0))


def test_noise_leaves_the_asked_share_of_the_variance_to_the_target():
    target = np.random.default_rng(1).normal(3.0, [1.0, 5.0], (20000, 2))
    for explained in (1.0, 0.72, 0.3):
        noisy = shape_targets.with_noise(target, explained)
        share = [np.corrcoef(noisy[:, d], target[:, d])[0, 1] ** 2 for d in range(2)]
        np.testing.assert_allclose(share, explained, atol=0.02)
    with pytest.raises(ValueError, match="explained share"):
        shape_targets.with_noise(target, 0.0)
