"""Synthetic identities: appearance factors and person-specific resting offsets that mimic AUs.

Geometry is in design units (x, y in about [0, 1], y down, the face's midline at x = 0.5;
:mod:`aurep.synth.framing` places them on the alignment template of the crop). Colours are RGB
floats 0-255. Resting offsets are AU intensities (0-5 scale, indexed like
:data:`aurep.au.SYNTH_AUS`) added to the rendered expression but never to the labels: a person
whose brows sit high looks like a weak AU1+2 at rest, which person-independent learning must undo.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aurep.au import SYNTH_AUS

AU_INDEX = {code: index for index, code in enumerate(SYNTH_AUS)}
HAIR_STYLES = ("short", "fringe", "receding", "long")
_SKIN_LIGHT = np.array([246.0, 214.0, 190.0])
_SKIN_DARK = np.array([92.0, 60.0, 42.0])
_HAIR_COLOURS = np.array(
    [[30, 24, 20], [70, 45, 30], [120, 80, 45], [190, 150, 90], [150, 150, 150], [105, 40, 20]],
    dtype=float,
)
# Resting offsets that look like weak AUs: (AU, largest offset at difficulty 1).
_REST_GEOMETRY = ((1, 1.8), (2, 1.8), (4, 1.5), (7, 1.5), (15, 1.8), (17, 1.2), (24, 1.2))
_REST_SHADING = ((1, 2.0), (2, 2.0), (4, 2.5), (6, 2.0), (10, 2.0), (12, 3.0), (17, 2.0))


@dataclass(frozen=True)
class Identity:
    """One synthetic person. Lengths are design units (about a crop side); colours RGB 0-255."""

    face_half_width: float  # half face width at eye level
    chin_y: float  # lowest point of the chin
    jaw_squareness: float  # superellipse exponent of the jaw: 2 = oval, 3.5 = square
    eye_y: float  # eye line
    eye_half_spacing: float  # midline to eye centre
    eye_width: float
    eye_height: float  # open eye aperture
    canthal_tilt: float  # outer corner raise (positive = up)
    brow_gap: float  # eye line to brow line
    brow_thickness: float
    brow_arch: float
    nose_tip_y: float
    nose_half_width: float
    mouth_y: float  # lip line
    mouth_half_width: float
    upper_lip: float  # upper lip thickness
    lower_lip: float
    hairline_y: float
    hair_style: str  # one of HAIR_STYLES
    glasses: bool
    beard: float  # stubble density, 0 = none
    wrinkle_depth: float  # scales every wrinkle and bulge texture (age)
    skin: tuple[float, float, float]
    lip: tuple[float, float, float]
    brow: tuple[float, float, float]
    hair: tuple[float, float, float]
    iris: tuple[float, float, float]
    rest_geometry: tuple[float, ...]  # (15,) AU intensities added to the drawn shape
    rest_shading: tuple[float, ...]  # (15,) AU intensities added to wrinkles and bulges only
    texture_seed: int  # seeds static skin textures (chin dimpling, stubble)


def _uniform(rng: np.random.Generator, low: float, high: float, spread: float) -> float:
    """A draw from [low, high] shrunk around its centre by ``spread`` (0..1)."""
    return (low + high) / 2 + (rng.random() - 0.5) * (high - low) * spread


def _colour(values: np.ndarray) -> tuple[float, float, float]:
    return tuple(float(v) for v in np.clip(values, 0, 255))


def _rest(rng: np.random.Generator, table, difficulty: float) -> tuple[float, ...]:
    offsets = np.zeros(len(SYNTH_AUS))
    for code, largest in table:
        # Most people have little resting offset; a few have a lot (squared uniform).
        offsets[AU_INDEX[code]] = largest * difficulty * rng.random() ** 2
    return tuple(float(v) for v in offsets)


def sample_identity(rng: np.random.Generator, difficulty: float = 0.5) -> Identity:
    """Draw one identity. ``difficulty`` (0..1) widens the appearance factors (from half to full
    range), scales the resting AU-like offsets (0 at 0) and makes accessories more frequent."""
    spread = 0.5 + 0.5 * difficulty
    skin = _SKIN_LIGHT + (_SKIN_DARK - _SKIN_LIGHT) * rng.random()
    skin = np.sort(skin * (1 + rng.normal(0, 0.025, 3)))[::-1]  # keep R >= G >= B
    hair = _HAIR_COLOURS[rng.integers(len(_HAIR_COLOURS))] * (0.8 + 0.4 * rng.random())
    brow = np.minimum(hair, skin * 0.55) * (0.7 + 0.3 * rng.random())
    lip = skin * np.array([0.86, 0.62, 0.62]) * (0.85 + 0.25 * rng.random())
    iris = np.array([[70, 45, 25], [40, 80, 120], [60, 90, 60], [30, 20, 15]])[rng.integers(4)]
    eye_y = _uniform(rng, 0.37, 0.43, spread)
    hair_style = HAIR_STYLES[rng.integers(len(HAIR_STYLES))]
    return Identity(
        face_half_width=_uniform(rng, 0.30, 0.36, spread),
        chin_y=_uniform(rng, 0.87, 0.96, spread),
        jaw_squareness=_uniform(rng, 2.0, 3.0, spread),
        eye_y=eye_y,
        eye_half_spacing=_uniform(rng, 0.135, 0.17, spread),
        eye_width=_uniform(rng, 0.11, 0.145, spread),
        eye_height=_uniform(rng, 0.04, 0.062, spread),
        canthal_tilt=_uniform(rng, -0.008, 0.01, spread),
        brow_gap=_uniform(rng, 0.065, 0.095, spread),
        brow_thickness=_uniform(rng, 0.012, 0.028, spread),
        brow_arch=_uniform(rng, 0.0, 0.02, spread),
        nose_tip_y=eye_y + _uniform(rng, 0.16, 0.22, spread),
        nose_half_width=_uniform(rng, 0.042, 0.065, spread),
        mouth_y=eye_y + _uniform(rng, 0.30, 0.35, spread),
        mouth_half_width=_uniform(rng, 0.078, 0.112, spread),
        upper_lip=_uniform(rng, 0.010, 0.022, spread),
        lower_lip=_uniform(rng, 0.013, 0.028, spread),
        hairline_y=_uniform(rng, 0.07, 0.19, spread),
        hair_style=hair_style,
        glasses=bool(rng.random() < 0.25 * difficulty),
        beard=float(rng.random() < 0.2 * difficulty) * (0.4 + 0.6 * rng.random()),
        wrinkle_depth=_uniform(rng, 0.6, 1.4, spread),
        skin=_colour(skin),
        lip=_colour(lip),
        brow=_colour(brow),
        hair=_colour(hair),
        iris=_colour(iris * (0.8 + 0.4 * rng.random())),
        rest_geometry=_rest(rng, _REST_GEOMETRY, difficulty),
        rest_shading=_rest(rng, _REST_SHADING, difficulty),
        texture_seed=int(rng.integers(2**31)),
    )
