"""Linear probes on frozen features: per-AU logistic regression and identity decodability.

The AU probe (:func:`probe_aus`): features are standardised with the mean and standard deviation
of the training rows; for every AU an L2-regularised logistic regression (scikit-learn, lbfgs,
``class_weight="balanced"`` so that both classes weigh the same) is fitted on the training rows
whose label is known, once per inverse strength ``C`` in :data:`STRENGTHS`; the ``C`` with the
best AUC on the *validation* rows is kept (ties and undefined AUCs: the strongest
regularisation) and scored on the test rows: F1 at probability 0.5 and AUC, pooled over frames.
Validation rows must come from identities held out of the training identities; the test rows
are never looked at before the final score.

The identity probe (:func:`identity_accuracy`): a multinomial logistic regression predicts the
identity of a frame, trained on some videos of each identity and scored on held-out videos of
the same identities (lower = more person-independent features).

:func:`all_positive_f1` is the analytic F1 of answering "present" for every frame.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, roc_auc_score
from threadpoolctl import threadpool_limits

from aurep.metrics import AUScores

STRENGTHS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
"""Inverse L2 strengths ``C`` tried, strongest regularisation first."""
MAX_ITER = 300
"""lbfgs iterations; a fit that stops here is early-stopped (ConvergenceWarning silenced)."""
BLAS_THREADS = 1
"""The fits are matrix-vector sized: one BLAS thread is several times faster than two on a
loaded 2-core machine (thread contention), and never slower."""


@dataclass(frozen=True)
class ProbeRows:
    """Row indices (into the feature matrix) of the probe's training, validation and test frames."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


@dataclass(frozen=True)
class ProbeResult:
    """Test scores of the AU probe and the inverse strength ``C`` chosen per AU, (A,)."""

    scores: AUScores
    strengths: np.ndarray


def standardise(features: np.ndarray, fit_rows: np.ndarray) -> np.ndarray:
    """(N, D) features scaled by the mean and std of ``features[fit_rows]`` (rows: indices or a
    boolean mask); float32, constant columns divided by 1."""
    mean = features[fit_rows].mean(axis=0)
    std = features[fit_rows].std(axis=0)
    std[std == 0] = 1.0
    return ((features - mean) / std).astype(np.float32)


def auc_or_nan(truth: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC of (N,) 0/1 ``truth`` by ``score``; NaN unless both classes occur."""
    return float(roc_auc_score(truth, score)) if 0 < truth.sum() < len(truth) else np.nan


def positive_probability(
    x_train: np.ndarray, y_train: np.ndarray, strength: float, *x_eval: np.ndarray
) -> list[np.ndarray]:
    """(N,) P(y=1) on each ``x_eval`` of a balanced logistic regression fitted with C=strength.

    A training set with a single class gives that class's probability (0 or 1) everywhere."""
    if y_train.min() == y_train.max():
        return [np.full(len(x), float(y_train[0])) for x in x_eval]
    model = LogisticRegression(C=strength, class_weight="balanced", max_iter=MAX_ITER)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x_train, y_train)
    return [model.predict_proba(x)[:, 1] for x in x_eval]


def fit_one_au(
    x: np.ndarray, y: np.ndarray, rows: ProbeRows, strengths=STRENGTHS
) -> tuple[np.ndarray, float]:
    """One AU: (N,) labels 1/0/-1 -> ((len(rows.test),) test probabilities, chosen C)."""
    train, val = (r[y[r] != -1] for r in (rows.train, rows.val))
    best, best_auc = strengths[0], -np.inf
    for strength in strengths:
        (p_val,) = positive_probability(x[train], y[train], strength, x[val])
        auc = auc_or_nan(y[val], p_val)
        if auc > best_auc:  # NaN never wins: an undefined AUC keeps the strongest strength
            best, best_auc = strength, auc
    (p_test,) = positive_probability(x[train], y[train], best, x[rows.test])
    return p_test, best


def score_probabilities(
    probability: np.ndarray, labels: np.ndarray, au_codes: list[int]
) -> AUScores:
    """(N, A) P(AU present) and labels 1/0/-1 -> per-AU F1 at 0.5 and AUC, pooled over the
    frames with a known label (F1 NaN without a positive, AUC NaN without both classes)."""
    f1, auc, positives, negatives = [], [], [], []
    for a in range(labels.shape[1]):
        known = labels[:, a] != -1
        truth, score = labels[known, a], probability[known, a]
        defined = truth.sum() > 0
        f1.append(f1_score(truth, score >= 0.5, zero_division=0) if defined else np.nan)
        auc.append(auc_or_nan(truth, score))
        positives.append(int(truth.sum()))
        negatives.append(int(len(truth) - truth.sum()))
    return AUScores(
        list(au_codes),
        np.array(f1, dtype=float),
        np.array(auc, dtype=float),
        np.full(len(au_codes), 0.5),
        np.array(positives),
        np.array(negatives),
    )


@threadpool_limits.wrap(limits=BLAS_THREADS, user_api="blas")
def probe_aus(
    features: np.ndarray, labels: np.ndarray, rows: ProbeRows, au_codes: list[int]
) -> ProbeResult:
    """Per-AU probe of the module docstring. features: (N, D); labels: (N, A) int 1/0/-1."""
    standard = standardise(features, rows.train)
    fits = [fit_one_au(standard, labels[:, a], rows) for a in range(labels.shape[1])]
    probability = np.stack([p for p, _ in fits], axis=1)
    scores = score_probabilities(probability, labels[rows.test], au_codes)
    return ProbeResult(scores, np.array([strength for _, strength in fits]))


def all_positive_f1(labels: np.ndarray) -> np.ndarray:
    """(N, A) labels 1/0/-1 of the test frames -> (A,) F1 of always answering "present".

    Precision is the positive rate p, recall 1, so F1 = 2p / (1 + p); NaN without a positive."""
    known = labels != -1
    p = (labels == 1).sum(0) / np.maximum(known.sum(0), 1)
    return np.where(p > 0, 2 * p / (1 + p), np.nan)


def video_split(
    subjects: np.ndarray, videos: np.ndarray, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boolean (N,) masks train / val / test: per subject one random video is test, another val,
    the rest train. Subjects with fewer than 3 videos are left out of all three."""
    rng = np.random.default_rng(seed)
    train, val, test = (np.zeros(len(videos), bool) for _ in range(3))
    for subject in np.unique(subjects):
        mine = np.unique(videos[subjects == subject])
        if len(mine) < 3:
            continue
        order = rng.permutation(mine)
        test |= videos == order[0]
        val |= videos == order[1]
        train |= np.isin(videos, order[2:])
    return train, val, test


@threadpool_limits.wrap(limits=BLAS_THREADS, user_api="blas")
def identity_accuracy(
    features: np.ndarray,
    subjects: np.ndarray,
    videos: np.ndarray,
    strengths=STRENGTHS[1:],
    seed: int = 0,
) -> float:
    """Accuracy of a multinomial logistic regression predicting the subject of held-out videos.

    features: (N, D) of frames of the identities to classify; subjects, videos: (N,) names.
    Per subject one video is test and one validation (:func:`video_split`); C is chosen by
    validation accuracy, features are standardised on the training videos."""
    train, val, test = video_split(subjects, videos, seed)
    if not train.any():
        raise ValueError("identity probe needs subjects with at least 3 videos")
    standard = standardise(features, train)
    x_train, x_val, x_test = standard[train], standard[val], standard[test]
    best, best_accuracy = None, -1.0
    for strength in strengths:
        model = LogisticRegression(C=strength, max_iter=MAX_ITER)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(x_train, subjects[train])
        accuracy = model.score(x_val, subjects[val])
        if accuracy > best_accuracy:
            best, best_accuracy = model, accuracy
    return float(best.score(x_test, subjects[test]))
