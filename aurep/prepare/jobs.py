"""Preparing many videos: one job per video, parallel workers, resume, labels, a summary.

Shared by ``aurep prepare videos`` and the BP4D/DISFA/GFT converters. A :class:`VideoJob` names a
source (video file or frame folder), its subject and fold and, for labelled datasets, a
picklable function returning its :class:`FrameLabels`. Workers preprocess faces
(:class:`~aurep.prepare.faces.preprocessor.FacePreprocessor`), attach labels by source frame number,
optionally compute flow targets, and write the video with :class:`PreparedDatasetWriter`. A video
that fails (unreadable, no face in any frame, malformed labels) is reported and the rest go on.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from aurep.data.flow import FLOW_METHODS, video_flow_targets
from aurep.data.prepared import DatasetError, PreparedDatasetWriter, save_json
from aurep.prepare.faces.align import ALIGN_POINTS
from aurep.prepare.faces.landmarker import MODEL_SHA256
from aurep.prepare.faces.preprocessor import AlignedSequence, FacePreprocessor
from aurep.prepare.frames import iter_frames

SETTINGS_FILE = "prepare.json"


@dataclass(frozen=True)
class PrepareSettings:
    """Face preprocessing and flow settings of one prepare job (recorded in ``meta.json``).

    size / margin / points: the aligned crop (see :class:`~aurep.prepare.faces.align.FaceAligner`);
    mode: landmarker running mode; min_detection_confidence: face detector threshold;
    flow: compute flow targets (``flow_delta`` frames, ``flow_grid`` cells, ``flow_method``);
    fps: frame rate assumed for image folders (landmark tracking timestamps).
    """

    size: int = 112
    margin: float = 0.2
    points: str = "rigid"
    mode: str = "video"
    min_detection_confidence: float = 0.5
    flow: bool = True
    flow_delta: int = 1
    flow_grid: int = 28
    flow_method: str = "dis"
    fps: float = 30.0

    def preprocessor(self) -> FacePreprocessor:
        return FacePreprocessor(
            self.size,
            self.margin,
            self.points,
            self.mode,
            min_detection_confidence=self.min_detection_confidence,
        )


@dataclass
class FrameLabels:
    """Labels of one video, by source frame number.

    numbers: int64 (N,) frame numbers; occurrence: int8 (N, A) 1/0/-1 for ``au_codes``;
    intensity: float32 (N, A) or None; problems: messages about the label files (a malformed
    line, a missing file) to report without failing the video.
    """

    au_codes: tuple[int, ...]
    numbers: np.ndarray
    occurrence: np.ndarray
    intensity: np.ndarray | None = None
    problems: list[str] = field(default_factory=list)


@dataclass
class VideoJob:
    """video: prepared video id; source: video file or frame folder; number_offset: added to
    a source frame number to get the label file's frame number (DISFA's labels are 1-based)."""

    video: str
    subject: str
    source: Path
    fold: int = 0
    labels: Callable[[], FrameLabels] | None = None
    number_offset: int = 0


@dataclass
class JobResult:
    """What one job did; ``error`` is set when the video was not written."""

    video: str
    source: str
    frames: int = 0
    faces: int = 0
    unlabelled_frames: int = 0
    labels_without_frame: int = 0
    problems: list[str] = field(default_factory=list)
    error: str | None = None


def attach_labels(
    numbers: np.ndarray, labels: FrameLabels
) -> tuple[np.ndarray, np.ndarray | None, int, int]:
    """Labels for the frames ``numbers`` (T,): (occurrence int8 (T, A), intensity (T, A) or
    None, frames without a label row, label rows without a frame). Missing rows are -1/NaN."""
    count = len(labels.au_codes)
    occurrence = np.full((len(numbers), count), -1, dtype=np.int8)
    intensity = None
    if labels.intensity is not None:
        intensity = np.full((len(numbers), count), np.nan, dtype=np.float32)
    if len(labels.numbers) == 0:
        return occurrence, intensity, len(numbers), 0
    order = np.argsort(labels.numbers, kind="stable")
    position = np.clip(np.searchsorted(labels.numbers[order], numbers), 0, len(order) - 1)
    rows = order[position]
    found = labels.numbers[rows] == numbers
    occurrence[found] = labels.occurrence[rows[found]]
    if intensity is not None:
        intensity[found] = labels.intensity[rows[found]]
    labels_without_frame = int((~np.isin(labels.numbers, numbers)).sum())
    return occurrence, intensity, int((~found).sum()), labels_without_frame


def process_job(
    job: VideoJob, settings: PrepareSettings, writer: PreparedDatasetWriter, au_codes: tuple
) -> JobResult:
    """Preprocess, label and write one video; errors are returned, not raised."""
    result = JobResult(job.video, str(job.source))
    try:
        labels = job.labels() if job.labels is not None else None
        if labels is not None:
            result.problems += labels.problems
        sequence: AlignedSequence = settings.preprocessor().sequence(
            iter_frames(job.source, settings.fps)
        )
        result.frames, result.faces = len(sequence.numbers), sequence.faces
        if sequence.faces == 0:
            result.error = f"{job.source}: no face found in any of its {result.frames} frames"
            return result
        occurrence = intensity = None
        if labels is not None:
            occurrence, intensity, result.unlabelled_frames, result.labels_without_frame = (
                attach_labels(sequence.numbers + job.number_offset, labels)
            )
        arrays = {}
        if settings.flow:
            arrays["flow"] = video_flow_targets(
                sequence.frames, settings.flow_delta, settings.flow_grid, settings.flow_method
            )
        writer.write_video(
            job.video,
            job.subject,
            sequence.frames,
            sequence.landmarks,
            au_codes if labels is not None else (),
            occurrence,
            intensity,
            fold=job.fold,
            success=sequence.success,
            source_frames=sequence.numbers + job.number_offset,
            arrays=arrays,
        )
    except (DatasetError, ValueError, OSError) as error:
        result.error = str(error)
    return result


@dataclass
class Summary:
    """Totals over a prepare run."""

    ok: int = 0
    failed: int = 0
    skipped: int = 0
    frames: int = 0
    faces: int = 0
    unlabelled_frames: int = 0
    labels_without_frame: int = 0
    problems: int = 0

    def add(self, result: JobResult) -> None:
        if result.error is None:
            self.ok += 1
            self.frames += result.frames
            self.faces += result.faces
            self.unlabelled_frames += result.unlabelled_frames
            self.labels_without_frame += result.labels_without_frame
        else:
            self.failed += 1
        self.problems += len(result.problems)

    def lines(self, labelled: bool) -> list[str]:
        found = 100.0 * self.faces / self.frames if self.frames else 0.0
        lines = [
            f"videos: {self.ok} written, {self.failed} failed, {self.skipped} already done",
            f"frames: {self.frames} written, faces found in {self.faces} ({found:.1f}%)",
        ]
        if labelled:
            lines.append(
                f"frame/label mismatch: {self.unlabelled_frames} frames without labels, "
                f"{self.labels_without_frame} label rows without a frame, "
                f"{self.problems} label-file problems"
            )
        return lines


def _init_worker() -> None:
    cv2.setNumThreads(1)


def run_jobs(
    jobs: Sequence[VideoJob],
    root: Path,
    settings: PrepareSettings,
    meta: dict,
    *,
    workers: int = 2,
    overwrite: bool = False,
    progress: bool = True,
    report: Callable[[str], None] | None = None,
) -> Summary:
    """Prepare every job into the dataset ``root`` and finalize it (when any video exists).

    meta: must hold ``au_codes`` (``[]`` for unlabelled data); the settings, the landmarker's
    sha256, flow settings and the summary are added. Finished videos are skipped (resume);
    a rerun with other settings is refused unless ``overwrite``. ``report`` receives warning
    and error lines (default: printed to stderr above the progress bar)."""
    report = report or partial(tqdm.write, file=sys.stderr)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if not jobs:
        raise ValueError("nothing to prepare: no videos found")
    ids = [job.video for job in jobs]
    if len(set(ids)) != len(ids):
        repeated = sorted({v for v in ids if ids.count(v) > 1})
        raise ValueError(f"several sources map to the same video id: {repeated[:5]}")
    recorded = {"settings": dataclasses.asdict(settings), "au_codes": list(meta["au_codes"])}
    settings_path = Path(root) / SETTINGS_FILE
    foreign = Path(root).is_dir() and any(Path(root).iterdir()) and not settings_path.exists()
    if foreign and not overwrite:
        raise ValueError(
            f"{root}: exists, is not empty and holds no {SETTINGS_FILE}: pass --overwrite"
        )
    if settings_path.exists() and not overwrite:
        previous = json.loads(settings_path.read_text())
        if previous != recorded:
            raise ValueError(
                f"{root} was started with other settings ({previous}); pass --overwrite to redo it"
            )
    writer = PreparedDatasetWriter(root, overwrite=overwrite, resume=True)
    save_json(settings_path, recorded)
    summary = Summary()
    todo = [job for job in jobs if not writer.has_video(job.video)]
    summary.skipped = len(jobs) - len(todo)
    au_codes = tuple(meta["au_codes"])
    job_function = partial(process_job, settings=settings, writer=writer, au_codes=au_codes)
    bar = tqdm(total=len(todo), desc="prepare", unit="video", disable=not progress)

    def record(result: JobResult) -> None:
        summary.add(result)
        for problem in result.problems:
            report(f"warning: video {result.video}: {problem}")
        if result.error is not None:
            report(f"error: video {result.video}: {result.error}")
        bar.update()
        bar.set_postfix(faces=f"{100.0 * summary.faces / max(summary.frames, 1):.0f}%")

    if workers == 1 or len(todo) <= 1:
        for job in todo:
            record(job_function(job))
    else:
        context = multiprocessing.get_context("forkserver")
        with context.Pool(min(workers, len(todo)), initializer=_init_worker) as pool:
            for result in pool.imap_unordered(job_function, todo):
                record(result)
    bar.close()
    if summary.ok + summary.skipped > 0:
        writer.finalize(
            {
                **meta,
                "image_size": settings.size,
                "preprocess": {**recorded["settings"], "landmarker_sha256": MODEL_SHA256},
                **(
                    {
                        "flow": {
                            "delta": settings.flow_delta,
                            "grid": settings.flow_grid,
                            "method": settings.flow_method,
                        }
                    }
                    if settings.flow
                    else {}
                ),
                "summary": dataclasses.asdict(summary),
            }
        )
    return summary


def add_preprocess_arguments(parser: argparse.ArgumentParser, source: str) -> None:
    """The input ``SRC`` (``source``: what it is) and the options shared by
    ``prepare videos|bp4d|disfa|gft``."""
    defaults = PrepareSettings()
    parser.add_argument("src", metavar="SRC", type=Path, help=source)
    parser.add_argument(
        "--out", metavar="DIR", type=Path, required=True,
        help="prepared dataset directory to write (an unfinished one is resumed)",
    )  # fmt: skip
    parser.add_argument("--size", type=int, default=defaults.size, help="crop side, pixels")
    parser.add_argument(
        "--margin", type=float, default=defaults.margin,
        help="border around the face box, fraction of its larger side",
    )  # fmt: skip
    parser.add_argument(
        "--align-points", choices=sorted(ALIGN_POINTS), default=defaults.points,
        help="landmarks the alignment is fitted on",
    )  # fmt: skip
    parser.add_argument(
        "--landmark-mode", choices=("video", "image"), default=defaults.mode,
        help="track faces across frames (video) or detect in every frame (image)",
    )  # fmt: skip
    parser.add_argument(
        "--min-detection-confidence", type=float, default=defaults.min_detection_confidence,
        help="face detector score threshold (0-1)",
    )  # fmt: skip
    parser.add_argument(
        "--flow", action=argparse.BooleanOptionalAction, default=defaults.flow,
        help="compute optical-flow targets",
    )  # fmt: skip
    parser.add_argument(
        "--flow-delta", type=int, default=defaults.flow_delta,
        help="frames between flow source and target",
    )  # fmt: skip
    parser.add_argument(
        "--flow-grid", type=int, default=defaults.flow_grid, help="flow target grid side, cells"
    )
    parser.add_argument(
        "--flow-method", choices=FLOW_METHODS, default=defaults.flow_method,
        help="OpenCV flow method",
    )  # fmt: skip
    parser.add_argument(
        "--fps", type=float, default=defaults.fps, help="frame rate of image folders"
    )
    parser.add_argument(
        "--workers", type=int, default=min(2, os.cpu_count() or 1), help="parallel processes"
    )
    parser.add_argument("--overwrite", action="store_true", help="start the output afresh")
    parser.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=True,
        help="show a progress bar",
    )  # fmt: skip


def settings_from_args(args: argparse.Namespace) -> PrepareSettings:
    return PrepareSettings(
        size=args.size,
        margin=args.margin,
        points=args.align_points,
        mode=args.landmark_mode,
        min_detection_confidence=args.min_detection_confidence,
        flow=args.flow,
        flow_delta=args.flow_delta,
        flow_grid=args.flow_grid,
        flow_method=args.flow_method,
        fps=args.fps,
    )


def finish(summary: Summary, root: Path, labelled: bool) -> int:
    """Print the summary; exit status 1 when no video could be prepared."""
    for line in summary.lines(labelled):
        print(line)
    if summary.ok + summary.skipped == 0:
        print(f"error: no video could be prepared; {root} is incomplete")
        return 1
    print(f"prepared dataset: {root}")
    return 0


def prepare_from_args(jobs: Sequence[VideoJob], args: argparse.Namespace, meta: dict) -> int:
    """Run ``jobs`` with the options of :func:`add_preprocess_arguments`, print the summary and
    return the exit status (labels are summarised when ``meta`` names AU codes). ``SRC`` is
    recorded in ``meta`` as ``source_root``."""
    summary = run_jobs(
        jobs,
        args.out,
        settings_from_args(args),
        {**meta, "source_root": str(args.src.resolve())},
        workers=args.workers,
        overwrite=args.overwrite,
        progress=args.progress,
    )
    return finish(summary, args.out, labelled=bool(meta["au_codes"]))
