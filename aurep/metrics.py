"""Per-AU detection metrics pooled over every evaluated frame: F1 at a threshold and AUC.

The protocol of the AU literature: TP/FP/FN of each AU are summed over all frames of a test fold
(not per video), F1 is computed from the pooled counts, the mean F1 is taken over AUs. Unknown
labels are ignored per AU. An AU without a single positive label has no defined F1 (nor AUC): it
is reported as NaN, a warning names it, and the mean says how many AUs it covers.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torchmetrics.classification import (
    MultilabelAUROC,
    MultilabelPrecisionRecallCurve,
    MultilabelStatScores,
)

from aurep.au import au_column

IGNORE = -1  # target value of an unknown label, for torchmetrics' ignore_index


def metric_target(labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(N, A) 0/1 labels and bool known-mask -> (N, A) int64 target with -1 where unknown."""
    return torch.where(mask.bool(), labels.round().long(), torch.full_like(labels, IGNORE).long())


@dataclass
class AUScores:
    """Pooled per-AU results of one evaluation.

    au_codes: the A AU codes; f1, auc: (A,) in [0, 1], NaN where undefined; thresholds: (A,) the
    probability thresholds used (a frame is positive when its probability is at or above);
    positives, negatives: (A,) number of known positive / negative labels.
    """

    au_codes: list[int]
    f1: np.ndarray
    auc: np.ndarray
    thresholds: np.ndarray
    positives: np.ndarray
    negatives: np.ndarray

    @property
    def columns(self) -> list[str]:
        return [au_column(code) for code in self.au_codes]

    @property
    def num_defined(self) -> int:
        """How many AUs have a defined F1 (and enter :attr:`mean_f1`)."""
        return int(np.isfinite(self.f1).sum())

    @property
    def mean_f1(self) -> float:
        """Mean F1 over the AUs with a defined F1 (NaN when none is defined)."""
        return float(np.nanmean(self.f1)) if self.num_defined else math.nan

    @property
    def mean_auc(self) -> float:
        """Mean AUC over the AUs with a defined AUC (NaN when none is defined)."""
        return float(np.nanmean(self.auc)) if np.isfinite(self.auc).any() else math.nan

    def describe_mean(self) -> str:
        """'mean F1 0.612 over 11/12 AUs (AU04 undefined)' style summary."""
        text = f"mean F1 {self.mean_f1:.3f} over {self.num_defined}/{len(self.au_codes)} AUs"
        undefined = [c for c, v in zip(self.columns, self.f1, strict=True) if not np.isfinite(v)]
        return text + (f" ({', '.join(undefined)} undefined)" if undefined else "")


class AUDetectionMetrics(nn.Module):
    """Accumulates predictions over many batches, then computes :class:`AUScores`.

    Args:
        au_codes: the A AU codes (column order of predictions and labels).
        auc: also compute per-AU AUC (keeps every probability in memory: 4 bytes x N x A).
        threshold_bins: > 0 also accumulates a binned precision-recall curve with this many
            thresholds, for :meth:`best_thresholds` (per-AU threshold tuning); 0 = off.
    """

    def __init__(self, au_codes: Sequence[int], auc: bool = True, threshold_bins: int = 0):
        super().__init__()
        self.au_codes = [int(code) for code in au_codes]
        num = len(self.au_codes)
        if num == 0:
            raise ValueError("AUDetectionMetrics needs at least one AU code")
        kwargs = {"num_labels": num, "average": "none", "ignore_index": IGNORE}
        self.stats = MultilabelStatScores(**kwargs)
        self.auroc = MultilabelAUROC(**kwargs) if auc else None
        self.curve = (
            MultilabelPrecisionRecallCurve(
                num_labels=num, thresholds=threshold_bins, ignore_index=IGNORE
            )
            if threshold_bins
            else None
        )

    def update(
        self,
        probs: torch.Tensor,
        labels: torch.Tensor,
        mask: torch.Tensor,
        thresholds: torch.Tensor | float = 0.5,
    ) -> None:
        """probs: (N, A) probabilities in [0, 1]; labels: (N, A) 0/1; mask: (N, A) bool known;
        thresholds: scalar or (A,), a frame counts as positive when ``probs >= thresholds``
        (the convention of torchmetrics' precision-recall curve used for tuning)."""
        target = metric_target(labels, mask)
        probs = probs.detach().float()
        self.stats.update((probs >= torch.as_tensor(thresholds).to(probs)).long(), target)
        if self.auroc is not None:
            self.auroc.update(probs, target)
        if self.curve is not None:
            self.curve.update(probs, target)

    @property
    def num_updates(self) -> int:
        return int(self.stats.update_count)

    def reset(self) -> None:
        for metric in (self.stats, self.auroc, self.curve):
            if metric is not None:
                metric.reset()

    def compute(self, thresholds: torch.Tensor | float = 0.5, warn: bool = True) -> AUScores:
        """Pooled scores of everything seen since the last reset (``thresholds`` only recorded:
        they must be the ones given to :meth:`update`). Warns about every AU without positives."""
        num = len(self.au_codes)
        tp, fp, tn, fn, _ = self.stats.compute().reshape(num, 5).double().unbind(-1)
        positives, negatives = tp + fn, fp + tn
        f1 = torch.where(positives > 0, 2 * tp / (2 * tp + fp + fn).clamp(min=1), math.nan)
        auc = torch.full((num,), math.nan, dtype=torch.float64)
        if self.auroc is not None:
            with (
                warnings.catch_warnings()
            ):  # torchmetrics' own no-positive warning: ours is clearer
                warnings.simplefilter("ignore", UserWarning)
                computed = self.auroc.compute().reshape(num).double()
            auc = torch.where((positives > 0) & (negatives > 0), computed, auc)
        scores = AUScores(
            au_codes=self.au_codes,
            f1=f1.numpy(),
            auc=auc.numpy(),
            thresholds=torch.as_tensor(thresholds, dtype=torch.float64).expand(num).numpy().copy(),
            positives=positives.long().numpy(),
            negatives=negatives.long().numpy(),
        )
        if warn:
            for column, count, known in zip(
                scores.columns, positives, positives + negatives, strict=True
            ):
                if count == 0:
                    warnings.warn(
                        f"{column} has no positive label among the {int(known)} known labels "
                        "evaluated: its F1 is undefined (NaN) and left out of the mean F1",
                        stacklevel=2,
                    )
        return scores

    def best_thresholds(self, default: float = 0.5) -> torch.Tensor:
        """(A,) per-AU probability threshold maximising the F1 of the accumulated curve; AUs
        without positives keep ``default``. Needs ``threshold_bins > 0``."""
        if self.curve is None:
            raise ValueError("threshold tuning needs AUDetectionMetrics(threshold_bins > 0)")
        precision, recall, grid = self.curve.compute()
        # binned curve: precision, recall (A, bins + 1) with a final (1, 0) point; grid (bins,)
        precision, recall = precision[:, :-1], recall[:, :-1]
        f1 = (2 * precision * recall / (precision + recall)).nan_to_num(0.0)
        best = grid[f1.argmax(dim=1)]
        has_positive = recall.amax(dim=1) > 0
        return torch.where(has_positive, best, torch.full_like(best, default)).cpu()
