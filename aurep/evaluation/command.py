"""``aurep cv``: k-fold AU detection from an eval config, with per-AU result tables.

Example: ``aurep cv --config configs/eval/synth_linear.yaml --folds 1 2 3 --out runs/cv --
--model.init_args.pretrained_ckpt=runs/pretrain/last.ckpt`` (LightningCLI overrides after ``--``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

HELP = (
    "cross-validate an AU detector (fit, select on validation, test per fold) and tabulate F1/AUC"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="eval YAML config (configs/eval/...)")
    parser.add_argument(
        "--folds", type=int, nargs="+", default=[1, 2, 3], help="test folds to run (default 1 2 3)"
    )
    parser.add_argument(
        "--label-fraction",
        type=float,
        default=None,
        help="share of the training subjects' labelled frames to train on (default: the config's)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="run directory for checkpoints, logs and tables (default runs/cv/<config>-<time>)",
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        help="LightningCLI overrides after --, e.g. -- --trainer.max_epochs=5",
    )


def run(args: argparse.Namespace) -> int:
    from aurep.evaluation.cv import run_cv

    out = args.out or Path("runs/cv") / f"{Path(args.config).stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    results = run_cv(args.config, out, args.folds, args.label_fraction, args.overrides)
    for result in results:
        print(f"fold {result.fold}: test {result.scores.describe_mean()}")
    print(f"tables: {out / 'results.md'}, {out / 'f1.csv'}, {out / 'auc.csv'}")
    return 0
