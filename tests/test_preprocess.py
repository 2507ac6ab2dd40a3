"""Face preprocessing on a real photograph (scikit-image's astronaut, public domain), decoding of
videos the tests encode themselves, and ``aurep prepare videos`` end to end."""

from __future__ import annotations

import argparse
import json

import cv2
import numpy as np
import pandas as pd
import pytest
import skimage.data

from aurep.data.prepared import DatasetError, PreparedDataset
from aurep.landmarks import (
    BROWS,
    EYES,
    FLIP_PERMUTATION,
    JAW,
    MIDLINE,
    MIRROR_PAIRS,
    MOUTH,
    NOSE,
    NUM_LANDMARKS,
)
from aurep.prepare import videos as prepare_videos
from aurep.prepare.faces.align import FaceAligner, template_landmarks
from aurep.prepare.faces.landmarker import FaceLandmarker
from aurep.prepare.faces.mapping import CANONICAL_IBUG68, MEDIAPIPE_TO_IBUG68, mesh_to_ibug68
from aurep.prepare.faces.preprocessor import FacePreprocessor, nearest_success_index
from aurep.prepare.frames import SourceFrame, encode_video, iter_frames

FACE_BOX = (170, 60, 285, 200)  # x0, y0, x1, y1 of the astronaut's face in the 512 px photo


def face_clip(count: int, size: int = 128) -> list[np.ndarray]:
    """``count`` frames of the astronaut's head, shifted 2 px right per frame, ``size`` px."""
    head = skimage.data.astronaut()[10:330, 70:390]
    frames = []
    for t in range(count):
        shifted = cv2.warpAffine(head, np.float32([[1, 0, 2 * t], [0, 1, 0]]), (320, 320))
        frames.append(cv2.resize(shifted, (size, size), interpolation=cv2.INTER_AREA))
    return frames


@pytest.fixture(scope="module")
def image_landmarker():
    with FaceLandmarker("image") as landmarker:
        yield landmarker


@pytest.fixture(scope="module")
def astronaut_points(image_landmarker):
    points = image_landmarker(skimage.data.astronaut())
    assert points is not None, "no face found in the astronaut photograph"
    return points


def test_ibug_layout_regions_mirror_pairs_and_flip():
    regions = [JAW, BROWS, NOSE, EYES, MOUTH]
    assert [r.start for r in regions[1:]] == [r.stop for r in regions[:-1]]
    assert (JAW.start, MOUTH.stop) == (0, NUM_LANDMARKS)
    paired = [point for pair in MIRROR_PAIRS for point in pair]
    assert sorted(paired + list(MIDLINE)) == list(range(NUM_LANDMARKS))
    np.testing.assert_array_equal(FLIP_PERMUTATION[FLIP_PERMUTATION], np.arange(NUM_LANDMARKS))
    assert all(FLIP_PERMUTATION[left] == right for left, right in MIRROR_PAIRS)


def test_mapping_table_is_68_distinct_mesh_points_mirrored_left_right():
    assert MEDIAPIPE_TO_IBUG68.shape == (NUM_LANDMARKS,)
    assert len(set(MEDIAPIPE_TO_IBUG68.tolist())) == NUM_LANDMARKS
    assert MEDIAPIPE_TO_IBUG68.max() < 478
    for left, right in MIRROR_PAIRS:  # image-left point first, mirrored about x = 0
        a, b = CANONICAL_IBUG68[left], CANONICAL_IBUG68[right]
        assert a[0] < 0
        np.testing.assert_allclose([a[0], a[1]], [-b[0], b[1]], atol=1e-3)
    np.testing.assert_allclose(CANONICAL_IBUG68[list(MIDLINE), 0], 0.0, atol=1e-3)
    mesh = np.random.default_rng(0).random((478, 3))
    np.testing.assert_allclose(mesh_to_ibug68(mesh), mesh[MEDIAPIPE_TO_IBUG68, :2], rtol=1e-6)
    with pytest.raises(ValueError, match="face-mesh"):
        mesh_to_ibug68(np.zeros((68, 2)))


def test_landmarks_fall_on_the_astronauts_features(astronaut_points):
    p = astronaut_points
    x0, y0, x1, y1 = FACE_BOX
    assert ((p[:, 0] > x0) & (p[:, 0] < x1) & (p[:, 1] > y0) & (p[:, 1] < y1)).all()
    eyes_y, nose_tip, mouth_y, chin = p[EYES, 1].mean(), p[30], p[MOUTH, 1].mean(), p[8]
    assert p[BROWS, 1].mean() < eyes_y < nose_tip[1] < mouth_y < chin[1]
    # left/right order in the image: right eye (36-41) left of the left eye (42-47)
    assert p[36, 0] < p[39, 0] < p[42, 0] < p[45, 0]
    assert p[48, 0] < p[51, 0] < p[54, 0] and p[0, 0] < p[30, 0] < p[16, 0]
    assert p[17:22, 0].mean() < p[22:27, 0].mean()
    # the eye centres are about 43 px apart in this photograph (a sanity check of scale)
    assert 35 < np.linalg.norm(p[36:42].mean(0) - p[42:48].mean(0)) < 55


def test_alignment_puts_the_eyes_on_the_template(astronaut_points):
    image = skimage.data.astronaut()
    aligner = FaceAligner(size=96, margin=0.2)
    face = aligner(image, astronaut_points)
    assert face.image.shape == (96, 96, 3) and face.image.dtype == np.uint8
    template = template_landmarks(96, 0.2)
    for eye in (slice(36, 42), slice(42, 48)):
        error = np.linalg.norm(face.landmarks[eye].mean(0) - template[eye].mean(0))
        assert error < 0.03 * 96
    moved = cv2.transform(astronaut_points[None], face.matrix)[0]
    np.testing.assert_allclose(face.landmarks, moved, atol=1e-3)
    # the crop shows the face: skin-coloured centre, not the black border
    assert face.image[40:60, 40:60].mean() > 80
    assert 0.0 < face.fit_error < 0.05 * 96


def test_template_and_aligner_reject_bad_settings():
    small, wide = template_landmarks(64, 0.0), template_landmarks(64, 0.5)
    assert small.min() >= -1e-3 and small.max() <= 64 + 1e-3
    assert np.ptp(wide[:, 0]) < np.ptp(small[:, 0])
    with pytest.raises(ValueError, match="margin"):
        template_landmarks(64, 1.5)
    with pytest.raises(ValueError, match="alignment points"):
        FaceAligner(points="eyes")


def test_no_face_in_a_blank_image(image_landmarker):
    assert image_landmarker(np.zeros((128, 128, 3), np.uint8)) is None
    with pytest.raises(ValueError, match="uint8"):
        image_landmarker(np.zeros((128, 128), np.uint8))


def test_nearest_success_index():
    success = np.array([0, 1, 0, 0, 0, 1, 0])
    np.testing.assert_array_equal(nearest_success_index(success), [1, 1, 1, 1, 5, 5, 5])
    np.testing.assert_array_equal(nearest_success_index(np.zeros(3)), [0, 1, 2])


def test_sequence_marks_frames_without_a_face():
    frames = face_clip(3)
    frames.insert(1, np.zeros_like(frames[0]))
    source = [SourceFrame(10 + i, 40.0 * i, image) for i, image in enumerate(frames)]
    sequence = FacePreprocessor(size=48).sequence(source)
    np.testing.assert_array_equal(sequence.success, [1, 0, 1, 1])
    np.testing.assert_array_equal(sequence.numbers, [10, 11, 12, 13])
    assert sequence.frames.shape == (4, 48, 48, 3)
    assert sequence.frames[1].max() == 0 and sequence.frames[0].mean() > 40
    np.testing.assert_array_equal(sequence.landmarks[1], sequence.landmarks[0])  # nearest
    assert sequence.confidence[1] == 0 and (sequence.confidence[[0, 2, 3]] > 0.3).all()


def test_decoding_a_video_and_bad_videos(tmp_path):
    path = tmp_path / "clip.mp4"
    assert encode_video(path, face_clip(5, size=64)) == 5
    frames = list(iter_frames(path))
    assert [f.number for f in frames] == [0, 1, 2, 3, 4]
    assert frames[0].image.shape == (64, 64, 3) and frames[0].image.dtype == np.uint8
    assert frames[1].timestamp_ms == pytest.approx(40.0)
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"not a video at all")
    with pytest.raises(DatasetError, match="garbage.mp4: cannot open video"):
        list(iter_frames(garbage))
    empty = tmp_path / "empty.avi"
    empty.touch()
    with pytest.raises(DatasetError, match="empty.avi"):
        list(iter_frames(empty))
    with pytest.raises(DatasetError, match="notes.txt: not a video"):
        (tmp_path / "notes.txt").write_text("x")
        iter_frames(tmp_path / "notes.txt")


def run_prepare_videos(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    prepare_videos.add_arguments(parser)
    return prepare_videos.run(parser.parse_args([*argv, "--no-progress", "--workers", "1"]))


def test_prepare_videos_end_to_end(tmp_path, capsys):
    src = tmp_path / "corpus"
    (src / "id1" / "talk").mkdir(parents=True)
    clip = face_clip(5) + [np.zeros((128, 128, 3), np.uint8)] * 2
    encode_video(src / "id1" / "talk" / "00001.mp4", clip)
    folder = src / "id 2" / "frames"
    folder.mkdir(parents=True)
    for number, image in zip((7, 8, 9), face_clip(3), strict=True):
        cv2.imwrite(str(folder / f"{number:04d}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    (src / "id3").mkdir()
    (src / "id3" / "broken.mp4").write_bytes(b"\x00" * 100)
    out = tmp_path / "prepared"
    assert run_prepare_videos(str(src), "--out", str(out), "--size", "48") == 1
    captured = capsys.readouterr()
    assert "broken.mp4" in captured.err
    assert "videos: 2 written, 1 failed, 0 already done" in captured.out
    assert "faces found in 8 (80.0%)" in captured.out
    assert "1 videos failed (id3__broken)" in captured.out and "--allow-partial" in captured.out
    assert not (out / "meta.json").exists()  # a failed video leaves the dataset incomplete
    assert run_prepare_videos(str(src), "--out", str(out), "--size", "48", "--allow-partial") == 0
    assert "0 written, 1 failed, 2 already done" in capsys.readouterr().out
    dataset = PreparedDataset(out)
    assert sorted(dataset.videos) == ["id-2__frames", "id1__talk__00001"]
    assert dataset.video_subjects == {"id-2__frames": "id 2", "id1__talk__00001": "id1"}
    rows = dataset.video_rows("id1__talk__00001")
    assert rows["success"].tolist() == [1, 1, 1, 1, 1, 0, 0]
    assert dataset.video_rows("id-2__frames")["source_frame"].tolist() == [7, 8, 9]
    assert dataset.frames("id1__talk__00001").shape == (7, 48, 48, 3)
    assert dataset.array("id1__talk__00001", "flow").shape == (7, 2, 28, 28)
    landmarks = dataset.landmarks("id1__talk__00001", 0, 1)[0]
    template = template_landmarks(48, 0.2)
    assert np.linalg.norm(landmarks[36:48].mean(0) - template[36:48].mean(0)) < 2.0
    assert dataset.meta["flow"] == {"delta": 1, "grid": 28, "method": "dis"}
    # resume: finished videos are skipped, the broken one is tried again
    assert run_prepare_videos(str(src), "--out", str(out), "--size", "48", "--allow-partial") == 0
    resumed = capsys.readouterr().out
    assert "1 failed, 2 already done" in resumed
    assert "dataset: 2 videos, 10 frames, faces found in 8 (80.0%)" in resumed  # not this run's 0
    with pytest.raises(ValueError, match="other settings"):
        run_prepare_videos(str(src), "--out", str(out), "--size", "64")
    manifest = pd.read_parquet(out / "manifest.parquet")
    assert len(manifest) == 10
    assert json.loads((out / "meta.json").read_text())["summary"]["skipped"] == 2


def test_crop_to_source_maps_crop_landmarks_onto_the_source_frame(tmp_path, capsys):
    src = tmp_path / "corpus"
    (src / "id1").mkdir(parents=True)
    clip = face_clip(4, size=160)
    clip.insert(2, np.zeros_like(clip[0]))  # a frame without a face
    video = src / "id1" / "talk.mp4"
    encode_video(video, clip)
    out = tmp_path / "prepared"
    assert run_prepare_videos(str(src), "--out", str(out), "--size", "48", "--no-flow") == 0
    dataset = PreparedDataset(out)
    transform = dataset.array("id1__talk", "crop_to_source")
    assert transform.dtype == np.float32 and transform.shape == (5, 2, 3)
    np.testing.assert_array_equal(dataset.video_rows("id1__talk")["success"], [1, 1, 0, 1, 1])
    assert np.isnan(transform[2]).all() and np.isfinite(transform[[0, 1, 3, 4]]).all()
    crop = dataset.landmarks("id1__talk")
    with FaceLandmarker("video") as landmarker:  # what prepare ran, on the decoded frames
        source = [landmarker(f.image, round(f.timestamp_ms)) for f in iter_frames(video)]
    assert source[2] is None
    for t in (0, 1, 3, 4):
        mapped = crop[t] @ transform[t, :, :2].T + transform[t, :, 2]
        np.testing.assert_allclose(mapped, source[t], atol=0.01)
    first = crop[4] @ transform[0, :, :2].T + transform[0, :, 2]
    assert np.abs(first - source[4]).mean() > 1.0  # the head moved: each frame has its own
    # a video prepared before the transform was kept is redone on the next run
    (out / "videos" / "id1__talk" / "crop_to_source.npy").unlink()
    assert run_prepare_videos(str(src), "--out", str(out), "--size", "48", "--no-flow") == 0
    captured = capsys.readouterr()
    assert "redoing video id1__talk: it has no crop_to_source.npy" in captured.err
    assert "videos: 1 written, 0 failed, 0 already done" in captured.out
    redone = PreparedDataset(out).array("id1__talk", "crop_to_source")
    np.testing.assert_allclose(redone, transform, atol=1e-4)


def test_prepare_videos_bad_inputs(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no videos or frame folders"):
        run_prepare_videos(str(tmp_path / "empty"), "--out", str(tmp_path / "o1"))
    src = tmp_path / "faceless" / "id1"
    src.mkdir(parents=True)
    encode_video(src / "blank.mp4", [np.zeros((64, 64, 3), np.uint8)] * 3)
    (src / "bad.mp4").write_text("nope")
    out = tmp_path / "o2"
    assert run_prepare_videos(str(tmp_path / "faceless"), "--out", str(out)) == 1
    captured = capsys.readouterr()
    assert "blank.mp4: no face found in any of its 3 frames" in captured.err
    assert "bad.mp4: cannot open video" in captured.err
    assert "no video could be prepared" in captured.out
    assert not (out / "meta.json").exists()
