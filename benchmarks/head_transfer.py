"""Does a landmark head's fit carry over to people the backbone never saw?

A :class:`~aurep.heads.landmark_shape.LandmarkShapeHead` logs the share of its standardised
target's variance that it explains, on the pretraining identities. This script measures that
share, 1 - mean squared error / mean squared target, on the quality benchmark's frames of the
probe's training identities (folds 1-2 less the probe's validation identities: pretraining
identities of a run on the same corpus that left out fold 3) and of its unseen ones (fold 3).
A large gap says the features learned the training people's faces more than their
expressions. ``unseen_by_direction`` splits the unseen share along the target's principal
directions (expression modes), largest first, down to 1e-4 of the largest variance: which modes
the features carry and which they miss.

Targets are the head's own (:meth:`LandmarkShapeHead.targets`, standardised with its running
statistics), per video: ``clip_mean`` and ``clip_relative`` treat the whole video as the clip
(prediction centred on it too for ``clip_relative``), ``subject_relative`` all of the subject's
probed frames (prediction centred too), ``video_mean`` and ``subject_mean`` take
the mean landmarks of the video's or the subject's probed frames. The checkpoint does not store
a head's reference, so it is given.

    .venv/bin/python benchmarks/head_transfer.py CKPT --head landmark_shape \\
        --reference clip_relative [--corpus data/synth] [--log runs/exp/transfer.jsonl]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import quality  # noqa: E402

from aurep.data.batch import ClipSpec  # noqa: E402
from aurep.heads.landmark_shape import REFERENCES, RELATIVE, LandmarkShapeHead  # noqa: E402
from aurep.models.checkpoints import load_backbone  # noqa: E402


def trained_head(checkpoint: Path, name: str, reference: str) -> LandmarkShapeHead:
    """The checkpoint's landmark head ``name`` (eval mode), rebuilt with ``reference``."""
    state = quality.read_checkpoint(checkpoint)["state_dict"]
    prefix = f"model.heads.{name}."
    own = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    if "standardise.running_mean" not in own:
        heads = sorted({k.split(".")[2] for k in state if k.startswith("model.heads.")})
        raise SystemExit(f"{checkpoint}: no landmark head {name!r} (its heads: {heads})")
    hidden = 0 if "regressor.weight" in own else int(own["regressor.0.weight"].shape[0])
    # A whitened head's floor is not stored and not needed: the fit is measured per coordinate.
    whiten = 1.0 if "target_covariance.covariance" in own else None
    head = LandmarkShapeHead(hidden_dim=hidden, reference=reference, whiten=whiten)
    backbone, _ = load_backbone(checkpoint)
    head.attach(backbone, ClipSpec(clip_length=1, image_size=64, num_rois=0))
    head.load_state_dict(own)
    return head.eval()


@torch.no_grad()
def video_fit(
    head: LandmarkShapeHead, features: np.ndarray, points: np.ndarray, mean: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """One video's (or, for ``subject_relative``, one subject's) frames as one clip: features
    (F, C), landmarks (F, 68, 2), the reference's mean landmarks (68, 2) or None ->
    (prediction, target), each (F, 136) standardised."""
    means = None if mean is None else torch.from_numpy(mean).float()[None]
    one_clip = torch.zeros(1, dtype=torch.int64)
    target = head.targets(torch.from_numpy(points).float()[None], means, one_clip)
    prediction = head.regressor(torch.from_numpy(features).float())
    if head.reference in RELATIVE:
        prediction = head.centred(prediction[None], one_clip)[0]
    return prediction.numpy(), target.numpy()


def explained(prediction: np.ndarray, target: np.ndarray) -> float:
    """1 - mean squared error / mean squared target (targets are centred or standardised)."""
    return float(1 - ((prediction - target) ** 2).mean() / (target**2).mean())


def by_direction(prediction: np.ndarray, target: np.ndarray, floor: float = 1e-4) -> list:
    """(N, D) each -> ``[variance / largest variance, explained share]`` along each principal
    direction of ``target`` whose variance is at least ``floor`` times the largest."""
    variances, directions = np.linalg.eigh(np.cov(target.T))
    order = np.argsort(variances)[::-1]
    variances, directions = variances[order], directions[:, order]
    kept = variances >= floor * variances[0]
    along_prediction, along_target = prediction @ directions[:, kept], target @ directions[:, kept]
    shares = 1 - ((along_prediction - along_target) ** 2).mean(0) / (along_target**2).mean(0)
    relative = variances[kept] / variances[0]
    return [[float(f"{r:.1e}"), round(float(e), 2)] for r, e in zip(relative, shares, strict=True)]


def transfer(
    frames: quality.CorpusFrames, head: LandmarkShapeHead, features: np.ndarray
) -> dict[str, float | list]:
    """Explained share on the probe's training identities and on its unseen ones (in all and
    by principal direction)."""
    points = quality.landmark_features(frames).reshape(-1, 68, 2)
    prediction, target = np.zeros((2, len(points), 136), np.float32)
    units = frames.subjects if head.reference == "subject_relative" else frames.videos
    for unit in np.unique(units):
        rows = units == unit
        group = {"video_mean": rows, "subject_mean": frames.subjects == frames.subjects[rows][0]}
        mean = points[group[head.reference]].mean(axis=0) if head.reference in group else None
        prediction[rows], target[rows] = video_fit(head, features[rows], points[rows], mean)
    unseen = np.zeros(len(points), bool)
    unseen[frames.rows[1.0].test] = True
    return {
        "training_identities": round(
            explained(prediction[frames.identity_rows], target[frames.identity_rows]), 3
        ),
        "unseen_identities": round(explained(prediction[unseen], target[unseen]), 3),
        "unseen_by_direction": by_direction(prediction[unseen], target[unseen]),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--head", default="landmark_shape", help="the head's name in the config")
    parser.add_argument("--reference", choices=REFERENCES, required=True)
    parser.add_argument("--corpus", type=Path, default=Path("data/synth"))
    parser.add_argument("--log", type=Path, default=Path("runs/exp/transfer.jsonl"))
    args = parser.parse_args(argv)
    head = trained_head(args.checkpoint, args.head, args.reference)
    frames = quality.corpus_frames(args.corpus.resolve())
    features, _ = quality.checkpoint_features(args.checkpoint, frames)
    line = {
        "checkpoint": str(args.checkpoint),
        "head": args.head,
        "reference": args.reference,
        "corpus": str(args.corpus),
        **transfer(frames, head, features),
    }
    print(json.dumps(line))
    args.log.parent.mkdir(parents=True, exist_ok=True)
    with args.log.open("a") as out:
        out.write(json.dumps(line) + "\n")
    return line


if __name__ == "__main__":
    main()
