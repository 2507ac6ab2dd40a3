"""What ``aurep infer`` reports about the faces of one source frame (MediaPipe, up to N faces).

:class:`FaceObserver` runs MediaPipe's FaceLandmarker from the model bundle aurep ships (with its
blendshapes and facial transformation matrix) and, for ``confidence``, the bundle's own face
detector (BlazeFace) on the same frame. It aligns the crop with a
:class:`~aurep.prepare.faces.align.FaceAligner`, as ``aurep prepare`` does.

``confidence``: the detector's score (0-1) of the best detection whose centre lies inside the
face's landmark box, 0 when the detector sees no face there (the landmarker may still track one). It
falls when the face is occluded, turned away or blurred, not when the expression changes.
MediaPipe's Python API exposes no landmark-model face-presence score, so the detector is the
quality signal.

Head pose: MediaPipe's facial transformation matrix (canonical face model, cm -> camera space,
OpenGL axes) in OpenFace's convention: camera axes x right, y down, z away from the camera,
translation in millimetres, rotation as intrinsic x-y-z Euler angles (``R = Rx Ry Rz``, as
OpenFace's ``pose_Rx``/``pose_Ry``/``pose_Rz``: pitch, yaw, roll) in radians. MediaPipe assumes
a default pinhole camera, so the depth ``pose_Tz`` is approximate.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from aurep.prepare.faces.align import AlignedFace, FaceAligner
from aurep.prepare.faces.landmarker import (
    MODEL_PATH,
    _quiet_stderr,
    _verified_model,
    ignore_profiling_signal,
)
from aurep.prepare.faces.mapping import mesh_to_ibug68

BLENDSHAPES = (
    "_neutral", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft",
    "browOuterUpRight", "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft",
    "eyeBlinkRight", "eyeLookDownLeft", "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight",
    "eyeLookOutLeft", "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight", "eyeSquintLeft",
    "eyeSquintRight", "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft", "jawOpen",
    "jawRight", "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft",
    "mouthFrownRight", "mouthFunnel", "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight",
    "mouthPressLeft", "mouthPressRight", "mouthPucker", "mouthRight", "mouthRollLower",
    "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthSmileLeft", "mouthSmileRight",
    "mouthStretchLeft", "mouthStretchRight", "mouthUpperUpLeft", "mouthUpperUpRight",
    "noseSneerLeft", "noseSneerRight",
)  # fmt: skip
"""MediaPipe's 52 blendshape categories (its ``category_name``), in its output order."""

POSE_COLUMNS = ("pose_Tx", "pose_Ty", "pose_Tz", "pose_Rx", "pose_Ry", "pose_Rz")
_OPENGL_TO_OPENCV = np.diag([1.0, -1.0, -1.0])  # flip y (up -> down) and z (towards -> away)


@dataclass
class FaceObservation:
    """aligned: the crop for the model; landmarks: float32 (68, 2) iBUG points in source-frame
    pixels; pose: float32 (6,) ``POSE_COLUMNS`` (mm, rad); blendshapes: float32 (52,) scores in
    ``BLENDSHAPES`` order, or None when not asked for; confidence: detector score in [0, 1]."""

    aligned: AlignedFace
    landmarks: np.ndarray
    pose: np.ndarray
    blendshapes: np.ndarray | None
    confidence: float

    @property
    def box(self) -> tuple[float, float, float, float]:
        """(x, y, width, height) of the landmarks' bounding box, source pixels."""
        low, high = self.landmarks.min(0), self.landmarks.max(0)
        return float(low[0]), float(low[1]), float(high[0] - low[0]), float(high[1] - low[1])


def head_pose(matrix: np.ndarray) -> np.ndarray:
    """MediaPipe's (4, 4) facial transformation matrix -> float32 (6,) Tx, Ty, Tz (mm), Rx, Ry,
    Rz (rad) in OpenFace's camera convention (see the module docstring)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    rotation = _OPENGL_TO_OPENCV @ matrix[:3, :3] @ _OPENGL_TO_OPENCV
    translation = 10.0 * (_OPENGL_TO_OPENCV @ matrix[:3, 3])
    angles = Rotation.from_matrix(rotation).as_euler("XYZ")
    return np.concatenate([translation, angles]).astype(np.float32)


def detection_score(detections, box: tuple[float, float, float, float]) -> float:
    """The best score among MediaPipe detections whose box centre lies in ``box`` (x, y, w, h
    in pixels), 0.0 if none does."""
    x, y, width, height = box
    scores = [0.0]
    for detection in detections:
        found = detection.bounding_box
        cx, cy = found.origin_x + found.width / 2, found.origin_y + found.height / 2
        if x <= cx <= x + width and y <= cy <= y + height:
            scores.append(float(detection.categories[0].score))
    return max(scores)


class FaceObserver:
    """Landmarks, alignment, head pose, blendshapes and detector confidence per frame.

    Args:
        aligner: the crop (size, margin, fit points) the detector was trained on.
        mode: ``"video"`` (landmarks tracked from frame to frame; timestamps must increase) or
            ``"image"`` (every frame on its own).
        blendshapes: also run MediaPipe's blendshape model.
        min_confidence: landmarker detection / presence / tracking threshold (0-1).
        max_faces: the most faces the landmarker looks for per frame.

    Use as a context manager to release MediaPipe's graphs.
    """

    def __init__(
        self,
        aligner: FaceAligner,
        mode: str = "video",
        blendshapes: bool = True,
        min_confidence: float = 0.5,
        max_faces: int = 1,
    ):
        from mediapipe.tasks.python import BaseOptions, vision

        if mode not in ("video", "image"):
            raise ValueError(f"landmarker mode must be 'video' or 'image', got {mode!r}")
        if max_faces < 1:
            raise ValueError(f"max_faces must be >= 1, got {max_faces}")
        bundle = _verified_model(MODEL_PATH)
        running = vision.RunningMode.VIDEO if mode == "video" else vision.RunningMode.IMAGE
        landmarker = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_buffer=bundle),
            running_mode=running,
            num_faces=max_faces,
            min_face_detection_confidence=min_confidence,
            min_face_presence_confidence=min_confidence,
            min_tracking_confidence=min_confidence,
            output_face_blendshapes=blendshapes,
            output_facial_transformation_matrixes=True,
        )
        with zipfile.ZipFile(io.BytesIO(bundle)) as archive:
            detector_model = archive.read("face_detector.tflite")
        detector = vision.FaceDetectorOptions(
            base_options=BaseOptions(model_asset_buffer=detector_model),
            running_mode=vision.RunningMode.IMAGE,
            min_detection_confidence=0.05,
        )
        ignore_profiling_signal()
        with _quiet_stderr():  # MediaPipe's C++ start-up chatter
            self._landmarker = vision.FaceLandmarker.create_from_options(landmarker)
            self._detector = vision.FaceDetector.create_from_options(detector)
        self.aligner = aligner
        self.mode = mode
        self.blendshapes = blendshapes
        self._last_timestamp = -1

    def __call__(self, image: np.ndarray, timestamp_ms: float = 0.0) -> list[FaceObservation]:
        """image: uint8 (H, W, 3) RGB -> a :class:`FaceObservation` per face found (up to
        ``max_faces``, in the landmarker's order; empty when none)."""
        import mediapipe as mp

        frame = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(image))
        if self.mode == "video":
            self._last_timestamp = max(int(round(timestamp_ms)), self._last_timestamp + 1)
            result = self._landmarker.detect_for_video(frame, self._last_timestamp)
        else:
            result = self._landmarker.detect(frame)
        if not result.face_landmarks:
            return []
        detections = self._detector.detect(frame).detections
        return [
            self._observation(image, result, face, detections)
            for face in range(len(result.face_landmarks))
        ]

    def _observation(self, image: np.ndarray, result, face: int, detections) -> FaceObservation:
        """The ``face``-th face of a landmarker ``result`` on ``image``."""
        height, width = image.shape[:2]
        mesh = np.array([(p.x * width, p.y * height) for p in result.face_landmarks[face]])
        landmarks = mesh_to_ibug68(mesh)
        scores = None
        if self.blendshapes:
            named = {c.category_name: c.score for c in result.face_blendshapes[face]}
            scores = np.array([named[name] for name in BLENDSHAPES], dtype=np.float32)
        matrices = result.facial_transformation_matrixes or []
        if len(matrices) > face:
            pose = head_pose(matrices[face])
        else:
            pose = np.full(len(POSE_COLUMNS), np.nan, dtype=np.float32)
        observation = FaceObservation(self.aligner(image, landmarks), landmarks, pose, scores, 0.0)
        observation.confidence = detection_score(detections, observation.box)
        return observation

    def close(self) -> None:
        with _quiet_stderr():  # MediaPipe's C++ shutdown chatter
            for task in (self._landmarker, self._detector):
                task.close()

    def __enter__(self) -> FaceObserver:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
