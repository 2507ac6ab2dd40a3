"""Statistics of AU occurrence labels shared by the DataModules, the losses and the benchmarks."""

from __future__ import annotations

import torch


def pos_weight_from_labels(
    labels: torch.Tensor, mask: torch.Tensor, max_weight: float = 100.0
) -> torch.Tensor:
    """Per-AU positive weight ``#negatives / #positives`` over known labels, clamped to
    ``[1 / max_weight, max_weight]`` (an AU never positive gets ``max_weight``).

    labels, mask: (N, A) -> (A,) float32.
    """
    mask = mask.bool()
    positive = (mask & (labels > 0.5)).sum(0).float()
    negative = (mask & (labels <= 0.5)).sum(0).float()
    return (negative / positive).nan_to_num(nan=1.0).clamp(1.0 / max_weight, max_weight)
