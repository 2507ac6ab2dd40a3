"""Where a synthetic face sits in its crop: on the alignment template of ``aurep prepare``.

Synthetic faces are drawn in design units (:mod:`aurep.synth.identity`: x, y in about [0, 1],
y down). A :class:`View` maps design units to crop pixels with a uniform scale and a shift. The
view of an identity (:func:`aligned_view`) is the similarity that
:class:`~aurep.prepare.faces.align.FaceAligner` would apply to its neutral face: its rigid
points (eye corners and nose) fitted by least squares onto the same template, so synthetic
crops are framed like aligned real faces. The design face is upright and left-right symmetric,
so the fit has no rotation; head roll is a nuisance (:mod:`aurep.synth.nuisance`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aurep.prepare.faces.align import DEFAULT_MARGIN, RIGID_POINTS, template_landmarks

SHIFT = 4  # cv2 drawing: coordinates carry 4 fractional bits
_ONE = 1 << SHIFT


@dataclass(frozen=True)
class View:
    """Design units -> pixels of a ``size`` px crop: ``pixel = point * unit + shift``
    (pixel centres at integers). unit: crop pixels per design unit; shift: (x, y) pixels."""

    size: int
    unit: float
    shift: tuple[float, float]

    def pixels(self, points) -> np.ndarray:
        """Design (..., 2) points -> float32 crop pixels."""
        return (np.asarray(points) * self.unit + self.shift).astype(np.float32)

    def points(self, pixels) -> np.ndarray:
        """Crop pixels (..., 2) -> float64 design points (the inverse of :meth:`pixels`)."""
        return (np.asarray(pixels, dtype=float) - self.shift) / self.unit

    def to_cv(self, points) -> np.ndarray:
        """Design (..., 2) points -> int32 cv2 coordinates with SHIFT fractional bits."""
        return np.rint((np.asarray(points) * self.unit + self.shift) * _ONE).astype(np.int32)

    def length(self, value: float) -> int:
        """A design length -> cv2 fixed-point pixels (radii, ellipse axes)."""
        return int(round(value * self.unit * _ONE))


def aligned_view(neutral: np.ndarray, size: int, margin: float = DEFAULT_MARGIN) -> View:
    """The view that puts ``neutral`` ((68, 2) design points of a neutral face) on the
    alignment template of a ``size`` px crop with ``margin``: uniform scale and shift fitted by
    least squares on the rigid points."""
    source = np.asarray(neutral, dtype=float)[list(RIGID_POINTS)]
    target = template_landmarks(size, margin)[list(RIGID_POINTS)].astype(float)
    source_mean, target_mean = source.mean(0), target.mean(0)
    centred = source - source_mean
    unit = float((centred * (target - target_mean)).sum() / (centred**2).sum())
    shift = target_mean - unit * source_mean
    return View(size, unit, (float(shift[0]), float(shift[1])))
