"""The prepared-dataset format: round trip, atomic completion, and clear errors on bad data."""

import json

import numpy as np
import pandas as pd
import pytest

from aurep.au import au_column
from aurep.data import DatasetError, PreparedDataset, PreparedDatasetWriter

AUS = (1, 12)


def _write(root, videos=(("S0", "S0_C0", 5), ("S1", "S1_C0", 3)), **kwargs):
    writer = PreparedDatasetWriter(root, **kwargs)
    rng = np.random.default_rng(0)
    expected = {}
    for subject, video, length in videos:
        frames = rng.integers(0, 255, (length, 16, 16, 3), dtype=np.uint8)
        landmarks = rng.random((length, 68, 2)).astype(np.float32) * 16
        occurrence = rng.integers(-1, 2, (length, len(AUS))).astype(np.int8)
        writer.write_video(video, subject, frames, landmarks, AUS, occurrence, fold=1)
        expected[video] = (frames, landmarks, occurrence)
    return writer, expected


def test_round_trip(tmp_path):
    writer, expected = _write(tmp_path / "ds")
    writer.finalize({"au_codes": list(AUS), "image_size": 16})
    dataset = PreparedDataset(tmp_path / "ds")
    assert len(dataset) == 8
    assert dataset.video_lengths == {"S0_C0": 5, "S1_C0": 3}
    assert dataset.label_columns == ["AU01", "AU12"]
    frames, landmarks, occurrence = expected["S0_C0"]
    np.testing.assert_array_equal(dataset.frames("S0_C0", 1, 3), frames[1:4])
    np.testing.assert_array_equal(dataset.landmarks("S0_C0", 2, 2), landmarks[2:4])
    rows = dataset.video_rows("S0_C0")
    np.testing.assert_array_equal(rows[["AU01", "AU12"]].to_numpy(), occurrence)
    assert rows["frame"].tolist() == [0, 1, 2, 3, 4]
    assert set(dataset.manifest["subject"]) == {"S0", "S1"}


def test_unfinished_dataset_is_refused(tmp_path):
    _write(tmp_path / "ds")  # no finalize(): interrupted job
    with pytest.raises(DatasetError, match="incomplete"):
        PreparedDataset(tmp_path / "ds")


def test_existing_output_needs_overwrite(tmp_path):
    writer, _ = _write(tmp_path / "ds")
    writer.finalize({"au_codes": list(AUS), "image_size": 16})
    with pytest.raises(DatasetError, match="--overwrite"):
        PreparedDatasetWriter(tmp_path / "ds")
    PreparedDatasetWriter(tmp_path / "ds", overwrite=True)
    assert not (tmp_path / "ds" / "manifest.parquet").exists()


def test_resume_keeps_written_videos(tmp_path):
    _write(tmp_path / "ds")
    writer = PreparedDatasetWriter(tmp_path / "ds", resume=True)
    assert writer.has_video("S0_C0") and not writer.has_video("S9_C0")


def test_bad_labels_named(tmp_path):
    writer, _ = _write(tmp_path / "ds")
    writer.finalize({"au_codes": list(AUS), "image_size": 16})
    path = tmp_path / "ds" / "manifest.parquet"
    manifest = pd.read_parquet(path)
    manifest.loc[3, au_column(12)] = 7
    manifest.to_parquet(path)
    with pytest.raises(DatasetError, match=r"AU12 row 3 has label 7"):
        PreparedDataset(tmp_path / "ds")


def test_writer_rejects_bad_labels_and_shapes(tmp_path):
    writer = PreparedDatasetWriter(tmp_path / "ds")
    frames = np.zeros((2, 8, 8, 3), np.uint8)
    with pytest.raises(DatasetError, match="1, 0 or -1"):
        writer.write_video("v", "s", frames, np.zeros((2, 68, 2)), (1,), np.array([[2], [0]]))
    with pytest.raises(DatasetError, match="landmarks"):
        writer.write_video("v", "s", frames, np.zeros((3, 68, 2)))
    with pytest.raises(DatasetError, match="slashes"):
        writer.write_video("a/b", "s", frames, np.zeros((2, 68, 2)))


def test_missing_or_truncated_frames_named(tmp_path):
    writer, _ = _write(tmp_path / "ds")
    writer.finalize({"au_codes": list(AUS), "image_size": 16})
    video_dir = tmp_path / "ds" / "videos" / "S0_C0"
    np.save(video_dir / "frames.npy", np.zeros((4, 16, 16, 3), np.uint8))
    (tmp_path / "ds" / "videos" / "S1_C0" / "frames.npy").unlink()
    dataset = PreparedDataset(tmp_path / "ds")
    with pytest.raises(DatasetError, match="has 4 frames but the manifest lists 5"):
        dataset.frames("S0_C0", 0, 2)
    with pytest.raises(DatasetError, match=r"S1_C0.*frames.npy: missing"):
        dataset.frames("S1_C0", 0, 2)
    with pytest.raises(DatasetError, match="requested"):
        dataset.landmarks("S0_C0", 3, 4)


def test_format_version_checked(tmp_path):
    writer, _ = _write(tmp_path / "ds")
    writer.finalize({"au_codes": list(AUS), "image_size": 16})
    meta_path = tmp_path / "ds" / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["format_version"] = 99
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match="format_version 99"):
        PreparedDataset(tmp_path / "ds")
