"""Per-clip nuisances: alignment jitter, head turns, lighting, background, blur and noise.

All magnitudes scale with ``difficulty`` (0..1); motion nuisances are smooth over time (a
constant per-clip offset, like a systematic alignment error, plus a slow drift).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from aurep.synth.dynamics import smooth_track


@dataclass(frozen=True)
class ClipNuisance:
    """Time tracks (T,) and per-clip constants of one clip's nuisances.

    rotation: degrees; shift: (T, 2) pixels; scale: factor; yaw/pitch: -1..1 feature shifts;
    light: (T, 3) horizontal and vertical gain gradient across the crop and overall gain;
    colour: (3,) RGB gain; blur: Gaussian sigma in pixels (0 = none); noise: std in 0-255 units.
    """

    rotation: np.ndarray
    shift: np.ndarray
    scale: np.ndarray
    yaw: np.ndarray
    pitch: np.ndarray
    light: np.ndarray
    colour: np.ndarray
    blur: float
    noise: float


def sample_nuisance(
    rng: np.random.Generator, frames: int, size: int, difficulty: float
) -> ClipNuisance:
    """Draw one clip's nuisances for ``frames`` frames of ``size`` px."""
    d = difficulty

    def track(offset_std: float, drift: float, count: int = 1) -> np.ndarray:
        tracks = [
            rng.normal(0, offset_std) + smooth_track(rng, frames, drift) for _ in range(count)
        ]
        return np.stack(tracks, 1) if count > 1 else tracks[0]

    light = np.stack(
        [
            rng.uniform(-0.35, 0.35) * d + smooth_track(rng, frames, 0.08 * d),
            rng.uniform(-0.25, 0.25) * d + smooth_track(rng, frames, 0.05 * d),
            1 + rng.uniform(-0.25, 0.2) * d + smooth_track(rng, frames, 0.04 * d),
        ],
        1,
    )
    return ClipNuisance(
        rotation=track(3.0 * d, 2.0 * d),
        shift=track(0.025 * size * d, 0.012 * size * d, count=2),
        scale=1 + track(0.04 * d, 0.02 * d),
        yaw=np.clip(track(0.3 * d, 0.3 * d), -1, 1),
        pitch=np.clip(track(0.2 * d, 0.2 * d), -1, 1),
        light=light,
        colour=1 + rng.normal(0, 0.06 * d, 3),
        blur=float(rng.uniform(0, 1.2 * d) * size / 112),
        noise=float(rng.uniform(1.0, 1.0 + 7.0 * d)),
    )


def sample_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """uint8 (S, S, 3) scene behind the head: a colour gradient and a few blurred shapes."""
    base = rng.uniform(30, 220, 3)
    y, x = np.mgrid[0:size, 0:size] / size
    direction = rng.normal(0, 1, 2)
    ramp = (direction[0] * x + direction[1] * y)[..., None] * rng.uniform(-40, 40, 3)
    image = np.clip(base + ramp, 0, 255).astype(np.uint8)
    for _ in range(rng.integers(0, 5)):
        colour = rng.uniform(20, 235, 3).tolist()
        corner = rng.integers(0, size, 2)
        extent = rng.integers(size // 8, size // 2, 2)
        cv2.rectangle(image, tuple(corner.tolist()), tuple((corner + extent).tolist()), colour, -1)
    return cv2.GaussianBlur(image, (0, 0), size / 60)


def alignment_matrix(nuisance: ClipNuisance, t: int, size: int) -> np.ndarray:
    """(2, 3) affine jitter of frame ``t``: rotation and scale about the centre, then shift."""
    centre = ((size - 1) / 2, (size - 1) / 2)
    matrix = cv2.getRotationMatrix2D(centre, float(nuisance.rotation[t]), float(nuisance.scale[t]))
    matrix[:, 2] += nuisance.shift[t]
    return matrix


class NoiseBank:
    """Sensor noise: one (2S, 2S, 3) Gaussian field per clip, a random window per frame
    (much cheaper than fresh noise per frame). ``std`` in 0-255 units."""

    def __init__(self, rng: np.random.Generator, size: int, std: float):
        self.size = size
        self.field = rng.standard_normal((2 * size, 2 * size, 3), dtype=np.float32)
        self.field *= np.float32(std)

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """float32 (S, S, 3) noise window."""
        y, x = rng.integers(0, self.size, 2)
        return self.field[y : y + self.size, x : x + self.size]


@functools.lru_cache(maxsize=8)
def _ramp(size: int) -> np.ndarray:
    return np.linspace(-0.5, 0.5, size, dtype=np.float32)


def degrade(
    canvas: np.ndarray, gain: np.ndarray, nuisance: ClipNuisance, t: int, noise: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Apply frame ``t``'s lighting, alignment warp, blur and ``noise`` to a drawn frame.

    canvas: uint8 (S, S, 3); gain: float32 (S, S) face shading; noise: float32 (S, S, 3) ->
    (uint8 image (S, S, 3), float32 (2, 3) warp matrix applied, to move the landmarks with it).
    """
    size = canvas.shape[0]
    ramp = _ramp(size)
    gx, gy, level = nuisance.light[t]
    lighting = gain * (level * (1 + gx * ramp[None, :] + gy * ramp[:, None])).astype(np.float32)
    gain3 = cv2.merge([lighting * np.float32(c) for c in nuisance.colour])
    image = cv2.multiply(canvas, gain3, dtype=cv2.CV_32F)
    matrix = alignment_matrix(nuisance, t, size)
    image = cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REFLECT101)  # fmt: skip
    if nuisance.blur > 0.3:
        image = cv2.GaussianBlur(image, (0, 0), nuisance.blur)
    image = cv2.add(image, noise)
    return np.clip(image, 0, 255).astype(np.uint8), matrix.astype(np.float32)
