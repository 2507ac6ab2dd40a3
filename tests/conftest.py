"""Shared fixtures: tiny prepared datasets written with PreparedDatasetWriter.

Frames are a smooth random texture per subject that slides ``motion`` px right per frame (so
optical flow is well defined); landmarks are a fixed iBUG-68 face layout that slides with it.
Pixel (0, 0) encodes the clip's origin: channel 0 = video number, channel 1 = frame index.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from aurep.data.batch import ClipBatch, ClipSpec
from aurep.data.flow import video_flow_targets
from aurep.data.prepared import PreparedDatasetWriter
from aurep.heads import ClipFeatures

TEMPLATE_AUS = (1, 2, 4, 12)


def template_landmarks() -> np.ndarray:
    """(68, 2) iBUG face layout in unit coordinates (x right, y down), image-left points first."""
    points = np.zeros((68, 2))
    angle = np.pi - np.arange(17) * np.pi / 16  # jaw from image left, round the chin
    points[:17] = np.stack([0.5 + 0.4 * np.cos(angle), 0.4 + 0.55 * np.sin(angle)], 1)
    brow = np.linspace(0.2, 0.45, 5)
    points[17:22] = np.stack([brow, 0.3 - 0.03 * np.sin(np.linspace(0, np.pi, 5))], 1)
    points[22:27] = np.stack([1 - brow[::-1], points[17:22, 1][::-1]], 1)
    points[27:31] = np.stack([np.full(4, 0.5), np.linspace(0.38, 0.55, 4)], 1)
    points[31:36] = np.stack([np.linspace(0.42, 0.58, 5), np.full(5, 0.6)], 1)
    eye = [(0.25, 0.4), (0.3, 0.38), (0.36, 0.38), (0.41, 0.4), (0.36, 0.42), (0.3, 0.42)]
    points[36:42] = eye
    points[42:48] = [(1 - x, y) for x, y in (eye[3], eye[2], eye[1], eye[0], eye[5], eye[4])]
    points[48:60] = [
        (0.38, 0.75), (0.42, 0.72), (0.46, 0.71), (0.5, 0.72), (0.54, 0.71), (0.58, 0.72),
        (0.62, 0.75), (0.58, 0.78), (0.54, 0.8), (0.5, 0.8), (0.46, 0.8), (0.42, 0.78),
    ]  # fmt: skip
    points[60:68] = [
        (0.4, 0.75), (0.46, 0.74), (0.5, 0.74), (0.54, 0.74), (0.6, 0.75), (0.54, 0.76),
        (0.5, 0.76), (0.46, 0.76),
    ]  # fmt: skip
    return points


def textured_video(rng: np.random.Generator, length: int, size: int, motion: float) -> np.ndarray:
    """uint8 (length, size, size, 3): a blurred random texture translated ``motion`` px/frame."""
    base = rng.integers(0, 256, (size * 2, size * 2, 3)).astype(np.uint8)
    base = cv2.GaussianBlur(base, (0, 0), 2.0)
    base = cv2.normalize(base, None, 0, 255, cv2.NORM_MINMAX)
    frames = []
    for t in range(length):
        shift = np.float32([[1, 0, motion * t - size // 2], [0, 1, -size // 2]])
        frames.append(cv2.warpAffine(base, shift, (size, size), flags=cv2.INTER_LINEAR))
    return np.stack(frames)


def write_prepared(
    root: Path,
    subjects: dict[str, int] | None = None,
    videos_per_subject: int = 2,
    length: int = 12,
    size: int = 48,
    au_codes=TEMPLATE_AUS,
    flow: bool = False,
    motion: float = 1.0,
    success: Callable[[str, int], np.ndarray] | None = None,
    seed: int = 0,
) -> Path:
    """Write a tiny prepared dataset; subjects: name -> fold. Returns ``root``.

    success(video, length) gives the per-frame success flags (default all 1). Labels are random
    1/0/-1 (about 10% unknown).
    """
    subjects = subjects or {f"S{i}": 1 + i % 3 for i in range(6)}
    rng = np.random.default_rng(seed)
    writer = PreparedDatasetWriter(root)
    number = 0
    for subject, fold in subjects.items():
        for v in range(videos_per_subject):
            video = f"{subject}_v{v}"
            frames = textured_video(rng, length, size, motion)
            frames[:, 0, 0, 0] = number
            frames[:, 0, 0, 1] = np.arange(length)
            landmarks = template_landmarks() * (size - 1) + rng.normal(0, 0.5, (68, 2))
            landmarks = (
                landmarks[None]
                + np.stack([motion * np.arange(length), np.zeros(length)], 1)[:, None]
            )
            labels = rng.choice([1, 0, 0, -1], p=[0.3, 0.3, 0.3, 0.1], size=(length, len(au_codes)))
            arrays = {"flow": video_flow_targets(frames)} if flow else None
            writer.write_video(
                video,
                subject,
                frames,
                landmarks,
                au_codes,
                labels.astype(np.int8),
                fold=fold,
                success=None if success is None else success(video, length),
                arrays=arrays,
            )
            number += 1
    meta = {"au_codes": list(au_codes), "image_size": size}
    if flow:
        meta["flow"] = {"delta": 1, "grid": 28, "method": "dis"}
    writer.finalize(meta)
    return root


@pytest.fixture
def prepared(tmp_path_factory) -> Callable[..., Path]:
    """Factory: ``prepared(**write_prepared kwargs)`` -> a fresh dataset directory."""

    def make(**kwargs) -> Path:
        return write_prepared(tmp_path_factory.mktemp("prepared"), **kwargs)

    return make


@pytest.fixture(scope="session")
def flow_dataset(tmp_path_factory) -> Path:
    """6 subjects (folds 1-3), 2 videos of 12 frames each, 48 px, with DIS flow targets."""
    return write_prepared(tmp_path_factory.mktemp("flow_dataset"), flow=True)


TINY_FIT = [
    "--model.init_args.backbone=test_resnet",
    "--data.init_args.image_size=32",
    "--data.init_args.batch_size=4",
    "--data.init_args.num_workers=0",
    "--data.init_args.val_clips=4",
    "--data.init_args.stride=1",  # the tiny corpus's 8-frame videos; fragments may set 8
    "--trainer.accelerator=cpu",
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
    "--trainer.log_every_n_steps=1",
]
"""LightningCLI overrides that shrink any pretraining config to a few tiny steps on CPU."""


def generate_tiny_corpus(out: Path, clips_per_identity: int = 2) -> Path:
    """6 identities (2 per fold) x ``clips_per_identity`` clips x 8 frames, 64 px, with flow."""
    from aurep.synth import generate_corpus

    return generate_corpus(
        out,
        identities=6,
        clips_per_identity=clips_per_identity,
        frames=8,
        size=64,
        seed=0,
        workers=1,
        progress=False,
    )


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    """A tiny synthetic corpus (:func:`generate_tiny_corpus`, 2 clips per identity)."""
    return generate_tiny_corpus(tmp_path_factory.mktemp("tiny_corpus") / "synth")


@pytest.fixture(scope="session")
def three_clip_corpus(tmp_path_factory) -> Path:
    """The tiny corpus with 3 clips per identity: the benchmark's identity probe holds out two
    videos of every person."""
    return generate_tiny_corpus(tmp_path_factory.mktemp("three_clip_corpus") / "synth", 3)


# ---------------------------------------------------------------- random head batches

B, V, T, SIZE, R, GRID = 4, 2, 3, 64, 6, 8


def smooth_flow(g: torch.Generator) -> torch.Tensor:
    """(B, V, T, 2, GRID, GRID) smooth random motion fields, pixels."""
    coarse = torch.randn(B * V * T, 2, 2, 2, generator=g)
    fine = F.interpolate(coarse, size=GRID, mode="bilinear", align_corners=True)
    return fine.view(B, V, T, 2, GRID, GRID)


def make_batch(seed: int = 0, flow: bool = True) -> ClipBatch:
    """Random clips with R square RoIs of 12-20 px per frame."""
    g = torch.Generator().manual_seed(seed)
    corner = torch.rand(B, V, T, R, 2, generator=g) * (SIZE - 24)
    side = 12 + torch.rand(B, V, T, R, 1, generator=g) * 8
    return ClipBatch(
        frames=torch.randn(B, V, T, 3, SIZE, SIZE, generator=g),
        landmarks=torch.rand(B, V, T, 68, 2, generator=g) * SIZE,
        rois=torch.cat([corner, corner + side], dim=-1),
        identity=torch.arange(B),
        partner=torch.arange(B).roll(1),
        flow=smooth_flow(g) if flow else None,
    )


SPEC = ClipSpec(
    clip_length=T, image_size=SIZE, num_rois=R, max_views=V, has_flow=True, num_identities=B
)
"""What :func:`make_batch` clips give, as a DataModule would tell the heads."""


def features_of(backbone, batch: ClipBatch) -> ClipFeatures:
    """View 0's shared features, as the multitask model computes them."""
    return ClipFeatures.encode(backbone, batch.frames[:, 0])
