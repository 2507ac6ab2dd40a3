"""Frames in, aligned face crops out: landmarks (MediaPipe) + similarity alignment per frame."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from aurep.landmarks import NUM_LANDMARKS
from aurep.prepare.faces.align import (
    DEFAULT_MARGIN,
    DEFAULT_POINTS,
    DEFAULT_SIZE,
    AlignedFace,
    FaceAligner,
)
from aurep.prepare.faces.landmarker import FaceLandmarker
from aurep.prepare.frames import SourceFrame
from aurep.prepare.report import condense


@dataclass
class AlignedSequence:
    """A video's frames after face preprocessing, in source order (T frames).

    frames: uint8 (T, S, S, 3) RGB crops (black where no face); landmarks: float32 (T, 68, 2)
    crop pixels (no face: the nearest frame with a face, zeros if none); success: int8 (T,);
    numbers: int64 (T,) source frame numbers; confidence: float32 (T,) in [0, 1], 0 = no face;
    crop_to_source: float32 (T, 2, 3) affine maps from crop pixels to source-frame pixels
    (:attr:`AlignedFace.crop_to_source`), NaN where no face; problems: messages about
    unreadable frames of the source (they have success 0).
    """

    frames: np.ndarray
    landmarks: np.ndarray
    success: np.ndarray
    numbers: np.ndarray
    confidence: np.ndarray
    crop_to_source: np.ndarray
    problems: list[str] = field(default_factory=list)

    @property
    def faces(self) -> int:
        return int(self.success.sum())


def nearest_success_index(success: np.ndarray) -> np.ndarray:
    """success: (T,) 0/1 -> (T,) index of the nearest frame with success (itself if successful;
    ties go to the earlier frame). All zeros -> arange(T)."""
    hits = np.flatnonzero(success)
    if hits.size == 0:
        return np.arange(len(success))
    positions = np.arange(len(success))
    right = np.clip(np.searchsorted(hits, positions), 0, hits.size - 1)
    left = np.clip(right - 1, 0, hits.size - 1)
    use_left = np.abs(hits[left] - positions) <= np.abs(hits[right] - positions)
    return np.where(use_left, hits[left], hits[right])


class FacePreprocessor:
    """Finds the face of every frame and aligns it (see :class:`FaceAligner` for the crop).

    Args:
        size / margin / points: the :class:`FaceAligner` crop (pixels, fraction, fit points).
        mode: landmarker running mode, ``"video"`` (tracking) or ``"image"``.
        min_detection_confidence / min_presence_confidence / min_tracking_confidence:
            :class:`FaceLandmarker` thresholds.
        confidence_scale: ``confidence = exp(-fit_error / (confidence_scale * size))``: how far
            (fraction of the crop) the aligned rigid points may sit from the template before the
            confidence drops to 1/e. MediaPipe's Python API reports no per-face score, so the
            alignment fit is the confidence.
    """

    def __init__(
        self,
        size: int = DEFAULT_SIZE,
        margin: float = DEFAULT_MARGIN,
        points: str = DEFAULT_POINTS,
        mode: str = "video",
        min_detection_confidence: float = 0.5,
        min_presence_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
        confidence_scale: float = 0.05,
    ):
        if confidence_scale <= 0:
            raise ValueError(f"confidence_scale must be > 0, got {confidence_scale}")
        self.aligner = FaceAligner(size, margin, points)
        self.size = size
        self.mode = mode
        self.confidence_scale = confidence_scale
        self._thresholds = (
            min_detection_confidence,
            min_presence_confidence,
            min_tracking_confidence,
        )

    def landmarker(self, mode: str | None = None) -> FaceLandmarker:
        """A fresh landmarker (video mode: one per video, timestamps restart); ``mode``
        overrides the configured running mode."""
        return FaceLandmarker(mode or self.mode, *self._thresholds)

    def confidence(self, face: AlignedFace | None) -> float:
        if face is None:
            return 0.0
        return math.exp(-face.fit_error / (self.confidence_scale * self.size))

    def align(self, landmarker: FaceLandmarker, frame: SourceFrame) -> AlignedFace | None:
        """The aligned face of one frame, or None when no face is found (or it is unreadable)."""
        if frame.image is None:
            return None
        landmarks = landmarker(frame.image, round(frame.timestamp_ms))
        return None if landmarks is None else self.aligner(frame.image, landmarks)

    def iter_aligned(
        self, frames: Iterable[SourceFrame], mode: str | None = None
    ) -> Iterator[tuple[SourceFrame, AlignedFace | None]]:
        """(frame, aligned face or None) for each frame, with one landmarker for the sequence."""
        with self.landmarker(mode) as landmarker:
            for frame in frames:
                yield frame, self.align(landmarker, frame)

    def sequence(self, frames: Iterable[SourceFrame]) -> AlignedSequence:
        """Preprocess a whole video (its crops are kept; the source frames are not)."""
        size = self.size
        crops, landmarks, success, numbers, confidence, problems = [], [], [], [], [], []
        no_face = np.full((2, 3), np.nan, np.float32)
        to_source = []
        for frame, face in self.iter_aligned(frames):
            if frame.problem:
                problems.append(frame.problem)
            numbers.append(frame.number)
            success.append(face is not None)
            confidence.append(self.confidence(face))
            crops.append(face.image if face else np.zeros((size, size, 3), np.uint8))
            landmarks.append(face.landmarks if face else np.zeros((NUM_LANDMARKS, 2), np.float32))
            to_source.append(face.crop_to_source if face else no_face)
        if not numbers:
            raise ValueError("no frames")
        success_array = np.array(success, dtype=np.int8)
        points = np.stack(landmarks)[nearest_success_index(success_array)]
        return AlignedSequence(
            frames=np.stack(crops),
            landmarks=points.astype(np.float32),
            success=success_array,
            numbers=np.array(numbers, dtype=np.int64),
            confidence=np.array(confidence, dtype=np.float32),
            crop_to_source=np.stack(to_source),
            problems=condense(problems, "{count} more unreadable frames"),
        )
