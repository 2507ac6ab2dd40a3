"""Clips of T consecutive frames from prepared videos: the index of valid clips, the Dataset, collate.

A clip is frames ``start, start + stride, ..., start + (T - 1) * stride`` of one video; it is
valid when all of them have ``success == 1``. The Dataset returns numpy arrays (uint8 frames) for
each of V independently augmented views; :func:`collate_clips` builds a :class:`ClipBatch` whose
``frames`` are still uint8 (B, V, T, 3, H, W): the DataModule's ``on_after_batch_transfer``
turns them into normalised floats on the device.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from aurep.au import SYNTH_AUS
from aurep.data.batch import BatchNeeds, ClipBatch
from aurep.data.prepared import DatasetError, PreparedDataset
from aurep.data.rois import roi_boxes
from aurep.data.transforms import GeometricAugment


@dataclass(frozen=True)
class ClipIndex:
    """All valid clips of some videos. video: (N,) index into ``video_names``; start: (N,) first
    frame; identity: (N,) dense identity index of the clip's subject."""

    video_names: list[str]
    video: np.ndarray
    start: np.ndarray
    identity: np.ndarray

    def __len__(self) -> int:
        return len(self.start)


def valid_clip_starts(success: np.ndarray, clip_length: int, stride: int) -> np.ndarray:
    """success: (L,) 0/1 per frame -> sorted starts whose T strided frames all succeeded."""
    span = (clip_length - 1) * stride + 1
    count = len(success) - span + 1
    if count <= 0:
        return np.zeros(0, dtype=np.int64)
    ok = np.ones(count, dtype=bool)
    for k in range(clip_length):
        ok &= success[k * stride : k * stride + count].astype(bool)
    return np.flatnonzero(ok)


def index_clips(
    dataset: PreparedDataset,
    videos: Sequence[str],
    clip_length: int,
    stride: int,
    identities: dict[str, int],
) -> ClipIndex:
    """Index every valid clip of ``videos``; identities maps subject -> dense index.

    Raises DatasetError naming a video shorter than one clip, or if no clip is valid at all.
    """
    if clip_length < 1 or stride < 1:
        raise ValueError(f"clip length and stride must be >= 1, got {clip_length}, {stride}")
    span = (clip_length - 1) * stride + 1
    rows = dataset.manifest
    success = dict(tuple(rows.groupby("video", sort=False)["success"]))
    parts_video, parts_start = [], []
    for number, video in enumerate(videos):
        length = dataset.video_lengths[video]
        if length < span:
            raise DatasetError(
                f"{dataset.root}: video {video} has {length} frames, shorter than one clip "
                f"({clip_length} frames at stride {stride} span {span})"
            )
        starts = valid_clip_starts(success[video].to_numpy(), clip_length, stride)
        parts_video.append(np.full(len(starts), number))
        parts_start.append(starts)
    start = np.concatenate(parts_start) if parts_start else np.zeros(0, dtype=np.int64)
    if len(start) == 0:
        raise DatasetError(
            f"{dataset.root}: no valid clip of {clip_length} frames at stride {stride} "
            f"(all with success=1) in {len(videos)} videos"
        )
    video = np.concatenate(parts_video)
    subject_of = np.array([identities[dataset.video_subjects[v]] for v in videos])
    return ClipIndex(list(videos), video, start, subject_of[video])


def partner_indices(identity: torch.Tensor) -> torch.Tensor:
    """identity: (B,) -> (B,) index of the next clip (cyclically) with a different identity."""
    size = len(identity)
    partner = torch.empty(size, dtype=torch.int64)
    for b in range(size):
        for step in range(1, size):
            if identity[(b + step) % size] != identity[b]:
                partner[b] = (b + step) % size
                break
        else:
            raise ValueError("a clip batch needs at least two identities to pair clips")
    return partner


def flow_delta(dataset: PreparedDataset) -> int:
    """Frames between the two images of each stored flow target (``aurep prepare flow``)."""
    return int(dataset.meta.get("flow", {}).get("delta", 1))


def flow_from_previous_frame(dataset: PreparedDataset, stride: int) -> bool:
    """Whether :class:`ClipDataset` flow target t is the motion from clip frame t - 1 (t >= 1):
    frame-to-frame targets (summed over the stride) or targets whose delta is the stride."""
    return flow_delta(dataset) in (1, stride)


class ClipDataset(Dataset):
    """Clips in ``needs.views`` augmented views; items are keyed ``(clip_index, seed)``.

    Only what ``needs`` asks for is read and warped (None: frames of one view). Returns a dict of numpy arrays: ``frames``
    uint8 (V, T, 3, H, W); ``landmarks`` (V, T, 68, 2), ``video_landmarks`` and ``subject_landmarks`` (V, 68, 2) (see
    :class:`~aurep.data.batch.ClipBatch`) if ``needs.landmarks``; ``rois``
    (V, T, R, 4) (pixels of the view) if ``needs.rois``; ``flow`` (V, T, 2, g, g) float32 if
    ``needs.flow``, the motion into each clip frame (see :meth:`read_flow`); ``identity`` int; ``labels`` int8 (T, A) (1/0/-1) for the dataset's AUs.
    """

    def __init__(
        self,
        dataset: PreparedDataset,
        index: ClipIndex,
        clip_length: int,
        stride: int,
        geometry: GeometricAugment,
        needs: BatchNeeds | None = None,
        roi_aus: Sequence[int] = SYNTH_AUS,
        roi_size: float = 0.18,
        roi_unit: str = "face",
    ):
        self.dataset = dataset
        self.index = index
        self.clip_length = clip_length
        self.stride = stride
        self.geometry = geometry
        self.needs = needs or BatchNeeds()
        self.roi_aus = list(roi_aus)
        self.roi_size = roi_size
        self.roi_unit = roi_unit
        manifest = dataset.manifest
        self.labels = manifest[dataset.label_columns].to_numpy(np.int8)
        self.success = manifest["success"].to_numpy()
        self._video_means: dict[str, np.ndarray] = {}
        self._subject_means: dict[str, np.ndarray] = {}
        first = pd.Series(np.arange(len(manifest))).groupby(manifest["video"].to_numpy()).min()
        self.first_row = {str(video): int(row) for video, row in first.items()}

    def __len__(self) -> int:
        return len(self.index)

    def _read(self, name: str, video: str, start: int) -> np.ndarray:
        span = (self.clip_length - 1) * self.stride + 1
        return self.dataset.array(video, name, start, span)[:: self.stride]

    def face_landmarks(self, video: str) -> np.ndarray:
        """(F, 68, 2) landmarks of the frames of ``video`` with a face, pixels of the stored
        frames."""
        points = self.dataset.landmarks(video)
        first = self.first_row[video]
        return points[self.success[first : first + len(points)] == 1]

    def video_mean_landmarks(self, video: str) -> np.ndarray:
        """(68, 2) mean landmarks over the frames of ``video`` with a face (computed once per
        video and worker)."""
        if video not in self._video_means:
            self._video_means[video] = self.face_landmarks(video).mean(axis=0)
        return self._video_means[video]

    def subject_mean_landmarks(self, subject: str) -> np.ndarray:
        """(68, 2) mean landmarks over the frames with a face of every video of ``subject``
        (computed once per subject and worker)."""
        if subject not in self._subject_means:
            videos = [v for v, s in self.dataset.video_subjects.items() if s == subject]
            points = np.concatenate([self.face_landmarks(v) for v in videos])
            self._subject_means[subject] = points.mean(axis=0)
        return self._subject_means[subject]

    def read_flow(self, video: str, start: int) -> np.ndarray:
        """(T, 2, g, g) flow targets of a clip, pixels. With frame-to-frame targets (delta 1)
        and stride s > 1, target t is the sum of the s targets since the previous clip frame
        (small motions compose approximately by addition), so that it stays the motion from
        clip frame t - 1; frame 0 sums the s frames before the clip (fewer at a video's start).
        Otherwise the stored target of each clip frame (motion from ``delta`` frames before)."""
        if self.stride == 1 or flow_delta(self.dataset) != 1:
            return self._read("flow", video, start)
        first = max(start - self.stride + 1, 0)
        span = start + (self.clip_length - 1) * self.stride + 1 - first
        raw = self.dataset.array(video, "flow", first, span).astype(np.float32)
        total = np.concatenate([np.zeros_like(raw[:1]), raw.cumsum(0)])  # total[k] = sum raw[:k]
        ends = start - first + self.stride * np.arange(self.clip_length)  # clip frames in raw
        return total[ends + 1] - total[np.maximum(ends + 1 - self.stride, 0)]

    def __getitem__(self, key: tuple[int, int] | int) -> dict:
        clip, seed = key if isinstance(key, tuple) else (key, 0)
        video = self.index.video_names[self.index.video[clip]]
        start = int(self.index.start[clip])
        needs = self.needs
        frames = self._read("frames", video, start)
        use_points = needs.landmarks or needs.rois
        landmarks = self._read("landmarks", video, start) if use_points else None
        if needs.landmarks:
            subject = self.dataset.video_subjects[video]
            references = {
                "video_landmarks": self.video_mean_landmarks(video),
                "subject_landmarks": self.subject_mean_landmarks(subject),
            }
        flow = self.read_flow(video, start) if needs.flow else None
        rng = np.random.default_rng(seed)
        views = []
        for _ in range(needs.views):
            view = self.geometry.sample(rng, frames.shape[1], len(frames))
            item = {"frames": view.frames(frames).transpose(0, 3, 1, 2)}
            if landmarks is not None:
                points = view.points(landmarks)
                if needs.landmarks:
                    item["landmarks"] = points
                    for name, mean in references.items():
                        item[name] = view.points(np.broadcast_to(mean, landmarks.shape))[0]
                if needs.rois:
                    item["rois"] = roi_boxes(points, self.roi_aus, self.roi_size, self.roi_unit)
            if flow is not None:
                item["flow"] = view.flow(flow)
            views.append(item)
        first = self.first_row[video] + start
        rows = slice(first, first + (self.clip_length - 1) * self.stride + 1, self.stride)
        sample = {name: np.stack([v[name] for v in views]) for name in views[0]}
        sample["identity"] = int(self.index.identity[clip])
        sample["labels"] = self.labels[rows]
        return sample


def collate_clips(items: list[dict], has_labels: bool) -> ClipBatch:
    """Stack :class:`ClipDataset` items into a :class:`ClipBatch` (frames stay uint8)."""

    def stack(name: str) -> torch.Tensor | None:
        if name not in items[0]:
            return None
        return torch.from_numpy(np.stack([item[name] for item in items]))

    identity = torch.tensor([item["identity"] for item in items], dtype=torch.int64)
    labels = stack("labels") if has_labels else None
    return ClipBatch(
        frames=stack("frames"),
        identity=identity,
        partner=partner_indices(identity),
        flow=stack("flow"),
        landmarks=stack("landmarks"),
        video_landmarks=stack("video_landmarks"),
        subject_landmarks=stack("subject_landmarks"),
        rois=stack("rois"),
        labels=None if labels is None else labels.clamp(min=0).float(),
        label_mask=None if labels is None else labels != -1,
    )
