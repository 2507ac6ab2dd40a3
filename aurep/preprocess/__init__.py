"""Face preprocessing: MediaPipe landmarks (478 -> iBUG 68), similarity alignment, decoding."""

from aurep.preprocess.align import AlignedFace, FaceAligner, template_landmarks
from aurep.preprocess.faces import AlignedSequence, FacePreprocessor
from aurep.preprocess.landmarker import FaceLandmarker
from aurep.preprocess.mapping import CANONICAL_IBUG68, MEDIAPIPE_TO_IBUG68, mesh_to_ibug68

__all__ = [
    "CANONICAL_IBUG68",
    "MEDIAPIPE_TO_IBUG68",
    "AlignedFace",
    "AlignedSequence",
    "FaceAligner",
    "FaceLandmarker",
    "FacePreprocessor",
    "mesh_to_ibug68",
    "template_landmarks",
]
