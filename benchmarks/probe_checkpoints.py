"""Probe pretraining checkpoints with the quality benchmark's protocol, beside its baselines.

For research iterations between full benchmark runs: each checkpoint given (any
``aurep fit`` run on the corpus with ``--data.init_args.exclude_folds=[3]``) is probed exactly as
benchmarks/quality.py probes its rows (same frames, split, probe, identity classifier), next to
the baselines of the same corpus in the same run, at 10% and 100% of the labels. One line per
row and fraction: mean F1 (%), mean AUC (%), identity accuracy (%), appended as JSON lines to
``--log`` so a research log can quote them. ``--centre`` adds, per checkpoint, the row of its
features minus each identity's mean feature (as the ``pixels - identity mean`` baseline).

    .venv/bin/python benchmarks/probe_checkpoints.py --corpus data/synth \
        NAME=runs/exp/NAME/checkpoints/last.ckpt ...
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import quality  # noqa: E402 (the benchmark's protocol, imported from its script)

BASELINES = ("pixels", "pixels - identity mean", "landmarks", "random init")


def baseline_features(frames: quality.CorpusFrames, size: int) -> dict[str, np.ndarray]:
    pixels = quality.pixel_features(frames)
    backbone = quality.random_backbone("resnet18", frames, size, seed=0)
    return {
        "pixels": pixels,
        "pixels - identity mean": quality.identity_centred(pixels, frames.subjects),
        "landmarks": quality.landmark_features(frames),
        "random init": quality.backbone_features(backbone, frames, size),
    }


def summary(entry: quality.Entry) -> dict:
    return {
        "row": entry.row,
        "fraction": entry.fraction,
        "mean_f1": round(100 * float(np.nanmean(entry.f1)), 1),
        "mean_auc": round(100 * float(np.nanmean(entry.auc)), 1),
        "identity_acc": round(100 * float(entry.identity), 1),
        "steps": entry.steps,
    }


def checkpoint_rows(
    frames: quality.CorpusFrames, name: str, path: Path, centre: bool
) -> dict[str, tuple[np.ndarray, int]]:
    """Row name -> (features (N, C) of the probed frames, the checkpoint's optimiser steps):
    ``name`` and, with ``centre``, ``name - identity mean``."""
    features, _ = quality.checkpoint_features(path, frames)
    steps = int(quality.read_checkpoint(path)["global_step"])
    rows = {name: (features, steps)}
    if centre:
        rows[f"{name} - identity mean"] = (
            quality.identity_centred(features, frames.subjects),
            steps,
        )
    return rows


def probe_rows(
    frames: quality.CorpusFrames,
    rows: dict[str, tuple[np.ndarray, int]],
    corpus: Path,
    log: Path,
) -> list[dict]:
    """Probe every row at each label fraction; each :func:`summary` line is printed and
    appended to ``log`` (JSON lines) as soon as it is known, and returned."""
    lines = []
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as out:
        for name, (features, steps) in rows.items():
            for entry in quality.evaluate(frames, features, name, 0, quality.FRACTIONS, steps):
                line = {"corpus": str(corpus), **summary(entry)}
                print(json.dumps(line), flush=True)
                out.write(json.dumps(line) + "\n")
                lines.append(line)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=Path("data/synth"))
    parser.add_argument("--size", type=int, default=64, help="image side of the random init row")
    parser.add_argument("--no-baselines", action="store_true")
    parser.add_argument(
        "--centre",
        action="store_true",
        help="also probe each checkpoint's features minus each identity's mean feature",
    )
    parser.add_argument("--log", type=Path, default=Path("runs/exp/probes.jsonl"))
    parser.add_argument("checkpoints", nargs="*", metavar="NAME=CKPT")
    args = parser.parse_args()
    frames = quality.corpus_frames(args.corpus.resolve())
    rows: dict[str, tuple[np.ndarray, int]] = {}
    if not args.no_baselines:
        rows |= {k: (v, 0) for k, v in baseline_features(frames, args.size).items()}
    for item in args.checkpoints:
        name, _, path = item.partition("=")
        rows |= checkpoint_rows(frames, name, Path(path), args.centre)
    probe_rows(frames, rows, args.corpus, args.log)


if __name__ == "__main__":
    main()
