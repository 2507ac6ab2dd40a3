"""MediaPipe's 478 face-mesh points -> the 68-point iBUG/dlib layout, and a canonical 68-point face.

``MEDIAPIPE_TO_IBUG68[k]`` is the face-mesh index used for iBUG point k (the layout of
:mod:`aurep.landmarks`). One mesh vertex per point, chosen on the mesh so that the left/right
pairs of :data:`aurep.landmarks.MIRROR_PAIRS` are mirror vertices of each other.

``CANONICAL_IBUG68`` holds those 68 vertices of MediaPipe's canonical (mean, frontal) face model,
projected orthographically: x to the image right, y down, centimetres, centred on their mean.
It was read once from ``geometry_pipeline_metadata_landmarks.binarypb`` inside the shipped model
bundle and is the alignment template of :mod:`aurep.prepare.faces.align`.
"""

from __future__ import annotations

import numpy as np

NUM_MESH_POINTS = 478

MEDIAPIPE_TO_IBUG68 = np.array(
    [
        # jaw 0-16, image left to right
        127, 234, 93, 132, 58, 172, 150, 176, 152, 400, 379, 397, 288, 361, 323, 454, 356,
        # right brow 17-21 (outer -> inner), left brow 22-26 (inner -> outer)
        70, 63, 105, 66, 107, 336, 296, 334, 293, 300,
        # nose bridge 27-30 (top -> tip), nostrils 31-35 (image left -> right)
        168, 197, 5, 1, 75, 97, 2, 326, 305,
        # right eye 36-41, left eye 42-47 (clockwise from the image-left corner)
        33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380,
        # outer lips 48-59 (clockwise from the right mouth corner)
        61, 40, 37, 0, 267, 270, 291, 321, 314, 17, 84, 91,
        # inner lips 60-67
        78, 81, 13, 311, 308, 402, 14, 178,
    ],
    dtype=np.int64,
)  # fmt: skip

CANONICAL_IBUG68 = np.array(
    [
        [-7.743, -3.508], [-7.664, -1.816], [-7.542, -0.094], [-7.271, 1.748], [-6.72, 3.645],
        [-5.941, 5.08], [-4.069, 6.85], [-2.309, 7.831], [0.0, 8.26], [2.309, 7.831],
        [4.069, 6.85], [5.941, 5.08], [6.72, 3.645], [7.271, 1.748], [7.542, -0.094],
        [7.664, -1.816], [7.743, -3.508], [-5.721, -5.398], [-4.986, -5.946], [-3.987, -6.253],
        [-2.76, -6.244], [-1.396, -6.155], [1.396, -6.155], [2.76, -6.244], [3.987, -6.253],
        [4.986, -5.946], [5.721, -5.398], [0.0, -4.414], [0.0, -2.872], [0.0, -1.509],
        [0.0, -0.016], [-1.044, 0.322], [-0.597, 0.871], [0.0, 0.946], [0.597, 0.871],
        [1.044, 0.322], [-4.446, -3.807], [-3.67, -4.071], [-2.724, -4.105], [-1.856, -3.728],
        [-2.724, -3.459], [-3.67, -3.503], [1.856, -3.728], [2.724, -4.105], [3.67, -4.071],
        [4.446, -3.807], [3.67, -3.503], [2.724, -3.459], [-2.456, 3.199], [-1.915, 2.66],
        [-0.711, 2.186], [0.0, 2.263], [0.711, 2.186], [1.915, 2.66], [2.456, 3.199],
        [1.839, 3.686], [0.7, 4.149], [0.0, 4.222], [-0.7, 4.149], [-1.839, 3.686],
        [-2.153, 3.133], [-1.024, 2.847], [0.0, 2.851], [1.024, 2.847], [2.153, 3.133],
        [1.099, 3.316], [0.0, 3.399], [-1.099, 3.316],
    ],
    dtype=np.float32,
)  # fmt: skip


def mesh_to_ibug68(mesh: np.ndarray) -> np.ndarray:
    """mesh: (..., 478 or 468, 2+) face-mesh points -> (..., 68, 2) float32 iBUG points."""
    mesh = np.asarray(mesh)
    if mesh.shape[-2] < int(MEDIAPIPE_TO_IBUG68.max()) + 1 or mesh.shape[-1] < 2:
        raise ValueError(f"expected (..., {NUM_MESH_POINTS}, 2) face-mesh points, got {mesh.shape}")
    return mesh[..., MEDIAPIPE_TO_IBUG68, :2].astype(np.float32)
