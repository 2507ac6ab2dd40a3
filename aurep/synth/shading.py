"""Shading layers: an identity's static 3-D shading and one wrinkle/bulge layer per AU.

A layer is a float32 (S, S) gain offset: the rendered image is multiplied by
``base + sum_k a_k * layer_k`` with ``a_k = intensity_k / 5``. Negative values are furrows and
shadows (nasolabial folds, crow's feet, brow furrows), positive values bulges and highlights.
Each AU layer is drawn at that AU's apex landmarks so the folds sit where the features moved to.
"""

from __future__ import annotations

import cv2
import numpy as np

from aurep.au import SYNTH_AUS
from aurep.synth.framing import SHIFT, View
from aurep.synth.identity import AU_INDEX, Identity
from aurep.synth.landmarks import AU_BASIS, neutral_landmarks


class _Layer:
    """A float32 (S, S) canvas with drawing helpers in design units (placed by ``view``),
    mirrored about the face's midline on request."""

    def __init__(self, view: View):
        self.view = view
        self.image = np.zeros((view.size, view.size), np.float32)
        self.width = max(1, round(view.size / 112))

    def polyline(self, points, value: float, *, mirror: bool = True, thickness: int = 1):
        for pts in self._sides(points, mirror):
            cv2.polylines(
                self.image, [self.view.to_cv(pts)], False, value, thickness * self.width,
                cv2.LINE_8, SHIFT,
            )  # fmt: skip

    def ellipse(self, centre, axes, value: float, *, mirror: bool = True, angle: float = 0.0):
        for (c,) in self._sides([centre], mirror):
            cv2.ellipse(
                self.image, tuple(self.view.to_cv(c)),
                tuple(self.view.length(v) for v in axes),
                angle, 0, 360, value, -1, cv2.LINE_8, SHIFT,
            )  # fmt: skip

    def blurred(self, sigma: float) -> np.ndarray:
        """The layer blurred by ``sigma`` pixels of a 112 px-wide design square."""
        return cv2.GaussianBlur(self.image, (0, 0), max(sigma * self.view.unit / 112, 0.3))

    @staticmethod
    def _sides(points, mirror: bool):
        points = np.asarray(points, dtype=float)
        yield points
        if mirror:
            flipped = points.copy()
            flipped[..., 0] = 1.0 - flipped[..., 0]
            yield flipped


def _curve(start, control, end, n: int = 8) -> np.ndarray:
    """Quadratic Bezier from ``start`` to ``end`` bent towards ``control``: (n, 2)."""
    t = np.linspace(0, 1, n)[:, None]
    start, control, end = (np.asarray(v, dtype=float) for v in (start, control, end))
    return (1 - t) ** 2 * start + 2 * (1 - t) * t * control + t**2 * end


def base_gain(p: Identity, view: View) -> np.ndarray:
    """(S, S) float32 static shading of the neutral face: rounded cheeks, eye sockets, nose
    sides, the shadow under the lower lip and under the chin."""
    q = neutral_landmarks(p)
    rows, columns = np.mgrid[0 : view.size, 0 : view.size]
    x, y = view.points(np.stack([columns, rows], -1)).transpose(2, 0, 1)
    middle = (p.eye_y + p.chin_y) / 2
    half_height = np.where(y > middle, p.chin_y - middle, middle - p.eye_y + 0.43)
    radius = ((x - 0.5) / p.face_half_width) ** 2 + ((y - middle) / half_height) ** 2
    layer = _Layer(view)
    outline = np.concatenate([q[:17], q[16:17] + (0.0, -0.5), q[0:1] + (0.0, -0.5)])
    cv2.fillPoly(layer.image, [view.to_cv(outline)], 1.0, cv2.LINE_8, SHIFT)
    face = layer.blurred(1.5)
    gain = 1.0 - 0.25 * face * np.clip(radius, 0, 1) ** 2
    layer = _Layer(view)
    eye_x = 0.5 - p.eye_half_spacing
    layer.ellipse((eye_x, p.eye_y - 0.005), (p.eye_width * 0.75, p.eye_height * 1.6), -0.12)
    layer.polyline([(0.5 - 0.028, p.eye_y), q[31] + (0.004, -0.02)], -0.14, thickness=2)
    layer.ellipse((0.5, p.nose_tip_y), (0.016, 0.012), 0.08, mirror=False)
    layer.polyline([q[58] + (0, 0.012), q[57] + (0, 0.014)], -0.1, thickness=2)
    neck_shadow = np.concatenate([q[3:14], q[13:2:-1] + (0, 0.08)])
    cv2.fillPoly(layer.image, [view.to_cv(neck_shadow)], -0.2, cv2.LINE_8, SHIFT)
    return (gain + layer.blurred(2.0)).astype(np.float32)


def _forehead_lines(layer, centre_x, half_width, start_y, count, value, step=0.022):
    """``count`` horizontal wrinkles above ``start_y``, darkest in the middle, fading out."""
    for i in range(count):
        yy = start_y - step * (i + 1)
        line = _curve((centre_x - half_width, yy + 0.005), (centre_x, yy - 0.005),
                      (centre_x + half_width, yy + 0.005), n=9)  # fmt: skip
        for j in range(len(line) - 1):
            fade = np.sin(np.pi * (j + 0.5) / (len(line) - 1))
            layer.polyline(line[j : j + 2], value * fade * (1 - 0.2 * i), mirror=centre_x != 0.5)


def _draw_au(code: int, layer: _Layer, q: np.ndarray, p: Identity, rng: np.random.Generator):
    """Draw AU ``code``'s wrinkles and bulges at its apex landmarks ``q`` (design units)."""
    eye_x = 0.5 - p.eye_half_spacing
    if code == 1:
        _forehead_lines(layer, 0.5, 0.1, q[21, 1] - 0.008, 3, -0.7)
        layer.ellipse((0.5, q[21, 1] - 0.03), (0.07, 0.02), 0.06, mirror=False)
    elif code == 2:
        _forehead_lines(layer, q[18, 0] + 0.01, 0.07, q[18, 1] - 0.008, 3, -0.65)
        layer.ellipse((eye_x, p.eye_y - 0.03), (p.eye_width * 0.5, 0.012), 0.08)
    elif code == 4:
        for dx in (0.016, -0.016):
            layer.polyline([(0.5 + dx, q[21, 1] - 0.03), (0.5 + dx * 0.8, q[21, 1] + 0.018)],
                           -0.7, mirror=False, thickness=1)  # fmt: skip
        layer.polyline([(0.5 - 0.02, q[27, 1] - 0.004), (0.5 + 0.02, q[27, 1] - 0.004)], -0.3,
                       mirror=False)  # fmt: skip
        layer.ellipse((q[20, 0], q[20, 1] - 0.018), (0.03, 0.01), 0.12)
        layer.ellipse((eye_x, p.eye_y - 0.018), (p.eye_width * 0.55, 0.012), -0.22)
    elif code == 6:
        layer.ellipse((eye_x + 0.005, p.eye_y + 0.09), (0.05, 0.03), 0.1)
        layer.polyline(_curve((eye_x - 0.05, p.eye_y + 0.12), (eye_x, p.eye_y + 0.15),
                              (eye_x + 0.05, p.eye_y + 0.12)), -0.35, thickness=2)  # fmt: skip
        corner = q[36] + (-0.008, 0.0)
        for angle in (-0.5, 0.0, 0.5):
            end = corner + 0.035 * np.array([-np.cos(angle), np.sin(angle)])
            layer.polyline([corner, end], -0.6)
        layer.polyline(q[[39, 40, 41, 36]] + (0, 0.014), -0.35)
    elif code == 7:
        layer.polyline(q[[39, 40, 41, 36]] + (0, 0.008), -0.7, thickness=1)
        layer.polyline(q[[39, 40, 41, 36]] + (0, 0.003), 0.2)
        layer.polyline(q[[36, 37, 38, 39]] + (0, -0.005), -0.35)
    elif code == 9:
        for i in range(3):
            yy = q[27, 1] + (q[29, 1] - q[27, 1]) * (0.25 + 0.25 * i)
            layer.polyline([(0.5 - 0.024, yy), (0.5 + 0.024, yy + 0.002)], -0.6, mirror=False)
        layer.polyline([q[39] + (0, 0.02), q[39] + (-0.03, 0.055)], -0.4, thickness=1)
        layer.polyline([q[31] + (-0.01, -0.005), q[31] + (-0.02, 0.025)], -0.4, thickness=2)
    elif code == 10:
        fold = _curve(q[31] + (-0.012, -0.006), q[31] + (-0.03, 0.02), q[48] + (-0.004, -0.02))
        layer.polyline(fold, -0.55, thickness=2)
        layer.ellipse((q[31, 0] - 0.035, q[31, 1] - 0.01), (0.025, 0.018), 0.12)
    elif code == 12:
        fold = _curve(q[31] + (-0.02, -0.012), q[48] + (-0.035, -0.05), q[48] + (-0.02, 0.03))
        layer.polyline(fold, -0.7)
        layer.polyline(fold + (-0.006, 0.0), 0.15)
        layer.ellipse((eye_x + 0.01, p.eye_y + 0.11), (0.04, 0.03), 0.08)
    elif code == 14:
        layer.ellipse(q[48] + (-0.016, 0.0), (0.007, 0.02), -1.0)
        layer.ellipse(q[48] + (0.004, 0.0), (0.007, 0.012), 0.25)
    elif code == 15:
        line = _curve(q[48] + (-0.004, 0.008), q[48] + (-0.014, 0.04), q[48] + (-0.008, 0.07))
        layer.polyline(line, -0.55, thickness=2)
        layer.ellipse((q[48, 0] + 0.01, q[48, 1] + 0.03), (0.015, 0.02), 0.1)
    elif code == 17:
        centre = (0.5, (q[57, 1] + q[8, 1]) / 2 + 0.01)
        layer.ellipse(centre, (0.05, 0.028), 0.14, mirror=False)
        dots = rng.normal(size=(40, 2)) * (0.026, 0.014) + centre
        for dot in dots:
            layer.ellipse(dot, (0.004, 0.004), -0.5, mirror=False)
        layer.polyline(_curve(q[58] + (-0.01, 0.016), (0.5, q[57, 1] + 0.026),
                              q[56] + (0.01, 0.016)), -0.6, mirror=False, thickness=2)  # fmt: skip
    elif code == 23:
        layer.polyline(q[48:60], -0.6, mirror=False)
        layer.polyline(q[[59, 48, 49]], -0.6)
        for t in (0.3, 0.5, 0.7):
            x = q[48, 0] + (q[54, 0] - q[48, 0]) * t
            layer.polyline([(x, q[51, 1] + 0.002), (x, q[57, 1] - 0.002)], -0.25, mirror=False)
    elif code == 24:
        for lip, sign in ((51, -1), (57, 1)):
            y = q[lip, 1] + sign * 0.012
            layer.polyline([(q[49, 0], y), (0.5, y + sign * 0.003)], 0.3, thickness=2)
            layer.polyline([(q[49, 0], y + sign * 0.012), (0.5, y + sign * 0.015)], -0.5)
        layer.ellipse(q[48] + (-0.006, 0.0), (0.006, 0.008), -0.7)
    elif code == 25:
        layer.polyline(q[[58, 57]] + (0, 0.01), -0.2)
    elif code == 26:
        layer.ellipse((0.5 - p.face_half_width + 0.09, p.mouth_y - 0.02), (0.02, 0.04), -0.12)
        layer.polyline(q[3:9] + (0, 0.012), -0.15, thickness=2)


def au_layers(p: Identity, view: View) -> np.ndarray:
    """(15, S * S) float32 gain offsets at intensity 5, ordered like SYNTH_AUS, scaled by the
    identity's wrinkle depth."""
    neutral = neutral_landmarks(p)
    rng = np.random.default_rng(p.texture_seed)
    layers = np.zeros((len(SYNTH_AUS), view.size * view.size), np.float32)
    for code in SYNTH_AUS:
        layer = _Layer(view)
        _draw_au(code, layer, neutral + AU_BASIS[AU_INDEX[code]], p, rng)
        layers[AU_INDEX[code]] = p.wrinkle_depth * layer.blurred(0.7).ravel()
    return layers
