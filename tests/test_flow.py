"""Flow targets through augmentation, and `aurep prepare flow`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import template_landmarks, textured_video

from aurep.cli import main
from aurep.data.batch import BatchNeeds
from aurep.data.clips import ClipDataset, flow_from_previous_frame, index_clips
from aurep.data.datamodules import ClipDataModule
from aurep.data.flow import video_flow_targets
from aurep.data.prepared import PreparedDataset, PreparedDatasetWriter
from aurep.data.transforms import GeometricAugment

SIZE = 48


@pytest.fixture(scope="module")
def half_moving(tmp_path_factory):
    """2 subjects; the image-left half slides right 2 px/frame, the right half stays still."""
    root = tmp_path_factory.mktemp("half_moving")
    rng = np.random.default_rng(0)
    writer = PreparedDatasetWriter(root)
    for subject in ("A", "B"):
        frames = textured_video(rng, 6, SIZE, motion=2.0)
        frames[:, :, SIZE // 2 :] = textured_video(rng, 1, SIZE, 0.0)[:, :, SIZE // 2 :]
        landmarks = np.repeat(template_landmarks()[None] * (SIZE - 1), 6, 0)
        flow = video_flow_targets(frames)
        writer.write_video(f"{subject}_v", subject, frames, landmarks, arrays={"flow": flow})
    writer.finalize({"au_codes": [], "image_size": SIZE, "flow": {"delta": 1, "grid": 28}})
    return root


def view_batch(root, image_size, flip_prob):
    module = ClipDataModule(
        str(root), batch_size=2, num_workers=0, clips_per_epoch=2, val_fraction=0.0,
        num_views=1, image_size=image_size, flip_prob=flip_prob, scale=0.0, rotation=0.0,
        translation=0.0,
    )  # fmt: skip
    module.provide({"flow": BatchNeeds(flow=True)})
    return next(iter(module.train_dataloader()))


@pytest.mark.parametrize("image_size", [SIZE, SIZE // 2])
def test_flipped_view_flow_matches_flow_of_flipped_frames(half_moving, image_size):
    batch = view_batch(half_moving, image_size, flip_prob=1.0)
    scale = image_size / SIZE
    grid = batch.flow.shape[-1]
    for b in range(batch.batch_size):
        view_frames = batch.frames[b, 0].permute(0, 2, 3, 1).numpy()
        recomputed = video_flow_targets(np.ascontiguousarray(view_frames)).astype(np.float32)
        flow = batch.flow[b, 0].numpy()
        # mirrored field: the moving half is now on the image right, moving left
        moving, still = flow[1:, 0, 4:-4, grid // 2 + 3 : -3], flow[1:, 0, 4:-4, 3 : grid // 2 - 3]
        np.testing.assert_allclose(moving.mean(), -2.0 * scale, atol=0.25 * scale)
        assert np.abs(still).mean() < 0.2 * scale
        error = np.abs(flow[1:, :, 3:-3, 3:-3] - recomputed[1:, :, 3:-3, 3:-3]).mean()
        assert error < 0.25 * scale


def test_unflipped_view_keeps_stored_flow(half_moving):
    batch = view_batch(half_moving, SIZE, flip_prob=0.0)
    dataset = PreparedDataset(half_moving)
    stored = [dataset.array(v, "flow", t, 4) for v in ("A_v", "B_v") for t in range(3)]
    for clip in batch.flow[:, 0].numpy():
        assert any(np.allclose(clip, s, atol=1e-3) for s in stored)


def test_affine_moves_flow_with_the_image():
    """A rotated view's flow resamples the field and rotates its vectors."""
    rng = np.random.default_rng(0)
    view = GeometricAugment(32, rotation=90.0).sample(rng, SIZE)
    field = np.zeros((1, 2, 28, 28), np.float32)
    field[0, 0, :, :14] = 1.0  # image-left half moves right by 1 px
    moved = view.flow(field)
    linear = view.matrix[:, :2]
    expected_vector = linear @ np.array([1.0, 0.0])
    inside = field[0, 0] > 0
    points = np.stack(np.nonzero(inside)[::-1], 1)  # (x, y) grid cells of the moving half
    cells = (points + 0.5) * SIZE / 28 - 0.5
    target = (cells @ linear.T + view.matrix[:, 2] + 0.5) * 28 / 32 - 0.5
    target = np.round(target).astype(int)
    keep = ((target > 1) & (target < 26)).all(1)
    sampled = moved[0][:, target[keep, 1], target[keep, 0]].T
    np.testing.assert_allclose(sampled.mean(0), expected_vector, atol=0.1)


def flow_cli(root, *options):
    return main(["prepare", "flow", str(root), "--workers", "1", "--no-progress", *options])


def test_prepare_flow_computes_resumes_and_records_settings(prepared, capsys):
    root = prepared(videos_per_subject=1, subjects={"A": 1, "B": 2})
    assert flow_cli(root) == 0
    dataset = PreparedDataset(root)
    assert dataset.meta["flow"] == {"delta": 1, "grid": 28, "method": "dis"}
    assert "flow_pending" not in dataset.meta
    expected = video_flow_targets(dataset.frames("A_v0"))
    np.testing.assert_array_equal(dataset.array("A_v0", "flow"), expected)
    module = ClipDataModule(str(root), val_fraction=0.0, num_workers=0)
    assert module.has_flow
    (root / "videos" / "B_v0" / "flow.npy").unlink()
    capsys.readouterr()
    assert flow_cli(root) == 0
    assert "computed 1 videos" in capsys.readouterr().out  # A_v0 was skipped
    with pytest.raises(SystemExit) as exit_info:
        flow_cli(root, "--grid", "14")
    assert exit_info.value.code == 2
    assert "pass --overwrite" in capsys.readouterr().err
    assert flow_cli(root, "--grid", "14", "--overwrite", "--method", "farneback") == 0
    assert PreparedDataset(root).array("B_v0", "flow").shape == (12, 2, 14, 14)
    assert json.loads((root / "meta.json").read_text())["flow"]["method"] == "farneback"


def test_prepare_flow_in_parallel_and_interrupted_runs(prepared):
    root = prepared(videos_per_subject=2, subjects={"A": 1, "B": 2})
    assert main(["prepare", "flow", str(root), "--workers", "2", "--no-progress"]) == 0
    dataset = PreparedDataset(root)
    assert all(dataset.has_array("flow", v) for v in dataset.videos)
    meta = json.loads((root / "meta.json").read_text())
    meta["flow_pending"] = meta.pop("flow")  # as left by an interrupted run
    (root / "meta.json").write_text(json.dumps(meta))
    module = ClipDataModule(str(root), val_fraction=0.0, num_workers=0)
    with pytest.raises(ValueError, match="the flow head needs optical-flow targets"):
        module.provide({"flow": BatchNeeds(flow=True)})


def test_prepare_flow_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        flow_cli(tmp_path / "missing")
    assert exit_info.value.code == 2
    assert "no such dataset directory" in capsys.readouterr().err


def test_flow_direction_of_fixture_texture():
    """Sanity of the fixture itself: DIS sees the texture move right by `motion` px."""
    frames = textured_video(np.random.default_rng(1), 3, SIZE, motion=1.5)
    flow = video_flow_targets(frames)
    assert abs(flow[1:, 0, 4:-4, 4:-4].mean() - 1.5) < 0.2
    assert abs(flow[1:, 1, 4:-4, 4:-4].mean()) < 0.2


def test_strided_clips_sum_frame_to_frame_flow_since_the_previous_clip_frame(tmp_path):
    """Stored target k is the constant field k (frame k - 1 -> k); with stride 3 a clip frame's
    target is the sum of the 3 targets since the previous clip frame."""
    writer = PreparedDatasetWriter(tmp_path)
    frames = np.zeros((12, SIZE, SIZE, 3), np.uint8)
    landmarks = np.repeat(template_landmarks()[None] * (SIZE - 1), 12, 0)
    flow = np.broadcast_to(np.arange(12, dtype=np.float16)[:, None, None, None], (12, 2, 4, 4))
    for subject in ("A", "B"):
        writer.write_video(f"{subject}_v", subject, frames, landmarks, arrays={"flow": flow.copy()})
    writer.finalize({"au_codes": [], "image_size": SIZE, "flow": {"delta": 1, "grid": 4}})
    dataset = PreparedDataset(tmp_path)
    index = index_clips(dataset, ["A_v"], 3, 3, {"A": 0})
    clips = ClipDataset(dataset, index, 3, 3, GeometricAugment(SIZE, 0, 0, 0, 0))
    assert flow_from_previous_frame(dataset, stride=3)
    for start in (0, 1, 4):
        targets = clips.read_flow("A_v", start)[:, 0, 0, 0]
        ends = start + 3 * np.arange(3)
        expected = [sum(range(max(end - 2, 0), end + 1)) for end in ends]
        np.testing.assert_allclose(targets, expected)
