"""Batch samplers for clip datasets: every batch mixes identities, every item carries its own seed.

A batch sampler yields lists of ``(clip_index, item_seed)`` pairs; the Dataset seeds its
augmentation with ``item_seed``, so an epoch is reproducible from ``seed`` whatever the number of
workers. Under DDP each rank draws its own stream (``rank`` in the seed).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch.distributed as dist
from torch.utils.data import Sampler


def _distributed_rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


class IdentityBatchSampler(Sampler[list[tuple[int, int]]]):
    """Draws ``num_batches`` batches of ``batch_size`` clips, ``clips_per_identity`` per identity.

    Each batch picks ``batch_size / clips_per_identity`` identities uniformly without replacement
    (with replacement when there are too few identities, but always at least two distinct), then
    for each a clip uniformly among the identity's clips and, when ``clips_per_identity`` > 1,
    further clips uniformly among those of the identity's videos not yet drawn (any clip of
    the identity once every video has one). An identity's clips are adjacent in the batch.

    clip_identities: (N,) int identity of each clip. clip_videos: (N,) int video of each clip
    (None: every clip its own video). seed: base seed; the epoch counter (advanced by every
    pass, or set with :meth:`set_epoch`) and the DDP rank are mixed in unless ``fixed=True``
    (validation: the same batches every pass).
    """

    def __init__(
        self,
        clip_identities: np.ndarray,
        batch_size: int,
        num_batches: int,
        seed: int = 0,
        fixed: bool = False,
        clip_videos: np.ndarray | None = None,
        clips_per_identity: int = 1,
    ):
        identities = np.asarray(clip_identities)
        self.groups = [np.flatnonzero(identities == i) for i in np.unique(identities)]
        self.videos = np.arange(len(identities)) if clip_videos is None else np.asarray(clip_videos)
        if clips_per_identity < 1 or batch_size % clips_per_identity:
            raise ValueError(
                f"clips_per_identity must be >= 1 and divide the clip batch size {batch_size}, "
                f"got {clips_per_identity}"
            )
        if batch_size // clips_per_identity < 2:
            raise ValueError(
                f"a clip batch of {batch_size} with {clips_per_identity} clips per identity "
                "holds one identity; batches need at least 2 (cross-identity partners)"
            )
        if len(self.groups) < 2:
            raise ValueError(
                f"clip batches need at least 2 identities (for cross-identity partners), "
                f"this split has {len(self.groups)}"
            )
        if batch_size < 2:
            raise ValueError(f"clip batch size must be >= 2 (partners), got {batch_size}")
        if num_batches < 1:
            raise ValueError(f"an epoch needs at least one batch, got {num_batches}")
        self.batch_size = batch_size
        self.clips_per_identity = clips_per_identity
        self.num_batches = num_batches
        self.seed = seed
        self.fixed = fixed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_batches

    def _identities(self, rng: np.random.Generator) -> np.ndarray:
        count, wanted = len(self.groups), self.batch_size // self.clips_per_identity
        if count >= wanted:
            return rng.choice(count, wanted, replace=False)
        chosen = rng.choice(count, wanted, replace=True)
        chosen[:2] = rng.choice(count, 2, replace=False)
        return rng.permutation(chosen)

    def _clips(self, rng: np.random.Generator, group: np.ndarray) -> list[int]:
        """``clips_per_identity`` clips of one identity's ``group``, each from a new video while
        there are new videos."""
        clips = [int(group[rng.integers(len(group))])]
        for _ in range(self.clips_per_identity - 1):
            fresh = group[~np.isin(self.videos[group], self.videos[clips])]
            pool = fresh if len(fresh) else group
            clips.append(int(pool[rng.integers(len(pool))]))
        return clips

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        epoch = 0 if self.fixed else self.epoch
        rng = np.random.default_rng([self.seed, epoch, _distributed_rank()])
        if not self.fixed:
            self.epoch += 1
        for _ in range(self.num_batches):
            batch = []
            for identity in self._identities(rng):
                for clip in self._clips(rng, self.groups[identity]):
                    batch.append((clip, int(rng.integers(2**31))))
            yield batch
