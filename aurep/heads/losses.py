"""Loss functions of the heads, as plain functions on tensors (tested against direct formulas)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def temporal_log_weights(length: int, power: float = 1.0) -> torch.Tensor:
    """(T, T) log of the in-clip negative weights ``w_ij = (|i - j| / (T - 1)) ** power``.

    Near frames are legitimately similar, so they count less as negatives; the farthest frame
    weighs 1, like a queue negative. ``power = 0`` disables the weighting (all zeros). The
    diagonal (the positive) is 0.
    """
    if power < 0:
        raise ValueError(f"distance weighting power must be >= 0, got {power}")
    index = torch.arange(length, dtype=torch.float32)
    distance = (index[:, None] - index[None, :]).abs()
    if power == 0 or length < 2:
        return torch.zeros(length, length)
    log_weights = power * torch.log(distance / (length - 1))
    return log_weights.fill_diagonal_(0.0)


def margin_info_nce(
    queries: torch.Tensor,
    keys: torch.Tensor,
    queue: torch.Tensor | None,
    temperature: float,
    margin: float = 0.0,
    log_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Margin InfoNCE over the frames of each clip, averaged over all B * T anchors.

    queries, keys: (B, T, d) L2-normalised; queue: (K, d) normalised negatives or None.
    For anchor ``q_i`` of a clip the logits are ``(q_i . k_i - margin) / tau`` (positive),
    ``q_i . k_j / tau + log w_ij`` for the other frames j of the same clip (``log_weights``
    (T, T), None = unweighted) and ``q_i . n / tau`` for every queue key n.
    """
    batch, length, _ = queries.shape
    in_clip = torch.einsum("bid,bjd->bij", queries, keys)
    eye = torch.eye(length, dtype=torch.bool, device=queries.device)
    in_clip = (in_clip - margin * eye) / temperature
    if log_weights is not None:
        in_clip = in_clip + log_weights.to(in_clip).masked_fill(eye, 0.0)
    logits = [in_clip]
    if queue is not None and len(queue):
        logits.append(torch.einsum("bid,kd->bik", queries, queue.to(queries)) / temperature)
    logits = torch.cat(logits, dim=-1).flatten(0, 1)
    target = torch.arange(length, device=queries.device).repeat(batch)
    return F.cross_entropy(logits, target)


def temporal_ranking_loss(similarity: torch.Tensor, margin: float) -> torch.Tensor:
    """Hinge ranking of temporal neighbours, averaged over all valid triplets.

    similarity: (B, T, T), ``s_ij`` between anchor frame i and frame j. For every anchor i and
    frames j, k with ``|i - j| < |i - k|`` the nearer frame must win by ``margin``:
    ``max(0, margin - (s_ij - s_ik))``. Zero when T < 2 (no triplet).
    """
    length = similarity.shape[-1]
    index = torch.arange(length, device=similarity.device)
    distance = (index[:, None] - index[None, :]).abs()
    valid = distance[:, :, None] < distance[:, None, :]  # (i, j, k)
    if not valid.any():
        return similarity.sum() * 0.0
    gap = similarity[:, :, :, None] - similarity[:, :, None, :]  # (B, i, j, k)
    return F.relu(margin - gap)[:, valid].mean()


def end_point_error(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean L2 norm of the flow difference. prediction, target: (..., 2, h, w), pixels."""
    return torch.linalg.vector_norm(prediction - target, dim=-3).mean()


def masked_bce(
    logits: torch.Tensor,
    labels: torch.Tensor,
    mask: torch.Tensor,
    pos_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Binary cross-entropy averaged over the known labels only.

    logits, labels: (..., A); mask: (..., A) bool, True where the label is known (unknown labels
    may hold any value, NaN included); pos_weight: (A,) or None. Returns 0 (with a gradient
    path, no NaN) when no label is known.
    """
    mask = mask.bool()
    safe_labels = torch.where(mask, labels, torch.zeros_like(labels))
    losses = F.binary_cross_entropy_with_logits(
        logits, safe_labels, pos_weight=pos_weight, reduction="none"
    )
    return torch.where(mask, losses, torch.zeros_like(losses)).sum() / mask.sum().clamp(min=1)
