"""Augmentation: one geometric transform per view on the CPU, colour + normalisation on the device.

Geometry (:class:`GeometricAugment`, in the Dataset workers): every frame of a view is first
resized to the output size by :func:`~aurep.data.images.resize_frames` (anti-aliased, the resize
of evaluation, embeddings and inference), then warped with OpenCV by one random affine per view
(flip, scale, rotation, translation; identity when augmentation is off), so the T frames of a
view share it; an optional small affine per frame on top (``frame_*``, off by default) moves
each frame of a clip independently, so how a face moves inside a clip (alignment jitter) is
no longer the same in two views. The composed matrix (resize, then augmentation) moves
landmarks and resamples flow fields; flow vectors are multiplied by its linear part, so a flip negates dx and a resize scales
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


def _homogeneous(affine: np.ndarray) -> np.ndarray:
    """(..., 2, 3) affines -> (..., 3, 3) with the row [0, 0, 1] appended."""
    bottom = np.broadcast_to([0.0, 0.0, 1.0], (*affine.shape[:-2], 1, 3))
    return np.concatenate([affine, bottom], axis=-2)


def _random_affine(
    rng: np.random.Generator,
    size: int,
    flipped: bool,
    scale: float,
    rotation: float,
    translation: float,
) -> np.ndarray:
    """(2, 3) affine on the pixels of a ``size`` px square: optional mirror, zoom in
    [1 - scale, 1 + scale] and rotation in [-rotation, rotation] degrees about the centre, then
    a shift in [-translation, translation] * size px per axis."""
    zoom = rng.uniform(1 - scale, 1 + scale)
    angle = np.deg2rad(rng.uniform(-rotation, rotation))
    shift = rng.uniform(-translation, translation, size=2) * size
    cos, sin = zoom * np.cos(angle), zoom * np.sin(angle)
    linear = np.array([[cos, -sin], [sin, cos]]) @ np.diag([-1.0 if flipped else 1.0, 1.0])
    centre = np.full(2, (size - 1) / 2)
    return np.hstack([linear, (centre + shift - linear @ centre)[:, None]])


@dataclass(frozen=True)
class ViewTransform:
    """One sampled view: the resize from ``in_size`` to ``out_size`` px, then ``augment``, then
    each frame's ``frame_augment`` (if any).

    augment: (2, 3) affine on output pixels (the identity when augmentation is off: the view is
    then exactly the evaluation resize). in_size / out_size: square frame sides in pixels;
    flipped: whether ``augment`` mirrors x. frame_augment: None, or (T, 2, 3) affines on output
    pixels applied after ``augment``, one per frame of the clip.
    """

    augment: np.ndarray
    in_size: int
    out_size: int
    flipped: bool
    frame_augment: np.ndarray | None = None

    @property
    def matrix(self) -> np.ndarray:
        """(2, 3) affine from input pixels to output pixels: the resize, then ``augment``."""
        return (_homogeneous(self.augment) @ _resize_matrix(self.in_size, self.out_size))[:2]

    def _frame_augments(self, frames: int) -> np.ndarray:
        """(T, 2, 3) affine of each of ``frames`` frames on output pixels: ``augment``, then
        the frame's own (if any)."""
        if self.frame_augment is None:
            return np.broadcast_to(self.augment, (frames, 2, 3))
        if len(self.frame_augment) != frames:
            raise ValueError(
                f"this view has {len(self.frame_augment)} frame affines, got {frames} frames"
            )
        return (_homogeneous(self.frame_augment) @ _homogeneous(self.augment))[:, :2]

    def frame_matrices(self, frames: int) -> np.ndarray:
        """(T, 2, 3) affine of each of ``frames`` frames from input to output pixels."""
        resize = _resize_matrix(self.in_size, self.out_size)
        return (_homogeneous(self._frame_augments(frames)) @ resize)[:, :2]

    def frames(self, frames: np.ndarray) -> np.ndarray:
        """uint8 (T, H, W, 3) -> uint8 (T, out, out, 3); black outside the source."""
        resized = resize_frames(frames, self.out_size)
        if self.frame_augment is None and np.array_equal(self.augment, np.eye(2, 3)):
            return resized  # augmentation off
        augments = self._frame_augments(len(resized))
        size = (self.out_size, self.out_size)
        return np.stack(
            [
                cv2.warpAffine(frame, augment, size, flags=cv2.INTER_LINEAR)
                for frame, augment in zip(resized, augments, strict=True)
            ]
        )

    def points(self, landmarks: np.ndarray) -> np.ndarray:
        """(..., 68, 2) pixels -> (..., 68, 2) float32 pixels of the output (indices mirrored).

        With ``frame_augment`` the points are per frame: (T, 68, 2)."""
        if self.flipped:
            landmarks = landmarks[..., FLIP_PERMUTATION, :]
        if self.frame_augment is None:
            linear, shift = self.matrix[:, :2], self.matrix[:, 2]
            return (landmarks @ linear.T + shift).astype(np.float32)
        matrices = self.frame_matrices(len(landmarks))
        moved = np.einsum("tpj,tij->tpi", landmarks, matrices[:, :, :2])
        return (moved + matrices[:, None, :, 2]).astype(np.float32)

    def flow(self, flow: np.ndarray) -> np.ndarray:
        """(T, 2, g, g) flow in input pixels -> float32 (T, 2, g, g) in output pixels.

        Target t is the motion from frame t - 1 (frame 0: from before the clip), sampled at
        frame t - 1's pixels. Its field is resampled on its own grid with frame t - 1's affine
        M' and its vectors are multiplied by the linear part of frame t's affine M; with
        ``frame_augment`` the motion of the frame itself, ``(M M'^-1 - I) x`` at output pixel
        x, is added (target 0 takes frame 0 as its own predecessor). Zero flow outside the
        source when the frames share one affine.
        """
        count, grid = len(flow), flow.shape[-1]
        matrices = _homogeneous(self.frame_matrices(count))
        sources = np.concatenate([matrices[:1], matrices[:-1]])  # frame t - 1's affine
        from_grid = np.linalg.inv(_resize_matrix(self.in_size, grid))
        to_grid = _resize_matrix(self.out_size, grid)
        if self.frame_augment is not None:
            x, y = np.meshgrid(np.arange(grid), np.arange(grid))
            cells = np.stack([x.ravel(), y.ravel(), np.ones(grid * grid)])  # (3, g * g)
            pixels = np.linalg.inv(to_grid) @ cells  # output pixels of the grid cells
        fields = np.asarray(flow, dtype=np.float32).transpose(0, 2, 3, 1)  # (T, g, g, 2)
        moved = []
        for field, matrix, source in zip(fields, matrices, sources, strict=True):
            on_grid = (to_grid @ source @ from_grid)[:2]
            warped = cv2.warpAffine(field, on_grid, (grid, grid), flags=cv2.INTER_LINEAR)
            vectors = warped @ matrix[:2, :2].T.astype(np.float32)
            if self.frame_augment is not None:
                frame_motion = ((matrix @ np.linalg.inv(source) - np.eye(3)) @ pixels)[:2]
                vectors += frame_motion.T.reshape(grid, grid, 2).astype(np.float32)
            moved.append(vectors)
        return np.ascontiguousarray(np.stack(moved).transpose(0, 3, 1, 2))


@dataclass(frozen=True)
class GeometricAugment:
    """Samples :class:`ViewTransform`\\ s: resize to ``out_size``, then random geometry.

    out_size: output side (px). flip_prob: probability of a horizontal flip. scale: relative
    zoom range (0.1 = uniform in [0.9, 1.1]). rotation: max degrees either way. translation: max
    shift as a fraction of ``out_size``. All zero = the plain resize of evaluation.
    frame_scale, frame_rotation, frame_translation: the same ranges for an extra affine drawn
    independently for every frame of a clip (no flip), after the view's; all zero = none.
    """

    out_size: int
    flip_prob: float = 0.0
    scale: float = 0.0
    rotation: float = 0.0
    translation: float = 0.0
    frame_scale: float = 0.0
    frame_rotation: float = 0.0
    frame_translation: float = 0.0

    def __post_init__(self):
        if self.out_size < 1:
            raise ValueError(f"image size must be >= 1 px, got {self.out_size}")
        if not 0.0 <= self.flip_prob <= 1.0:
            raise ValueError(f"flip probability must be in [0, 1], got {self.flip_prob}")
        for name in ("scale", "frame_scale"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(
                    f"{name} augmentation must be in [0, 1), got {getattr(self, name)}"
                )

    @property
    def moves_frames(self) -> bool:
        """Whether each frame of a clip gets its own extra affine."""
        return any((self.frame_scale, self.frame_rotation, self.frame_translation))

    def sample(
        self, rng: np.random.Generator, in_size: int, frames: int | None = None
    ) -> ViewTransform:
        """The view of frames of side ``in_size`` px: flip, zoom and rotation about the centre
        of the resized frame, then the shift; with ``frames`` (a clip's T) and a ``frame_*``
        range set, one extra affine per frame (drawn after the view's, so a view is the same
        draw with or without them)."""
        flipped = bool(rng.random() < self.flip_prob)
        augment = _random_affine(
            rng, self.out_size, flipped, self.scale, self.rotation, self.translation
        )
        frame_augment = None
        if frames is not None and self.moves_frames:
            ranges = (self.frame_scale, self.frame_rotation, self.frame_translation)
            frame_augment = np.stack(
                [_random_affine(rng, self.out_size, False, *ranges) for _ in range(frames)]
            )
        return ViewTransform(augment, in_size, self.out_size, flipped, frame_augment)


class DeviceAugment(nn.Module):
    """uint8 (N, T, 3, H, W) frames -> float32 ImageNet-normalised, colour-jittered if ``train``.

    colour_jitter: (brightness, contrast, saturation, hue) strengths for kornia ``ColorJitter``,
    applied with probability ``jitter_prob``; grayscale_prob: probability of a gray view. One set
    of parameters per view (all T frames alike). frame_colour_jitter: the same four strengths for
    a second jitter drawn for every frame (always applied), so that how lighting changes inside a
    clip differs between views. frame_illumination: largest slope of a multiplicative light
    gradient drawn for every frame (:func:`random_gain_gradient`; 0 = off). All zero =
    normalisation only.
    """

    def __init__(
        self,
        colour_jitter: Sequence[float] = (0.4, 0.4, 0.4, 0.1),
        jitter_prob: float = 0.8,
        grayscale_prob: float = 0.2,
        frame_colour_jitter: Sequence[float] = (0.0, 0.0, 0.0, 0.0),
        frame_illumination: float = 0.0,
    ):
        super().__init__()
        if not 0.0 <= frame_illumination <= 2.0:
            raise ValueError(f"frame_illumination must be in [0, 2], got {frame_illumination}")
        self.frame_illumination = frame_illumination
        for name, strengths in (
            ("colour_jitter", colour_jitter),
            ("frame_colour_jitter", frame_colour_jitter),
        ):
            if len(strengths) != 4:
                raise ValueError(f"{name} needs 4 strengths, got {strengths}")
        augments = []
        if any(colour_jitter) and jitter_prob > 0:
            augments.append(K.ColorJitter(*colour_jitter, p=jitter_prob))
        if grayscale_prob > 0:
            augments.append(K.RandomGrayscale(p=grayscale_prob))
        self.colour = K.VideoSequential(*augments, same_on_frame=True) if augments else None
        self.frame_colour = (
            K.VideoSequential(K.ColorJitter(*frame_colour_jitter, p=1.0), same_on_frame=False)
            if any(frame_colour_jitter)
            else None
        )

    def forward(self, frames: torch.Tensor, train: bool) -> torch.Tensor:
        images = frames.float() / 255.0
        if train:
            for augment in (self.colour, self.frame_colour):
                if augment is not None:
                    images = augment(images)
            if self.frame_illumination > 0:
                images = random_gain_gradient(images, self.frame_illumination)
        return normalise(images)


def random_gain_gradient(images: torch.Tensor, max_slope: float) -> torch.Tensor:
    """Multiply every image of (..., C, H, W) in [0, 1] by its own light field
    ``1 + gx * x + gy * y`` (x, y from -0.5 at the first pixel to 0.5 at the last; gx, gy uniform
    in [-max_slope, max_slope]), clamped to [0, 1].

    The gain changes across the image as a lamp to one side does: it scales the shading of a
    face, unlike an additive ramp (kornia's ``RandomLinearIllumination``), which a network can
    tell from a change of light by its effect on dark pixels.
    """
    height, width = images.shape[-2:]
    slopes = (torch.rand(*images.shape[:-3], 2, 1, 1, device=images.device) * 2 - 1) * max_slope
    x = torch.linspace(-0.5, 0.5, width, device=images.device)
    y = torch.linspace(-0.5, 0.5, height, device=images.device)[:, None]
    field = 1 + slopes[..., 0, :, :] * x + slopes[..., 1, :, :] * y  # (..., H, W)
    return (images * field.unsqueeze(-3).to(images.dtype)).clamp(0, 1)
