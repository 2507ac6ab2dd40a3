"""The benchmark's linear probes: AU logistic regression, all-positive F1, identity decodability."""

import numpy as np
import pytest
from sklearn.metrics import f1_score

from aurep.evaluation.probe import (
    ProbeRows,
    all_positive_f1,
    identity_accuracy,
    probe_aus,
    standardise,
    video_split,
)


def split_rows(n: int) -> ProbeRows:
    """Rows 0..n-1 cut 60/20/20 into train / val / test."""
    order = np.arange(n)
    return ProbeRows(order[: n * 6 // 10], order[n * 6 // 10 : n * 8 // 10], order[n * 8 // 10 :])


def test_probe_recovers_a_linearly_separable_au():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(500, 20)) * rng.uniform(0.1, 10, size=20)  # unequal scales
    direction = rng.normal(size=20)
    labels = np.stack([features @ direction > 1.0, rng.random(500) < 0.3], axis=1).astype(np.int8)
    result = probe_aus(features, labels, split_rows(500), [1, 2])
    assert result.scores.f1[0] > 0.9 and result.scores.auc[0] > 0.98
    assert result.scores.auc[1] < 0.7  # the noise AU stays near chance
    assert result.scores.au_codes == [1, 2]


def test_probe_ignores_unknown_labels_and_counts_known_test_labels():
    rng = np.random.default_rng(1)
    features = rng.normal(size=(300, 5))
    labels = (features[:, :1] > 0).astype(np.int8)
    rows = split_rows(300)
    labels[rows.test[:10], 0] = -1
    labels[rows.train[:50], 0] = -1
    scores = probe_aus(features, labels, rows, [12]).scores
    assert scores.positives[0] + scores.negatives[0] == len(rows.test) - 10
    assert scores.f1[0] > 0.9


def test_strength_is_chosen_on_validation_never_on_test():
    rng = np.random.default_rng(2)
    features = rng.normal(size=(400, 30))
    labels = (features[:, 0] + rng.normal(scale=1.5, size=400) > 0).astype(np.int8)[:, None]
    rows = split_rows(400)
    flipped_test = labels.copy()
    flipped_test[rows.test] = 1 - flipped_test[rows.test]
    first = probe_aus(features, labels, rows, [1])
    second = probe_aus(features, flipped_test, rows, [1])
    assert first.strengths == pytest.approx(second.strengths)
    assert second.scores.auc[0] == pytest.approx(1 - first.scores.auc[0])
    flipped_val = labels.copy()
    flipped_val[rows.val] = 1 - flipped_val[rows.val]  # the worst C on val becomes the best
    assert probe_aus(features, flipped_val, rows, [1]).strengths[0] != first.strengths[0]


def test_single_class_training_labels_give_a_constant_prediction():
    features = np.random.default_rng(3).normal(size=(100, 4))
    labels = np.zeros((100, 1), np.int8)
    rows = split_rows(100)
    labels[rows.test[:5]] = 1
    scores = probe_aus(features, labels, rows, [4]).scores
    assert scores.f1[0] == 0.0 and scores.auc[0] == pytest.approx(0.5)  # a constant score


def test_all_positive_f1_is_two_p_over_one_plus_p():
    labels = np.array([[1, 0, -1], [0, 0, 1], [0, 0, 1], [0, 0, -1]], np.int8)
    f1 = all_positive_f1(labels)
    assert f1[0] == pytest.approx(2 * 0.25 / 1.25)
    assert np.isnan(f1[1])  # no positive: undefined
    assert f1[2] == pytest.approx(1.0)  # unknown labels are left out
    truth = labels[:, 0]
    assert f1[0] == pytest.approx(f1_score(truth, np.ones_like(truth)))


def test_standardise_uses_the_fit_rows_only():
    features = np.array([[0.0, 5.0], [2.0, 5.0], [100.0, 7.0]])
    out = standardise(features, np.array([0, 1]))
    assert out[:2, 0] == pytest.approx([-1.0, 1.0])
    assert out[:2, 1] == pytest.approx([0.0, 0.0])  # constant column: divided by 1
    assert out[2, 0] == pytest.approx(99.0)


def test_video_split_holds_out_whole_videos_per_subject():
    subjects = np.repeat(["a", "b", "c"], 40)
    videos = np.char.add(subjects, (np.tile(np.arange(40), 3) // 10).astype(str))
    videos = videos.astype("<U4")
    videos[subjects == "c"] = np.where(np.arange(40) < 20, "c0", "c1")  # only 2 videos
    train, val, test = video_split(subjects, videos)
    assert not (train & val).any() and not (train & test).any() and not (val & test).any()
    assert not (train | val | test)[subjects == "c"].any()
    for subject in ("a", "b"):
        assert len(set(videos[test & (subjects == subject)])) == 1
        assert len(set(videos[train & (subjects == subject)])) == 2
        assert not set(videos[test]) & set(videos[train])


def test_identity_accuracy_separates_identity_features_from_noise():
    rng = np.random.default_rng(4)
    subjects = np.repeat(np.array(["a", "b", "c", "d"]), 60)
    videos = np.char.add(subjects, (np.tile(np.arange(60), 4) // 20).astype(str))
    codes = np.unique(subjects, return_inverse=True)[1]
    noise = rng.normal(size=(240, 8))
    identity = noise + 4 * np.eye(4)[codes] @ rng.normal(size=(4, 8))
    assert identity_accuracy(identity, subjects, videos) > 0.95
    assert identity_accuracy(noise, subjects, videos) < 0.5
