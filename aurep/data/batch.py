"""The typed batch every pretraining DataModule yields and every head reads."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch


@dataclass
class ClipBatch:
    """A batch of B clips of T consecutive frames, each seen in V augmented views.

    frames: (B, V, T, 3, H, W) float32, normalised with ImageNet mean/std.
    landmarks: (B, V, T, 68, 2) float32, iBUG points in pixels of the view's frames.
    rois: (B, V, T, R, 4) float32 AU RoI boxes ``x1, y1, x2, y2`` in pixels of the view's frames.
    identity: (B,) int64 subject index (dense, per dataset).
    partner: (B,) int64 index into the batch of a clip of a different identity.
    flow: (B, V, T, 2, h, w) float32 flow from frame t - delta to t, (dx, dy) in pixels of the
        view's frames, on an h x w grid; None when the dataset has no flow targets.
    labels: (B, T, A) float32 AU occurrence 0/1; None when no frame has labels.
    label_mask: (B, T, A) bool, True where the label is known.
    """

    frames: torch.Tensor
    landmarks: torch.Tensor
    rois: torch.Tensor
    identity: torch.Tensor
    partner: torch.Tensor
    flow: torch.Tensor | None = None
    labels: torch.Tensor | None = None
    label_mask: torch.Tensor | None = None

    @property
    def batch_size(self) -> int:
        return self.frames.shape[0]

    @property
    def num_views(self) -> int:
        return self.frames.shape[1]

    @property
    def clip_length(self) -> int:
        return self.frames.shape[2]

    def to(self, device: torch.device | str, non_blocking: bool = False) -> ClipBatch:
        """Move every tensor field to ``device``."""
        moved = {
            f.name: getattr(self, f.name).to(device, non_blocking=non_blocking)
            for f in fields(self)
            if isinstance(getattr(self, f.name), torch.Tensor)
        }
        return replace(self, **moved)
