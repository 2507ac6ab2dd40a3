"""Optical-flow targets for the single-image flow head (computed once, at prepare/synth time).

For every frame t of an aligned video the target is the dense flow from frame ``t - delta`` to
frame t (the motion that produced the expression visible at t), from OpenCV's DIS (default) or
Farneback, averaged down to a ``grid x grid`` field. Values stay in pixels of the stored frames
(dx, dy). Frames ``t < delta`` use frame 0 as the source, so frame 0's target is zero motion.
"""

from __future__ import annotations

import cv2
import numpy as np

FLOW_METHODS = ("dis", "farneback")


def _flow_function(method: str):
    if method == "dis":
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        return lambda a, b: dis.calc(a, b, None)
    if method == "farneback":
        return lambda a, b: cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 9, 3, 5, 1.1, 0)
    raise ValueError(f"unknown flow method {method!r}; choose from {FLOW_METHODS}")


def video_flow_targets(
    frames: np.ndarray, delta: int = 1, grid: int = 28, method: str = "dis"
) -> np.ndarray:
    """frames: uint8 (T, H, W, 3) RGB -> float16 (T, 2, grid, grid) flow in pixels (dx, dy)."""
    if delta < 1:
        raise ValueError(f"flow delta must be >= 1 frame, got {delta}")
    if grid < 1:
        raise ValueError(f"flow grid must be >= 1, got {grid}")
    flow_between = _flow_function(method)
    gray = [cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in frames]
    targets = np.zeros((len(frames), 2, grid, grid), dtype=np.float16)
    for t in range(1, len(frames)):
        flow = flow_between(gray[max(t - delta, 0)], gray[t])
        small = cv2.resize(flow, (grid, grid), interpolation=cv2.INTER_AREA)
        targets[t] = small.transpose(2, 0, 1)
    return targets
