"""Person-independent features without labels: what a clip's frames share must not vary
between clips.

Every frame of a clip shows the same person, background and lighting; what changes within the
clip is expression (and small motion). A linear identity classifier, or an AU probe confused by
people's resting faces, reads the differences between clips' mean features. This head asks the
pooled feature to vary within clips rather than between them: for every feature dimension, the
variance of the clip means over the batch divided by the dimension's total variance. Scale-free,
so shrinking the features does not help; 0 when every clip has the same mean feature. Meant
beside a head that teaches expression (e.g. landmark_shape): alone, features that never change
would also score 0 up to the ``eps`` floor. With ``group="identity"`` the groups are people
instead of clips (batches with several clips per identity, from different videos): a person's
videos may then differ in mean expression, only the person must not show.
"""

from __future__ import annotations

import torch

from aurep.data.batch import BatchNeeds, ClipBatch
from aurep.heads.base import ClipFeatures, Encoder, HeadOutput, SSLHead
from aurep.heads.layers import group_means

GROUPS = ("clip", "identity")


def between_clip_share(
    pooled: torch.Tensor, eps: float = 1e-6, groups: torch.Tensor | None = None
) -> torch.Tensor:
    """pooled: (B, T, C) -> scalar, the mean over C of var(group mean) / var_{b,t}(feature),
    the group means weighted by frames. groups: (B,) labels of the clips (None: each clip its
    own group)."""
    flat = pooled.flatten(0, 1)
    total = flat.var(dim=0, unbiased=False)
    means = pooled.mean(dim=1) if groups is None else group_means(pooled, groups)
    between = means.var(dim=0, unbiased=False)
    return (between / (total + eps)).mean()


class ClipInvarianceHead(SSLHead):
    """Loss: :func:`between_clip_share` of view 0's pooled features (needs T >= 2 frames, and
    clips of at least two people per batch, which the clip sampler guarantees).

    Args:
        eps: variance floor of the ratio's denominator.
        group: ``clip`` = each clip is a group; ``identity`` = the clips of one subject
            (``batch.identity``) form a group.
        weight: the head's loss weight (see :class:`~aurep.heads.base.SSLHead`).
    """

    needs = BatchNeeds()

    def __init__(self, eps: float = 1e-6, group: str = "clip", weight: float = 1.0):
        super().__init__(weight)
        if group not in GROUPS:
            raise ValueError(f"group must be one of {GROUPS}, got {group!r}")
        self.eps, self.group = eps, group

    def forward(self, batch: ClipBatch, features: ClipFeatures, encode: Encoder) -> HeadOutput:
        if features.pooled.shape[1] < 2:
            raise ValueError("ClipInvarianceHead needs clips of at least 2 frames")
        groups = batch.identity if self.group == "identity" else None
        return HeadOutput(between_clip_share(features.pooled, self.eps, groups))
