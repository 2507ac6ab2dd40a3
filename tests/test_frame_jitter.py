"""Per-frame augmentation (``frame_*`` of GeometricAugment, ``frame_colour_jitter`` of
DeviceAugment, ``frame_illumination``): each frame of a clip moves and changes colour and light
on its own, and its landmarks and flow targets move with it."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from aurep.data.images import IMAGENET_MEAN, IMAGENET_STD
from aurep.data.transforms import DeviceAugment, GeometricAugment

STORED, SIZE, FRAMES = 64, 48, 3
JITTER = {"frame_scale": 0.1, "frame_rotation": 15.0, "frame_translation": 0.08}


def dot_frames(point: np.ndarray) -> np.ndarray:
    """uint8 (T, STORED, STORED, 3) black frames with a white 5-px dot centred on ``point``."""
    frame = np.zeros((STORED, STORED, 3), np.uint8)
    cv2.circle(frame, tuple(int(v) for v in point), 2, (255, 255, 255), -1)
    return np.repeat(frame[None], FRAMES, 0)


def test_frames_are_moved_one_by_one_and_points_follow():
    point = np.array([40.0, 22.0])
    frames = dot_frames(point)
    view = GeometricAugment(SIZE, rotation=10.0, **JITTER).sample(
        np.random.default_rng(3), STORED, FRAMES
    )
    moved = view.frames(frames)[..., 0].astype(float)
    landmarks = np.repeat(np.repeat(point[None, None], 68, 1), FRAMES, 0)  # (T, 68, 2)
    expected = view.points(landmarks)[:, 0]
    y, x = np.indices(moved.shape[1:])
    found = np.stack([[(m * x).sum() / m.sum(), (m * y).sum() / m.sum()] for m in moved])
    np.testing.assert_allclose(found, expected, atol=0.5)
    assert np.ptp(expected, axis=0).max() > 1.5  # the frames did not move alike


def test_without_frame_ranges_the_view_is_the_same_draw():
    shared = GeometricAugment(SIZE, flip_prob=0.5, scale=0.2, rotation=10.0, translation=0.1)
    with_frames = shared.sample(np.random.default_rng(5), STORED, FRAMES)
    without = shared.sample(np.random.default_rng(5), STORED)
    assert with_frames.frame_augment is None
    np.testing.assert_array_equal(with_frames.augment, without.augment)
    jittered = GeometricAugment(
        SIZE, flip_prob=0.5, scale=0.2, rotation=10.0, translation=0.1, **JITTER
    ).sample(np.random.default_rng(5), STORED, FRAMES)
    np.testing.assert_array_equal(jittered.augment, without.augment)


def sample_grid(field: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(2, g, g) field on a SIZE px image, (N, 2) output pixels -> (N, 2) bilinear samples."""
    grid = field.shape[-1]
    cells = ((points + 0.5) * grid / SIZE - 0.5).astype(np.float32)
    return np.stack(
        [
            cv2.remap(channel, cells[:, None, 0], cells[:, None, 1], cv2.INTER_LINEAR)[:, 0]
            for channel in field
        ],
        1,
    )


def test_flow_is_the_motion_of_a_point_between_moved_frames():
    """A point that moves by the stored flow from frame t - 1 to frame t lands, in the view, at
    its previous position plus the view's flow there."""
    motion = np.array([1.5, -0.75])  # the whole face moves this much (input px) every frame
    flow = np.broadcast_to(motion[None, :, None, None], (FRAMES, 2, 28, 28)).astype(np.float32)
    start = np.array([[20.0, 30.0], [32.0, 32.0], [40.0, 25.0]])  # input pixels in frame 0
    tracks = start[None] + motion * np.arange(FRAMES)[:, None, None]  # (T, 3, 2)
    for seed in range(4):
        view = GeometricAugment(SIZE, flip_prob=0.5, rotation=10.0, **JITTER).sample(
            np.random.default_rng(seed), STORED, FRAMES
        )
        moved_flow = view.flow(flow)
        matrices = view.frame_matrices(FRAMES)
        for t in range(1, FRAMES):
            before = tracks[t - 1] @ matrices[t - 1][:, :2].T + matrices[t - 1][:, 2]
            after = tracks[t] @ matrices[t][:, :2].T + matrices[t][:, 2]
            np.testing.assert_allclose(
                sample_grid(moved_flow[t], before), after - before, atol=0.05
            )


def test_frame_colour_jitter_changes_frames_of_a_view_unequally():
    frames = torch.full((2, FRAMES, 3, 8, 8), 120, dtype=torch.uint8)
    frames[..., :4] = 60
    per_view = DeviceAugment(jitter_prob=1.0, grayscale_prob=0.0)
    torch.manual_seed(0)
    shared = per_view(frames, train=True)
    assert torch.allclose(shared[:, :1], shared[:, 1:], atol=1e-5)  # one draw per view
    per_frame = DeviceAugment(jitter_prob=1.0, frame_colour_jitter=(0.3, 0.3, 0.0, 0.0))
    torch.manual_seed(0)
    jittered = per_frame(frames, train=True)
    assert (jittered[:, :1] - jittered[:, 1:]).abs().amax() > 0.05
    assert torch.equal(per_frame(frames, train=False), per_view(frames, train=False))


def test_frame_illumination_multiplies_each_frame_by_its_own_light_plane():
    frames = torch.full((2, FRAMES, 3, 8, 8), 100, dtype=torch.uint8)
    frames[..., 2:4, :] = 0  # dark rows stay dark under a multiplicative gain
    augment = DeviceAugment(jitter_prob=0.0, grayscale_prob=0.0, frame_illumination=0.6)
    plain = augment(frames, train=False)
    torch.manual_seed(0)
    lit = augment(frames, train=True)
    assert torch.equal(lit[..., 2:4, :], plain[..., 2:4, :])
    std, mean = (torch.tensor(v)[:, None, None] for v in (IMAGENET_STD, IMAGENET_MEAN))
    gain = (lit * std + mean)[..., 4:, :] / (100 / 255)  # (2, T, 3, 4, 8)
    assert torch.allclose(gain[..., :1, :, :], gain, atol=1e-4)  # the same field in every channel
    steps_x = gain[..., 1:] - gain[..., :-1]
    steps_y = gain[..., 1:, :] - gain[..., :-1, :]
    assert torch.allclose(steps_x, steps_x[..., :1], atol=1e-4)  # a plane: constant steps
    assert torch.allclose(steps_y, steps_y[..., :1, :], atol=1e-4)
    slopes_x = steps_x[:, :, 0, 0, 0] * 7  # gx: the gain's change across the image
    assert slopes_x.abs().amax() <= 0.6 + 1e-4
    assert (slopes_x[:, :1] - slopes_x[:, 1:]).abs().amax() > 0.05  # frames differ in a view
    with pytest.raises(ValueError, match="frame_illumination"):
        DeviceAugment(frame_illumination=-0.1)
