"""Augmentation: one geometric transform per view on the CPU, colour + normalisation on the device.

Geometry (:class:`GeometricAugment`, in the Dataset workers): one random affine per view (flip,
scale, rotation, translation, fused with the resize to the output size) applied with OpenCV to
every frame of the view, so the T frames of a view share it. The same matrix moves landmarks and
resamples flow fields; flow vectors are multiplied by its linear part, so a flip negates dx and a
resize scales the values. A flip also permutes landmark indices (iBUG left <-> right), so index 36
stays the image-left outer eye corner. Coordinates follow OpenCV: pixel centres are integers,
``x = 0`` is the centre of the first column, a flip maps ``x -> W - 1 - x``.

Colour (:class:`DeviceAugment`, on the batch after transfer): kornia colour jitter and random
grayscale with the same parameters for every frame of a view (``VideoSequential``), then
ImageNet normalisation. Workers ship uint8 frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import kornia.augmentation as K
import numpy as np
import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torch import nn


def _ibug_flip_permutation() -> np.ndarray:
    pairs = [(i, 16 - i) for i in range(8)]  # jaw
    pairs += [(17 + i, 26 - i) for i in range(5)]  # brows
    pairs += [(31, 35), (32, 34)]  # nose base
    pairs += [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]  # eyes
    pairs += [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58)]  # outer lips
    pairs += [(60, 64), (61, 63), (65, 67)]  # inner lips
    permutation = np.arange(68)
    for a, b in pairs:
        permutation[a], permutation[b] = b, a
    return permutation


IBUG_FLIP_PERMUTATION = _ibug_flip_permutation()
"""(68,) index map: landmarks of a mirrored face are ``mirror_x(landmarks[IBUG_FLIP_PERMUTATION])``."""


def _pixel_to_grid(frame_size: int, grid: int) -> np.ndarray:
    """3x3 map from frame pixel coordinates to the cell coordinates of a ``grid`` resize."""
    scale = grid / frame_size
    return np.array([[scale, 0, 0.5 * scale - 0.5], [0, scale, 0.5 * scale - 0.5], [0, 0, 1]])


@dataclass(frozen=True)
class ViewTransform:
    """One sampled affine: ``matrix`` (2, 3) maps input pixels to output pixels.

    in_size / out_size: square frame sides in pixels; flipped: whether the affine mirrors x.
    """

    matrix: np.ndarray
    in_size: int
    out_size: int
    flipped: bool

    def frames(self, frames: np.ndarray) -> np.ndarray:
        """uint8 (T, H, W, 3) -> uint8 (T, out, out, 3); black outside the source."""
        size = (self.out_size, self.out_size)
        return np.stack(
            [cv2.warpAffine(frame, self.matrix, size, flags=cv2.INTER_LINEAR) for frame in frames]
        )

    def points(self, landmarks: np.ndarray) -> np.ndarray:
        """(..., 68, 2) pixels -> (..., 68, 2) float32 pixels of the output (indices mirrored)."""
        if self.flipped:
            landmarks = landmarks[..., IBUG_FLIP_PERMUTATION, :]
        linear, shift = self.matrix[:, :2], self.matrix[:, 2]
        return (landmarks @ linear.T + shift).astype(np.float32)

    def flow(self, flow: np.ndarray) -> np.ndarray:
        """(T, 2, g, g) flow in input pixels -> float32 (T, 2, g, g) in output pixels.

        The field is resampled on its own grid with the same affine and its vectors are
        multiplied by the affine's linear part; zero flow outside the source.
        """
        grid = flow.shape[-1]
        full = np.vstack([self.matrix, [0, 0, 1]])
        to_grid = _pixel_to_grid(self.out_size, grid) @ full
        on_grid = (to_grid @ np.linalg.inv(_pixel_to_grid(self.in_size, grid)))[:2]
        fields = np.asarray(flow, dtype=np.float32).transpose(0, 2, 3, 1)  # (T, g, g, 2)
        warped = np.stack(
            [cv2.warpAffine(f, on_grid, (grid, grid), flags=cv2.INTER_LINEAR) for f in fields]
        )
        vectors = warped @ self.matrix[:, :2].T.astype(np.float32)
        return np.ascontiguousarray(vectors.transpose(0, 3, 1, 2))


@dataclass(frozen=True)
class GeometricAugment:
    """Samples :class:`ViewTransform`\\ s: resize to ``out_size`` plus random geometry.

    out_size: output side (px). flip_prob: probability of a horizontal flip. scale: relative
    zoom range (0.1 = uniform in [0.9, 1.1]). rotation: max degrees either way. translation: max
    shift as a fraction of ``out_size``. All zero = a plain resize.
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
        flipped = bool(rng.random() < self.flip_prob)
        zoom = self.out_size / in_size * rng.uniform(1 - self.scale, 1 + self.scale)
        angle = np.deg2rad(rng.uniform(-self.rotation, self.rotation))
        shift = rng.uniform(-self.translation, self.translation, size=2) * self.out_size
        cos, sin = zoom * np.cos(angle), zoom * np.sin(angle)
        linear = np.array([[cos, -sin], [sin, cos]]) @ np.diag([-1.0 if flipped else 1.0, 1.0])
        centre_in = np.full(2, (in_size - 1) / 2)
        centre_out = np.full(2, (self.out_size - 1) / 2) + shift
        matrix = np.hstack([linear, (centre_out - linear @ centre_in)[:, None]])
        return ViewTransform(matrix, in_size, self.out_size, flipped)


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
        self.register_buffer("mean", torch.tensor(IMAGENET_DEFAULT_MEAN).view(1, 1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_DEFAULT_STD).view(1, 1, 3, 1, 1))

    def forward(self, frames: torch.Tensor, train: bool) -> torch.Tensor:
        images = frames.float() / 255.0
        if train and self.colour is not None:
            images = self.colour(images)
        mean, std = self.mean.to(images.device), self.std.to(images.device)
        return (images - mean) / std
