"""The iBUG 68-point landmark layout (dlib/300-W order), shared by every module that indexes it.

Indices are 0-based. "Image-left" is the subject's right side, as in iBUG: jaw 0-16 (image left
to right), brows 17-26 (image-left brow 17-21 outer -> inner, image-right brow 22-26 inner ->
outer), nose 27-35 (bridge 27-30 top -> tip, nostrils 31-35 image left -> right), eyes 36-47
(image-left eye 36-41, image-right eye 42-47, each from its image-left corner, upper lid first),
mouth 48-67 (outer lips 48-59 clockwise from the image-left corner, inner lips 60-67).
Plain numpy: no torch or Lightning import.
"""

from __future__ import annotations

import numpy as np

NUM_LANDMARKS = 68

JAW = slice(0, 17)
BROWS = slice(17, 27)
NOSE = slice(27, 36)
EYES = slice(36, 48)
MOUTH = slice(48, 68)

JAW_ENDS = (0, 16)  # image-left and image-right end: the face width is |p16 - p0|
EYE_CORNERS = (36, 39, 42, 45)  # image left to right: outer, inner, inner, outer
INNER_EYE_CORNERS = (39, 42)

# Left/right mirror pairs, (image-left index, image-right index).
MIRROR_PAIRS = (
    *((i, 16 - i) for i in range(8)),
    (17, 26), (18, 25), (19, 24), (20, 23), (21, 22),
    (31, 35), (32, 34),
    (36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46),
    (48, 54), (49, 53), (50, 52), (59, 55), (58, 56),
    (60, 64), (61, 63), (67, 65),
)  # fmt: skip
MIDLINE = (8, 27, 28, 29, 30, 33, 51, 57, 62, 66)  # points that are their own mirror image


def _flip_permutation() -> np.ndarray:
    permutation = np.arange(NUM_LANDMARKS)
    for left, right in MIRROR_PAIRS:
        permutation[left], permutation[right] = right, left
    return permutation


FLIP_PERMUTATION = _flip_permutation()
"""int64 (68,) index map: landmarks of a mirrored face are ``mirror_x(landmarks[FLIP_PERMUTATION])``."""
