"""The synthetic quality benchmark: does self-supervised pretraining help AU detection?

Protocol (all on the default synthetic corpus, ``aurep synth`` defaults):
1. Identities of fold 3 are the *unseen* test identities: no pretraining run sees them.
2. Every pretraining config (each head alone, clp, rtatl, all) trains through the real CLI
   (``aurep fit --config configs/pretrain/NAME.yaml``) for the same wall-clock budget on the other
   identities (``--data.init_args.exclude_subjects``).
3. Linear probe (frozen backbone, BatchNorm1d + Linear on pooled features, the ``linear`` mode of
   the AU detector without augmentation): features are extracted once per model, the probe trains
   on 10% or 100% of the training identities' labelled frames (sampled by subject), the epoch is
   chosen on held-out validation identities, and per-AU F1 (threshold 0.5, pooled over frames)
   is reported on the unseen identities. Baseline rows: the same probe on a randomly initialised
   backbone, and a fully supervised model trained from scratch (``aurep cv`` on fold 3 with
   configs/eval/synth_finetune.yaml, same wall-clock budget as one pretraining run).

    .venv/bin/python benchmarks/quality.py --out benchmarks/results/quality.md
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from aurep.au import au_column
from aurep.cli import main as aurep_main
from aurep.data.folds import fold_split, sample_label_fraction
from aurep.data.prepared import PreparedDataset
from aurep.embeddings import load_backbone
from aurep.heads import AUClassifier, masked_bce, pos_weight_from_labels
from aurep.metrics import AUDetectionMetrics, AUScores
from aurep.models import Backbone
from aurep.synth import generate_corpus

REPO = Path(__file__).resolve().parents[1]
CONFIGS = ("temporal", "cross_identity", "inpainting", "flow", "clp", "rtatl", "all")
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def minutes(value: float) -> str:
    """Lightning's max_time string DD:HH:MM:SS for ``value`` minutes."""
    seconds = int(value * 60)
    return f"00:{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def pretrain(name: str, corpus: Path, work: Path, budget: float, excluded: list[str]) -> Path:
    """Run ``aurep fit`` on configs/pretrain/NAME.yaml for ``budget`` minutes; the last ckpt."""
    checkpoint = work / "runs" / "pretrain" / name / "checkpoints" / "last.ckpt"
    if checkpoint.exists():
        return checkpoint
    cwd = Path.cwd()
    os.chdir(work)
    try:
        code = aurep_main(
            [
                "fit",
                f"--config={REPO / 'configs' / 'pretrain' / f'{name}.yaml'}",
                f"--data.init_args.root={corpus}",
                f"--data.init_args.exclude_subjects=[{','.join(excluded)}]",
                "--trainer.max_epochs=-1",
                f"--trainer.max_time={minutes(budget)}",
                "--trainer.enable_progress_bar=false",
            ]
        )
    finally:
        os.chdir(cwd)
    if code != 0 or not checkpoint.exists():
        raise RuntimeError(f"pretraining {name} failed (exit {code})")
    return checkpoint


def backbone_from(checkpoint: Path | None, name: str, seed: int) -> Backbone:
    """The pretrained backbone of a PretrainTask checkpoint, or a random ``name`` (``None``)."""
    torch.manual_seed(seed)
    return Backbone(name) if checkpoint is None else load_backbone(checkpoint)[0]


@torch.no_grad()
def extract(backbone: Backbone, dataset: PreparedDataset, size: int, batch: int = 256):
    """Pooled features (N, C) of every manifest row, in manifest order."""
    backbone.eval()
    features = []
    for video, length in tqdm(dataset.video_lengths.items(), desc="features", leave=False):
        frames = torch.from_numpy(dataset.frames(video)).permute(0, 3, 1, 2).float() / 255
        for start in range(0, length, batch):
            images = frames[start : start + batch]
            images = torch.nn.functional.interpolate(
                images, size=(size, size), mode="bilinear", antialias=True, align_corners=False
            )
            features.append(backbone((images - MEAN) / STD).pooled)
    return torch.cat(features)


def probe(features, labels, mask, rows, au_codes, epochs: int = 300, seed: int = 0) -> AUScores:
    """Train BN + Linear on ``rows['train']``, pick the epoch on ``rows['val']``, test."""
    torch.manual_seed(seed)
    train, val, test = (torch.as_tensor(rows[k]) for k in ("train", "val", "test"))
    model = AUClassifier(features.shape[1], len(au_codes))
    pos_weight = pos_weight_from_labels(labels[train], mask[train])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2, weight_decay=1e-4)

    def scores(index) -> AUScores:
        model.eval()
        metrics = AUDetectionMetrics(au_codes, auc=False)
        with torch.no_grad():
            metrics.update(model(features[index]).sigmoid(), labels[index], mask[index])
        model.train()
        return metrics.compute()

    best, best_state = -1.0, None
    for epoch in range(epochs):
        optimizer.zero_grad()
        masked_bce(model(features[train]), labels[train], mask[train], pos_weight).backward()
        optimizer.step()
        if epoch % 10 == 9:
            val_f1 = scores(val).mean_f1
            if val_f1 >= best:  # ties: prefer the longer-trained probe
                best = val_f1
                best_state = {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    return scores(test)


def supervised(corpus: Path, work: Path, budget: float, fraction: float) -> AUScores:
    """Train the AU detector from scratch on fold 3's training identities (``aurep cv``)."""
    out = work / f"supervised_{fraction:g}"
    f1_table = out / "f1.csv"
    if not f1_table.exists():
        code = aurep_main(
            [
                "cv",
                f"--config={REPO / 'configs' / 'eval' / 'synth_finetune.yaml'}",
                "--folds",
                "3",
                f"--label-fraction={fraction}",
                f"--out={out}",
                "--",
                f"--data.init_args.root={corpus}",
                "--trainer.max_epochs=-1",
                f"--trainer.max_time={minutes(budget)}",
                "--trainer.enable_progress_bar=false",
            ]
        )
        if code != 0:
            raise RuntimeError(f"supervised baseline failed (exit {code})")
    table = pd.read_csv(f1_table, index_col=0)
    row = table.iloc[0]
    codes = [int(c[2:]) for c in table.columns if c.startswith("AU") and len(c) == 4]
    f1 = np.array([row[au_column(c)] for c in codes], dtype=float)
    nan = np.full(len(codes), np.nan)
    return AUScores(codes, f1, nan, nan, nan, nan)


def markdown(results: dict[str, AUScores], minutes_spent: dict[str, float], title: str) -> str:
    codes = next(iter(results.values())).au_codes
    head = ["model", "minutes", *[au_column(c) for c in codes], "mean F1"]
    lines = [f"### {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, scores in results.items():
        cells = [f"{100 * v:.1f}" if np.isfinite(v) else "n/a" for v in scores.f1]
        lines.append(
            f"| {name} | {minutes_spent.get(name, 0):.1f} | "
            + " | ".join(cells)
            + f" | **{100 * scores.mean_f1:.1f}** |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=REPO / "data" / "synth")
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "quality")
    parser.add_argument("--pretrain-minutes", type=float, default=4.0)
    parser.add_argument("--image-size", type=int, default=64, help="as in configs/pretrain")
    parser.add_argument("--configs", nargs="*", default=list(CONFIGS))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    started = time.time()
    corpus, work = args.corpus.resolve(), args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    if not (corpus / "meta.json").exists():
        generate_corpus(corpus, overwrite=True)
    dataset = PreparedDataset(corpus)
    split = fold_split(dataset.manifest, fold=3, val_fraction=0.15, seed=0, source=str(corpus))
    subjects = dataset.manifest["subject"].astype(str)
    labels_np = dataset.manifest[dataset.label_columns].to_numpy()
    labels = torch.as_tensor(labels_np.clip(0, 1), dtype=torch.float32)
    mask = torch.as_tensor(labels_np != -1)
    rows_by_fraction = {}
    for fraction in (0.1, 1.0):
        train_rows = np.flatnonzero(subjects.isin(split.train))
        keep = sample_label_fraction(subjects.iloc[train_rows], fraction, seed=0)
        rows_by_fraction[fraction] = {
            "train": train_rows[keep],
            "val": np.flatnonzero(subjects.isin(split.val)),
            "test": np.flatnonzero(subjects.isin(split.test)),
        }
    spent: dict[str, float] = {}
    checkpoints: dict[str, Path | None] = {"random init": None}
    for name in args.configs:
        tic = time.time()
        checkpoints[name] = pretrain(name, corpus, work, args.pretrain_minutes, split.test)
        spent[name] = (time.time() - tic) / 60
    results: dict[float, dict[str, AUScores]] = {0.1: {}, 1.0: {}}
    supervised_minutes = {}
    for fraction in (0.1, 1.0):
        tic = time.time()
        results[fraction]["supervised (scratch)"] = supervised(
            corpus, work, args.pretrain_minutes, fraction
        )
        supervised_minutes[fraction] = (time.time() - tic) / 60
    for name, checkpoint in checkpoints.items():
        backbone = backbone_from(checkpoint, "resnet18", seed=0)
        features = extract(backbone, dataset, args.image_size)
        for fraction, rows in rows_by_fraction.items():
            scores = probe(features, labels, mask, rows, dataset.au_codes)
            results[fraction][name] = scores
            print(f"{name} @ {fraction:.0%}: {scores.describe_mean()}", flush=True)
    ordered = ["random init", "supervised (scratch)", *args.configs]
    text = [
        "# Synthetic quality benchmark: per-AU F1 (%) on identities never seen in pretraining",
        "",
        f"Command: `python {' '.join(sys.argv)}`",
        f"Total wall time: {(time.time() - started) / 60:.1f} min on "
        f"{torch.get_num_threads()} CPU threads. Pretraining budget per config: "
        f"{args.pretrain_minutes} min; the supervised baseline gets the same budget.",
        f"Test identities (fold 3): {len(split.test)}; probe training identities: "
        f"{len(split.train)}; validation identities: {len(split.val)}.",
        "",
    ]
    for fraction in (0.1, 1.0):
        table = {k: results[fraction][k] for k in ordered if k in results[fraction]}
        minutes_spent = {**spent, "supervised (scratch)": supervised_minutes[fraction]}
        text.append(
            markdown(table, minutes_spent, f"Linear probe with {fraction:.0%} of the labels")
        )
    report = "\n".join(text)
    print(report)
    if args.out:
        args.out.write_text(report)


if __name__ == "__main__":
    main()
