"""BP4D / DISFA / GFT adapters on small fake trees in the official layouts (faces: the
astronaut photograph), with unknown codes, missing label files, malformed lines and
frame-count mismatches."""

from __future__ import annotations

import argparse

import cv2
import numpy as np
import pytest
from test_preprocess import face_clip

from aurep.data.prepared import DatasetError, PreparedDataset
from aurep.prepare.converters import bp4d, disfa, gft
from aurep.prepare.converters.common import read_occurrence_csv
from aurep.prepare.frames import encode_video
from aurep.prepare.jobs import FrameLabels, attach_labels


def run_adapter(module, *argv: str) -> int:
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    args = [*argv, "--size", "32", "--no-flow", "--no-progress", "--workers", "1"]
    return module.run(parser.parse_args(args))


def write_frames(folder, numbers, digits=4):
    folder.mkdir(parents=True)
    for number, image in zip(numbers, face_clip(len(numbers), size=96), strict=True):
        path = folder / f"{number:0{digits}d}.jpg"
        cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))


def test_attach_labels_counts_both_mismatches():
    labels = FrameLabels((1, 2), np.array([5, 3, 9]), np.array([[1, 0], [0, -1], [1, 1]], np.int8))
    occurrence, intensity, unlabelled, orphans = attach_labels(np.array([3, 4, 5]), labels)
    np.testing.assert_array_equal(occurrence, [[0, -1], [-1, -1], [1, 0]])
    assert intensity is None and unlabelled == 1 and orphans == 1


def test_occurrence_csv_unknowns_bad_lines_and_missing_files(tmp_path):
    path = tmp_path / "F001_T1.csv"
    path.write_text("0,1,2,4\n10,1,0,9\n11,0,x,1\n12,1,1\n13,0,7,0\n14,0,1,0\n")
    labels = read_occurrence_csv(path, (1, 2, 4, 6), "0")
    np.testing.assert_array_equal(labels.numbers, [10, 14])
    np.testing.assert_array_equal(labels.occurrence, [[1, 0, -1, -1], [0, 1, 0, -1]])
    text = "\n".join(labels.problems)
    assert "no column for AUs [6]" in text
    for line in (3, 4, 5):
        assert f"F001_T1.csv: line {line}: malformed" in text
    missing = read_occurrence_csv(tmp_path / "nope.csv", (1,), "0")
    assert len(missing.numbers) == 0 and "nope.csv is missing" in missing.problems[0]
    (tmp_path / "headless.csv").write_text("1,2\n3,4\n")
    with pytest.raises(DatasetError, match="headless.csv: line 1"):
        read_occurrence_csv(tmp_path / "headless.csv", (1,), "frame")


def test_bp4d_adapter(tmp_path, capsys):
    root = tmp_path / "BP4D"
    write_frames(root / "BP4D-training" / "F001" / "T1", [2440, 2441, 2442, 2443], digits=5)
    write_frames(root / "BP4D-training" / "F003" / "T2", [1, 2], digits=3)
    labels = root / "AUCoding" / "AU_OCC"
    labels.mkdir(parents=True)
    header = ",".join(str(c) for c in range(0, 25))
    rows = {
        2440: {1: 1, 12: 1},
        2441: {1: 9, 12: 0},
        2442: {1: 0, 12: 1},
        2999: {1: 1},  # no such frame
    }
    lines = [header]
    for frame, values in rows.items():
        lines.append(",".join(str(frame if c == 0 else values.get(c, 0)) for c in range(25)))
    lines.insert(2, "2445,1,oops")
    (labels / "F001_T1.csv").write_text("\n".join(lines) + "\n")  # F003_T2.csv is missing
    out = tmp_path / "out"
    assert run_adapter(bp4d, str(root), "--out", str(out)) == 0
    captured = capsys.readouterr()
    assert "F001_T1.csv: line 3: malformed" in captured.err
    assert "F003_T2.csv is missing" in captured.err
    assert "3 frames without labels, 1 label rows without a frame" in captured.out
    dataset = PreparedDataset(out)
    assert dataset.au_codes == list(bp4d.BP4D_AUS)
    rows = dataset.video_rows("F001_T1")
    assert rows["source_frame"].tolist() == [2440, 2441, 2442, 2443]
    assert rows["AU01"].tolist() == [1, -1, 0, -1] and rows["AU12"].tolist() == [1, 0, 1, -1]
    assert rows["AU02"].tolist() == [0, 0, 0, -1]
    assert set(rows["fold"]) == {1} and set(dataset.video_rows("F003_T2")["fold"]) == {2}
    assert (dataset.video_rows("F003_T2")["AU01"] == -1).all()
    assert dataset.manifest["success"].all()


def test_disfa_adapter(tmp_path, capsys):
    root = tmp_path / "DISFA"
    videos = root / "Videos_LeftCamera"
    videos.mkdir(parents=True)
    encode_video(videos / "LeftVideoSN001_comp.avi", face_clip(4, size=96))
    encode_video(videos / "LeftVideoSN006_comp.avi", face_clip(2, size=96))
    labels = root / "ActionUnit_Labels" / "SN001"
    labels.mkdir(parents=True)
    intensities = {1: [0, 1, 2, 5, 3], 12: [3, 0, 2, 1, 0]}  # 5 label frames, 4 video frames
    for code in (2, 4, 6, 9, 25, 26):
        intensities[code] = [0, 0, 0, 0, 0]
    del intensities[26]  # a missing AU file
    for code, values in intensities.items():
        text = "\n".join(f"{frame},{value}" for frame, value in enumerate(values, start=1))
        (labels / f"SN001_au{code}.txt").write_text(text + ("\n3;2\n" if code == 12 else "\n"))
    out = tmp_path / "out"
    assert run_adapter(disfa, str(root), "--out", str(out)) == 0
    captured = capsys.readouterr()
    assert "SN001_au12.txt: line 6: malformed" in captured.err
    assert "SN001_au26.txt is missing: AU26 is unknown" in captured.err
    assert "ActionUnit_Labels/SN006 is missing" in captured.err
    assert "1 label rows without a frame" in captured.out
    dataset = PreparedDataset(out)
    rows = dataset.video_rows("SN001")
    assert rows["source_frame"].tolist() == [1, 2, 3, 4]
    assert rows["AU01"].tolist() == [0, 0, 1, 1]  # intensity >= 2
    assert rows["AU12"].tolist() == [1, 0, 1, 0]
    np.testing.assert_allclose(rows["AU01_int"], [0, 1, 2, 5])
    assert (rows["AU26"] == -1).all() and rows["AU26_int"].isna().all()
    assert set(rows["fold"]) == {1} and set(dataset.video_rows("SN006")["fold"]) == {2}


def test_gft_adapter(tmp_path, capsys):
    root = tmp_path / "GFT"
    (root / "Videos").mkdir(parents=True)
    encode_video(root / "Videos" / "001A.mp4", face_clip(3, size=96))
    write_frames(root / "Images" / "002B", [0, 1])
    (root / "AUCoding").mkdir()
    (root / "AUCoding" / "001A.csv").write_text("frame,AU01,AU02,AU12\n1,1,0,999\n2,0,1,1\n")
    (root / "AUCoding" / "002B.csv").write_text("frame,AU01\n0,1\n1,0\n")
    (root / "split.csv").write_text("subject,split\n001A,train\n002B,test\n")
    out = tmp_path / "out"
    assert run_adapter(gft, str(root), "--out", str(out)) == 0
    dataset = PreparedDataset(out)
    assert dataset.au_codes == list(gft.GFT_AUS)
    first = dataset.video_rows("001A")
    assert first["AU01"].tolist() == [1, 0, -1] and first["AU12"].tolist() == [-1, 1, -1]
    assert set(first["fold"]) == {2} and set(dataset.video_rows("002B")["fold"]) == {1}
    assert dataset.video_rows("002B")["AU01"].tolist() == [1, 0]
    assert "1 frames without labels" in capsys.readouterr().out
    (root / "split.csv").write_text("001A,maybe\n")
    with pytest.raises(DatasetError, match="split.csv: line 1"):
        run_adapter(gft, str(root), "--out", str(tmp_path / "o2"))


def test_adapters_reject_wrong_roots(tmp_path):
    with pytest.raises(ValueError, match="no BP4D frame folders"):
        run_adapter(bp4d, str(tmp_path), "--out", str(tmp_path / "o"))
    with pytest.raises(ValueError, match="Videos_LeftCamera"):
        run_adapter(disfa, str(tmp_path), "--out", str(tmp_path / "o"))
    with pytest.raises(ValueError, match="split file"):
        run_adapter(gft, str(tmp_path), "--out", str(tmp_path / "o"))
