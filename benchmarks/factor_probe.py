"""What changes within a video that frozen features follow: AUs, or the synthetic generator's
unlabelled factors (gaze, blinks, head turns, lighting, alignment jitter)?

A diagnostic for heads that stay at chance on the AU probe while their loss falls (the temporal
contrast tells a clip's frames apart by *something*). For a synthetic corpus every frame's
hidden factors are replayed from the generator (each video is a pure function of the corpus
seed, its identity and its clip number: :func:`aurep.synth.corpus.render_clip`). Features and
factors are centred on each video (what all frames of a video share, identity included, is
removed), then a ridge regression per factor group is fitted on the probe's training
identities, its strength chosen on the validation identities, and scored as R² (share of the
within-video variance explained, pooled over the group's columns) on the unseen fold-3
identities: the split of benchmarks/quality.py. A row that explains gaze or head turns much
better than AU intensity has learned the nuisance.

    .venv/bin/python benchmarks/factor_probe.py --corpus data/synth \\
        NAME=runs/exp/NAME/checkpoints/last.ckpt ...

Rows: ``pixels`` and ``random init`` (as benchmarks/probe_checkpoints.py), then each checkpoint.
One JSON line per row is appended to ``--log``; a markdown table is printed.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np
from sklearn.linear_model import Ridge

sys.path.insert(0, str(Path(__file__).resolve().parent))
import quality  # noqa: E402 (the benchmark's corpus, split and features)

from aurep.au import OCCURRENCE_THRESHOLD  # noqa: E402
from aurep.synth.corpus import SynthSettings, clip_controls  # noqa: E402

ALPHAS = (1e-1, 1e0, 1e1, 1e2, 1e3, 1e4)
GROUPS = ("AU intensity", "gaze", "blink", "head turn", "lighting", "alignment")
VIDEO_NAME = re.compile(r"S(\d+)_C(\d+)")


def video_factors(settings: SynthSettings, video: str) -> dict[str, np.ndarray]:
    """group -> (T, k) hidden factors of one synthetic video, replayed from the generator
    (:func:`aurep.synth.corpus.clip_controls`, the draws :func:`aurep.synth.corpus.render_clip` starts with)."""
    match = VIDEO_NAME.fullmatch(video)
    if match is None:
        raise ValueError(f"{video}: not a synthetic video name (S<identity>_C<clip>)")
    identity, clip = (int(part) for part in match.groups())
    _, motion, nuisance = clip_controls(settings, identity, clip)
    return {
        "AU intensity": motion.intensity,
        "gaze": motion.gaze,
        "blink": motion.blink[:, None],
        "head turn": np.stack([nuisance.yaw, nuisance.pitch], 1),
        "lighting": nuisance.light,
        "alignment": np.column_stack([nuisance.rotation, nuisance.shift, nuisance.scale]),
    }


def corpus_factors(frames: quality.CorpusFrames) -> dict[str, np.ndarray]:
    """group -> (N, k) factors of the probed frames, in their order."""
    meta = json.loads((frames.dataset.root / "meta.json").read_text())
    recorded = meta.get("generator")
    if meta.get("source") != "synth" or recorded is None:
        raise ValueError(f"{frames.dataset.root}: not a synthetic corpus (meta.json source)")
    settings = SynthSettings(**{k: v for k, v in recorded.items() if k != "version"})
    per_video = {video: video_factors(settings, video) for video in frames.dataset.videos}
    factors = {
        group: quality.video_arrays(frames.dataset, frames, lambda v, g=group: per_video[v][g])
        for group in GROUPS
    }
    replayed = (factors["AU intensity"] >= OCCURRENCE_THRESHOLD).astype(np.int8)
    if not np.array_equal(replayed, frames.labels):
        raise ValueError(
            f"{frames.dataset.root}: the replayed AU curves do not match the stored labels (a "
            "corpus of another generator version?): regenerate it with `aurep synth`"
        )
    return factors


def video_centred(values: np.ndarray, videos: np.ndarray) -> np.ndarray:
    """(N, D) float64 minus the mean of each frame's video."""
    return quality.identity_centred(values.astype(np.float64), videos)


def r_squared(prediction: np.ndarray, target: np.ndarray) -> float:
    """Pooled over columns: 1 - residual sum of squares / total sum of squares (targets are
    centred per video already)."""
    residual = prediction.reshape(target.shape) - target  # one-column fits predict (N,)
    return float(1 - (residual**2).sum() / max((target**2).sum(), 1e-12))


def factor_scores(
    features: np.ndarray, factors: dict[str, np.ndarray], frames: quality.CorpusFrames
) -> dict[str, float]:
    """group -> test R² of a ridge regression from video-centred features, strength chosen on
    the validation identities."""
    rows = frames.rows[1.0]
    x = video_centred(features, frames.videos)
    scale = x[rows.train].std(axis=0)
    moving = scale > 1e-6 * scale.max()  # columns constant within videos: rounding noise only
    x = x[:, moving] / scale[moving]
    scores = {}
    for group, values in factors.items():
        y = video_centred(values.reshape(len(values), -1), frames.videos)
        y = y[:, y[rows.train].std(axis=0) > 0]  # a factor this corpus never moves
        if y.shape[1] == 0:
            scores[group] = float("nan")
            continue
        fits = [Ridge(alpha=alpha).fit(x[rows.train], y[rows.train]) for alpha in ALPHAS]
        best = max(fits, key=lambda fit: r_squared(fit.predict(x[rows.val]), y[rows.val]))
        scores[group] = r_squared(best.predict(x[rows.test]), y[rows.test])
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=Path("data/synth"))
    parser.add_argument("--size", type=int, default=64, help="image side of the random init row")
    parser.add_argument("--no-baselines", action="store_true")
    parser.add_argument("--log", type=Path, default=Path("runs/exp/factors.jsonl"))
    parser.add_argument("checkpoints", nargs="*", metavar="NAME=CKPT")
    args = parser.parse_args()
    frames = quality.corpus_frames(args.corpus.resolve())
    factors = corpus_factors(frames)
    rows: dict[str, np.ndarray] = {}
    if not args.no_baselines:
        rows["pixels"] = quality.pixel_features(frames)
        backbone = quality.random_backbone("resnet18", frames, args.size, seed=0)
        rows["random init"] = quality.backbone_features(backbone, frames, args.size)
    for item in args.checkpoints:
        name, _, path = item.partition("=")
        rows[name] = quality.checkpoint_features(Path(path), frames)[0]
    print("| features | " + " | ".join(f"R² {group}" for group in GROUPS) + " |")
    print("|---|" + "---|" * len(GROUPS))
    args.log.parent.mkdir(parents=True, exist_ok=True)
    with args.log.open("a") as log:
        for name, features in rows.items():
            scores = factor_scores(features, factors, frames)
            cells = " | ".join(f"{100 * scores[group]:.1f}" for group in GROUPS)
            print(f"| {name} | {cells} |", flush=True)
            line = {"corpus": str(args.corpus), "row": name}
            log.write(json.dumps(line | {g: round(100 * s, 1) for g, s in scores.items()}) + "\n")


if __name__ == "__main__":
    main()
