"""Drawing one synthetic face frame with OpenCV (anti-aliased, sub-pixel, at the target size).

:class:`FaceRenderer` precomputes an identity's static layers once (backdrop with hair, ears,
neck; base shading; the 15 AU wrinkle layers) and then draws frames from AU intensities and a few
per-frame controls (blink, gaze, lip rounding, small yaw/pitch). The face sits on the alignment
template of real crops (:func:`aurep.synth.framing.aligned_view`). Its output has no nuisances
(alignment jitter, lighting, blur, noise): :mod:`aurep.synth.nuisance` adds those.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from aurep.synth.framing import SHIFT, aligned_view
from aurep.synth.identity import Identity
from aurep.synth.landmarks import face_landmarks, neutral_landmarks
from aurep.synth.shading import au_layers, base_gain

_AA = cv2.LINE_AA
_MOUTH_INSIDE = (45.0, 18.0, 22.0)
_TEETH = (232.0, 226.0, 210.0)
_SCLERA = (238.0, 236.0, 230.0)


def _arc(start: float, stop: float, count: int = 16) -> np.ndarray:
    """(count, 2) unit-circle points (cos, sin) from angle ``start`` to ``stop``."""
    angle = np.linspace(start, stop, count)
    return np.stack([np.cos(angle), np.sin(angle)], 1)


_HALF_CIRCLE = _arc(0.0, -np.pi)


@functools.lru_cache(maxsize=256)
def _scaled(colour: tuple[float, ...], factor: float) -> tuple[float, ...]:
    return tuple(min(255.0, c * factor) for c in colour)


def flat_background(size: int, colour=(128.0, 128.0, 128.0)) -> np.ndarray:
    """uint8 (S, S, 3) single-colour background."""
    return np.full((size, size, 3), colour, np.uint8)


class FaceRenderer:
    """Renders identity ``p`` at ``size`` px over ``background`` (uint8 (S, S, 3); default
    flat grey). Its ``view`` (:func:`~aurep.synth.framing.aligned_view`) puts the design face on
    the alignment template of the crop.
    Static layers are built once here; :meth:`draw` costs about a millisecond."""

    def __init__(self, p: Identity, size: int, background: np.ndarray | None = None):
        self.p = p
        self.size = size
        self.neutral = neutral_landmarks(p)
        self.view = aligned_view(self.neutral, size)
        self.width = max(1, round(size / 112))
        self.base_gain = base_gain(p, self.view)
        self.au_layers = au_layers(p, self.view)
        self.rest_shading = np.asarray(p.rest_shading, np.float32)
        self.backdrop = self._backdrop(flat_background(size) if background is None else background)
        self.hair_polygon = self.view.to_cv(self._hair_outline())
        texture_rng = np.random.default_rng(p.texture_seed + 1)
        stubble = cv2.GaussianBlur(texture_rng.random((size, size)).astype(np.float32), (0, 0), 1.0)
        self.stubble = (p.beard * (0.5 + 2.0 * (stubble - 0.5)))[..., None]

    # -- static parts -------------------------------------------------------------------------
    def _head_top(self, outline: np.ndarray, expand: float, start: float = 0.0,
                  stop: float = -np.pi):  # fmt: skip
        """Points of the upper head ellipse through jaw points 0/16, from angle start to stop."""
        p, left, right = self.p, outline[0], outline[16]
        half = (right[0] - left[0]) / 2 + expand
        height = left[1] - (p.eye_y - 0.43) + expand
        unit = _HALF_CIRCLE if (start, stop) == (0.0, -np.pi) else _arc(start, stop)
        return unit * (half, height) + (0.5, left[1])

    def _hair_outline(self) -> np.ndarray:
        p, q = self.p, self.neutral
        brow_top = q[17:22, 1].min() - p.brow_thickness - 0.02
        line_y = {"short": p.hairline_y, "long": p.hairline_y, "fringe": p.hairline_y + 0.09,
                  "receding": p.hairline_y - 0.09}[p.hair_style]  # fmt: skip
        line_y = min(line_y, brow_top)
        outer = self._head_top(q, 0.03, 0.25, -np.pi - 0.25)
        x = np.linspace(q[0, 0] - 0.01, q[16, 0] + 0.01, 13)
        u = (x - 0.5) / (q[16, 0] - 0.5)
        temple = q[0, 1] - 0.06
        bend = 2 if p.hair_style != "receding" else 4
        y = line_y + (temple - line_y) * np.abs(u) ** (4 if p.hair_style == "fringe" else bend)
        return np.concatenate([outer, np.stack([x, y], 1)])

    def _backdrop(self, background: np.ndarray) -> np.ndarray:
        p, q, view = self.p, self.neutral, self.view
        image = background.copy()
        shirt = view.to_cv([(0.5, 1.22)])[0]
        colour = np.random.default_rng(p.texture_seed + 2).integers(40, 200, 3).tolist()
        cv2.ellipse(image, tuple(shirt), (view.length(0.62), view.length(0.36)), 0, 0,
                    360, colour, -1, _AA, SHIFT)  # fmt: skip
        neck = np.array([q[4] + (0.02, 0), q[12] + (-0.02, 0), (q[12, 0] - 0.01, 1.02),
                         (q[4, 0] + 0.01, 1.02)])  # fmt: skip
        cv2.fillPoly(image, [view.to_cv(neck)], _scaled(p.skin, 0.8), _AA, SHIFT)
        if p.hair_style == "long":
            back = np.concatenate(
                [self._head_top(q, 0.05), [(q[0, 0] - 0.06, 0.85), (q[16, 0] + 0.06, 0.85)][::-1]]
            )
            cv2.fillPoly(image, [view.to_cv(back)], _scaled(p.hair, 0.8), _AA, SHIFT)
        for side in (1, -1):
            centre = (0.5 + side * (p.face_half_width + 0.005), p.eye_y + 0.06)
            cv2.ellipse(image, tuple(view.to_cv([centre])[0]),
                        (view.length(0.028), view.length(0.065)), 0, 0, 360,
                        _scaled(p.skin, 0.88), -1, _AA, SHIFT)  # fmt: skip
        return image

    # -- per frame ----------------------------------------------------------------------------
    def draw(
        self,
        intensities: np.ndarray,
        *,
        blink: float = 0.0,
        gaze: tuple[float, float] = (0.0, 0.0),
        rounding: float = 0.0,
        yaw: float = 0.0,
        pitch: float = 0.0,
        backdrop: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Draw one frame: -> (canvas uint8 (S, S, 3) RGB before shading, gain float32 (S, S),
        landmarks float64 (68, 2) design units: ``self.view.pixels`` puts them in the crop).
        The image is ``canvas * gain``.

        intensities: (15,) AU intensities 0-5 (SYNTH_AUS order); blink 0..1; gaze (x, y) -1..1;
        rounding 0..1; yaw, pitch -1..1; backdrop: replaces the identity's backdrop.
        """
        p, size = self.p, self.size
        q = face_landmarks(p, intensities, blink=blink, rounding=rounding, yaw=yaw, pitch=pitch,
                           neutral=self.neutral)  # fmt: skip
        pts = self.view.to_cv(q)
        image = (self.backdrop if backdrop is None else backdrop).copy()
        top = self._head_top(q, 0.0)
        cv2.fillPoly(image, [np.concatenate([pts[:17], self.view.to_cv(top)])], p.skin, _AA, SHIFT)
        if p.beard:
            self._draw_beard(image, q)
        self._draw_eyes(image, q, pts, gaze)
        self._draw_brows(image, q)
        self._draw_nose(image, q, pts)
        self._draw_mouth(image, q, pts)
        cv2.fillPoly(image, [self.hair_polygon], p.hair, _AA, SHIFT)
        if p.glasses:
            self._draw_glasses(image)
        amount = np.clip((np.asarray(intensities) + self.rest_shading) / 5.0, 0.0, 1.0)
        gain = self.base_gain + (amount.astype(np.float32) @ self.au_layers).reshape(size, size)
        return image, gain, q

    def render(self, intensities: np.ndarray, **controls) -> tuple[np.ndarray, np.ndarray]:
        """Frame without nuisances: -> (image uint8 (S, S, 3) RGB, landmarks float32 (68, 2)
        in pixels, pixel centres at integers)."""
        canvas, gain, q = self.draw(intensities, **controls)
        return apply_gain(canvas, gain), self.view.pixels(q)

    def _draw_beard(self, image: np.ndarray, q: np.ndarray) -> None:
        p = self.p
        region = np.concatenate([q[3:14], [q[13] + (0, -0.12), q[35] + (0.02, 0.012),
                                           q[31] + (-0.02, 0.012), q[3] + (0, -0.12)]])  # fmt: skip
        mask = np.zeros((self.size, self.size), np.uint8)
        cv2.fillPoly(mask, [self.view.to_cv(region)], 255, _AA, SHIFT)
        weight = self.stubble * (mask[..., None] / np.float32(255))
        image[:] = image * (1 - weight) + np.asarray(p.hair, np.float32) * 0.7 * weight

    def _draw_eyes(self, image, q, pts, gaze) -> None:
        p, view, width = self.p, self.view, self.width
        for eye in (slice(36, 42), slice(42, 48)):
            contour = pts[eye]
            centre = q[eye].mean(0)
            cv2.fillPoly(image, [contour], _SCLERA, _AA, SHIFT)
            iris_r = 0.2 * p.eye_width
            iris = centre + (gaze[0] * 0.25 * p.eye_width, gaze[1] * 0.3 * p.eye_height)
            iris_cv = tuple(view.to_cv([iris])[0])
            cv2.circle(image, iris_cv, view.length(iris_r), p.iris, -1, _AA, SHIFT)
            cv2.circle(image, iris_cv, view.length(0.42 * iris_r), (15, 12, 12), -1, _AA,
                       SHIFT)  # fmt: skip
            low, high = q[eye].min(0) - 0.03, q[eye].max(0) + 0.03
            socket = view.to_cv([low, (high[0], low[1]), high, (low[0], high[1])])
            cv2.fillPoly(image, [socket, contour], p.skin, _AA, SHIFT)
            upper = pts[eye][[0, 1, 2, 3]]
            lower = pts[eye][[3, 4, 5, 0]]
            cv2.polylines(image, [upper], False, (20, 16, 16), width, _AA, SHIFT)
            cv2.polylines(image, [lower], False, _scaled(p.skin, 0.6), width, _AA, SHIFT)
            crease = view.to_cv(q[eye][[0, 1, 2, 3]] + (0, -0.3 * p.eye_height - 0.008))
            cv2.polylines(image, [crease], False, _scaled(p.skin, 0.75), width, _AA, SHIFT)

    def _draw_brows(self, image, q) -> None:
        p = self.p
        taper = np.array([0.45, 0.8, 1.0, 1.0, 0.85])[:, None]
        for brow, order in ((slice(17, 22), 1), (slice(22, 27), -1)):
            line = q[brow][::order]  # outer to inner
            offset = np.array([0, p.brow_thickness / 2]) * taper
            outline = np.concatenate([line - offset, (line + offset)[::-1]])
            cv2.fillPoly(image, [self.view.to_cv(outline)], p.brow, _AA, SHIFT)

    def _draw_nose(self, image, q, pts) -> None:
        p, view = self.p, self.view
        cv2.polylines(image, [pts[31:36]], False, _scaled(p.skin, 0.7), self.width, _AA, SHIFT)
        axes = (view.length(0.32 * p.nose_half_width), view.length(0.0075))
        for left, mid in ((31, 32), (35, 34)):
            centre = tuple(view.to_cv([(q[left] + q[mid]) / 2 + (0, -0.003)])[0])
            cv2.ellipse(image, centre, axes, 0, 0, 360, _scaled(p.skin, 0.35), -1, _AA, SHIFT)

    def _draw_mouth(self, image, q, pts) -> None:
        p = self.p
        upper = np.concatenate([pts[48:55], pts[[64, 63, 62, 61, 60]]])
        lower = np.concatenate([pts[54:60], pts[[48, 60, 67, 66, 65, 64]]])
        cv2.fillPoly(image, [lower], p.lip, _AA, SHIFT)
        cv2.fillPoly(image, [upper], _scaled(p.lip, 0.82), _AA, SHIFT)
        opening = q[[66, 67, 65], 1] - q[[62, 61, 63], 1]
        if opening.max() > 0.5 / self.view.unit:  # half a pixel
            cv2.fillPoly(image, [pts[60:68]], _MOUTH_INSIDE, _AA, SHIFT)
            teeth_top = q[[60, 61, 62, 63, 64]]
            depth = np.array([0.0, opening[1], opening[0], opening[2], 0.0]).clip(max=0.02)
            teeth = np.concatenate([teeth_top, (teeth_top + np.stack([0 * depth, depth], 1))
                                    [::-1]])  # fmt: skip
            cv2.fillPoly(image, [self.view.to_cv(teeth)], _TEETH, _AA, SHIFT)
        seam = pts[[48, 60, 61, 62, 63, 64, 54]]
        cv2.polylines(image, [seam], False, _scaled(p.lip, 0.45), self.width, _AA, SHIFT)

    def _draw_glasses(self, image) -> None:
        p, view, q = self.p, self.view, self.neutral
        colour = _scaled(p.hair, 0.5)
        rims = []
        for eye in (slice(36, 42), slice(42, 48)):
            centre = q[eye].mean(0)
            axes = (0.8 * p.eye_width, 1.3 * p.eye_height + 0.018)
            cv2.ellipse(image, tuple(view.to_cv([centre])[0]),
                        tuple(view.length(a) for a in axes), 0, 0, 360, colour,
                        self.width, _AA, SHIFT)  # fmt: skip
            rims.append(centre)
        bridge = [rims[0] + (0.8 * p.eye_width, -0.008), rims[1] - (0.8 * p.eye_width, 0.008)]
        cv2.polylines(image, [view.to_cv(bridge)], False, colour, self.width, _AA, SHIFT)


def apply_gain(canvas: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """uint8 (S, S, 3) canvas times float (S, S) gain -> uint8 image."""
    return np.clip(canvas * gain[..., None], 0, 255).astype(np.uint8)
