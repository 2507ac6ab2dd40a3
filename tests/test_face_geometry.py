"""One face geometry: synthetic crops (``aurep synth``) and aligned real crops (``aurep prepare``,
``aurep infer``) put the eyes, nose and mouth at the same places of the crop, the alignment
template's (:func:`aurep.prepare.faces.align.template_landmarks`)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import skimage

from aurep.au import SYNTH_AUS
from aurep.landmarks import NOSE
from aurep.prepare.faces.align import DEFAULT_MARGIN, DEFAULT_POINTS, template_landmarks
from aurep.prepare.faces.preprocessor import FacePreprocessor
from aurep.prepare.frames import SourceFrame
from aurep.synth.corpus import (
    GENERATOR_VERSION,
    SynthSettings,
    generate_corpus,
    identity_of,
    render_clip,
)
from aurep.synth.framing import View
from aurep.synth.render import FaceRenderer

SIZE = 112
TOLERANCE = 0.02 * SIZE  # 2% of the crop side, pixels


def features(landmarks: np.ndarray) -> dict[str, float]:
    """Mean framing numbers of (..., 68, 2) crop landmarks, pixels: eye and mouth height, the
    eye-centre distance (inter-ocular), the nose's height and the face's horizontal centre."""
    points = np.asarray(landmarks, dtype=float).reshape(-1, 68, 2).mean(0)
    left, right = points[36:42].mean(0), points[42:48].mean(0)
    return {
        "eye_y": (left[1] + right[1]) / 2,
        "mouth_y": points[48:68, 1].mean(),
        "interocular": float(np.linalg.norm(right - left)),
        "nose_y": points[NOSE, 1].mean(),
        "centre_x": (left[0] + right[0]) / 2,
    }


def far_apart(a: dict, b: dict, tolerance: float, names=None) -> dict:
    """The features of ``a`` and ``b`` (optionally only ``names``) that differ by > tolerance."""
    names = names or a.keys()
    return {k: (round(a[k], 1), round(b[k], 1)) for k in names if abs(a[k] - b[k]) > tolerance}


def neutral_synthetic(identities: int = 30, difficulty: float = 0.5) -> np.ndarray:
    """(N, 68, 2) crop landmarks of N synthetic identities with a neutral face."""
    rest = np.zeros(len(SYNTH_AUS))
    return np.stack(
        [
            FaceRenderer(identity_of(0, i, difficulty), SIZE).render(rest)[1]
            for i in range(identities)
        ]
    )


@pytest.fixture(scope="module")
def template():
    return features(template_landmarks(SIZE, DEFAULT_MARGIN))


@pytest.mark.parametrize("difficulty", [0.0, 1.0])
def test_synthetic_faces_sit_on_the_alignment_template(template, difficulty):
    synthetic = features(neutral_synthetic(difficulty=difficulty))
    assert not far_apart(synthetic, template, TOLERANCE)


def test_the_old_design_square_framing_fails_the_same_check(template):
    """Generator version 1 drew the design square over the whole crop: eyes ~12 px low."""
    renderer = FaceRenderer(identity_of(0, 0, 0.5), SIZE)
    points = renderer.draw(np.zeros(len(SYNTH_AUS)))[2]
    old = features(View(SIZE, float(SIZE), (-0.5, -0.5)).pixels(points))
    assert set(far_apart(old, template, TOLERANCE)) >= {"eye_y", "mouth_y", "nose_y"}


def test_landmarks_match_the_drawn_face():
    """The pupil (dark) is drawn where the eye landmarks say, in the framed crop."""
    for identity in range(4):
        image, points = FaceRenderer(identity_of(0, identity, 0.5), SIZE).render(
            np.zeros(len(SYNTH_AUS))
        )
        for eye in (slice(36, 42), slice(42, 48)):
            x, y = np.rint(points[eye].mean(0)).astype(int)
            pupil = image[y - 1 : y + 2, x - 1 : x + 2].mean()
            skin = image[y + 8 : y + 11, x - 1 : x + 2].mean()  # the cheek below the eye
            assert pupil < 0.6 * skin, (identity, eye, pupil, skin)


def test_corpus_clips_keep_the_framing_and_record_the_template(template, tmp_path):
    """Rendered clips (with their alignment jitter, head turns and expressions) stay on the
    template on average; meta.json names the new generator and the template it used."""
    settings = SynthSettings(identities=6, clips_per_identity=1, frames=10, size=SIZE)
    clips = np.concatenate([render_clip(settings, i, 0).landmarks for i in range(6)])
    assert not far_apart(features(clips), template, TOLERANCE)

    out = generate_corpus(tmp_path / "synth", 1, 1, 2, size=64, workers=1, flow=False,
                          progress=False)  # fmt: skip
    meta = json.loads((out / "meta.json").read_text())
    assert GENERATOR_VERSION == 2 and meta["generator"]["version"] == GENERATOR_VERSION
    assert meta["preprocess"] == {"size": 64, "margin": DEFAULT_MARGIN, "points": DEFAULT_POINTS}


def test_synthetic_and_prepared_real_crops_agree():
    """The astronaut photograph (a real face, shipped with scikit-image) through the face
    preprocessing of ``aurep prepare`` against the mean synthetic face. Eyes, nose and the face
    scale agree within 2% of the crop side; the mouth within 5%: she smiles, and one person's
    mouth sits about 4 px above the template's mean face."""
    photo = skimage.data.astronaut()
    frames = [SourceFrame(0, 0.0, photo), SourceFrame(1, 0.0, photo[:, ::-1].copy())]
    real = FacePreprocessor(SIZE, mode="image").sequence(frames)
    assert real.faces == 2
    synthetic = features(neutral_synthetic())
    prepared = features(real.landmarks)
    assert not far_apart(prepared, synthetic, TOLERANCE, ["eye_y", "interocular", "nose_y"])
    assert not far_apart(prepared, synthetic, 0.05 * SIZE, ["mouth_y", "centre_x"])
