"""``aurep infer``: CSV rows per frame, thresholds, frames without a face, embeddings, the
background pipeline and bad input (videos encoded by the tests, the astronaut photograph)."""

from __future__ import annotations

import argparse

import cv2
import numpy as np
import pandas as pd
import pytest
import pytorch_lightning as pl
import skimage.data
import torch
from test_preprocess import face_clip

from aurep.data.prepared import DatasetError
from aurep.infer import command
from aurep.infer.pipeline import AUPredictor, batches, in_background
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
    expected += ["AU01_c", "AU02_c", "AU12_c", "AU01_p", "AU02_p", "AU12_p"]
    assert list(table.columns) == expected
    assert table["frame"].tolist() == list(range(1, 9))
    np.testing.assert_allclose(table["timestamp"], np.arange(8) * 0.04, atol=1e-3)
    assert table["success"].tolist() == [1, 1, 1, 1, 0, 0, 1, 1]
    faces, blank = table[table["success"] == 1], table[table["success"] == 0]
    assert (faces["AU01_c"] == 1).all() and (faces["AU02_c"] == 0).all()
    assert (faces["AU12_c"] == (faces["AU12_p"] >= 0.5)).all()
    assert blank[["AU01_c", "AU01_p", "AU12_p"]].isna().all().all()
    assert (blank["confidence"] == 0).all() and (faces["confidence"] > 0.3).all()
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


def test_image_folder_and_single_image(checkpoint, tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for number, image in zip((3, 1, 2), face_clip(3), strict=True):
        cv2.imwrite(str(folder / f"{number}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    out = tmp_path / "folder.csv"
    assert run_infer(str(folder), "--ckpt", str(checkpoint), "--out", str(out)) == 0
    assert pd.read_csv(out)["success"].tolist() == [1, 1, 1]
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
    stored = torch.load(checkpoint, weights_only=False)
    assert AUPredictor(checkpoint).alignment == {}  # no dataset recorded: built-in defaults
    root = tmp_path / "prepared"
    root.mkdir()
    (root / "meta.json").write_text('{"preprocess": {"margin": 0.35, "points": "all"}}')
    stored["datamodule_hyper_parameters"] = {"image_size": SIZE, "root": str(root)}
    other = tmp_path / "detector.ckpt"
    torch.save(stored, other)
    predictor = AUPredictor(other)
    assert predictor.alignment == {"margin": 0.35, "points": "all"}
    preprocessor = predictor.preprocessor()
    assert preprocessor.size == SIZE and preprocessor.aligner.margin == 0.35
    # crops are aligned at the training data's crop side, then resized to the model's input
    (root / "meta.json").write_text('{"preprocess": {"size": 64, "margin": 0.35}}')
    predictor = AUPredictor(other)
    assert predictor.preprocessor().size == 64 and predictor.image_size == SIZE
    assert predictor.preprocessor(size=80).size == 80
    crops = np.zeros((2, 64, 64, 3), np.uint8)
    assert predictor.inputs(crops).shape == (2, 3, SIZE, SIZE)
    stored["datamodule_hyper_parameters"] = {"image_size": None, "root": str(root)}
    torch.save(stored, other)
    assert AUPredictor(other).image_size == 64  # trained at the dataset's own size
