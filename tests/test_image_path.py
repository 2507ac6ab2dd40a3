"""One image path: training with augmentation off, evaluation, embeddings and ``aurep infer`` turn
a stored frame into the same tensor; the shared resize is anti-aliased; augmentation acts at the
model's size, after that resize."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from aurep.data.datamodules import AUDataModule, ClipDataModule
from aurep.data.images import normalise, resize_frames
from aurep.data.prepared import PreparedDataset
from aurep.data.transforms import GeometricAugment
from aurep.embeddings import extract_embeddings
from aurep.infer.pipeline import AUPredictor
from aurep.models.backbone import BackboneOutput
from aurep.tasks.detector import AUDetector

STORED, SIZE = 48, 32  # stored frames are shrunk to the model's side
NO_AUGMENT = {"flip_prob": 0.0, "scale": 0.0, "rotation": 0.0, "translation": 0.0}
NO_COLOUR = {"colour_jitter": (0.0, 0.0, 0.0, 0.0), "jitter_prob": 0.0, "grayscale_prob": 0.0}


def by_hand(frames: np.ndarray) -> torch.Tensor:
    """uint8 (N, 48, 48, 3) -> (N, 3, 32, 32): area resize, ImageNet mean/std, written out."""
    small = np.stack([cv2.resize(f, (SIZE, SIZE), interpolation=cv2.INTER_AREA) for f in frames])
    images = torch.from_numpy(small).permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    return (images - mean) / std


def stored_frames(dataset: PreparedDataset, videos, frames) -> np.ndarray:
    return np.stack([dataset.frames(v, int(f), 1)[0] for v, f in zip(videos, frames, strict=True)])


class RecordingBackbone(nn.Module):
    """Keeps the images it is given; one zero feature per image."""

    def __init__(self):
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def forward(self, images: torch.Tensor) -> BackboneOutput:
        self.seen.append(images.clone())
        pooled = images.new_zeros(len(images), 1)
        return BackboneOutput(feature_maps=[pooled[:, :, None, None]], pooled=pooled)


@pytest.fixture
def root(prepared):
    return prepared(size=STORED, length=6, videos_per_subject=1)


def test_training_evaluation_embeddings_and_infer_see_the_same_pixels(root, tmp_path):
    dataset = PreparedDataset(root)
    module = AUDataModule(
        str(root), val_fraction=0.0, batch_size=5, num_workers=0, image_size=SIZE,
        **NO_AUGMENT, **NO_COLOUR,
    )  # fmt: skip
    paths = {}
    for name, loader in (("train", module.train_dataloader()), ("test", module.test_dataloader())):
        batch = module.on_after_batch_transfer(next(iter(loader)), 0)
        paths[name] = (batch.images, stored_frames(dataset, batch.video, batch.frame.numpy()))

    recorder = RecordingBackbone()
    emb = extract_embeddings(recorder, dataset, image_size=SIZE, frame_step=2, batch_size=4)
    paths["embeddings"] = (torch.cat(recorder.seen), stored_frames(dataset, emb.videos, emb.frames))

    detector = AUDetector(backbone="test_resnet", au_codes=list(dataset.au_codes))
    checkpoint = tmp_path / "detector.ckpt"
    torch.save(
        {
            "state_dict": detector.state_dict(),
            "hyper_parameters": dict(detector.hparams),
            "datamodule_hyper_parameters": {"image_size": SIZE},
        },
        checkpoint,
    )
    crops = paths["test"][1]  # aligned crops as stored in the prepared dataset
    paths["infer"] = (AUPredictor(checkpoint).inputs(crops), crops)

    for name, (images, frames) in paths.items():
        assert images.shape == (len(frames), 3, SIZE, SIZE) and images.dtype == torch.float32
        torch.testing.assert_close(images, by_hand(frames), atol=1e-6, rtol=0, msg=name)
    assert torch.equal(paths["infer"][0], paths["test"][0])  # bit for bit, not only close


def test_pretraining_clips_take_the_same_resize(root):
    module = ClipDataModule(
        str(root), clip_length=3, batch_size=2, num_workers=0, clips_per_epoch=4, num_views=1,
        val_fraction=0.0, image_size=SIZE, **NO_AUGMENT, **NO_COLOUR,
    )  # fmt: skip
    clips = module.train_dataloader().dataset
    item = clips[(0, 0)]
    video = clips.index.video_names[clips.index.video[0]]
    stored = PreparedDataset(root).frames(video, int(clips.index.start[0]), 3)
    np.testing.assert_array_equal(
        item["frames"][0].transpose(0, 2, 3, 1), resize_frames(stored, SIZE)
    )
    frames = torch.from_numpy(item["frames"])  # (V, T, 3, H, W)
    torch.testing.assert_close(
        module.device_augment(frames, True)[0], by_hand(stored), atol=1e-6, rtol=0
    )


def test_shrinking_averages_instead_of_aliasing():
    """A 1-px checkerboard shrunk 3x is mid-grey; point sampling would keep only black or white."""
    board = (np.indices((STORED, STORED)).sum(0) % 2 * 255).astype(np.uint8)
    frames = np.repeat(board[None, :, :, None], 3, axis=3)  # (1, 48, 48, 3)
    small = resize_frames(frames, STORED // 3)
    assert small.shape == (1, 16, 16, 3)
    assert small.min() >= 100 and small.max() <= 155
    assert resize_frames(frames, STORED) is frames
    assert resize_frames(frames[0], 64).shape == (64, 64, 3)  # enlarging, single frame
    with pytest.raises(ValueError, match="must be square to resize, got 48x40 px"):
        resize_frames(frames[:, :, :40], SIZE)


def test_augmentation_acts_after_the_resize():
    """A flipped view is the mirrored evaluation view, pixel for pixel; landmarks follow."""
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (2, STORED, STORED, 3), dtype=np.uint8)
    plain = GeometricAugment(SIZE).sample(rng, STORED)
    np.testing.assert_array_equal(plain.frames(frames), resize_frames(frames, SIZE))
    flipped = GeometricAugment(SIZE, flip_prob=1.0).sample(rng, STORED)
    np.testing.assert_array_equal(flipped.frames(frames), resize_frames(frames, SIZE)[:, :, ::-1])
    corner = np.zeros((68, 2))  # every landmark on the first pixel's centre
    np.testing.assert_allclose(plain.points(corner), (0.5 * SIZE / STORED - 0.5), atol=1e-6)
    np.testing.assert_allclose(flipped.points(corner)[:, 0], SIZE - 1 - (0.5 * SIZE / STORED - 0.5))
    assert normalise(torch.zeros(1, 3, 1, 1, dtype=torch.uint8)).flatten().tolist() == (
        pytest.approx([-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225])
    )
