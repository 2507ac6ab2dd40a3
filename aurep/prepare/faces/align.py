"""Similarity alignment of a face to the canonical 68-point template (OpenCV).

The template (:data:`~aurep.prepare.faces.mapping.CANONICAL_IBUG68`) is scaled so that its bounding
box (jaw to jaw, brows to chin) plus ``margin`` times its larger side on every edge fills the
``size x size`` crop, centred. A rotation + uniform scale + translation is fitted from the face's
landmarks to the template (``cv2.estimateAffinePartial2D``, least-median robust fit) on
``points``, and the frame is warped with it (``cv2.warpAffine``). This one template frames every
crop: ``aurep prepare`` and ``aurep infer`` align real faces onto it, and ``aurep synth`` draws its
faces on it (:mod:`aurep.synth.framing`).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from aurep.landmarks import EYE_CORNERS, NOSE, NUM_LANDMARKS
from aurep.prepare.faces.mapping import CANONICAL_IBUG68

DEFAULT_SIZE = 112  # crop side, pixels
DEFAULT_MARGIN = 0.2  # border around the template's face box, fraction of its larger side
DEFAULT_POINTS = "rigid"
# nose + eye corners: no AU moves them
RIGID_POINTS = (*range(NUM_LANDMARKS)[NOSE], *EYE_CORNERS)
ALIGN_POINTS = {"rigid": RIGID_POINTS, "all": tuple(range(NUM_LANDMARKS))}


@dataclass
class AlignedFace:
    """image: uint8 (size, size, 3) RGB crop; landmarks: float32 (68, 2) pixels of the crop;
    matrix: float64 (2, 3) map from source-frame pixels to crop pixels; fit_error: RMS distance
    (pixels of the crop) between the aligned and the template points used for the fit."""

    image: np.ndarray
    landmarks: np.ndarray
    matrix: np.ndarray
    fit_error: float

    @property
    def crop_to_source(self) -> np.ndarray:
        """float32 (2, 3): the inverse of ``matrix``, crop pixels -> source-frame pixels
        (``source = M[:, :2] @ crop + M[:, 2]``)."""
        return cv2.invertAffineTransform(self.matrix).astype(np.float32)


def template_landmarks(size: int = DEFAULT_SIZE, margin: float = DEFAULT_MARGIN) -> np.ndarray:
    """The canonical 68 points in pixels of a ``size`` crop with ``margin``: float32 (68, 2)."""
    if size < 8:
        raise ValueError(f"crop size must be >= 8 px, got {size}")
    if not 0.0 <= margin < 1.0:
        raise ValueError(f"crop margin must be in [0, 1), got {margin}")
    low, high = CANONICAL_IBUG68.min(0), CANONICAL_IBUG68.max(0)
    scale = size / (float((high - low).max()) * (1.0 + 2.0 * margin))
    return ((CANONICAL_IBUG68 - (low + high) / 2) * scale + size / 2).astype(np.float32)


class FaceAligner:
    """Warps frames so the face's landmarks land on the template.

    Args:
        size: side of the square crop, pixels.
        margin: extra border around the template's face box, as a fraction of its larger side
            (0.2 keeps the forehead above the brows for the AU1/AU2 regions).
        points: landmarks the similarity is fitted on: ``"rigid"`` (eye corners and nose,
            unaffected by expressions) or ``"all"`` 68.
        border: pixel fill outside the frame: ``"constant"`` (black) or ``"replicate"``.
    """

    def __init__(
        self,
        size: int = DEFAULT_SIZE,
        margin: float = DEFAULT_MARGIN,
        points: str = DEFAULT_POINTS,
        border: str = "constant",
    ):
        if points not in ALIGN_POINTS:
            raise ValueError(
                f"alignment points must be one of {sorted(ALIGN_POINTS)}, got {points!r}"
            )
        borders = {"constant": cv2.BORDER_CONSTANT, "replicate": cv2.BORDER_REPLICATE}
        if border not in borders:
            raise ValueError(f"border must be one of {sorted(borders)}, got {border!r}")
        self.size = size
        self.margin = margin
        self.template = template_landmarks(size, margin)
        self._fit = list(ALIGN_POINTS[points])
        self._border = borders[border]

    def matrix(self, landmarks: np.ndarray) -> np.ndarray:
        """landmarks: (68, 2) source pixels -> float64 (2, 3) similarity to crop pixels."""
        source = np.asarray(landmarks, dtype=np.float32)[self._fit]
        matrix, _ = cv2.estimateAffinePartial2D(source, self.template[self._fit], method=cv2.LMEDS)
        if matrix is None:
            raise ValueError("face alignment failed: degenerate landmarks")
        return matrix

    def __call__(self, image: np.ndarray, landmarks: np.ndarray) -> AlignedFace:
        """image: uint8 (H, W, 3); landmarks: (68, 2) pixels of ``image`` -> :class:`AlignedFace`."""
        matrix = self.matrix(landmarks)
        crop = cv2.warpAffine(
            image, matrix, (self.size, self.size), flags=cv2.INTER_LINEAR, borderMode=self._border
        )
        aligned = cv2.transform(np.asarray(landmarks, np.float32)[None], matrix)[0]
        residual = aligned[self._fit] - self.template[self._fit]
        fit_error = float(np.sqrt((residual**2).sum(axis=1).mean()))
        return AlignedFace(crop, aligned.astype(np.float32), matrix, fit_error)
