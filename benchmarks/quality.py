"""The synthetic quality benchmark: do self-supervised features detect AUs on unseen people?

Protocol, per corpus (two ``aurep synth`` corpora: the default seed/difficulty and a harder one,
so that a gain is not tuned to one corpus):

1. Identities of fold 3 are the test identities. No pretraining run sees them
   (``--data.init_args.exclude_folds=[3]``); the probe's validation identities are held out of
   the remaining ones (:func:`aurep.data.folds.fold_split`, 15%, seed 0, as ``aurep cv``).
2. Budgets are optimiser steps, never wall-clock: every pretraining config
   (``aurep fit --config configs/pretrain/base.yaml --config configs/pretrain/<fragment>``)
   runs ``--trainer.max_steps=N --trainer.max_epochs=-1``; ``images seen`` = steps x frames
   drawn per step (clips x clip length; the views of a clip count once).
3. Features: the pooled deepest backbone map of every frame through the evaluation image path
   (:func:`aurep.embeddings.extract_embeddings`: the resize and normalisation of training).
4. Probe (:mod:`aurep.evaluation.probe`): per-AU class-balanced logistic regression on
   standardised features, strength chosen on the validation identities, F1 at 0.5 and AUC on
   the test identities, with 10% or 100% of the training identities' frames labelled
   (:func:`aurep.data.folds.sample_label_fraction`, seed 0: the frames ``aurep cv`` trains on).
   Identity accuracy: a linear identity classifier on the same features, trained on some
   videos of the training identities and scored on their held-out videos (lower is better).
5. Baselines in the same run and through the same probe: ``all-positive`` (analytic
   2p/(1+p)), ``pixels`` (16x16 RGB), ``pixels - identity mean``, ``landmarks`` (the 68 stored
   points), ``random init`` (see :func:`random_backbone`), ``supervised (scratch)`` (``aurep
   cv`` with configs/eval/synth_finetune.yaml on fold 3, same steps and frames per step as
   pretraining, best validation checkpoint) and ``supervised ceiling`` (the same with 100% of
   the labels and more steps, listed in both tables); both supervised rows are probed and also
   reported end to end (their own AU head).
6. Configs trained with AU labels (``au_weight > 0``, e.g. rtatl) pretrain once per label
   fraction on a view of the corpus where only the probe's training frames keep their labels
   (:func:`label_view`); their jointly trained AU head is reported as ``<config>, joint AU head``.
7. Every row except the deterministic ones (all-positive, pixels, landmarks: no seed) is run
   with several seeds (pretraining/initialisation seed); tables show the mean over seeds and
   the mean F1's standard deviation.

    .venv/bin/python benchmarks/quality.py --mode quick   # make benchmark-quality-quick
    .venv/bin/python benchmarks/quality.py --mode full    # make benchmark-quality
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import torch
import yaml
from torch.utils.data import DataLoader

from aurep.au import au_column
from aurep.cli import main as aurep_main
from aurep.data.folds import FoldSplit, fold_split, sample_label_fraction
from aurep.data.images import normalise, resize_frames
from aurep.data.labelled import LabelledFrameDataset, collate_frames
from aurep.data.prepared import MANIFEST_FILE, META_FILE, VIDEOS_DIR, PreparedDataset
from aurep.data.transforms import GeometricAugment
from aurep.embeddings import extract_embeddings, untrained_backbone
from aurep.evaluation.cv import run_cv
from aurep.evaluation.probe import (
    ProbeRows,
    all_positive_f1,
    identity_accuracy,
    probe_aus,
    score_probabilities,
)
from aurep.heads.au_classifier import AUClassifier
from aurep.metrics import AUScores
from aurep.models.backbone import Backbone
from aurep.models.checkpoints import load_backbone, read_checkpoint
from aurep.synth import generate_corpus
from aurep.synth.corpus import FLOW_SETTINGS, GENERATOR_VERSION

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 (after the backend is chosen)

REPO = Path(__file__).resolve().parents[1]
PRETRAIN_DIR = REPO / "configs" / "pretrain"
BASE_CONFIG = PRETRAIN_DIR / "base.yaml"
PRETRAIN_FRAGMENTS = {
    "temporal": "heads/temporal.yaml",
    "cross_identity": "heads/cross_identity.yaml",
    "inpainting": "heads/inpainting.yaml",
    "flow": "heads/flow.yaml",
    "landmark_shape": "heads/landmark_shape.yaml",
    "landmark_invariant": "landmark_invariant.yaml",
    "landmark_invariant_flow": "landmark_invariant_flow.yaml",
    "clp": "clp.yaml",
    "rtatl": "rtatl.yaml",
    "all": "all.yaml",
}
"""Row name -> fragment under configs/pretrain, run after :data:`BASE_CONFIG`."""
SUPERVISED_CONFIG = REPO / "configs" / "eval" / "synth_finetune.yaml"
TEST_FOLD = 3
VAL_FRACTION = 0.15  # as AUDataModule / configs/eval/synth_finetune.yaml
SPLIT_SEED = 0
FRACTIONS = (0.1, 1.0)
PIXEL_SIZE = 16
BN_FRAMES = 512
VALIDATIONS = 5  # validation passes of a supervised run (its checkpoint selection)
BASELINES = (
    "all-positive",
    "pixels",
    "pixels - identity mean",
    "landmarks",
    "random init",
    "supervised (scratch)",
    "supervised (scratch), end-to-end",
    "supervised ceiling",
    "supervised ceiling, end-to-end",
)
LINES = ("all-positive", "pixels", "pixels - identity mean", "landmarks", "random init")
LINES += ("supervised (scratch)", "supervised ceiling")
"""Baselines drawn as horizontal lines in the plot."""
JOINT = ", joint AU head"


@dataclass(frozen=True)
class Corpus:
    """One ``aurep synth`` corpus: a name for the tables, its seed and difficulty (0..1)."""

    name: str
    seed: int
    difficulty: float


CORPORA = (Corpus("default", 0, 0.5), Corpus("harder", 1, 0.8))


@dataclass(frozen=True)
class Mode:
    """Sizes of one benchmark mode. steps: budget of every pretraining run and of
    ``supervised (scratch)``; ceiling_steps: of ``supervised ceiling``; clips_per_identity and
    frames: the corpora (40 identities each)."""

    steps: int
    ceiling_steps: int
    seeds: tuple[int, ...]
    configs: tuple[str, ...]
    clips_per_identity: int
    frames: int


MODES = {
    "quick": Mode(20, 40, (0, 1, 2), ("temporal",), 4, 12),
    # 3000 steps: where landmark_invariant's probe stops rising (51.1, 55.8, 58.1, 58.2 F1 at
    # 1000-5000 steps) and a supervised run from scratch has plateaued on its validation
    # identities (docs/quality-log.md, sessions 9-10); the ceiling gets twice that.
    "full": Mode(3000, 6000, (0, 1, 2), tuple(PRETRAIN_FRAGMENTS), 8, 40),
}


@dataclass
class Entry:
    """One probed model at one label fraction. f1, auc: (A,) fractions, NaN = undefined;
    identity: identity accuracy (NaN = not measured); steps / images: its training budget."""

    row: str
    seed: int | None
    fraction: float
    f1: list[float]
    auc: list[float]
    identity: float
    steps: int
    images: int


@dataclass
class CorpusFrames:
    """The N frames of one corpus that are probed, in manifest order.

    labels: (N, A) int8 1/0/-1; subjects, videos: (N,) str; positions: (N,) manifest rows;
    rows: fraction -> the probe's train/val/test rows; identity_rows: (N,) bool, frames of
    the probe's training identities (the identity classifier's frames)."""

    dataset: PreparedDataset
    split: FoldSplit
    labels: np.ndarray
    subjects: np.ndarray
    videos: np.ndarray
    positions: np.ndarray
    rows: dict[float, ProbeRows]
    identity_rows: np.ndarray


def base_settings() -> dict:
    """backbone name, image size and frames per step of configs/pretrain/base.yaml."""
    config = yaml.safe_load(BASE_CONFIG.read_text())
    data = config["data"]["init_args"]
    return {
        "backbone": config["model"]["init_args"]["backbone"],
        "image_size": int(data["image_size"]),
        "frames_per_step": int(data["batch_size"]) * int(data["clip_length"]),
    }


def uses_labels(config: str) -> bool:
    """Whether a pretraining config trains an AU head (``au_weight > 0``; fragment over base)."""
    weight = 0.0
    for path in (BASE_CONFIG, PRETRAIN_DIR / PRETRAIN_FRAGMENTS[config]):
        init = (yaml.safe_load(path.read_text()).get("model") or {}).get("init_args") or {}
        weight = float(init.get("au_weight", weight))
    return weight > 0


def make_corpus(corpus: Corpus, mode: Mode, work: Path) -> Path:
    """Generate (once per generator version and flow settings) the corpus of ``mode``'s size;
    its directory."""
    root = work / "corpora" / f"{corpus.name}-c{mode.clips_per_identity}-f{mode.frames}"
    meta = root / META_FILE
    recorded = json.loads(meta.read_text()) if meta.exists() else {}
    made_by = (recorded.get("generator", {}).get("version"), recorded.get("flow"))
    if made_by != (GENERATOR_VERSION, FLOW_SETTINGS):
        generate_corpus(
            root,
            clips_per_identity=mode.clips_per_identity,
            frames=mode.frames,
            seed=corpus.seed,
            difficulty=corpus.difficulty,
            overwrite=True,
            progress=False,
        )
    return root


def corpus_frames(root: Path) -> CorpusFrames:
    """Frames, labels and probe rows of a corpus (frames with a face, as extraction keeps)."""
    dataset = PreparedDataset(root)
    manifest = dataset.manifest
    split = fold_split(manifest, TEST_FOLD, VAL_FRACTION, SPLIT_SEED, str(root))
    positions = np.flatnonzero(manifest["success"].to_numpy() == 1)
    kept = manifest.iloc[positions]
    subjects = kept["subject"].astype(str).to_numpy()
    train = np.flatnonzero(np.isin(subjects, split.train))
    rows = {}
    for fraction in FRACTIONS:
        sample = sample_label_fraction(pd.Series(subjects[train]), fraction, SPLIT_SEED)
        rows[fraction] = ProbeRows(
            train[sample],
            np.flatnonzero(np.isin(subjects, split.val)),
            np.flatnonzero(np.isin(subjects, split.test)),
        )
    return CorpusFrames(
        dataset=dataset,
        split=split,
        labels=kept[dataset.label_columns].to_numpy(np.int8),
        subjects=subjects,
        videos=kept["video"].astype(str).to_numpy(),
        positions=positions,
        rows=rows,
        identity_rows=np.isin(subjects, split.train),
    )


def evaluate(
    frames: CorpusFrames,
    features: np.ndarray,
    row: str,
    seed: int | None,
    fractions: Sequence[float],
    steps: int = 0,
    images: int = 0,
) -> list[Entry]:
    """Probe (N, D) features at each label fraction, plus their identity accuracy."""
    mask = frames.identity_rows
    identity = identity_accuracy(features[mask], frames.subjects[mask], frames.videos[mask])
    entries = []
    for fraction in fractions:
        result = probe_aus(features, frames.labels, frames.rows[fraction], frames.dataset.au_codes)
        entries.append(entry(row, seed, fraction, result.scores, identity, steps, images))
    return entries


def entry(
    row: str,
    seed: int | None,
    fraction: float,
    scores: AUScores,
    identity: float,
    steps: int,
    images: int,
) -> Entry:
    """An :class:`Entry` from test scores."""
    return Entry(
        row, seed, fraction, scores.f1.tolist(), scores.auc.tolist(), identity, steps, images
    )


def video_arrays(dataset: PreparedDataset, frames: CorpusFrames, read) -> np.ndarray:
    """``read(video)`` -> (T, ...) for every video, stacked and restricted to the probed frames."""
    stacked = np.concatenate([read(video) for video in dataset.videos])
    if len(stacked) != len(dataset.manifest):
        raise ValueError(f"{dataset.root}: per-video arrays do not follow the manifest order")
    return stacked[frames.positions]


def pixel_features(frames: CorpusFrames) -> np.ndarray:
    """(N, 3 * 16 * 16) RGB in [0, 1], resized by the training resize (area average)."""
    dataset = frames.dataset
    small = video_arrays(dataset, frames, lambda v: resize_frames(dataset.frames(v), PIXEL_SIZE))
    return small.reshape(len(small), -1).astype(np.float32) / 255


def identity_centred(features: np.ndarray, subjects: np.ndarray) -> np.ndarray:
    """(N, D) features minus the mean of their subject's frames (labels are not used)."""
    centred = features.copy()
    for subject in np.unique(subjects):
        mine = subjects == subject
        centred[mine] -= features[mine].mean(axis=0)
    return centred


def landmark_features(frames: CorpusFrames) -> np.ndarray:
    """(N, 136) stored landmark coordinates (pixels of the crop)."""
    dataset = frames.dataset
    points = video_arrays(dataset, frames, dataset.landmarks)
    return points.reshape(len(points), -1)


def training_images(frames: CorpusFrames, size: int, count: int, seed: int) -> torch.Tensor:
    """(count, 3, size, size) normalised random frames of the probe's training identities,
    through the evaluation image path."""
    rng = np.random.default_rng(seed)
    candidates = frames.positions[frames.identity_rows]
    chosen = np.sort(rng.choice(candidates, min(count, len(candidates)), replace=False))
    loader = DataLoader(
        LabelledFrameDataset(frames.dataset, chosen, GeometricAugment(size)),
        batch_size=len(chosen),
        collate_fn=collate_frames,
    )
    return normalise(next(iter(loader)).images)


def random_backbone(name: str, frames: CorpusFrames, size: int, seed: int) -> Backbone:
    """An untrained backbone comparable to a trained one
    (:func:`aurep.embeddings.untrained_backbone`: every residual branch active, BatchNorm
    statistics re-estimated on :data:`BN_FRAMES` unlabelled frames of the training identities)."""
    return untrained_backbone(name, training_images(frames, size, BN_FRAMES, seed), seed=seed)


def backbone_features(backbone: Backbone, frames: CorpusFrames, size: int) -> np.ndarray:
    """(N, C) pooled features of the probed frames (the shared evaluation image path)."""
    embeddings = extract_embeddings(backbone, frames.dataset, size, batch_size=256)
    if not np.array_equal(embeddings.subjects, frames.subjects):
        raise ValueError("extracted frames do not match the probed frames")
    return embeddings.features


def checkpoint_features(checkpoint: Path, frames: CorpusFrames) -> tuple[np.ndarray, dict]:
    """Pooled features from a checkpoint's backbone at its training image size; its
    DataModule hyper-parameters."""
    backbone, data = load_backbone(checkpoint)
    size = data.get("image_size") or frames.dataset.image_size
    return backbone_features(backbone, frames, size), data


def label_view(frames: CorpusFrames, fraction: float, out: Path) -> Path:
    """A corpus sharing ``frames``' videos whose labels are unknown (-1) except on the probe's
    training frames at ``fraction``: what a config trained with labels may see."""
    out.mkdir(parents=True, exist_ok=True)
    root = frames.dataset.root
    manifest = frames.dataset.manifest.copy()
    columns = frames.dataset.label_columns
    keep = np.zeros(len(manifest), bool)
    keep[frames.positions[frames.rows[fraction].train]] = True
    manifest.loc[~keep, columns] = -1
    manifest.to_parquet(out / MANIFEST_FILE, index=False)
    videos = out / VIDEOS_DIR
    if not videos.exists():
        videos.symlink_to((root / VIDEOS_DIR).resolve(), target_is_directory=True)
    shutil.copy(root / META_FILE, out / META_FILE)  # written last: the view is complete
    return out


def slug(row: str) -> str:
    """A directory name for a row: ``supervised (scratch)`` -> ``supervised_scratch``."""
    return "_".join("".join(c if c.isalnum() else " " for c in row).split())


def fresh(directory: Path) -> Path:
    """``directory``, emptied (a run must not pick up an older run's checkpoints)."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    return directory


def fit_arguments(fragment: Path, root: Path, run: Path, steps: int, seed: int) -> list[str]:
    """``aurep fit`` base + ``fragment`` on ``root`` without the test fold, every other identity
    pretraining, ``steps`` optimiser steps, logs and checkpoints under ``run``."""
    return [
        "fit",
        f"--config={BASE_CONFIG}",
        f"--config={fragment}",
        f"--data.init_args.root={root}",
        f"--data.init_args.exclude_folds=[{TEST_FOLD}]",
        "--data.init_args.val_fraction=0",  # every non-test identity pretrains
        "--data.init_args.val_clips=0",
        f"--data.init_args.seed={seed}",
        f"--seed_everything={seed}",
        f"--trainer.max_steps={steps}",
        "--trainer.max_epochs=-1",
        f"--trainer.default_root_dir={run}",
        "--trainer.enable_progress_bar=false",
    ]


def finished_checkpoint(run: Path, code: int) -> Path:
    """DIR/checkpoints/last.ckpt of a fit that exited with ``code``; an error if it failed."""
    checkpoint = run / "checkpoints" / "last.ckpt"
    if code != 0 or not checkpoint.exists():
        raise RuntimeError(f"pretraining failed (exit {code}); logs in {run}")
    return checkpoint


def pretrain(config: str, root: Path, run: Path, steps: int, seed: int) -> Path:
    """:func:`fit_arguments` of a config in a fresh ``run``; DIR/checkpoints/last.ckpt."""
    fragment = PRETRAIN_DIR / PRETRAIN_FRAGMENTS[config]
    code = aurep_main(fit_arguments(fragment, root, fresh(run), steps, seed))
    return finished_checkpoint(run, code)


def trained_steps(checkpoint: Path, data: dict) -> tuple[int, int]:
    """(optimiser steps, frames drawn) of a pretraining checkpoint."""
    steps = int(read_checkpoint(checkpoint).get("global_step", 0))
    return steps, steps * int(data["batch_size"]) * int(data["clip_length"])


def supervised(root: Path, run: Path, fraction: float, steps: int, seed: int, batch: int):
    """``aurep cv`` of the fine-tune config on fold ``TEST_FOLD`` for ``steps`` steps of
    ``batch`` frames; the FoldResult (best-validation checkpoint, its test scores)."""
    interval = max(1, steps // VALIDATIONS)
    overrides = [
        f"--data.init_args.root={root}",
        f"--data.init_args.batch_size={batch}",
        f"--seed_everything={seed}",
        f"--trainer.max_steps={steps}",
        "--trainer.max_epochs=-1",
        "--trainer.check_val_every_n_epoch=null",
        f"--trainer.val_check_interval={interval}",
        "--trainer.enable_progress_bar=false",
    ]
    (result,) = run_cv(SUPERVISED_CONFIG, fresh(run), [TEST_FOLD], fraction, overrides)
    return result


def joint_head_scores(
    checkpoint: Path, features: np.ndarray, frames: CorpusFrames, fraction: float
) -> AUScores:
    """Test scores of the AU head a PretrainTask trained jointly (state_dict ``*au_head.*``)."""
    state = read_checkpoint(checkpoint)["state_dict"]
    prefix = next(k for k in state if "au_head." in k).split("au_head.")[0] + "au_head."
    head = AUClassifier(features.shape[1], frames.labels.shape[1])
    head.load_state_dict(
        {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
    )
    test = frames.rows[fraction].test
    with torch.no_grad():
        probability = head.eval()(torch.from_numpy(features[test])).sigmoid().numpy()
    return score_probabilities(probability, frames.labels[test], frames.dataset.au_codes)


class Benchmark:
    """Runs every row of one corpus, keeping the entries in ``self.entries``."""

    def __init__(self, frames: CorpusFrames, root: Path, work: Path, mode: Mode):
        self.frames, self.root, self.work, self.mode = frames, root, work, mode
        self.settings = base_settings()
        self.entries: list[Entry] = []
        self.started = time.time()

    def log(self, entries: list[Entry]) -> None:
        self.entries += entries
        minutes = (time.time() - self.started) / 60
        for e in entries:
            f1 = 100 * np.nanmean(e.f1)
            print(f"  {minutes:5.1f} min  {e.row} seed {e.seed} @ {e.fraction:.0%}: F1 {f1:.1f}")

    def deterministic(self) -> None:
        """all-positive, pixels, pixels - identity mean, landmarks (no seed)."""
        frames = self.frames
        for fraction in FRACTIONS:
            test = frames.labels[frames.rows[fraction].test]
            auc = [0.5] * test.shape[1]  # a constant score
            f1 = all_positive_f1(test).tolist()
            self.log([Entry("all-positive", None, fraction, f1, auc, math.nan, 0, 0)])
        pixels = pixel_features(frames)
        self.log(evaluate(frames, pixels, "pixels", None, FRACTIONS))
        centred = identity_centred(pixels, frames.subjects)
        self.log(evaluate(frames, centred, "pixels - identity mean", None, FRACTIONS))
        self.log(evaluate(frames, landmark_features(frames), "landmarks", None, FRACTIONS))

    def random_init(self, seed: int) -> None:
        size, name = self.settings["image_size"], self.settings["backbone"]
        backbone = random_backbone(name, self.frames, size, seed)
        features = backbone_features(backbone, self.frames, size)
        self.log(evaluate(self.frames, features, "random init", seed, FRACTIONS))

    def supervised(self, row: str, steps: int, seed: int, ceiling: bool) -> None:
        """Fine-tunes from scratch, probed and end to end: one per label fraction, listed in
        its own table; or (``ceiling``) one with every label, listed in every table."""
        batch = self.settings["frames_per_step"]
        for fraction in (1.0,) if ceiling else FRACTIONS:
            run = self.work / "runs" / f"{slug(row)}-{fraction:g}-s{seed}"
            result = supervised(self.root, run, fraction, steps, seed, batch)
            features, _ = checkpoint_features(result.checkpoint, self.frames)
            tables, images = FRACTIONS if ceiling else [fraction], steps * batch
            self.log(evaluate(self.frames, features, row, seed, tables, steps, images))
            own = f"{row}, end-to-end"
            self.log([entry(own, seed, t, result.scores, math.nan, steps, images) for t in tables])

    def pretrained(self, config: str, seed: int) -> None:
        """Pretrain a config (per label fraction if it uses labels) and probe it."""
        labelled = uses_labels(config)
        for fraction in FRACTIONS if labelled else (None,):
            root = self.root
            if labelled:
                root = label_view(self.frames, fraction, self.work / "views" / f"{fraction:g}")
            tag = f"{config}-{'ssl' if fraction is None else f'{fraction:g}'}-s{seed}"
            checkpoint = pretrain(config, root, self.work / "runs" / tag, self.mode.steps, seed)
            features, data = checkpoint_features(checkpoint, self.frames)
            steps, images = trained_steps(checkpoint, data)
            fractions = FRACTIONS if fraction is None else [fraction]
            self.log(evaluate(self.frames, features, config, seed, fractions, steps, images))
            if labelled:
                scores = joint_head_scores(checkpoint, features, self.frames, fraction)
                row = config + JOINT
                self.log([entry(row, seed, fraction, scores, math.nan, steps, images)])

    def run(self) -> list[Entry]:
        self.deterministic()
        for seed in self.mode.seeds:
            self.random_init(seed)
            self.supervised("supervised (scratch)", self.mode.steps, seed, ceiling=False)
            self.supervised("supervised ceiling", self.mode.ceiling_steps, seed, ceiling=True)
            for config in self.mode.configs:
                self.pretrained(config, seed)
        return self.entries


def summarise(entries: list[Entry], fraction: float) -> pd.DataFrame:
    """One row per model at ``fraction``: mean per-AU F1 and the rest over seeds."""
    records = []
    for row in dict.fromkeys(e.row for e in entries):
        mine = [e for e in entries if e.row == row and e.fraction == fraction]
        f1 = np.array([e.f1 for e in mine], dtype=float)
        means = np.nanmean(f1, axis=1)
        records.append(
            {
                "row": row,
                "f1": np.nanmean(f1, axis=0),
                "auc": float(np.nanmean([np.nanmean(e.auc) for e in mine])),
                "identity": float(np.mean([e.identity for e in mine])),
                "steps": mine[0].steps,
                "images": mine[0].images,
                "seeds": len(mine),
                "mean_f1": float(means.mean()),
                "std_f1": float(means.std(ddof=1)) if len(mine) > 1 else 0.0,
            }
        )
    return pd.DataFrame.from_records(records).set_index("row")


def percent(value: float) -> str:
    return "n/a" if not np.isfinite(value) else f"{100 * value:.1f}"


def markdown_table(summary: pd.DataFrame, au_codes: list[int]) -> str:
    """The per-fraction table: F1 per AU, AUC, identity accuracy, steps, images, mean F1."""
    head = ["model", *map(au_column, au_codes), "AUC", "identity acc.", "steps", "images"]
    head.append("mean F1 (± std)")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row, r in summary.iterrows():
        spread = f" ± {100 * r.std_f1:.1f}" if r.seeds > 1 else ""
        cells = [row, *map(percent, r.f1), percent(r.auc), percent(r.identity)]
        cells += [str(r.steps or "-"), str(r.images or "-"), f"**{percent(r.mean_f1)}**{spread}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ordered(entries: list[Entry], configs: Sequence[str]) -> list[Entry]:
    """Entries sorted as the tables list them: baselines, then configs with their joint head."""
    order = [*BASELINES]
    for config in configs:
        order += [config, config + JOINT]
    rank = {row: i for i, row in enumerate(order)}
    return sorted(entries, key=lambda e: rank[e.row])


def plot(results: dict[str, list[Entry]], out: Path) -> None:
    """Mean F1 ± std per config as bars (joint AU heads hatched), baselines as dashed lines
    with their ± std band; a panel per corpus and label fraction, one legend."""
    figure, axes = plt.subplots(
        len(results), len(FRACTIONS), figsize=(12, 4 * len(results)), squeeze=False
    )
    for i, (corpus, entries) in enumerate(results.items()):
        for j, fraction in enumerate(FRACTIONS):
            summary, axis = summarise(entries, fraction), axes[i][j]
            bars = [r for r in summary.index if r not in BASELINES]
            axis.bar(
                range(len(bars)),
                100 * summary.loc[bars, "mean_f1"],
                yerr=100 * summary.loc[bars, "std_f1"],
                capsize=4,
                color="tab:blue",
                hatch=["//" if r.endswith(JOINT) else "" for r in bars],
            )
            axis.set_xticks(range(len(bars)), bars, rotation=30, ha="right", fontsize=8)
            for k, line in enumerate(LINES):
                mean, std = 100 * summary.loc[line, ["mean_f1", "std_f1"]]
                axis.axhline(mean, color=f"C{k + 1}", linestyle="--", linewidth=1, label=line)
                axis.axhspan(mean - std, mean + std, color=f"C{k + 1}", alpha=0.12)
            axis.set_xlim(-0.75, max(len(bars), 3) - 0.25)  # one bar stays narrow
            axis.set_ylabel("mean F1 (%)")
            axis.set_title(f"corpus {corpus}, {fraction:.0%} of the labels", fontsize=10)
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="center right", fontsize=8, title="baselines")
    figure.tight_layout(rect=(0, 0, 0.83, 1))
    figure.savefig(out, dpi=100)
    plt.close(figure)


def report(
    results: dict[str, list[Entry]], frames: dict[str, CorpusFrames], args, mode: Mode, minutes
) -> str:
    """The markdown file: command, settings, one table per corpus and label fraction."""
    command = " ".join(["python", *map(str, sys.argv)]).replace(f"{REPO}/", "")
    corpora = {c.name: c for c in CORPORA}
    text = [
        "# Synthetic quality benchmark: linear probe F1 (%) on identities never seen in pretraining",
        "",
        f"Command: `{command}`",
        "",
        f"Mode {args.mode}: {mode.steps} optimiser steps per pretraining run and for "
        f"`supervised (scratch)`, {mode.ceiling_steps} for `supervised ceiling`; seeds "
        f"{' '.join(map(str, mode.seeds))}. Wall time {minutes:.1f} min on "
        f"{torch.get_num_threads()} torch thread(s). Protocol: the docstring of "
        "benchmarks/quality.py and aurep/evaluation/probe.py.",
        "",
        "Columns: F1 per AU at threshold 0.5 (mean over seeds), mean AUC, identity accuracy of a "
        "linear identity classifier on held-out videos of the training identities (lower = more "
        "person-independent), optimiser steps, images (frames) seen in training, mean F1 over "
        "AUs averaged over seeds ± its standard deviation over seeds. Rows without a spread have "
        "no seed (deterministic features and probe). `end-to-end` rows are the supervised "
        "model's own AU head; `joint AU head` rows the head a config trained beside its "
        "self-supervised losses.",
        "",
        "Rows: `pixels - identity mean` subtracts each identity's mean 16x16 image over its own "
        "frames (no labels; test identities use their own frames). `random init` is resnet18 "
        "built with `zero_init_last=False` and BatchNorm statistics re-estimated on "
        f"{BN_FRAMES} unlabelled training-identity frames (timm's default zero-initialises the "
        "last BN of each residual block, so at init the pooled features see the input through "
        "the stem and the 1x1 downsampling convolutions only). `supervised ceiling` is trained "
        "with 100% of the labels in both tables (an upper bound, not a same-label comparison).",
    ]
    for name, entries in results.items():
        corpus, f = corpora[name], frames[name]
        text += [
            "",
            f"## Corpus `{name}`: `aurep synth --seed {corpus.seed} --difficulty "
            f"{corpus.difficulty} --clips-per-identity {mode.clips_per_identity} --frames "
            f"{mode.frames}`",
            "",
            f"Test identities (fold {TEST_FOLD}): {len(f.split.test)}; probe training "
            f"identities: {len(f.split.train)}; validation identities: {len(f.split.val)}.",
        ]
        for fraction in FRACTIONS:
            labelled = len(f.rows[fraction].train)
            text += ["", f"### {fraction:.0%} of the labels ({labelled} training frames)", ""]
            text.append(markdown_table(summarise(entries, fraction), f.dataset.au_codes))
    return "\n".join(text) + "\n"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=sorted(MODES), default="quick")
    parser.add_argument("--configs", nargs="+", choices=list(PRETRAIN_FRAGMENTS), default=None)
    parser.add_argument("--steps", type=int, default=None, help="override the mode's budget")
    parser.add_argument("--ceiling-steps", type=int, default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--work", type=Path, default=None, help="default runs/quality/<mode>")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (1: on a loaded 2-core machine one thread steps 2.5x faster)",
    )
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/quality.md")
    parser.add_argument("--plot", type=Path, default=REPO / "benchmarks/results/quality.png")
    return parser.parse_args(argv)


def chosen_mode(args: argparse.Namespace) -> Mode:
    """The mode with the command line's overrides."""
    mode = MODES[args.mode]
    overrides = {
        "configs": tuple(args.configs) if args.configs else None,
        "steps": args.steps,
        "ceiling_steps": args.ceiling_steps,
        "seeds": tuple(args.seeds) if args.seeds else None,
    }
    return replace(mode, **{k: v for k, v in overrides.items() if v is not None})


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    mode = chosen_mode(args)
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter")  # intended
    torch.set_num_threads(args.threads)
    work = (args.work or REPO / "runs" / "quality" / args.mode).resolve()
    started = time.time()
    results, frames = {}, {}
    for corpus in CORPORA:
        print(f"corpus {corpus.name}", flush=True)
        root = make_corpus(corpus, mode, work)
        frames[corpus.name] = corpus_frames(root)
        bench = Benchmark(frames[corpus.name], root, work / corpus.name, mode)
        results[corpus.name] = ordered(bench.run(), mode.configs)
        raw = work / "entries.json"
        raw.write_text(json.dumps({k: [asdict(e) for e in v] for k, v in results.items()}))
    minutes = (time.time() - started) / 60
    text = report(results, frames, args, mode, minutes)
    print(text)
    args.out.write_text(text)
    plot(results, args.plot)


if __name__ == "__main__":
    main()
