"""The synthetic corpus: identities x clips of aligned face video with exact AU labels.

Every video is a pure function of (seed, identity, clip): its random generator is derived from
``np.random.SeedSequence(seed, spawn_key=(identity, clip))`` (identity appearance from
``(seed, identity)``), so the bytes written do not depend on the number of worker processes.
Output is a prepared dataset (see :mod:`aurep.data.prepared`): subjects ``S000``.., videos
``S000_C00``.., identities spread over folds 1-3 by a seeded permutation.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from aurep.au import OCCURRENCE_THRESHOLD, SYNTH_AUS
from aurep.data.flow import video_flow_targets
from aurep.data.prepared import DatasetError, PreparedDatasetWriter
from aurep.prepare.faces.align import DEFAULT_MARGIN, DEFAULT_POINTS
from aurep.synth.dynamics import ClipMotion, sample_motion
from aurep.synth.identity import Identity, sample_identity
from aurep.synth.nuisance import (
    ClipNuisance,
    NoiseBank,
    degrade,
    sample_background,
    sample_nuisance,
)
from aurep.synth.render import FaceRenderer
from aurep.workers import WorkerDied, run_in_workers

GENERATOR_VERSION = 2  # 2: faces framed on the alignment template (1: design square)
# Farneback, not prepare's DIS default: on these rendered faces DIS's frame-to-frame flow is
# uncorrelated with the change of landmark shape (r = 0.03 over 80 videos), Farneback's is not
# (r = 0.52); docs/quality-log.md, session 5.
FLOW_SETTINGS = {"delta": 1, "grid": 28, "method": "farneback"}
MIN_SIZE = 32
_FOLD_STREAM = 2**32 - 1  # spawn key of the fold permutation, apart from identity numbers


@dataclass(frozen=True)
class SynthSettings:
    """Corpus size and generator knobs (stored in the dataset's meta.json).

    identities, clips_per_identity, frames (per clip): counts >= 1; size: crop side in px
    (>= 32); seed: master seed; difficulty: 0..1, scales identity confound and nuisances.
    """

    identities: int = 40
    clips_per_identity: int = 8
    frames: int = 40
    size: int = 112
    seed: int = 0
    difficulty: float = 0.5

    def __post_init__(self):
        for name in ("identities", "clips_per_identity", "frames"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.size < MIN_SIZE:
            raise ValueError(f"size must be at least {MIN_SIZE} px, got {self.size}")
        if not 0.0 <= self.difficulty <= 1.0:
            raise ValueError(f"difficulty must be in [0, 1], got {self.difficulty}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")


def subject_name(identity: int) -> str:
    return f"S{identity:03d}"


def video_name(identity: int, clip: int) -> str:
    return f"{subject_name(identity)}_C{clip:02d}"


def identity_of(seed: int, identity: int, difficulty: float) -> Identity:
    """The appearance of identity number ``identity`` under ``seed``."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(identity,)))
    return sample_identity(rng, difficulty)


def assign_folds(identities: int, seed: int) -> np.ndarray:
    """(identities,) fold 1, 2 or 3 per identity, balanced, by a seeded permutation."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_FOLD_STREAM,)))
    folds = np.empty(identities, np.int8)
    folds[rng.permutation(identities)] = np.arange(identities) % 3 + 1
    return folds


@dataclass(frozen=True)
class SynthVideo:
    """One rendered clip: frames uint8 (T, S, S, 3) RGB; landmarks float32 (T, 68, 2) pixels;
    intensity float32 (T, 15) (SYNTH_AUS order); occurrence int8 (T, 15) = intensity >= 2."""

    frames: np.ndarray
    landmarks: np.ndarray
    intensity: np.ndarray
    occurrence: np.ndarray


def clip_controls(
    settings: SynthSettings, identity: int, clip: int
) -> tuple[np.random.Generator, ClipMotion, ClipNuisance]:
    """The random stream of clip ``clip`` of identity ``identity`` and its first draws: the
    per-frame AU curves, blinks and gaze (motion), then the nuisances. :func:`render_clip`
    continues the stream; analyses replay a clip's hidden factors from here."""
    rng = np.random.default_rng(np.random.SeedSequence(settings.seed, spawn_key=(identity, clip)))
    motion = sample_motion(rng, settings.frames)
    nuisance = sample_nuisance(rng, settings.frames, settings.size, settings.difficulty)
    return rng, motion, nuisance


def render_clip(settings: SynthSettings, identity: int, clip: int) -> SynthVideo:
    """Render clip ``clip`` of identity ``identity``: motion, nuisances, then every frame."""
    size, frames = settings.size, settings.frames
    person = identity_of(settings.seed, identity, settings.difficulty)
    rng, motion, nuisance = clip_controls(settings, identity, clip)
    renderer = FaceRenderer(person, size, background=sample_background(rng, size))
    noise = NoiseBank(rng, size, nuisance.noise)
    images = np.empty((frames, size, size, 3), np.uint8)
    landmarks = np.empty((frames, 68, 2), np.float32)
    for t in range(frames):
        canvas, gain, points = renderer.draw(
            motion.intensity[t],
            blink=motion.blink[t],
            gaze=motion.gaze[t],
            rounding=motion.rounding[t],
            yaw=nuisance.yaw[t],
            pitch=nuisance.pitch[t],
        )
        images[t], matrix = degrade(canvas, gain, nuisance, t, noise.sample(rng))
        landmarks[t] = renderer.view.pixels(points) @ matrix[:, :2].T + matrix[:, 2]
    occurrence = (motion.intensity >= OCCURRENCE_THRESHOLD).astype(np.int8)
    return SynthVideo(images, landmarks, motion.intensity, occurrence)


@dataclass(frozen=True)
class _VideoJob:
    writer: PreparedDatasetWriter
    settings: SynthSettings
    identity: int
    clip: int
    fold: int
    flow: bool

    @property
    def video(self) -> str:
        return video_name(self.identity, self.clip)


def _write_video(job: _VideoJob) -> int:
    """Render and write one video (in a worker process); returns its frame count."""
    video = render_clip(job.settings, job.identity, job.clip)
    arrays = {"flow": video_flow_targets(video.frames, **FLOW_SETTINGS)} if job.flow else None
    job.writer.write_video(
        job.video,
        subject_name(job.identity),
        video.frames,
        video.landmarks,
        SYNTH_AUS,
        video.occurrence,
        video.intensity,
        fold=job.fold,
        arrays=arrays,
    )
    return len(video.frames)


def _init_worker() -> None:
    cv2.setNumThreads(1)  # one process per core; OpenCV's own threads would oversubscribe


def generate_corpus(
    out: str | Path,
    identities: int = 40,
    clips_per_identity: int = 8,
    frames: int = 40,
    size: int = 112,
    seed: int = 0,
    difficulty: float = 0.5,
    workers: int = 2,
    overwrite: bool = False,
    flow: bool = True,
    progress: bool = True,
) -> Path:
    """Write the synthetic corpus to ``out`` as a prepared dataset and return its path.

    ``workers`` processes render videos in parallel (1 = in this process); ``flow`` adds the
    per-frame optical-flow targets (``flow.npy``, see :func:`aurep.data.flow.video_flow_targets`).
    Raises ValueError (or DatasetError) on bad arguments or an unusable output directory. The
    dataset counts as complete only once every video is written (meta.json comes last). A rerun
    with the same settings resumes (finished videos are kept); other settings need
    ``overwrite``, which removes only what aurep wrote. A video whose worker process dies is
    named on stderr and the run ends with DatasetError listing the missing videos.
    """
    settings = SynthSettings(identities, clips_per_identity, frames, size, seed, difficulty)
    if not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    meta = {
        "source": "synth",
        "au_codes": list(SYNTH_AUS),
        "image_size": size,
        "generator": {"version": GENERATOR_VERSION, **asdict(settings)},
        # the alignment template the faces are framed on, as `aurep prepare` records it
        "preprocess": {"size": size, "margin": DEFAULT_MARGIN, "points": DEFAULT_POINTS},
    }
    if flow:
        meta["flow"] = dict(FLOW_SETTINGS)
    job_record = {"generator": meta["generator"], "flow": meta.get("flow")}
    writer = PreparedDatasetWriter(out, overwrite=overwrite, resume=True, job=job_record)
    folds = assign_folds(identities, seed)
    jobs = [
        _VideoJob(writer, settings, i, c, int(folds[i]), flow)
        for i in range(identities)
        for c in range(clips_per_identity)
    ]
    jobs = [job for job in jobs if not writer.has_video(job.video)]
    failed = []
    with tqdm(total=len(jobs) * frames, unit="frame", desc="synth", disable=not progress) as bar:
        if workers == 1 or len(jobs) <= 1:
            threads = cv2.getNumThreads()
            _init_worker()
            try:
                for job in jobs:
                    bar.update(_write_video(job))
            finally:
                cv2.setNumThreads(threads)
        else:
            count = min(workers, len(jobs))
            for job, result in run_in_workers(
                _write_video, jobs, count, _init_worker, (), [__name__]
            ):
                if isinstance(result, WorkerDied):
                    failed.append(job.video)
                    tqdm.write(f"error: video {job.video}: {result.message}", file=sys.stderr)
                else:
                    bar.update(result)
    if failed:
        raise DatasetError(
            f"{out}: {len(failed)} of {identities * clips_per_identity} videos failed "
            f"({', '.join(failed[:5])}{', ...' if len(failed) > 5 else ''}); the corpus is "
            "incomplete: run the same command again to finish it (finished videos are kept)"
        )
    return writer.finalize(meta)
