"""Augmentation: one geometric transform per view on the CPU, colour + normalisation on the device.

Geometry (:class:`GeometricAugment`, in the Dataset workers): every frame of a view is first
resized to the output size by :func:`~aurep.data.images.resize_frames` (anti-aliased, the resize
of evaluation, embeddings and inference), then warped with OpenCV by one random affine per view
(flip, scale, rotation, translation; identity when augmentation is off), so the T frames of a
view share it. The composed matrix (resize, then augmentation) moves landmarks and resamples flow
fields; flow vectors are multiplied by its linear part, so a flip negates dx and a resize scales
the values. A flip also permutes landmark indices (iBUG left <-> right), so index 36
stays the image-left outer eye corner. Coordinates follow OpenCV: pixel centres are integers,
``x = 0`` is the centre of the first column, a flip maps ``x -> W - 1 - x``.

Colour (:class:`DeviceAugment`, on the batch after transfer): kornia colour jitter and random
grayscale with the same parameters for every frame of a view (``VideoSequential``), then
ImageNet normalisation (:func:`~aurep.data.images.normalise`). Workers ship uint8 frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import kornia.augmentation as K
import numpy as np
import torch
from torch import nn

from aurep.data.images import normalise, resize_frames
from aurep.landmarks import FLIP_PERMUTATION


def _resize_matrix(from_size: int, to_size: int) -> np.ndarray:
    """3x3 map from the pixel coordinates of a square image of side ``from_size`` to those of
    its resize to ``to_size`` (pixel centres kept: ``x -> (x + 0.5) * to / from - 0.5``)."""
    scale = to_size / from_size
    return np.array([[scale, 0, 0.5 * scale - 0.5], [0, scale, 0.5 * scale - 0.5], [0, 0, 1]])


@dataclass(frozen=True)
class ViewTransform:
    """One sampled view: the resize from ``in_size`` to ``out_size`` px, then ``augment``.

    augment: (2, 3) affine on output pixels (the identity when augmentation is off: the view is
    then exactly the evaluation resize). in_size / out_size: square frame sides in pixels;
    flipped: whether ``augment`` mirrors x.
    """

    augment: np.ndarray
    in_size: int
    out_size: int
    flipped: bool

    @property
    def matrix(self) -> np.ndarray:
        """(2, 3) affine from input pixels to output pixels: the resize, then ``augment``."""
        augment = np.vstack([self.augment, [0, 0, 1]])
        return (augment @ _resize_matrix(self.in_size, self.out_size))[:2]

    def frames(self, frames: np.ndarray) -> np.ndarray:
        """uint8 (T, H, W, 3) -> uint8 (T, out, out, 3); black outside the source."""
        resized = resize_frames(frames, self.out_size)
        if np.array_equal(self.augment, np.eye(2, 3)):  # augmentation off
            return resized
        size = (self.out_size, self.out_size)
        return np.stack(
            [cv2.warpAffine(frame, self.augment, size, flags=cv2.INTER_LINEAR) for frame in resized]
        )

    def points(self, landmarks: np.ndarray) -> np.ndarray:
        """(..., 68, 2) pixels -> (..., 68, 2) float32 pixels of the output (indices mirrored)."""
        if self.flipped:
            landmarks = landmarks[..., FLIP_PERMUTATION, :]
        linear, shift = self.matrix[:, :2], self.matrix[:, 2]
        return (landmarks @ linear.T + shift).astype(np.float32)

    def flow(self, flow: np.ndarray) -> np.ndarray:
        """(T, 2, g, g) flow in input pixels -> float32 (T, 2, g, g) in output pixels.

        The field is resampled on its own grid with the same affine and its vectors are
        multiplied by the affine's linear part; zero flow outside the source.
        """
        grid = flow.shape[-1]
        full = np.vstack([self.matrix, [0, 0, 1]])
        to_grid = _resize_matrix(self.out_size, grid) @ full
        on_grid = (to_grid @ np.linalg.inv(_resize_matrix(self.in_size, grid)))[:2]
        fields = np.asarray(flow, dtype=np.float32).transpose(0, 2, 3, 1)  # (T, g, g, 2)
        warped = np.stack(
            [cv2.warpAffine(f, on_grid, (grid, grid), flags=cv2.INTER_LINEAR) for f in fields]
        )
        vectors = warped @ self.matrix[:, :2].T.astype(np.float32)
        return np.ascontiguousarray(vectors.transpose(0, 3, 1, 2))


@dataclass(frozen=True)
class GeometricAugment:
    """Samples :class:`ViewTransform`\\ s: resize to ``out_size``, then random geometry.

    out_size: output side (px). flip_prob: probability of a horizontal flip. scale: relative
    zoom range (0.1 = uniform in [0.9, 1.1]). rotation: max degrees either way. translation: max
    shift as a fraction of ``out_size``. All zero = the plain resize of evaluation.
    """

    out_size: int
    flip_prob: float = 0.0
    scale: float = 0.0
    rotation: float = 0.0
    translation: float = 0.0

    def __post_init__(self):
        if self.out_size < 1:
            raise ValueError(f"image size must be >= 1 px, got {self.out_size}")
        if not 0.0 <= self.flip_prob <= 1.0:
            raise ValueError(f"flip probability must be in [0, 1], got {self.flip_prob}")
        if not 0.0 <= self.scale < 1.0:
            raise ValueError(f"scale augmentation must be in [0, 1), got {self.scale}")

    def sample(self, rng: np.random.Generator, in_size: int) -> ViewTransform:
        """The view of frames of side ``in_size`` px: flip, zoom and rotation about the centre
        of the resized frame, then the shift."""
        flipped = bool(rng.random() < self.flip_prob)
        zoom = rng.uniform(1 - self.scale, 1 + self.scale)
        angle = np.deg2rad(rng.uniform(-self.rotation, self.rotation))
        shift = rng.uniform(-self.translation, self.translation, size=2) * self.out_size
        cos, sin = zoom * np.cos(angle), zoom * np.sin(angle)
        linear = np.array([[cos, -sin], [sin, cos]]) @ np.diag([-1.0 if flipped else 1.0, 1.0])
        centre = np.full(2, (self.out_size - 1) / 2)
        augment = np.hstack([linear, (centre + shift - linear @ centre)[:, None]])
        return ViewTransform(augment, in_size, self.out_size, flipped)


class DeviceAugment(nn.Module):
    """uint8 (N, T, 3, H, W) frames -> float32 ImageNet-normalised, colour-jittered if ``train``.

    colour_jitter: (brightness, contrast, saturation, hue) strengths for kornia ``ColorJitter``,
    applied with probability ``jitter_prob``; grayscale_prob: probability of a gray view. One set
    of parameters per view (all T frames alike). All zero = normalisation only.
    """

    def __init__(
        self,
        colour_jitter: Sequence[float] = (0.4, 0.4, 0.4, 0.1),
        jitter_prob: float = 0.8,
        grayscale_prob: float = 0.2,
    ):
        super().__init__()
        if len(colour_jitter) != 4:
            raise ValueError(f"colour_jitter needs 4 strengths, got {colour_jitter}")
        augments = []
        if any(colour_jitter) and jitter_prob > 0:
            augments.append(K.ColorJitter(*colour_jitter, p=jitter_prob))
        if grayscale_prob > 0:
            augments.append(K.RandomGrayscale(p=grayscale_prob))
        self.colour = K.VideoSequential(*augments, same_on_frame=True) if augments else None

    def forward(self, frames: torch.Tensor, train: bool) -> torch.Tensor:
        images = frames.float() / 255.0
        if train and self.colour is not None:
            images = self.colour(images)
        return normalise(images)
