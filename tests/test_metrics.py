"""Pooled per-AU F1/AUC agree with scikit-learn; undefined AUs are NaN, named and counted."""

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score, roc_auc_score

from aurep.metrics import AUDetectionMetrics, metric_target

AUS = [1, 2, 4, 12]


def _random_batches(seed: int, batches: int = 3, size: int = 40):
    """Correlated probabilities and labels with about 20% unknown labels, in several batches."""
    generator = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(batches):
        labels = (torch.rand(size, len(AUS), generator=generator) < 0.3).float()
        probs = (0.6 * labels + 0.7 * torch.rand(size, len(AUS), generator=generator)).clamp(0, 1)
        mask = torch.rand(size, len(AUS), generator=generator) > 0.2
        labels = torch.where(mask, labels, torch.full_like(labels, 9.0))  # BP4D's "unknown" code
        out.append((probs, labels, mask))
    return out


def _sklearn_reference(batches, thresholds):
    probs = torch.cat([b[0] for b in batches]).numpy()
    labels = torch.cat([b[1] for b in batches]).numpy()
    mask = torch.cat([b[2] for b in batches]).numpy()
    f1, auc = [], []
    for a in range(len(AUS)):
        known = mask[:, a]
        y = labels[known, a]
        f1.append(f1_score(y, probs[known, a] >= thresholds[a]))
        auc.append(roc_auc_score(y, probs[known, a]))
    return np.array(f1), np.array(auc)


def test_pooled_f1_and_auc_match_sklearn():
    batches = _random_batches(seed=0)
    metrics = AUDetectionMetrics(AUS)
    for probs, labels, mask in batches:
        metrics.update(probs, labels, mask)
    scores = metrics.compute()
    f1, auc = _sklearn_reference(batches, [0.5] * len(AUS))
    np.testing.assert_allclose(scores.f1, f1, rtol=1e-6)
    np.testing.assert_allclose(scores.auc, auc, rtol=1e-5)
    assert scores.mean_f1 == pytest.approx(f1.mean())
    assert scores.num_defined == len(AUS)
    assert scores.columns == ["AU01", "AU02", "AU04", "AU12"]


def test_per_au_thresholds_match_sklearn_and_tuning_maximises_f1():
    batches = _random_batches(seed=1)
    tuner = AUDetectionMetrics(AUS, auc=False, threshold_bins=21)
    for probs, labels, mask in batches:
        tuner.update(probs, labels, mask)
    tuned = tuner.best_thresholds()
    assert tuned.shape == (len(AUS),)

    metrics = AUDetectionMetrics(AUS, auc=False)
    for probs, labels, mask in batches:
        metrics.update(probs, labels, mask, thresholds=tuned)
    scores = metrics.compute(thresholds=tuned)
    f1, _ = _sklearn_reference(batches, tuned.numpy())
    np.testing.assert_allclose(scores.f1, f1, rtol=1e-6)
    np.testing.assert_allclose(scores.thresholds, tuned.numpy())
    grid_best = np.max(
        [_sklearn_reference(batches, [t] * len(AUS))[0] for t in np.linspace(0, 1, 21)], axis=0
    )
    np.testing.assert_allclose(scores.f1, grid_best, rtol=1e-6)


def test_au_without_positives_is_undefined_and_named():
    probs = torch.tensor([[0.9, 0.8], [0.1, 0.7], [0.6, 0.2]])
    labels = torch.tensor([[1.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    mask = torch.tensor([[True, True], [True, True], [True, False]])  # AU02's only positive unknown
    metrics = AUDetectionMetrics([1, 2])
    metrics.update(probs, labels, mask)
    with pytest.warns(UserWarning, match="AU02 has no positive label"):
        scores = metrics.compute()
    assert scores.f1[0] == pytest.approx(1.0)
    assert math.isnan(scores.f1[1]) and math.isnan(scores.auc[1])
    assert scores.num_defined == 1 and scores.mean_f1 == pytest.approx(1.0)
    assert scores.positives.tolist() == [2, 0] and scores.negatives.tolist() == [1, 2]
    assert scores.describe_mean() == "mean F1 1.000 over 1/2 AUs (AU02 undefined)"


def test_metric_target_marks_unknown_labels():
    labels = torch.tensor([[1.0, 0.0, 9.0]])
    mask = torch.tensor([[True, True, False]])
    assert metric_target(labels, mask).tolist() == [[1, 0, -1]]


def test_tuning_needs_a_curve():
    with pytest.raises(ValueError, match="threshold_bins"):
        AUDetectionMetrics(AUS).best_thresholds()
