"""The 68 iBUG landmarks of a synthetic face: an identity's neutral shape plus AU displacements.

Indices follow :mod:`aurep.landmarks`. Coordinates are design units (x, y in about [0, 1], y
down); :class:`aurep.synth.framing.View` maps them to crop pixels.

Each AU moves points of its own region linearly with ``a = intensity / 5``; the tables list the
image-left and midline points with ``dx`` lateral (away from the midline) and ``dy`` down, and
are mirrored to the image-right side.
"""

from __future__ import annotations

import numpy as np

from aurep.au import SYNTH_AUS
from aurep.landmarks import MIDLINE, MIRROR_PAIRS, NUM_LANDMARKS
from aurep.synth.identity import AU_INDEX, Identity

# Upper/lower lid pairs and upper/lower inner-lip pairs (same x, upper first).
LID_PAIRS = ((37, 41), (38, 40), (43, 47), (44, 46))
INNER_LIP_PAIRS = ((61, 67), (62, 66), (63, 65))

# AU code -> {image-left or midline point: (lateral dx, down dy)} at intensity 5.
AU_DISPLACEMENTS: dict[int, dict[int, tuple[float, float]]] = {
    1: {21: (0, -0.044), 20: (0, -0.032), 19: (0, -0.017), 18: (0, -0.006)},
    2: {17: (0.004, -0.042), 18: (0, -0.038), 19: (0, -0.024), 20: (0, -0.009), 37: (0, -0.003)},
    4: {
        21: (-0.022, 0.026), 20: (-0.014, 0.022), 19: (-0.006, 0.014), 18: (0, 0.006),
        37: (0, 0.003), 38: (0, 0.004),
    },
    6: {41: (0, -0.018), 40: (0, -0.015), 36: (0, -0.006), 37: (0, 0.002), 38: (0, 0.002)},
    7: {41: (0, -0.026), 40: (0, -0.026), 36: (0, -0.003), 37: (0, 0.01), 38: (0, 0.01)},
    9: {
        31: (0.008, -0.018), 32: (0.004, -0.016), 33: (0, -0.014), 30: (0, -0.009),
        29: (0, -0.004), 49: (0, -0.008), 50: (0, -0.01), 51: (0, -0.01), 61: (0, -0.006),
        62: (0, -0.006), 21: (-0.004, 0.008), 20: (0, 0.004),
    },
    10: {
        50: (0, -0.028), 49: (0, -0.022), 51: (0, -0.024), 61: (0, -0.022), 62: (0, -0.02),
        48: (0, -0.006), 60: (0, -0.008), 31: (0.003, -0.006), 32: (0, -0.003),
    },
    12: {
        48: (0.036, -0.038), 60: (0.034, -0.034), 49: (0.018, -0.018), 59: (0.02, -0.016),
        61: (0.012, -0.012), 67: (0.012, -0.008), 50: (0.006, -0.004), 58: (0.008, -0.002),
        31: (0.002, -0.003),
    },
    14: {48: (-0.016, -0.006), 60: (-0.016, -0.004), 49: (-0.006, -0.002), 59: (-0.006, -0.002)},
    15: {
        48: (0.004, 0.03), 60: (0.004, 0.025), 59: (0, 0.014), 67: (0, 0.01), 49: (0, 0.01),
        61: (0, 0.006), 58: (0, 0.004),
    },
    17: {
        57: (0, -0.02), 58: (0, -0.017), 59: (0, -0.01), 66: (0, -0.012), 67: (0, -0.01),
        8: (0, -0.013), 7: (0, -0.011), 6: (0, -0.005), 48: (0, 0.006), 60: (0, 0.004),
    },
    23: {
        48: (-0.02, 0), 60: (-0.018, 0), 49: (-0.008, 0.008), 50: (0, 0.011), 51: (0, 0.011),
        59: (-0.008, -0.008), 58: (0, -0.012), 57: (0, -0.012), 61: (-0.006, 0),
        67: (-0.004, 0),
    },
    24: {
        49: (0, 0.011), 50: (0, 0.015), 51: (0, 0.015), 59: (0, -0.013), 58: (0, -0.017),
        57: (0, -0.017), 67: (0, -0.035), 66: (0, -0.035), 48: (0.004, 0), 60: (0.004, 0),
    },
    25: {
        61: (0, -0.008), 62: (0, -0.01), 67: (0, 0.026), 66: (0, 0.03), 59: (0, 0.016),
        58: (0, 0.026), 57: (0, 0.03),
    },
    26: {
        8: (0, 0.06), 7: (0, 0.057), 6: (-0.004, 0.048), 5: (-0.006, 0.036), 4: (-0.006, 0.024),
        3: (-0.004, 0.013), 2: (0, 0.005), 57: (0, 0.05), 58: (0, 0.046), 59: (0, 0.03),
        66: (0, 0.045), 67: (0, 0.04), 48: (0, 0.01), 60: (0, 0.012), 61: (0, -0.002),
        62: (0, -0.002),
    },
}  # fmt: skip
# How far each point moves with head yaw/pitch (nose tip 1, jaw contour little).
_DEPTH = np.array(
    [0.05, 0.08, 0.12, 0.18, 0.25, 0.32, 0.4, 0.45, 0.5]
    + [0.45, 0.4, 0.32, 0.25, 0.18, 0.12, 0.08, 0.05]
    + [0.5] * 10
    + [0.6, 0.75, 0.9, 1.0]
    + [0.8, 0.85, 0.9, 0.85, 0.8]
    + [0.45] * 12
    + [0.6] * 20
)
_MIRROR = dict(MIRROR_PAIRS)
_MIRROR_INDEX = np.arange(NUM_LANDMARKS)
for _left, _right in MIRROR_PAIRS:
    _MIRROR_INDEX[_right] = _left


def _displacement_basis() -> np.ndarray:
    """(15, 68, 2) landmark displacement of each SYNTH_AUS AU at intensity 5 (image x, y)."""
    basis = np.zeros((len(SYNTH_AUS), NUM_LANDMARKS, 2))
    for code, table in AU_DISPLACEMENTS.items():
        for point, (lateral, down) in table.items():
            if point in MIDLINE:
                basis[AU_INDEX[code], point] = (0.0, down)
                continue
            basis[AU_INDEX[code], point] = (-lateral, down)
            basis[AU_INDEX[code], _MIRROR[point]] = (lateral, down)
    return basis


AU_BASIS = _displacement_basis()


def _mirror_left(points: np.ndarray) -> np.ndarray:
    """Fill the image-right points from their image-left twins (x -> 1 - x)."""
    mirrored = points[_MIRROR_INDEX].copy()
    mirrored[:, 0] = np.where(
        np.arange(NUM_LANDMARKS) != _MIRROR_INDEX, 1.0 - mirrored[:, 0], mirrored[:, 0]
    )
    return mirrored


def neutral_landmarks(p: Identity) -> np.ndarray:
    """(68, 2) design-unit landmarks of ``p`` with a neutral face (no resting offsets)."""
    pts = np.zeros((NUM_LANDMARKS, 2))
    # Jaw: lower half of a superellipse from ear level down to the chin.
    centre_y = p.eye_y + 0.01
    angle = np.linspace(np.pi + 0.12, np.pi / 2, 9)
    exponent = 2.0 / p.jaw_squareness
    cos, sin = np.cos(angle), np.sin(angle)
    pts[:9, 0] = 0.5 + p.face_half_width * np.sign(cos) * np.abs(cos) ** exponent
    pts[:9, 1] = centre_y + (p.chin_y - centre_y) * np.sign(sin) * np.abs(sin) ** exponent
    # Brows, outer to inner.
    eye_x = 0.5 - p.eye_half_spacing
    outer, inner = eye_x - 0.75 * p.eye_width, 0.5 - 0.055
    brow_y = p.eye_y - p.brow_gap
    pts[17:22, 0] = np.linspace(outer, inner, 5)
    pts[17:22, 1] = brow_y + np.array([0.014, -0.6, -1.0, -0.7, -0.1]) * np.array(
        [1, p.brow_arch, p.brow_arch, p.brow_arch, p.brow_arch]
    )
    # Nose bridge and nostrils.
    pts[27:31, 0] = 0.5
    pts[27:31, 1] = np.linspace(p.eye_y - 0.006, p.nose_tip_y, 4)
    bottom = p.nose_tip_y + 0.026
    pts[31] = (0.5 - p.nose_half_width, bottom - 0.01)
    pts[32] = (0.5 - 0.5 * p.nose_half_width, bottom + 0.002)
    pts[33] = (0.5, bottom + 0.006)
    # Image-left eye: outer corner, two upper lid points, inner corner, two lower lid points.
    half_w, height = p.eye_width / 2, p.eye_height
    pts[36] = (eye_x - half_w, p.eye_y - p.canthal_tilt)
    pts[37] = (eye_x - half_w / 3, p.eye_y - 0.6 * height)
    pts[38] = (eye_x + half_w / 3, p.eye_y - 0.58 * height)
    pts[39] = (eye_x + half_w, p.eye_y + 0.002)
    pts[40] = (eye_x + half_w / 3, p.eye_y + 0.4 * height)
    pts[41] = (eye_x - half_w / 3, p.eye_y + 0.42 * height)
    # Lips: outer contour then inner contour, image-left half and midline.
    width, y = p.mouth_half_width, p.mouth_y
    pts[48] = (0.5 - width, y)
    pts[49] = (0.5 - 0.6 * width, y - 0.8 * p.upper_lip)
    pts[50] = (0.5 - 0.22 * width, y - p.upper_lip - 0.004)
    pts[51] = (0.5, y - 0.85 * p.upper_lip - 0.004)
    pts[59] = (0.5 - 0.6 * width, y + 0.8 * p.lower_lip)
    pts[58] = (0.5 - 0.25 * width, y + p.lower_lip)
    pts[57] = (0.5, y + 1.02 * p.lower_lip)
    pts[60] = (0.5 - 0.86 * width, y)
    pts[61] = (0.5 - 0.45 * width, y - 0.001)
    pts[62] = (0.5, y - 0.001)
    pts[67] = (0.5 - 0.45 * width, y)
    pts[66] = (0.5, y)
    return _mirror_left(pts)


def face_landmarks(
    p: Identity,
    intensities: np.ndarray,
    *,
    blink: float = 0.0,
    rounding: float = 0.0,
    yaw: float = 0.0,
    pitch: float = 0.0,
    neutral: np.ndarray | None = None,
) -> np.ndarray:
    """(68, 2) design-unit landmarks of ``p`` showing AU ``intensities`` ((15,), 0-5, ordered
    like SYNTH_AUS; the identity's resting offsets are added here). ``blink`` 0..1 closes the
    lids, ``rounding`` 0..1 purses the lips (speech), ``yaw``/``pitch`` -1..1 shift the inner
    features against the contour (small out-of-plane head turns). ``neutral``: the cached
    :func:`neutral_landmarks` of ``p`` (computed when None)."""
    amount = np.clip((np.asarray(intensities) + np.asarray(p.rest_geometry)) / 5.0, 0.0, 1.0)
    neutral = neutral_landmarks(p) if neutral is None else neutral
    pts = neutral + (amount @ AU_BASIS.reshape(len(amount), -1)).reshape(NUM_LANDMARKS, 2)
    for upper, lower in INNER_LIP_PAIRS:  # lips cannot pass through each other
        pts[lower, 1] = max(pts[lower, 1], pts[upper, 1])
    for upper, lower in LID_PAIRS:
        gap = max(pts[lower, 1] - pts[upper, 1], 0.0)
        pts[upper, 1] += 0.92 * blink * gap
        pts[lower, 1] -= 0.03 * blink * gap
    if rounding:
        centre = 0.5
        for point in (48, 54, 60, 64, 49, 53, 59, 55):
            pts[point, 0] += (centre - pts[point, 0]) * 0.22 * rounding
        pts[[49, 50, 51, 52, 53], 1] -= 0.004 * rounding
        pts[[55, 56, 57, 58, 59], 1] += 0.004 * rounding
    pts[:, 0] += 0.03 * yaw * _DEPTH
    pts[:, 1] += 0.03 * pitch * _DEPTH
    return pts
