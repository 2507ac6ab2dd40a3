"""The one way frames become model inputs: resize with anti-aliasing, then ImageNet normalisation.

Training (:class:`~aurep.data.transforms.GeometricAugment` resizes before it augments),
evaluation, :mod:`aurep.embeddings` and ``aurep infer`` all call :func:`resize_frames` and
:func:`normalise`, so a frame reaches the backbone as the same pixels on every path.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

IMAGENET_MEAN: tuple[float, float, float] = tuple(IMAGENET_DEFAULT_MEAN)
"""Per-channel RGB mean of ImageNet, for images in [0, 1]."""
IMAGENET_STD: tuple[float, float, float] = tuple(IMAGENET_DEFAULT_STD)
"""Per-channel RGB standard deviation of ImageNet, for images in [0, 1]."""


def resize_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """uint8 (..., S, S, C) square frames -> uint8 (..., size, size, C).

    Shrinking averages the covered source pixels (``cv2.INTER_AREA``, anti-aliased), enlarging
    is bilinear, the same size returns ``frames`` itself. Pixel centres map as
    ``x_out = (x_in + 0.5) * size / S - 0.5``.
    """
    height, width = frames.shape[-3:-1]
    if height != width:
        raise ValueError(f"frames must be square to resize, got {height}x{width} px")
    if size < 1:
        raise ValueError(f"image size must be >= 1 px, got {size}")
    if width == size:
        return frames
    interpolation = cv2.INTER_AREA if size < width else cv2.INTER_LINEAR
    flat = frames.reshape(-1, height, width, frames.shape[-1])
    resized = [cv2.resize(frame, (size, size), interpolation=interpolation) for frame in flat]
    return np.stack(resized).reshape(*frames.shape[:-3], size, size, frames.shape[-1])


def normalise(images: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) uint8 frames, or floats in [0, 1] -> float32 ImageNet-normalised."""
    if images.dtype == torch.uint8:
        images = images.float() / 255.0
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=images.device).view(3, 1, 1)
    return (images - mean) / std
