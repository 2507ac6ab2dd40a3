"""Frame embeddings of a trained backbone and how person-independent they are.

:func:`extract_embeddings` runs a backbone (from a checkpoint:
:func:`~aurep.models.checkpoints.load_backbone`) over a prepared dataset (pooled features
per frame, with AU labels, subject, video and frame index). :func:`person_independence` asks
two k-nearest-neighbour questions of the embedding space (cosine similarity):

* AU transfer: predict each frame's AUs from its k nearest frames of *other* identities
  (``au_f1``: mean per-AU F1 over AUs with a positive; ``au_accuracy``).
* identity leakage: predict each frame's identity from its k nearest frames of *other* videos
  (``identity_accuracy``, against ``identity_chance`` = the majority identity's share).

``cross_identity_rate`` is the share of a frame's k nearest other-video frames that show another
person; divided by its chance value (``cross_identity_chance``: that share for random
neighbours) it gives ``person_independence`` (1 = neighbours ignore identity, 0 = all the same
person). The notebook ``notebooks/embeddings.ipynb`` plots these embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.metrics import f1_score
from torch.utils.data import DataLoader

from aurep.au import au_column
from aurep.data.images import normalise
from aurep.data.labelled import LabelledFrameDataset, collate_frames
from aurep.data.prepared import PreparedDataset
from aurep.data.transforms import GeometricAugment
from aurep.models.backbone import Backbone
from aurep.models.checkpoints import load_backbone  # noqa: F401 (re-export for benchmarks/quality.py)

SCORE_READINGS: dict[str, str] = {
    "au_f1": "mean F1 of each frame's AUs guessed from its k nearest frames of other people; "
    "higher = AU information carries across identities (compare with a random-init backbone)",
    "au_accuracy": "share of known AU labels guessed right the same way; rare AUs inflate it "
    "(guessing 'off' is mostly right), so read au_f1 first",
    "identity_accuracy": "identity guessed from the k nearest frames of other videos; near "
    "identity_chance = the features say little about who it is, near 1 = they encode identity",
    "identity_chance": "the largest identity's share of the frames: what always guessing it scores",
    "cross_identity_rate": "share of a frame's k nearest other-video frames that show someone else",
    "cross_identity_chance": "that share for randomly chosen neighbours",
    "person_independence": "cross_identity_rate / cross_identity_chance: 1 = neighbours ignore "
    "identity, 0 = always the same person; high beside a low au_f1 means neighbours ignore "
    "identity without matching expressions either (pose, light or noise)",
}
"""How to read each score of :func:`person_independence`, in one sentence."""


def score_table(scores: dict[str, float]) -> pd.DataFrame:
    """The summary scores (not the per-AU ``au_f1/AUxx``) of :func:`person_independence` as a
    table indexed by score: ``value`` and ``how to read`` (:data:`SCORE_READINGS`)."""
    names = [name for name in scores if "/" not in name]
    return pd.DataFrame(
        {
            "value": [round(scores[name], 3) for name in names],
            "how to read": [SCORE_READINGS.get(name, "") for name in names],
        },
        index=pd.Index(names, name="score"),
    )


@dataclass
class Embeddings:
    """N frames embedded.

    features: (N, C) float32 pooled backbone features. labels: (N, A) int8 AU occurrence 1/0/-1
    (unknown). au_codes: the A AU codes. subjects / videos: (N,) str. frames: (N,) int64 frame
    index in the video. Frames are in dataset order (video by video, in time order).
    """

    features: np.ndarray
    labels: np.ndarray
    au_codes: list[int]
    subjects: np.ndarray
    videos: np.ndarray
    frames: np.ndarray

    def __len__(self) -> int:
        return len(self.features)


@torch.no_grad()
def extract_embeddings(
    backbone: Backbone,
    dataset: PreparedDataset,
    image_size: int | None = None,
    frame_step: int = 1,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
) -> Embeddings:
    """Pooled features of every ``frame_step``-th frame of every video with a detected face.

    Frames take the evaluation path: resized to ``image_size`` px (default: the dataset's) by
    :func:`~aurep.data.images.resize_frames`, then ImageNet-normalised; no augmentation.
    """
    if frame_step < 1:
        raise ValueError(f"frame_step must be >= 1, got {frame_step}")
    manifest = dataset.manifest
    keep = (manifest["success"].to_numpy() == 1) & (manifest["frame"].to_numpy() % frame_step == 0)
    rows = np.flatnonzero(keep)
    if len(rows) == 0:
        raise ValueError(f"{dataset.root}: no frames with a detected face to embed")
    frames = LabelledFrameDataset(dataset, rows, GeometricAugment(image_size or dataset.image_size))
    loader = DataLoader(frames, batch_size=batch_size, collate_fn=collate_frames)
    backbone = backbone.to(device).eval()
    features = []
    for batch in loader:
        features.append(backbone(normalise(batch.images.to(device))).pooled.float().cpu())
    return Embeddings(
        features=torch.cat(features).numpy(),
        labels=frames.labels,
        au_codes=list(dataset.au_codes),
        subjects=np.asarray(frames.subjects),
        videos=np.asarray(frames.videos),
        frames=frames.frames,
    )


def evaluation_images(
    dataset: PreparedDataset, count: int, image_size: int | None = None, seed: int = 0
) -> torch.Tensor:
    """float32 (n, 3, S, S) normalised images of up to ``count`` random frames with a detected
    face (no labels needed), through the evaluation path of :func:`extract_embeddings`."""
    rows = np.flatnonzero(dataset.manifest["success"].to_numpy() == 1)
    if len(rows) == 0:
        raise ValueError(f"{dataset.root}: no frames with a detected face")
    chosen = np.sort(np.random.default_rng(seed).choice(rows, min(count, len(rows)), False))
    frames = LabelledFrameDataset(
        dataset, chosen, GeometricAugment(image_size or dataset.image_size)
    )
    loader = DataLoader(frames, batch_size=len(chosen), collate_fn=collate_frames)
    return normalise(next(iter(loader)).images)


@torch.no_grad()
def untrained_backbone(
    name: str, images: torch.Tensor, img_size: int | None = None, seed: int = 0
) -> Backbone:
    """An untrained backbone in eval mode, made comparable to a trained one.

    timm zero-initialises the last BatchNorm gamma of every residual block
    (``zero_init_last``): at init each block is the identity and the pooled features see the
    input through the stem and the 1x1 downsampling convolutions only. It is built with
    ``zero_init_last=False`` (every branch active) and its BatchNorm running statistics are
    re-estimated on ``images`` (float32 (n, 3, S, S) normalised unlabelled frames, e.g.
    :func:`evaluation_images`; no gradient), so that eval-mode activations are normalised as in
    a trained network. ``img_size``: for ViTs (None for CNNs)."""
    torch.manual_seed(seed)
    extra = {"img_size": img_size} if img_size is not None else {}
    try:
        backbone = Backbone(name, zero_init_last=False, **extra)
    except TypeError:  # a model without that option (ViTs): nothing is zero-initialised
        backbone = Backbone(name, **extra)
    for module in backbone.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # cumulative average over the batches below
    backbone.train()
    for batch in images.split(128):
        backbone(batch)
    return backbone.eval()


def nearest_neighbours(
    embeddings: Embeddings, k: int, exclude: str = "subject", chunk: int = 1024
) -> np.ndarray:
    """(N, k) indices of each frame's k most cosine-similar frames, most similar first, among
    the frames of other subjects (``exclude="subject"``) or of other videos (``"video"``)."""
    groups = {"subject": embeddings.subjects, "video": embeddings.videos}.get(exclude)
    if groups is None:
        raise ValueError(f"exclude must be 'subject' or 'video', got {exclude!r}")
    _, codes = np.unique(groups, return_inverse=True)
    candidates = len(embeddings) - np.bincount(codes).max()
    if not 1 <= k <= candidates:
        raise ValueError(f"k must be in 1..{candidates} (frames outside the largest {exclude})")
    features = F.normalize(torch.from_numpy(embeddings.features).float(), dim=1)
    codes = torch.from_numpy(codes)
    indices = []
    for start in range(0, len(features), chunk):
        similarity = features[start : start + chunk] @ features.T
        same = codes[start : start + chunk, None] == codes[None, :]
        indices.append(similarity.masked_fill(same, -torch.inf).topk(k, dim=1).indices)
    return torch.cat(indices).numpy()


def knn_au_scores(embeddings: Embeddings, neighbours: np.ndarray) -> dict[str, float]:
    """AU prediction by the neighbours' majority vote (known labels only; ties count positive).

    Returns ``au_f1`` (mean F1 over AUs with a known positive) and ``au_accuracy`` (over all
    known labels); ``au_f1/AUxx`` per AU."""
    labels = embeddings.labels
    votes = labels[neighbours]  # (N, k, A)
    known = votes != -1
    positive = (votes == 1).sum(1) >= np.maximum(known.sum(1), 1) / 2
    scores, correct, total = {}, 0, 0
    for a, code in enumerate(embeddings.au_codes):
        mask = (labels[:, a] != -1) & known[:, :, a].any(1)
        truth, guess = labels[mask, a] == 1, positive[mask, a]
        correct, total = correct + int((truth == guess).sum()), total + int(mask.sum())
        if truth.any():
            scores[f"au_f1/{au_column(code)}"] = float(f1_score(truth, guess, zero_division=0))
    per_au = list(scores.values())
    return {
        "au_f1": float(np.mean(per_au)) if per_au else float("nan"),
        "au_accuracy": correct / total if total else float("nan"),
        **scores,
    }


def person_independence(embeddings: Embeddings, k: int = 5) -> dict[str, float]:
    """The kNN scores of the module docstring, as a flat dict (fractions in [0, 1])."""
    if len(np.unique(embeddings.subjects)) < 2:
        raise ValueError("person independence needs frames of at least 2 subjects")
    au = knn_au_scores(embeddings, nearest_neighbours(embeddings, k, exclude="subject"))
    neighbours = nearest_neighbours(embeddings, k, exclude="video")
    subjects = embeddings.subjects
    _, codes = np.unique(subjects, return_inverse=True)
    votes = np.stack([np.bincount(row, minlength=codes.max() + 1) for row in codes[neighbours]])
    identity_accuracy = float((votes.argmax(1) == codes).mean())
    cross_rate = float((subjects[neighbours] != subjects[:, None]).mean())
    # chance: share of other-subject frames among the other-video frames, per frame, averaged
    subject_size = np.bincount(codes)[codes]
    _, video_codes = np.unique(embeddings.videos, return_inverse=True)
    video_size = np.bincount(video_codes)[video_codes]
    cross_chance = float(((len(subjects) - subject_size) / (len(subjects) - video_size)).mean())
    return {
        **au,
        "identity_accuracy": identity_accuracy,
        "identity_chance": float(np.bincount(codes).max() / len(codes)),
        "cross_identity_rate": cross_rate,
        "cross_identity_chance": cross_chance,
        "person_independence": cross_rate / cross_chance,
    }
