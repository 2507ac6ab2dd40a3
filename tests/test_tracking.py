"""``face_id`` tracking on synthetic boxes: IoU, crossing paths, faces leaving and coming back."""

from __future__ import annotations

import numpy as np
import pytest

from aurep.infer.tracking import FaceTracker, box_iou


def test_box_iou():
    boxes = np.array([[0, 0, 10, 10], [5, 0, 10, 10], [20, 20, 5, 5], [0, 0, 0, 0]])
    iou = box_iou(boxes[:1], boxes)
    np.testing.assert_allclose(iou, [[1.0, 50 / 150, 0.0, 0.0]])
    assert box_iou(np.zeros((0, 4)), boxes).shape == (0, 4)


def test_ids_follow_faces_whose_paths_cross():
    """Two faces walk through each other (4 px/frame, the same height): each keeps its id,
    whatever order the detector lists them in, except at t = 10 where their boxes coincide
    (no way to tell them apart there); their motion tells them apart again afterwards."""
    tracker, first = FaceTracker(), None
    for t in range(21):
        left, right = [4.0 * t, 50, 40, 40], [80.0 - 4 * t, 50, 40, 40]
        listed = [left, right] if t % 3 else [right, left]
        ids = tracker(listed)
        by_face = dict(zip(("left", "right"), ids if t % 3 else ids[::-1], strict=True))
        first = first or by_face
        assert by_face == first or t == 10, t
    assert sorted(first.values()) == [0, 1]


def test_a_face_that_leaves_briefly_keeps_its_id_and_a_long_absence_gets_a_new_one():
    tracker = FaceTracker(max_missed=3)
    still, walker = [100.0, 10, 30, 30], [0.0, 10, 30, 30]
    assert tracker([still, walker]) == [0, 1]
    assert tracker([[2.0, 10, 30, 30], still]) == [1, 0]
    assert tracker([still]) == [0]  # the walker is hidden for 3 frames ...
    assert tracker([still]) == [0]
    assert tracker([]) == []  # ... and so, once, is everyone
    assert tracker([[10.0, 10, 30, 30], still]) == [1, 0]  # it went on moving: same id
    for _ in range(4):
        assert tracker([still]) == [0]
    assert tracker([[10.0, 10, 30, 30], still]) == [2, 0]  # gone 4 frames: a new id
    assert tracker([[300.0, 10, 30, 30], [10.0, 10, 30, 30], still]) == [3, 2, 0]  # a newcomer


def test_tracker_settings_are_checked():
    with pytest.raises(ValueError, match="min_iou must be in"):
        FaceTracker(min_iou=0)
    with pytest.raises(ValueError, match="max_missed must be >= 0"):
        FaceTracker(max_missed=-1)


@pytest.mark.parametrize(("absent", "new_id"), [(15, False), (16, True)])
def test_by_default_a_face_unseen_for_more_than_15_frames_gets_a_new_id(absent, new_id):
    """As the README says."""
    tracker, face = FaceTracker(), [10.0, 10, 30, 30]
    assert tracker([face]) == [0]
    for _ in range(absent):
        assert tracker([]) == []
    assert tracker([face]) == [1 if new_id else 0]
