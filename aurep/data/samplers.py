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
    """Draws ``num_batches`` batches of ``batch_size`` clips from distinct identities.

    Each batch picks ``batch_size`` identities uniformly without replacement (with replacement
    when there are fewer identities than the batch size, but always at least two distinct), then
    one clip uniformly among each identity's clips.

    clip_identities: (N,) int identity of each clip. seed: base seed; the epoch counter (advanced
    by every pass, or set with :meth:`set_epoch`) and the DDP rank are mixed in unless
    ``fixed=True`` (validation: the same batches every pass).
    """

    def __init__(
        self,
        clip_identities: np.ndarray,
        batch_size: int,
        num_batches: int,
        seed: int = 0,
        fixed: bool = False,
    ):
        identities = np.asarray(clip_identities)
        self.groups = [np.flatnonzero(identities == i) for i in np.unique(identities)]
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
        self.num_batches = num_batches
        self.seed = seed
        self.fixed = fixed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_batches

    def _identities(self, rng: np.random.Generator) -> np.ndarray:
        count = len(self.groups)
        if count >= self.batch_size:
            return rng.choice(count, self.batch_size, replace=False)
        chosen = rng.choice(count, self.batch_size, replace=True)
        chosen[:2] = rng.choice(count, 2, replace=False)
        return rng.permutation(chosen)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        epoch = 0 if self.fixed else self.epoch
        rng = np.random.default_rng([self.seed, epoch, _distributed_rank()])
        if not self.fixed:
            self.epoch += 1
        for _ in range(self.num_batches):
            batch = []
            for identity in self._identities(rng):
                group = self.groups[identity]
                clip = int(group[rng.integers(len(group))])
                batch.append((clip, int(rng.integers(2**31))))
            yield batch
