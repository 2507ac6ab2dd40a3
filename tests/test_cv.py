"""`aurep cv` end to end on a tiny synthetic corpus, every eval config through the real CLI, and
the per-AU tables."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from aurep.au import SYNTH_AUS, au_column
from aurep.data.datamodules import AUDataModule
from aurep.evaluation import command
from aurep.evaluation.cv import fold_arguments, run_fold
from aurep.evaluation.tables import markdown_table, score_table, write_tables
from aurep.metrics import AUDetectionMetrics, AUScores
from aurep.synth import generate_corpus
from aurep.tasks.detector import AUDetector

CONFIGS = sorted(Path(__file__).parents[1].joinpath("configs", "eval").glob("*.yaml"))
TINY = [
    "--model.init_args.backbone=test_resnet",
    "--data.init_args.image_size=32",
    "--data.init_args.batch_size=8",
    "--data.init_args.num_workers=0",
    "--trainer.accelerator=cpu",
    "--trainer.precision=32-true",
    "--trainer.enable_progress_bar=false",
    "--trainer.logger=false",
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """6 identities (2 per fold) x 2 clips x 8 frames, 64 px, no flow."""
    out = tmp_path_factory.mktemp("cv") / "synth"
    return generate_corpus(
        out, identities=6, clips_per_identity=2, frames=8, size=64, workers=1, flow=False,
        progress=False,
    )  # fmt: skip


def _cv(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="aurep cv")
    command.add_arguments(parser)
    return command.run(parser.parse_args(argv))


def _scores(f1, auc=None) -> AUScores:
    f1 = np.asarray(f1, dtype=float)
    return AUScores(
        au_codes=[1, 2, 4][: len(f1)],
        f1=f1,
        auc=np.asarray(auc if auc is not None else f1, dtype=float),
        thresholds=np.full(len(f1), 0.5),
        positives=np.ones(len(f1), dtype=int),
        negatives=np.ones(len(f1), dtype=int),
    )


def test_table_rows_folds_then_mean_and_undefined_aus():
    scores = {2: _scores([0.2, math.nan, 0.6]), 1: _scores([0.4, 0.5, 0.8])}
    table = score_table(scores, "f1")
    assert list(table.index) == ["fold1", "fold2", "mean"]
    assert list(table.columns) == ["AU01", "AU02", "AU04", "aus_in_mean", "mean_f1"]
    assert table.loc["fold2", "aus_in_mean"] == 2
    assert table.loc["fold2", "mean_f1"] == pytest.approx(0.4)
    assert table.loc["mean", "AU01"] == pytest.approx(0.3)
    assert table.loc["mean", "AU02"] == pytest.approx(0.5)  # the fold where it is defined
    assert table.loc["mean", "mean_f1"] == pytest.approx((0.4 + 17 / 30) / 2)  # mean of folds
    lines = markdown_table(table).splitlines()
    assert lines[0] == "| fold | AU01 | AU02 | AU04 | aus_in_mean | mean_f1 |"
    assert lines[3] == "| fold2 | 20.0 | n/a | 60.0 | 2 | 40.0 |"
    assert lines[4].startswith("| mean | 30.0 | 50.0 | 70.0 |  | ")
    with pytest.raises(ValueError, match="fold 2 has AUs"):
        score_table({1: _scores([0.1, 0.2]), 2: _scores([0.1, 0.2, 0.3])}, "f1")


def test_write_tables_round_trip(tmp_path):
    paths = write_tables({1: _scores([0.25, 0.5], auc=[0.7, math.nan])}, tmp_path)
    assert [p.name for p in paths] == ["f1.csv", "auc.csv", "results.md"]
    auc = pd.read_csv(tmp_path / "auc.csv", index_col="fold")
    assert auc.loc["fold1", "mean_auc"] == pytest.approx(0.7)
    assert math.isnan(auc.loc["fold1", "AU02"])
    assert "## F1 (%)" in (tmp_path / "results.md").read_text()


def test_reserved_overrides_are_refused(tmp_path):
    with pytest.raises(ValueError, match="--folds"):
        fold_arguments("c.yaml", 1, tmp_path, None, ["--data.init_args.fold=2"])
    args = fold_arguments("c.yaml", 2, tmp_path, 0.1, ["--trainer.max_epochs=1"])
    assert args == [
        "--config", "c.yaml", "--trainer.max_epochs=1", "--data.init_args.fold=2",
        "--data.init_args.label_fraction=0.1", f"--trainer.default_root_dir={tmp_path}",
    ]  # fmt: skip


@pytest.mark.slow
def test_cv_end_to_end_writes_tables_of_the_selected_checkpoints(corpus, tmp_path):
    out = tmp_path / "run"
    config = "configs/eval/synth_linear.yaml"
    argv = ["--config", config, "--folds", "1", "2", "--label-fraction", "0.5", "--out", str(out)]
    overrides = [f"--data.init_args.root={corpus}", "--trainer.max_epochs=2", *TINY]
    assert _cv([*argv, "--", *overrides]) == 0

    f1 = pd.read_csv(out / "f1.csv", index_col="fold")
    columns = [au_column(code) for code in SYNTH_AUS]
    assert list(f1.index) == ["fold1", "fold2", "mean"]
    assert list(f1.columns) == [*columns, "aus_in_mean", "mean_f1"]
    assert list(pd.read_csv(out / "auc.csv", index_col="fold").index) == list(f1.index)
    summary = json.loads((out / "cv.json").read_text())
    assert summary["label_fraction"] == 0.5
    for entry in summary["folds"]:
        fold = entry["fold"]
        checkpoint = Path(entry["checkpoint"])
        assert checkpoint.parent == out / f"fold{fold}" / "checkpoints"
        # the selected epoch is the best validation epoch, and the table holds its test scores
        model = AUDetector.load_from_checkpoint(checkpoint).eval()
        data = AUDataModule(
            str(corpus), fold=fold, val_fraction=0.15, image_size=32, batch_size=8, num_workers=0
        )
        for stage in ("val", "test"):
            metrics = AUDetectionMetrics(model.au_codes)
            with torch.no_grad():
                for batch in getattr(data, f"{stage}_dataloader")():
                    batch = data.on_after_batch_transfer(batch, 0)
                    metrics.update(model(batch.images).sigmoid(), batch.labels, batch.label_mask)
            scores = metrics.compute(warn=False)
            if stage == "val":
                assert entry["val_mean_f1"] == pytest.approx(scores.mean_f1, abs=1e-6)
            else:
                row = f1.loc[f"fold{fold}"]
                np.testing.assert_allclose(row[columns].to_numpy(float), scores.f1, atol=1e-5)
                assert row["aus_in_mean"] == scores.num_defined
    means = f1.loc[["fold1", "fold2"], "mean_f1"].mean()
    assert f1.loc["mean", "mean_f1"] == pytest.approx(means, abs=1e-6)
    assert "| mean |" in (out / "results.md").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_every_eval_config_runs_one_fold_through_the_cli(config, corpus, tmp_path):
    tiny = [
        f"--data.init_args.root={corpus}",
        "--trainer.max_epochs=1",
        "--trainer.limit_train_batches=2",
        "--trainer.limit_val_batches=1",
        *TINY,
    ]
    result = run_fold(config, 1, tmp_path, overrides=tiny)
    assert result.checkpoint.is_file()
    assert result.scores.au_codes == list(SYNTH_AUS)
    assert 0 < result.scores.num_defined <= len(SYNTH_AUS)


@pytest.mark.slow
def test_cv_without_validation_subjects_is_a_clear_error(corpus, tmp_path):
    tiny = [f"--data.init_args.root={corpus}", "--data.init_args.val_fraction=0", *TINY]
    with pytest.raises(ValueError, match="no val/mean_f1 was logged.*val_fraction > 0"):
        run_fold(CONFIGS[0], 1, tmp_path, overrides=[*tiny, "--trainer.max_steps=1"])
