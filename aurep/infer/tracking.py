"""Stable ``face_id`` for several faces per frame: boxes matched to the previous frames' tracks.

Each frame's face boxes are matched to the open tracks by the Hungarian method
(:func:`scipy.optimize.linear_sum_assignment`) on box IoU with each track's predicted box (its
last box moved by its last per-frame motion, so faces whose paths cross keep their ids). A box
overlapping no track by ``min_iou`` opens a new track with the next unused id (ids start at 0
and are never reused); a track unseen for more than ``max_missed`` frames is closed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment


def box_iou(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """(N, 4) and (M, 4) boxes (x, y, width, height) -> (N, M) intersection over union."""
    first, second = np.asarray(first, float)[:, None], np.asarray(second, float)[None]
    low = np.maximum(first[..., :2], second[..., :2])
    high = np.minimum(first[..., :2] + first[..., 2:], second[..., :2] + second[..., 2:])
    overlap = np.clip(high - low, 0, None).prod(-1)
    union = first[..., 2:].prod(-1) + second[..., 2:].prod(-1) - overlap
    return np.divide(overlap, union, out=np.zeros_like(overlap), where=union > 0)


@dataclass
class _Track:
    face_id: int
    box: np.ndarray  # (4,) last seen box
    motion: np.ndarray  # (2,) per-frame shift of the box's corner when last seen
    missed: int = 0  # frames since last seen

    def predicted(self) -> np.ndarray:
        return self.box + np.concatenate([self.motion * (self.missed + 1), [0.0, 0.0]])


class FaceTracker:
    """Call once per frame, in order, with that frame's face boxes; returns their ids.

    Args:
        min_iou: the least IoU between a box and a track's predicted box to continue it.
        max_missed: frames a track may go unseen before it is closed (its face then gets a
            new id).
    """

    def __init__(self, min_iou: float = 0.2, max_missed: int = 15):
        if not 0 < min_iou <= 1:
            raise ValueError(f"min_iou must be in (0, 1], got {min_iou}")
        if max_missed < 0:
            raise ValueError(f"max_missed must be >= 0, got {max_missed}")
        self.min_iou, self.max_missed = min_iou, max_missed
        self._tracks: list[_Track] = []
        self._next_id = 0

    def __call__(self, boxes) -> list[int]:
        """boxes: (F, 4) x, y, width, height (pixels) of one frame's faces -> F face ids."""
        boxes = np.asarray(boxes, float).reshape(-1, 4)
        ids = [-1] * len(boxes)
        matched: set[int] = set()
        if self._tracks and len(boxes):
            overlap = box_iou(boxes, np.stack([t.predicted() for t in self._tracks]))
            for face, track in zip(*linear_sum_assignment(-overlap), strict=True):
                if overlap[face, track] >= self.min_iou:
                    self._continue(self._tracks[track], boxes[face])
                    ids[face] = self._tracks[track].face_id
                    matched.add(track)
        for number, track in enumerate(self._tracks):
            if number not in matched:
                track.missed += 1
        self._tracks = [t for t in self._tracks if t.missed <= self.max_missed]
        for face, box in enumerate(boxes):
            if ids[face] < 0:
                self._tracks.append(_Track(self._next_id, box, np.zeros(2)))
                ids[face] = self._next_id
                self._next_id += 1
        return ids

    @staticmethod
    def _continue(track: _Track, box: np.ndarray) -> None:
        track.motion = (box[:2] - track.box[:2]) / (track.missed + 1)
        track.box, track.missed = box, 0
