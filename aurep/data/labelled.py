"""Labelled single frames for AU detection: the Dataset and its typed batch."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np
import torch
from torch.utils.data import Dataset

from aurep.data.prepared import PreparedDataset
from aurep.data.transforms import GeometricAugment


@dataclass
class FrameBatch:
    """A batch of B labelled frames.

    images: (B, 3, H, W) float32 ImageNet-normalised (uint8 until the DataModule's
        ``on_after_batch_transfer``). labels: (B, A) float32 0/1 (unknown as 0).
    label_mask: (B, A) bool, True where the label is known. subject / video: B strings.
    frame: (B,) int64 row of the frame in its video.
    """

    images: torch.Tensor
    labels: torch.Tensor
    label_mask: torch.Tensor
    subject: list[str]
    video: list[str]
    frame: torch.Tensor

    @property
    def batch_size(self) -> int:
        return self.images.shape[0]

    def to(self, device: torch.device | str, non_blocking: bool = False) -> FrameBatch:
        """Move every tensor field to ``device``."""
        moved = {
            f.name: getattr(self, f.name).to(device, non_blocking=non_blocking)
            for f in fields(self)
            if isinstance(getattr(self, f.name), torch.Tensor)
        }
        return replace(self, **moved)


class LabelledFrameDataset(Dataset):
    """Frames at manifest positions ``rows``, each through one sampled :class:`GeometricAugment`.

    Random geometry draws from torch's per-worker generator (reproducible under
    ``seed_everything``). Items: ``image`` uint8 (3, H, W), ``labels`` int8 (A,) 1/0/-1,
    ``subject``, ``video``, ``frame``.
    """

    def __init__(self, dataset: PreparedDataset, rows: np.ndarray, geometry: GeometricAugment):
        self.dataset = dataset
        selected = dataset.manifest.iloc[np.asarray(rows)]
        self.subjects = selected["subject"].astype(str).tolist()
        self.videos = selected["video"].astype(str).tolist()
        self.frames = selected["frame"].to_numpy(np.int64)
        self.labels = selected[dataset.label_columns].to_numpy(np.int8)
        self.geometry = geometry

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> dict:
        video, frame = self.videos[index], int(self.frames[index])
        image = self.dataset.frames(video, frame, 1)
        rng = np.random.default_rng(int(torch.randint(2**62, ()).item()))
        view = self.geometry.sample(rng, image.shape[1])
        return {
            "image": view.frames(image)[0].transpose(2, 0, 1),
            "labels": self.labels[index],
            "subject": self.subjects[index],
            "video": video,
            "frame": frame,
        }


def collate_frames(items: list[dict]) -> FrameBatch:
    """Stack :class:`LabelledFrameDataset` items into a :class:`FrameBatch` (images uint8)."""
    labels = torch.from_numpy(np.stack([item["labels"] for item in items]))
    return FrameBatch(
        images=torch.from_numpy(np.stack([item["image"] for item in items])),
        labels=labels.clamp(min=0).float(),
        label_mask=labels != -1,
        subject=[item["subject"] for item in items],
        video=[item["video"] for item in items],
        frame=torch.tensor([item["frame"] for item in items], dtype=torch.int64),
    )
