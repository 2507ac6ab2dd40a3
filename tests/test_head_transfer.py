"""benchmarks/head_transfer.py: a landmark head's fit on seen and unseen identities."""

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import template_landmarks

from aurep.heads.landmark_shape import REFERENCES, LandmarkShapeHead

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import head_transfer  # noqa: E402
import quality  # noqa: E402


@pytest.mark.parametrize("reference", REFERENCES)
def test_a_regressor_that_returns_the_target_explains_all_of_it(reference):
    """With an identity regressor, features equal to the head's own targets are predicted
    exactly (explained 1); features of the opposite change are not."""
    head = LandmarkShapeHead(hidden_dim=0, reference=reference).eval()
    head.regressor = torch.nn.Linear(136, 136)
    with torch.no_grad():
        head.regressor.weight.copy_(torch.eye(136))
        head.regressor.bias.zero_()
    head.standardise = torch.nn.BatchNorm1d(136, affine=False).eval()
    rng = np.random.default_rng(0)
    points = template_landmarks()[None] * 50 + rng.normal(0, 1.0, (6, 68, 2))  # (F, 68, 2)
    mean = points.mean(axis=0) + rng.normal(0, 0.5, (68, 2))
    torch_points = torch.from_numpy(points).float()[None]
    with torch.no_grad():
        one_clip = torch.zeros(1, dtype=torch.int64)
        target = head.targets(torch_points, torch.from_numpy(mean).float()[None], one_clip)
        target = target.numpy()
    prediction, expected = head_transfer.video_fit(head, target, points, mean)
    assert head_transfer.explained(prediction, expected) == pytest.approx(1.0, abs=1e-5)
    opposite, _ = head_transfer.video_fit(head, -target, points, mean)
    assert head_transfer.explained(opposite, expected) < -2


def test_fit_by_direction_finds_the_mode_a_prediction_misses():
    """Targets with three modes of variance 100, 1 and 0.04 (and a null direction): a
    prediction that is exact except for the middle mode explains it not at all and the
    others fully; the null direction is below the floor and not listed."""
    rng = np.random.default_rng(0)
    basis, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    scores = rng.normal(size=(5000, 4)) * [10.0, 1.0, 0.2, 0.0]
    target = scores @ basis.T
    prediction = target - np.outer(scores[:, 1], basis[:, 1])
    listed = head_transfer.by_direction(prediction, target)
    assert [round(math.log10(r)) for r, _ in listed] == [0, -2, -3]
    assert [share for _, share in listed] == pytest.approx([1.0, 0.0, 1.0], abs=1e-6)


@pytest.mark.slow
def test_a_trained_head_is_measured_on_both_identity_groups(three_clip_corpus, tmp_path):
    fragment = REPO / "configs/pretrain/heads/landmark_shape.yaml"
    run = tmp_path / "run"
    small = ["--data.init_args.stride=1", "--data.init_args.num_workers=0"]
    code = quality.aurep_main(quality.fit_arguments(fragment, three_clip_corpus, run, 2, 0) + small)
    checkpoint = quality.finished_checkpoint(run, code)
    log = tmp_path / "transfer.jsonl"
    argv = [str(checkpoint), "--reference=clip_relative", f"--corpus={three_clip_corpus}"]
    line = head_transfer.main([*argv, f"--log={log}"])
    assert json.loads(log.read_text()) == line
    for group in ("training_identities", "unseen_identities"):
        assert np.isfinite(line[group]) and line[group] <= 1.0
    variances = [variance for variance, _ in line["unseen_by_direction"]]
    assert variances[0] == 1.0 and variances == sorted(variances, reverse=True)
    with pytest.raises(SystemExit, match="no landmark head 'flow'"):
        head_transfer.main([*argv, "--head=flow", f"--log={log}"])
