"""``aurep infer``: CSV rows per frame, thresholds, frames without a face, embeddings, the
background pipeline and bad input (videos encoded by the tests, the astronaut photograph)."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pandas as pd
import pytest
import pytorch_lightning as pl
import skimage.data
import torch
from conftest import write_prepared
from test_preprocess import FACE_BOX, face_clip

from aurep import cli
from aurep.data.prepared import DatasetError
from aurep.infer import command
from aurep.infer.faces import detection_score, head_pose
from aurep.infer.pipeline import AUPredictor, batches, in_background
from aurep.models.checkpoints import TRAINING_DATA_KEY
from aurep.prepare.faces.landmarker import FaceLandmarker
from aurep.prepare.faces.preprocessor import FacePreprocessor
from aurep.prepare.frames import encode_video, iter_frames
from aurep.tasks.detector import AUDetector

AUS = [1, 2, 12]
SIZE = 48


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A random test_resnet detector; thresholds 0 (AU1 always on) and 1.01 (AU2 always off)."""
    torch.manual_seed(0)
    model = AUDetector(backbone="test_resnet", mode="finetune", au_codes=AUS).eval()
    model.thresholds.copy_(torch.tensor([0.0, 1.01, 0.5]))
    path = tmp_path_factory.mktemp("ckpt") / "detector.ckpt"
    torch.save(
        {
            "state_dict": model.state_dict(),
            "hyper_parameters": dict(model.hparams),
            "datamodule_hyper_parameters": {"image_size": SIZE},
            "pytorch-lightning_version": pl.__version__,
        },
        path,
    )
    return path


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """8 frames: 4 with a face, 2 blank, 2 with a face (25 fps)."""
    blank = np.zeros((128, 128, 3), np.uint8)
    path = tmp_path_factory.mktemp("video") / "talk.mp4"
    encode_video(path, face_clip(4) + [blank, blank] + face_clip(2))
    return path


HEAD = 128  # the astronaut's head in two_faces, px


def two_faces(t: int) -> tuple[np.ndarray, list[int]]:
    """A 144 x 320 canvas with two copies of the astronaut's head (128 px), moving apart by
    3 px per frame, and the heads' left edges (left copy first)."""
    head = face_clip(1, HEAD)[0]
    lefts = [24 - 3 * t, 168 + 3 * t]
    canvas = np.full((144, 320, 3), 30, np.uint8)
    for left in lefts:
        canvas[8 : 8 + HEAD, left : left + HEAD] = head
    return canvas, lefts


@pytest.fixture(scope="module")
def pair_video(tmp_path_factory):
    """8 frames: 3 with two faces, 2 blank, 3 with two faces (25 fps)."""
    blank = np.zeros((144, 320, 3), np.uint8)
    frames = [two_faces(t)[0] for t in range(8)]
    path = tmp_path_factory.mktemp("pair") / "pair.mp4"
    encode_video(path, frames[:3] + [blank, blank] + frames[5:])
    return path


def run_infer(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    return command.run(parser.parse_args([*argv, "--no-progress"]))


def test_video_rows_thresholds_and_embeddings(checkpoint, video, tmp_path, capsys):
    out, features = tmp_path / "au.csv", tmp_path / "emb.npy"
    argv = ["--ckpt", str(checkpoint), "--out", str(out), "--embeddings", str(features)]
    assert run_infer(str(video), *argv, "--batch-size", "3") == 0
    assert "8 frames, faces in 6 (75.0%)" in capsys.readouterr().out
    table = pd.read_csv(out)
    expected = ["frame", "face_id", "timestamp", "confidence", "success"]
    expected += ["face_x", "face_y", "face_w", "face_h"]
    expected += ["pose_Tx", "pose_Ty", "pose_Tz", "pose_Rx", "pose_Ry", "pose_Rz"]
    expected += [f"x_{i}" for i in range(68)] + [f"y_{i}" for i in range(68)]
    expected += ["AU01_c", "AU02_c", "AU12_c", "AU01_p", "AU02_p", "AU12_p"]
    assert list(table.columns[: len(expected)]) == expected
    blendshapes = list(table.columns[len(expected) :])
    assert len(blendshapes) == 52 and blendshapes[0] == "bs_neutral"
    assert {"bs_jawOpen", "bs_mouthSmileLeft", "bs_eyeBlinkRight"} <= set(blendshapes)
    assert not any(c.endswith("_r") for c in table.columns)  # no intensity predicted
    assert table["frame"].tolist() == list(range(1, 9))
    np.testing.assert_allclose(table["timestamp"], np.arange(8) * 0.04, atol=1e-3)
    assert table["success"].tolist() == [1, 1, 1, 1, 0, 0, 1, 1]
    faces, blank = table[table["success"] == 1], table[table["success"] == 0]
    assert (faces["AU01_c"] == 1).all() and (faces["AU02_c"] == 0).all()
    assert (faces["AU12_c"] == (faces["AU12_p"] >= 0.5)).all()
    assert blank[["AU01_c", "AU01_p", "AU12_p", "x_0", "pose_Rx", "bs_jawOpen"]].isna().all().all()
    assert (blank["confidence"] == 0).all() and (faces["confidence"] > 0.5).all()
    assert faces[blendshapes].ge(0).all().all() and faces[blendshapes].le(1).all().all()
    # the probabilities are the detector's on the same aligned crops
    predictor = AUPredictor(checkpoint)
    sequence = FacePreprocessor(SIZE).sequence(iter_frames(video))
    probs, pooled = predictor(sequence.frames[sequence.success == 1])
    np.testing.assert_allclose(faces[["AU01_p", "AU02_p", "AU12_p"]], probs, atol=2e-4)
    embeddings = np.load(features)
    assert embeddings.shape == (8, predictor.num_features)
    assert np.isnan(embeddings[[4, 5]]).all()
    np.testing.assert_allclose(embeddings[sequence.success == 1], pooled, atol=1e-4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["au.csv", "emb.npy"]  # no temp files


def test_two_faces_per_frame_keep_their_ids(checkpoint, pair_video, tmp_path, capsys):
    """--max-faces 2: two rows per frame with a face, one row (face_id 0, success 0) per blank
    frame; each face_id stays on its own head over time, across the blank frames."""
    out, features = tmp_path / "pair.csv", tmp_path / "pair.npy"
    argv = ["--ckpt", str(checkpoint), "--out", str(out), "--embeddings", str(features)]
    assert run_infer(str(pair_video), *argv, "--max-faces", "2", "--batch-size", "3") == 0
    assert "8 frames, faces in 6 (75.0%), 12 faces," in capsys.readouterr().out
    table = pd.read_csv(out)
    assert table["frame"].tolist() == [1, 1, 2, 2, 3, 3, 4, 5, 6, 6, 7, 7, 8, 8]
    assert table["success"].tolist() == [1] * 6 + [0, 0] + [1] * 6
    assert table["face_id"].tolist() == [0, 1] * 3 + [0, 0] + [0, 1] * 3
    faces = table[table["success"] == 1]
    centre = faces["face_x"] + faces["face_w"] / 2
    lefts = np.array([two_faces(t)[1] for t in faces["frame"] - 1])  # (rows, 2)
    side = (centre > 160).astype(int)  # 0: the left head, 1: the right one
    assert side.groupby(faces["face_id"]).nunique().eq(1).all()  # an id never changes head
    assert set(side.groupby(faces["face_id"]).first()) == {0, 1}
    head_left = lefts[np.arange(len(faces)), side]
    assert ((centre > head_left + 0.25 * HEAD) & (centre < head_left + 0.75 * HEAD)).all()
    for _, face in faces.groupby("face_id"):  # the boxes move with their heads, 3 px/frame
        moved = np.diff(face["face_x"]) / np.diff(face["frame"])
        direction = -1 if face["face_x"].iloc[0] < 160 else 1
        np.testing.assert_allclose(moved, 3 * direction, atol=1)
    embeddings = np.load(features)
    assert embeddings.shape[0] == len(table)
    assert np.isnan(embeddings[table["success"] == 0]).all()
    assert not np.isnan(embeddings[table["success"] == 1]).any()
    # each row's probabilities are the detector's on the crop aligned to that row's landmarks
    predictor = AUPredictor(checkpoint)
    images = [frame.image for frame in iter_frames(pair_video)]
    points = np.stack([faces[[f"{a}_{i}" for i in range(68)]] for a in "xy"], -1)
    aligner = predictor.aligner()
    crops = [aligner(images[f - 1], p).image for f, p in zip(faces["frame"], points, strict=True)]
    probs, _ = predictor(np.stack(crops))
    np.testing.assert_allclose(faces[["AU01_p", "AU02_p", "AU12_p"]], probs, atol=2e-3)
    single = tmp_path / "single.csv"
    assert run_infer(str(pair_video), "--ckpt", str(checkpoint), "--out", str(single)) == 0
    single_table = pd.read_csv(single)
    assert single_table["frame"].tolist() == list(range(1, 9))
    assert (single_table["face_id"] == 0).all()


def test_landmarks_box_and_pose_in_source_pixels(checkpoint, video, tmp_path):
    """The CSV's landmarks are the landmarker's on the source frames, inside the known face box
    of the clip, the box bounds them and the near-frontal head faces the camera."""
    out = tmp_path / "au.csv"
    assert run_infer(str(video), "--ckpt", str(checkpoint), "--out", str(out)) == 0
    faces = pd.read_csv(out).query("success == 1")
    xs = faces[[f"x_{i}" for i in range(68)]].to_numpy()
    ys = faces[[f"y_{i}" for i in range(68)]].to_numpy()
    with FaceLandmarker("video") as landmarker:
        every = [landmarker(f.image, round(f.timestamp_ms)) for f in iter_frames(video)]
    reference = [every[i] for i in faces.index]
    np.testing.assert_allclose(xs, [r[:, 0] for r in reference], atol=0.01)
    np.testing.assert_allclose(ys, [r[:, 1] for r in reference], atol=0.01)
    # face_clip: the photo's head [10:330, 70:390], shifted 2 px/frame, scaled 128/320
    shift = 2.0 * np.array([0, 1, 2, 3, 0, 1])[:, None]  # the video's faces: face_clip 4 + 2
    x0, y0, x1, y1 = FACE_BOX
    scale = 128 / 320
    left, right = (x0 - 70 + shift) * scale, (x1 - 70 + shift) * scale
    top, bottom = (y0 - 10) * scale, (y1 - 10) * scale
    inside = (xs > left - 3) & (xs < right + 3) & (ys > top - 3) & (ys < bottom + 3)
    assert inside.mean() > 0.95, inside.mean()
    np.testing.assert_allclose(faces["face_x"], xs.min(1), atol=1e-3)
    np.testing.assert_allclose(faces["face_x"] + faces["face_w"], xs.max(1), atol=2e-3)
    np.testing.assert_allclose(faces["face_y"] + faces["face_h"], ys.max(1), atol=2e-3)
    assert (faces["pose_Tz"] > 0).all()  # in front of the camera, millimetres
    assert faces[["pose_Rx", "pose_Ry", "pose_Rz"]].abs().lt(0.6).all().all()


def test_head_pose_axes_units_and_detector_confidence():
    angle = 0.3
    c, s = np.cos(angle), np.sin(angle)
    pitch = np.array([[1, 0, 0, 1.0], [0, c, -s, 2.0], [0, s, c, -50.0], [0, 0, 0, 1]])
    pose = head_pose(pitch)  # OpenGL camera (y up, z towards the viewer), centimetres
    np.testing.assert_allclose(pose[:3], [10.0, -20.0, 500.0], atol=1e-4)
    np.testing.assert_allclose(pose[3:], [angle, 0.0, 0.0], atol=1e-6)
    yaw = np.array([[c, 0, s, 0], [0, 1, 0, 0], [-s, 0, c, -50.0], [0, 0, 0, 1]])
    np.testing.assert_allclose(head_pose(yaw)[3:], [0.0, -angle, 0.0], atol=1e-6)

    def detection(x, y, side, score):
        box = SimpleNamespace(origin_x=x, origin_y=y, width=side, height=side)
        return SimpleNamespace(bounding_box=box, categories=[SimpleNamespace(score=score)])

    found = [detection(10, 10, 20, 0.9), detection(12, 12, 10, 0.95), detection(80, 80, 9, 0.99)]
    assert detection_score(found, (5.0, 5.0, 30.0, 30.0)) == pytest.approx(0.95)
    assert detection_score(found, (50.0, 5.0, 20.0, 20.0)) == 0.0


def test_confidence_falls_when_the_face_is_covered(checkpoint, tmp_path):
    """Detector score, not alignment fit: covering the mouth lowers it."""
    photo = skimage.data.astronaut()
    covered = photo.copy()
    covered[130:200, 170:290] = 120  # a grey patch over the mouth and chin
    scores = []
    for name, image in (("open", photo), ("covered", covered)):
        path = tmp_path / f"{name}.png"
        cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        out = tmp_path / f"{name}.csv"
        run_infer(str(path), "--ckpt", str(checkpoint), "--out", str(out), "--no-blendshapes")
        table = pd.read_csv(out)
        assert not any(c.startswith("bs_") for c in table.columns)
        scores.append(table["confidence"].item())
    assert scores[0] > 0.8 and scores[1] < scores[0] - 0.1, scores


def test_image_folder_and_single_image(checkpoint, tmp_path, capsys):
    folder = tmp_path / "frames"
    folder.mkdir()
    for number, image in zip((3, 1, 2), face_clip(3), strict=True):
        cv2.imwrite(str(folder / f"{number}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    (folder / "4.png").write_bytes(b"not a png")  # one unreadable frame: success 0, no abort
    cv2.imwrite(str(folder / "5.png"), cv2.cvtColor(face_clip(1)[0], cv2.COLOR_RGB2BGR))
    out = tmp_path / "folder.csv"
    assert run_infer(str(folder), "--ckpt", str(checkpoint), "--out", str(out)) == 0
    assert pd.read_csv(out)["success"].tolist() == [1, 1, 1, 0, 1]
    assert "4.png: unreadable image: success = 0" in capsys.readouterr().err
    photo = tmp_path / "astronaut.png"
    cv2.imwrite(str(photo), cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR))
    assert run_infer(str(photo), "--ckpt", str(checkpoint), "--out", str(tmp_path / "a.csv")) == 0
    assert pd.read_csv(tmp_path / "a.csv")["success"].tolist() == [1]


def test_bad_inputs(checkpoint, tmp_path, capsys):
    ckpt = ["--ckpt", str(checkpoint)]
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((96, 96, 3), 128, np.uint8))
    out = tmp_path / "blank.csv"
    assert run_infer(str(blank), *ckpt, "--out", str(out)) == 1  # nothing could be detected
    table = pd.read_csv(out)
    assert table["success"].tolist() == [0] and table["AU01_c"].isna().all()
    with pytest.raises(ValueError, match="missing.mp4: no such file"):
        run_infer(str(tmp_path / "missing.mp4"), *ckpt, "--out", str(out))
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 64)
    with pytest.raises(DatasetError, match="broken.mp4: cannot open video"):
        run_infer(str(broken), *ckpt, "--out", str(tmp_path / "broken.csv"))
    assert not list(tmp_path.glob("*broken.csv*"))
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="garbage.ckpt"):
        run_infer(str(blank), "--ckpt", str(garbage), "--out", str(out))


def test_outputs_never_replace_inputs_or_other_files(checkpoint, video, tmp_path):
    ckpt = ["--ckpt", str(checkpoint)]
    before = video.read_bytes(), checkpoint.read_bytes()
    with pytest.raises(ValueError, match=r"--out .*talk.mp4: is the input; refusing"):
        run_infer(str(video), *ckpt, "--out", str(video))
    with pytest.raises(ValueError, match=r"--out .*detector.ckpt: is the checkpoint; refusing"):
        run_infer(str(video), *ckpt, "--out", str(checkpoint))
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    with pytest.raises(ValueError, match=r"notes.txt: exists and is not a .csv file"):
        run_infer(str(video), *ckpt, "--out", str(notes))
    with pytest.raises(ValueError, match=r"--embeddings .*notes.txt: exists and is not a .npy"):
        run_infer(str(video), *ckpt, "--out", str(tmp_path / "a.csv"), "--embeddings", str(notes))
    with pytest.raises(ValueError, match=r"--embeddings .*talk.mp4: is the input"):
        run_infer(str(video), *ckpt, "--out", str(tmp_path / "a.csv"), "--embeddings", str(video))
    with pytest.raises(ValueError, match=r"--out .*: is a folder"):
        run_infer(str(video), *ckpt, "--out", str(tmp_path))
    assert (video.read_bytes(), checkpoint.read_bytes()) == before
    assert notes.read_text() == "mine" and not (tmp_path / "a.csv").exists()
    old = tmp_path / "old.csv"
    old.write_text("frame\n1\n")  # an earlier result is replaced
    assert run_infer(str(video), *ckpt, "--out", str(old), "--no-blendshapes") == 0
    assert len(pd.read_csv(old)) == 8


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--fps", "0"], "--fps 0: the frame rate must be > 0"),
        (["--size", "0"], "--size 0: the crop side must be >= 8 px"),
        (["--margin", "1.5"], r"--margin 1.5: must be in \[0, 1\)"),
        (["--batch-size", "0"], "--batch-size 0: must be >= 1"),
        (["--max-faces", "0"], "--max-faces 0: must be >= 1"),
        (["--device", "gpu0"], "--device gpu0: not a torch device"),
    ],
)
def test_bad_settings_are_one_line_errors(checkpoint, video, tmp_path, option, message):
    with pytest.raises(ValueError, match=message):
        run_infer(str(video), "--ckpt", str(checkpoint), "--out", str(tmp_path / "a.csv"), *option)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is present")
def test_cuda_without_a_gpu_says_so_on_one_line(checkpoint, video, tmp_path, capsys):
    argv = ["infer", str(video), "--ckpt", str(checkpoint), "--out", str(tmp_path / "a.csv")]
    with pytest.raises(SystemExit) as exited:
        cli.main([*argv, "--device", "cuda"])
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert (
        error
        == "aurep infer: error: --device cuda: no CUDA GPU is available here; use --device cpu\n"
    )


def test_checkpoint_errors_name_the_file_and_the_fix(checkpoint, video, tmp_path):
    stored = torch.load(checkpoint, weights_only=False)
    pretraining = {
        "state_dict": {f"model.{k}": v for k, v in stored["state_dict"].items()},
        "hyper_parameters": {"_class_path": "aurep.tasks.pretrain.PretrainTask"},
    }
    path = tmp_path / "last.ckpt"
    torch.save(pretraining, path)
    out = ["--out", str(tmp_path / "a.csv")]
    with pytest.raises(
        ValueError,
        match=r"last.ckpt: a pretraining checkpoint, not an AU detector: "
        r"train a detector on it with `aurep cv",
    ):
        run_infer(str(video), "--ckpt", str(path), *out)
    text = tmp_path / "model.ckpt"
    text.write_text("epoch 3\n")
    with pytest.raises(ValueError, match=r"model.ckpt: not a torch checkpoint"):
        run_infer(str(video), "--ckpt", str(text), *out)


def trained_on(checkpoint, root, meta: str, image_size: int | None = SIZE):
    """A copy of ``checkpoint`` (beside ``root``) whose training data is ``root``, a folder
    holding only a meta.json with the text ``meta``."""
    root.mkdir(exist_ok=True)
    (root / "meta.json").write_text(meta)
    stored = torch.load(checkpoint, weights_only=False)
    stored["datamodule_hyper_parameters"] = {"image_size": image_size, "root": str(root)}
    path = root.with_name(f"{root.name}.ckpt")
    torch.save(stored, path)
    return path


def test_a_detector_trained_on_synthetic_faces_is_flagged(checkpoint, tmp_path, capsys):
    corpus = tmp_path / "synth"
    synthetic = trained_on(checkpoint, corpus, '{"source": "synth"}')
    photo = tmp_path / "astronaut.png"
    cv2.imwrite(str(photo), cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR))
    for model, warned in ((checkpoint, False), (synthetic, True)):
        run_infer(str(photo), "--ckpt", str(model), "--out", str(tmp_path / "a.csv"))
        lines = [line for line in capsys.readouterr().err.splitlines() if "synthetic" in line]
        assert lines == (
            [
                f"warning: {synthetic} was trained on synthetic faces only ({corpus}); its AU "
                "outputs are not meaningful on real faces"
            ]
            if warned
            else []
        )


def test_background_iteration_propagates_errors_and_stops_early():
    def failing():
        yield 1
        raise DatasetError("clip.mp4: decoding failed at frame 1")

    iterator = in_background(failing(), maxsize=1)
    assert next(iterator) == 1
    with pytest.raises(DatasetError, match="frame 1"):
        next(iterator)
    produced = []

    def endless():
        for i in range(10_000):
            produced.append(i)
            yield i

    iterator = in_background(endless(), maxsize=2)
    assert [next(iterator) for _ in range(3)] == [0, 1, 2]
    iterator.close()  # the producer stops instead of running to the end
    assert len(produced) < 100
    assert [len(b) for b in batches(range(7), 3)] == [3, 3, 1]


def test_alignment_defaults_come_from_the_training_data(checkpoint, tmp_path):
    assert AUPredictor(checkpoint).alignment == {}  # no dataset recorded: built-in defaults
    root = tmp_path / "prepared"
    other = trained_on(checkpoint, root, '{"preprocess": {"margin": 0.35, "points": "all"}}')
    predictor = AUPredictor(other)
    assert predictor.alignment == {"margin": 0.35, "points": "all"}
    aligner = predictor.aligner()
    assert aligner.size == SIZE and aligner.margin == 0.35
    # crops are aligned at the training data's crop side, then resized to the model's input
    (root / "meta.json").write_text('{"preprocess": {"size": 64, "margin": 0.35}}')
    predictor = AUPredictor(other)
    assert predictor.aligner().size == 64 and predictor.image_size == SIZE
    assert predictor.aligner(size=80).size == 80
    crops = np.zeros((2, 64, 64, 3), np.uint8)
    assert predictor.inputs(crops).shape == (2, 3, SIZE, SIZE)
    other = trained_on(checkpoint, root, '{"preprocess": {"size": 64}}', image_size=None)
    assert AUPredictor(other).image_size == 64  # trained at the dataset's own size


def test_infer_keeps_pythons_view_of_sigprof_true(checkpoint, tmp_path):
    """MediaPipe (started in infer's producer thread) ignores SIGPROF behind Python's back: a
    Lightning fit later in the same process restores Python's cached handler, and if that
    were still SIG_DFL the next profiling tick would kill the process. A fresh interpreter, so
    that no earlier test has set the handler already."""
    photo = tmp_path / "astronaut.png"
    cv2.imwrite(str(photo), cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR))
    script = f"""
import signal, sys
from test_infer import run_infer
signal.signal(signal.SIGPROF, signal.SIG_DFL)  # an ignored signal is inherited from pytest
assert run_infer({str(photo)!r}, "--ckpt", {str(checkpoint)!r}, "--out", {str(tmp_path / "a.csv")!r}) == 0
print(signal.getsignal(signal.SIGPROF))
"""
    tests = Path(__file__).parent
    done = subprocess.run([sys.executable, "-c", script], cwd=tests, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == str(signal.SIG_IGN)


def test_a_fitted_detector_records_its_training_data(tmp_path, monkeypatch):
    """Fit one step on a dataset given by a relative root, then infer from elsewhere: the
    checkpoint's own record still says synthetic, with the dataset's crop settings."""
    import json

    from aurep.data.datamodules import AUDataModule

    root = write_prepared(tmp_path / "corpus", size=32, au_codes=AUS)
    meta = json.loads((root / "meta.json").read_text())
    meta.update(source="synth", preprocess={"size": 40, "margin": 0.3, "points": "all"})
    (root / "meta.json").write_text(json.dumps(meta))
    monkeypatch.chdir(tmp_path)
    data = AUDataModule("corpus", batch_size=4, num_workers=0, val_fraction=0.0)
    model = AUDetector(backbone="test_resnet", au_codes=AUS)
    trainer = pl.Trainer(max_steps=1, limit_val_batches=0, accelerator="cpu", logger=False,
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False)  # fmt: skip
    trainer.fit(model, datamodule=data)
    path = tmp_path / "detector.ckpt"
    trainer.save_checkpoint(path)
    assert torch.load(path, weights_only=False)[TRAINING_DATA_KEY] == {
        "source": "synth",
        "preprocess": {"size": 40, "margin": 0.3, "points": "all"},
        "image_size": 32,
    }
    monkeypatch.chdir(tmp_path / "corpus")  # "corpus" is not found from here
    predictor = AUPredictor(path)
    assert predictor.trained_on_synthetic and predictor.training_root == "corpus"
    aligner = predictor.aligner()
    assert (aligner.size, aligner.margin, predictor.image_size) == (40, 0.3, 32)


def test_no_record_of_the_training_data_is_a_warning(checkpoint, tmp_path, capsys):
    photo = tmp_path / "astronaut.png"
    cv2.imwrite(str(photo), cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR))
    gone = trained_on(checkpoint, tmp_path / "gone", '{"source": "synth"}')
    (tmp_path / "gone" / "meta.json").unlink()
    for model, root in ((checkpoint, "not saved"), (gone, tmp_path / "gone")):
        run_infer(str(photo), "--ckpt", str(model), "--out", str(tmp_path / "a.csv"))
        lines = [line for line in capsys.readouterr().err.splitlines() if "no record" in line]
        assert lines == [
            f"warning: {model}: no record of its training data (dataset {root} not found): the "
            "crop is aurep's default; set --size/--margin/--align-points to match its training "
            "data"
        ]


@pytest.mark.parametrize("fails", [False, True])
def test_background_producer_ends_when_stopped_with_a_full_queue(fails):
    import threading
    import time

    def two(fails: bool):
        yield from (1, 2)  # 2 fills the queue; then the end (or the error) finds no room
        if fails:
            raise DatasetError("clip.mp4: decoding failed at frame 3")

    iterator = in_background(two(fails), maxsize=1)
    assert next(iterator) == 1
    time.sleep(0.3)  # the producer is now waiting to put the end marker or the error
    start = time.monotonic()
    iterator.close()
    assert time.monotonic() - start < 2.0  # not the 5 s join timeout
    assert not [t for t in threading.enumerate() if t.name == "aurep-faces" and t.is_alive()]


def test_a_failed_embeddings_write_keeps_both_old_outputs(checkpoint, video, tmp_path, monkeypatch):
    out, features = tmp_path / "au.csv", tmp_path / "emb.npy"
    out.write_text("old csv\n")
    np.save(features, np.zeros((1, 1), np.float32))
    old = (out.read_bytes(), features.read_bytes())
    real = np.lib.format.open_memmap

    def disk_full(path, *args, **kwargs):
        real(path, *args, **kwargs)  # the temporary .npy exists, half written
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np.lib.format, "open_memmap", disk_full)
    with pytest.raises(OSError, match="No space left"):
        run_infer(str(video), "--ckpt", str(checkpoint), "--out", str(out),
                  "--embeddings", str(features))  # fmt: skip
    assert (out.read_bytes(), features.read_bytes()) == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["au.csv", "emb.npy"]  # no temp files


def test_an_interrupted_rename_leaves_no_csv_beside_other_embeddings(
    checkpoint, video, tmp_path, monkeypatch
):
    """Killed after the new embeddings are in place but before the new CSV: the old CSV must
    not remain beside them (its rows would not match); no CSV says the run did not finish."""
    out, features = tmp_path / "au.csv", tmp_path / "emb.npy"
    out.write_text("old csv\n")
    np.save(features, np.zeros((1, 1), np.float32))
    real = os.replace

    def killed_before_the_csv(source, target):
        if Path(target) == out:
            raise KeyboardInterrupt
        real(source, target)

    monkeypatch.setattr(os, "replace", killed_before_the_csv)
    with pytest.raises(KeyboardInterrupt):
        run_infer(str(video), "--ckpt", str(checkpoint), "--out", str(out),
                  "--embeddings", str(features))  # fmt: skip
    assert not out.exists()
    assert np.load(features).shape[0] == 8  # the new embeddings, one row per frame
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emb.npy"]  # no temp files
