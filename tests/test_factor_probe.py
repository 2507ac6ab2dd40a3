"""benchmarks/factor_probe.py: the synthetic generator's hidden factors replayed per frame, and
the within-video R² of a ridge regression from features to them."""

import json
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from aurep.evaluation.probe import ProbeRows

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import factor_probe  # noqa: E402
import quality  # noqa: E402


def test_replayed_factors_follow_the_stored_frames(tiny_corpus):
    """The replayed AU curves give exactly the stored labels (else the script refuses), one
    row per probed frame for every group."""
    frames = quality.corpus_frames(tiny_corpus)
    factors = factor_probe.corpus_factors(frames)
    assert set(factors) == set(factor_probe.GROUPS)
    assert all(len(values) == len(frames.labels) for values in factors.values())
    assert factors["gaze"].shape[1] == 2 and factors["head turn"].shape[1] == 2


def test_a_corpus_of_another_seed_is_refused(tiny_corpus, tmp_path):
    other = tmp_path / "synth"
    shutil.copytree(tiny_corpus, other)
    meta = json.loads((other / "meta.json").read_text())
    meta["generator"]["seed"] += 1  # the recorded seed no longer made these frames
    (other / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="do not match the stored labels"):
        factor_probe.corpus_factors(quality.corpus_frames(other))


def test_features_that_carry_a_factor_explain_it_and_noise_does_not():
    """Features made linearly from one factor (plus what is constant within each video, which
    centring removes) explain that factor (R² near 1) and not an independent one (R² near 0)."""
    rng = np.random.default_rng(0)
    videos = np.repeat([f"V{i}" for i in range(30)], 20)
    carried, ignored = rng.normal(size=(600, 2)), rng.normal(size=(600, 1))
    per_video = rng.normal(size=(30, 8)).repeat(20, axis=0) * 10
    features = carried @ rng.normal(size=(2, 8)) + per_video + 0.05 * rng.normal(size=(600, 8))
    rows = np.arange(600)
    frames = SimpleNamespace(
        videos=videos,
        rows={1.0: ProbeRows(rows[:400], rows[400:500], rows[500:])},
    )
    scores = factor_probe.factor_scores(features, {"gaze": carried, "blink": ignored}, frames)
    assert scores["gaze"] > 0.95
    assert abs(scores["blink"]) < 0.05
