"""aurep.heads.whitening: the whitened regression loss and the running covariance it uses."""

import pytest
import torch

from aurep.heads.whitening import RunningCovariance, whitened_mse


def correlated_rows(count: int = 4000) -> tuple[torch.Tensor, torch.Tensor]:
    """(count, 3) rows with variances 100, 1 and 0.01 along a rotated basis, and that basis."""
    g = torch.Generator().manual_seed(0)
    basis, _ = torch.linalg.qr(torch.randn(3, 3, generator=g))
    scores = torch.randn(count, 3, generator=g) * torch.tensor([10.0, 1.0, 0.1])
    return scores @ basis.T, basis


def test_whitening_counts_every_direction_alike_down_to_the_floor():
    rows, basis = correlated_rows()
    covariance = torch.cov(rows.T)
    for floor in (1e-4, 1e-2, 1.0):  # predicting zero scores 1 whatever the floor
        assert whitened_mse(-rows, covariance, floor).item() == pytest.approx(1.0, rel=1e-3)
    largest_only = rows @ basis[:, :1] @ basis[:, :1].T  # the big direction predicted exactly
    error = largest_only - rows
    plain = error.square().sum(1).mean() / rows.square().sum(1).mean()
    assert plain.item() < 0.02  # the plain error hardly sees the two small directions missed
    assert whitened_mse(error, covariance, 1e-4).item() == pytest.approx(2 / 3, rel=0.02)
    assert whitened_mse(error, covariance, 1e-2).item() == pytest.approx(1.01 / 2.01, rel=0.02)
    assert whitened_mse(error, covariance, 1.0).item() == pytest.approx(plain.item(), rel=0.02)


def test_running_covariance_follows_training_rows_only():
    rows, _ = correlated_rows()
    running = RunningCovariance(3, momentum=0.05)
    for chunk in rows.split(32):
        running.update(chunk)
    torch.testing.assert_close(running.covariance, torch.cov(rows.T), rtol=0.15, atol=0.05)
    before = running.covariance.clone()
    running.eval().update(rows * 10)
    assert torch.equal(running.covariance, before)
