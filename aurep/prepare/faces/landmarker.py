"""Face landmarks with MediaPipe's Tasks ``FaceLandmarker`` and the model bundle aurep ships.

The model file ``assets/face_landmarker.task`` (Apache-2.0, see ``assets/NOTICE``) is checked
against its sha256 when loaded; nothing is downloaded. MediaPipe is imported lazily, so aurep
modules that only read prepared data do not need it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import sys
import threading
from functools import cache
from pathlib import Path

import numpy as np

from aurep.prepare.faces.mapping import mesh_to_ibug68

MODEL_PATH = Path(__file__).with_name("assets") / "face_landmarker.task"
MODEL_SHA256 = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"
RUNNING_MODES = ("video", "image")


@cache
def _verified_model(path: Path) -> bytes:
    """The model file's bytes after checking their sha256 (once per process)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: MediaPipe face landmarker model is missing")
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != MODEL_SHA256:
        raise ValueError(f"{path}: sha256 {digest} != expected {MODEL_SHA256} (corrupted copy?)")
    return data


def ignore_profiling_signal() -> None:
    """MediaPipe's worker threads arm per-thread SIGPROF timers after setting SIGPROF to SIG_IGN
    behind Python's back; code that later restores Python's cached handler (Lightning's signal
    connector does, for every signal) would reset it to SIG_DFL and the next tick kills the
    process ("Profiling timer expired"). Setting SIG_IGN through Python keeps both views equal.
    Only the main thread can set signals: code that starts MediaPipe in another thread calls
    this first, in the main thread (a no-op elsewhere)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGPROF, signal.SIG_IGN)


@contextlib.contextmanager
def _quiet_stderr():
    """Silence file descriptor 2 (C++ logging) for the duration of the block."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class FaceLandmarker:
    """68 iBUG landmarks of the most prominent face in RGB frames (MediaPipe, 478 -> 68 points).

    Args:
        mode: ``"video"`` tracks the face from frame to frame (faster; timestamps must
            increase) or ``"image"`` detects it in every frame independently.
        min_detection_confidence: face detector score threshold (0-1).
        min_presence_confidence: landmark model face-presence threshold (0-1).
        min_tracking_confidence: video mode: below this the face is detected again (0-1).

    Use as a context manager (or call :meth:`close`) to release MediaPipe's graph.
    """

    def __init__(
        self,
        mode: str = "video",
        min_detection_confidence: float = 0.5,
        min_presence_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
    ):
        if mode not in RUNNING_MODES:
            raise ValueError(f"landmarker mode must be one of {RUNNING_MODES}, got {mode!r}")
        from mediapipe.tasks.python import BaseOptions, vision

        self.mode = mode
        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_buffer=_verified_model(MODEL_PATH)),
            running_mode=vision.RunningMode.VIDEO if mode == "video" else vision.RunningMode.IMAGE,
            num_faces=1,
            min_face_detection_confidence=min_detection_confidence,
            min_face_presence_confidence=min_presence_confidence,
            min_tracking_confidence=min_tracking_confidence,
        )
        ignore_profiling_signal()
        with _quiet_stderr():  # MediaPipe's C++ start-up chatter
            self._task = vision.FaceLandmarker.create_from_options(options)
        self._last_timestamp = -1

    def mesh(self, image: np.ndarray, timestamp_ms: int | None = None) -> np.ndarray | None:
        """image: uint8 (H, W, 3) RGB -> float32 (478, 2) pixel (x, y) points, or None if no face.

        timestamp_ms: video mode only; must increase (None = previous + 1)."""
        import mediapipe as mp

        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(
                f"expected a uint8 (H, W, 3) RGB image, got {image.dtype} {image.shape}"
            )
        frame = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(image))
        if self.mode == "video":
            if timestamp_ms is None or timestamp_ms <= self._last_timestamp:
                timestamp_ms = self._last_timestamp + 1
            self._last_timestamp = int(timestamp_ms)
            result = self._task.detect_for_video(frame, int(timestamp_ms))
        else:
            result = self._task.detect(frame)
        if not result.face_landmarks:
            return None
        height, width = image.shape[:2]
        points = np.array([(p.x, p.y) for p in result.face_landmarks[0]], dtype=np.float32)
        return points * np.array([width, height], dtype=np.float32)

    def __call__(self, image: np.ndarray, timestamp_ms: int | None = None) -> np.ndarray | None:
        """image: uint8 (H, W, 3) RGB -> float32 (68, 2) iBUG points in pixels, or None."""
        mesh = self.mesh(image, timestamp_ms)
        return None if mesh is None else mesh_to_ibug68(mesh)

    def close(self) -> None:
        if self._task is not None:
            self._task.close()
            self._task = None

    def __enter__(self) -> FaceLandmarker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # at shutdown MediaPipe's bindings may be gone
            self.close()
