"""AU RoIs: the EAC-Net table, numpy/torch parity, box sizes, and regions on synthetic faces."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import template_landmarks

from aurep.au import SYNTH_AUS
from aurep.data.prepared import PreparedDataset
from aurep.data.rois import roi_boxes, roi_centres, roi_names
from aurep.synth import corpus as synth_corpus
from aurep.synth import render as synth_render


def test_names_order_and_default_count():
    assert roi_names([1, 12]) == ["AU01_a", "AU01_b", "AU12_a", "AU12_b"]
    assert len(roi_names()) == 2 * len(SYNTH_AUS) == 30
    with pytest.raises(ValueError, match=r"no RoI centres for AUs \[5\]"):
        roi_names([1, 5])


def test_centres_follow_the_eac_net_table():
    points = template_landmarks() * 100
    ruler = abs(points[39, 0] - points[42, 0])
    centres = roi_centres(points, [1, 2, 4, 6, 7, 17])
    expected = [
        points[21] - (0, ruler / 2), points[22] - (0, ruler / 2),
        points[18] - (0, ruler / 3), points[25] - (0, ruler / 3),
        points[19] + (0, ruler / 3), points[24] + (0, ruler / 3),
        points[41] + (0, ruler), points[46] + (0, ruler),
        points[38], points[43],
        points[56] + (0, ruler / 2), points[58] + (0, ruler / 2),
    ]  # fmt: skip
    np.testing.assert_allclose(centres, expected)


def test_boxes_numpy_torch_parity_batch_dims_and_units():
    rng = np.random.default_rng(0)
    points = template_landmarks()[None, None] * 64 + rng.normal(0, 1, (2, 3, 68, 2))
    boxes = roi_boxes(points.astype(np.float32), size=0.2)
    tensor_boxes = roi_boxes(torch.from_numpy(points.astype(np.float32)), size=0.2)
    assert boxes.shape == (2, 3, 30, 4) and boxes.dtype == np.float32
    np.testing.assert_allclose(tensor_boxes.numpy(), boxes, rtol=1e-6)
    width = np.linalg.norm(points[..., 16, :] - points[..., 0, :], axis=-1)
    sides = boxes[..., 2:] - boxes[..., :2]
    np.testing.assert_allclose(
        sides, np.broadcast_to(0.2 * width[..., None, None], sides.shape), rtol=1e-5
    )
    pixel = roi_boxes(points, [12], size=10, unit="px")
    np.testing.assert_allclose(pixel[..., 2:] - pixel[..., :2], np.full((2, 3, 2, 2), 10.0))
    np.testing.assert_allclose((pixel[..., :2] + pixel[..., 2:]) / 2, points[..., [48, 54], :])
    with pytest.raises(ValueError, match="unit"):
        roi_boxes(points, unit="cm")


UPPER = (1, 2, 4, 7)
LOWER = (10, 12, 14, 15, 17, 23, 24, 25, 26)


def _density(diff: np.ndarray, boxes: np.ndarray) -> float:
    mask = np.zeros(diff.shape, bool)
    for x1, y1, x2, y2 in np.round(boxes).astype(int):
        mask[max(y1, 0) : y2 + 1, max(x1, 0) : x2 + 1] = True
    return float(diff[mask].mean())


@pytest.mark.parametrize("identity", [0, 1, 2])
def test_rois_cover_the_pixels_each_au_changes_on_synthetic_faces(identity):
    """Render a face neutral and with one AU at intensity 5: the change must be dense in that
    AU's RoIs and absent from the other half of the face. AU6 and AU9 are left out: the
    generator draws them as faint shading (cheek ellipse, nose-bridge lines) that the EAC-Net
    centres (one ruler under the eye, beside the nose) only partly overlap."""
    size = 96
    renderer = synth_render.FaceRenderer(synth_corpus.identity_of(0, identity, 0.5), size)
    neutral = np.zeros(len(SYNTH_AUS))
    canvas, gain, points = renderer.draw(neutral)
    base = synth_render.apply_gain(canvas, gain).astype(float)
    boxes = roi_boxes(renderer.view.pixels(points), SYNTH_AUS, size=0.2)
    per_au = {code: boxes[2 * i : 2 * i + 2] for i, code in enumerate(SYNTH_AUS)}
    for code in UPPER + LOWER:
        active = neutral.copy()
        active[SYNTH_AUS.index(code)] = 5.0
        diff = np.abs(synth_render.apply_gain(*renderer.draw(active)[:2]) - base).sum(-1)
        density = {other: _density(diff, b) for other, b in per_au.items()}
        peak = max(density.values())
        assert density[code] >= 0.5 * peak, (code, density)
        other_half = LOWER if code in UPPER else UPPER
        assert max(density[o] for o in other_half) < 0.1 * peak, (code, density)


def test_synthetic_corpus_rois_are_ordered_down_the_face(tmp_path):
    root = synth_corpus.generate_corpus(
        tmp_path / "synth", identities=2, clips_per_identity=1, frames=6, size=64,
        workers=1, flow=False, progress=False,
    )  # fmt: skip
    dataset = PreparedDataset(root)
    points = np.concatenate([dataset.landmarks(v) for v in dataset.videos])
    centres = roi_centres(points, [2, 1, 7, 6, 12, 17])[..., 1].reshape(len(points), 6, 2)
    rows = centres.mean(-1)  # mean y of each AU's two centres, per frame
    assert (np.diff(rows[:, [0, 2, 3, 4, 5]], axis=1) > 0).all()  # brow < lid < cheek < lips < chin
    boxes = roi_boxes(points, size=0.2)
    assert (boxes[..., :2] > -0.1 * 64).all() and (boxes[..., 2:] < 1.1 * 64).all()
