"""Subject-exclusive k-fold AU detection through the real LightningCLI.

For every fold the config is instantiated by :class:`~aurep.lightning_cli.AurepCLI` with the fold
(and label fraction) set on the DataModule, trained with a ModelCheckpoint that keeps the epoch
with the best ``val/mean_f1`` (validation subjects held out of the training parts; the test fold
is never looked at), and that checkpoint is tested on the fold. The model must expose the pooled
test scores as ``test_scores`` (:class:`~aurep.tasks.detector.AUDetector` does).
"""

from __future__ import annotations

import gc
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pytorch_lightning.callbacks import ModelCheckpoint

from aurep.evaluation.tables import write_tables
from aurep.lightning_cli import AurepCLI
from aurep.metrics import AUScores

MONITOR = "val/mean_f1"
RESERVED = (
    "--data.init_args.fold",
    "--data.init_args.label_fraction",
    "--trainer.default_root_dir",
)


@dataclass
class FoldResult:
    """One fold: its test scores, the selected checkpoint and its validation mean F1."""

    fold: int
    scores: AUScores
    checkpoint: Path
    val_mean_f1: float


def fold_arguments(
    config: str | Path,
    fold: int,
    fold_dir: Path,
    label_fraction: float | None,
    overrides: Sequence[str],
) -> list[str]:
    """LightningCLI arguments of one fold (no subcommand: ``AurepCLI(args, run=False)``)."""
    for override in overrides:
        if override.startswith(RESERVED):
            raise ValueError(
                f"{override!r}: aurep cv sets this itself (use --folds, --label-fraction, --out)"
            )
    args = ["--config", str(config), *overrides, f"--data.init_args.fold={fold}"]
    if label_fraction is not None:
        args.append(f"--data.init_args.label_fraction={label_fraction}")
    return [*args, f"--trainer.default_root_dir={fold_dir}"]


def run_fold(
    config: str | Path,
    fold: int,
    fold_dir: Path,
    label_fraction: float | None = None,
    overrides: Sequence[str] = (),
) -> FoldResult:
    """Fit on the fold's training subjects, select by validation mean F1, test on the fold."""
    if not Path(config).is_file():
        raise ValueError(f"config {config} does not exist")
    checkpoint = ModelCheckpoint(
        dirpath=fold_dir / "checkpoints",
        filename="best-{epoch:03d}",
        monitor=MONITOR,
        mode="max",
        save_top_k=1,
    )
    cli = AurepCLI(
        args=fold_arguments(config, fold, fold_dir, label_fraction, overrides),
        run=False,
        trainer_defaults={"callbacks": [checkpoint]},
    )
    if not hasattr(cli.model, "test_scores"):
        raise ValueError(
            f"{config}: model {type(cli.model).__name__} keeps no test_scores: "
            "aurep cv evaluates AU detectors (aurep.tasks.detector.AUDetector)"
        )
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    if not checkpoint.best_model_path:
        raise ValueError(
            f"{config}, fold {fold}: no {MONITOR} was logged, so no epoch could be selected: "
            "cv needs validation subjects (data.init_args.val_fraction > 0)"
        )
    cli.trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path=checkpoint.best_model_path)
    score = checkpoint.best_model_score
    result = FoldResult(
        fold=fold,
        scores=cli.model.test_scores,
        checkpoint=Path(checkpoint.best_model_path),
        val_mean_f1=math.nan if score is None else float(score),
    )
    del cli
    gc.collect()
    return result


def run_cv(
    config: str | Path,
    out: Path,
    folds: Sequence[int] = (1, 2, 3),
    label_fraction: float | None = None,
    overrides: Sequence[str] = (),
) -> list[FoldResult]:
    """Run every fold into ``out/fold<k>``; after each fold rewrite the tables
    (:func:`~aurep.evaluation.tables.write_tables`) and ``cv.json`` in ``out``."""
    if not folds or len(set(folds)) != len(folds):
        raise ValueError(f"folds must be distinct fold numbers, got {list(folds)}")
    out = Path(out)
    results: list[FoldResult] = []
    for fold in folds:
        results.append(run_fold(config, fold, out / f"fold{fold}", label_fraction, overrides))
        write_tables({r.fold: r.scores for r in results}, out, title=f"AU detection: {config}")
        summary = {
            "config": str(config),
            "label_fraction": label_fraction,
            "overrides": list(overrides),
            "monitor": MONITOR,
            "folds": [
                {
                    "fold": r.fold,
                    "checkpoint": str(r.checkpoint),
                    "val_mean_f1": r.val_mean_f1,
                    "test_mean_f1": r.scores.mean_f1,
                    "test_aus_in_mean": r.scores.num_defined,
                }
                for r in results
            ],
        }
        (out / "cv.json").write_text(json.dumps(summary, indent=2) + "\n")
    return results
