"""Preparing many videos: one job per video, parallel workers, exact resume, labels, a summary.

Shared by ``aurep prepare videos`` and the BP4D/DISFA/GFT converters. A :class:`VideoJob` names a
source (video file or frame folder), its subject and fold and, for labelled datasets, a
picklable function returning its :class:`FrameLabels` and the label files it reads. Workers
preprocess faces (:class:`~aurep.prepare.faces.preprocessor.FacePreprocessor`), attach labels by
source frame number, optionally compute flow targets, and write the video with
:class:`PreparedDatasetWriter` and its provenance: the settings, the job and an input
fingerprint (size and modification time of the source and label files). A rerun skips a video
only when its provenance matches, redoes it otherwise, and drops videos whose source is gone.
Each video also keeps the crop-to-source transform of its frames (``crop_to_source.npy``).
A video that fails (unreadable, no face in any frame, its worker process died) is reported and
the rest go on; ``meta.json`` is written only when none failed (or with ``allow_partial``).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
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
from aurep.data.prepared import (
    LEGACY_SETTINGS_FILE,
    VIDEOS_DIR,
    DatasetError,
    PreparedDatasetWriter,
    check_video_id,
    recorded_job,
)
from aurep.prepare.faces.align import (
    ALIGN_POINTS,
    DEFAULT_MARGIN,
    DEFAULT_POINTS,
    DEFAULT_SIZE,
    template_landmarks,
)
from aurep.prepare.faces.landmarker import MODEL_SHA256
from aurep.prepare.faces.preprocessor import AlignedSequence, FacePreprocessor
from aurep.prepare.flow import FLOW_RECORD, record_flow, recorded_flow
from aurep.prepare.frames import iter_frames
from aurep.workers import WorkerDied, run_in_workers

# per-video array: float32 (T, 2, 3) crop pixels -> source-frame pixels, NaN rows without a face
CROP_TO_SOURCE = "crop_to_source"


@dataclass(frozen=True)
class PrepareSettings:
    """Face preprocessing and flow settings of one prepare job (recorded in ``meta.json``).

    size / margin / points: the aligned crop (see :class:`~aurep.prepare.faces.align.FaceAligner`);
    mode: landmarker running mode; min_detection_confidence: face detector threshold;
    flow: compute flow targets (``flow_delta`` frames, ``flow_grid`` cells, ``flow_method``);
    fps: frame rate assumed for image folders (landmark tracking timestamps). Bad values raise
    ValueError naming the option, before anything is written.
    """

    size: int = DEFAULT_SIZE
    margin: float = DEFAULT_MARGIN
    points: str = DEFAULT_POINTS
    mode: str = "video"
    min_detection_confidence: float = 0.5
    flow: bool = True
    flow_delta: int = 1
    flow_grid: int = 28
    flow_method: str = "dis"
    fps: float = 30.0

    def __post_init__(self):
        template_landmarks(self.size, self.margin)  # crop size and margin
        checks = [
            (self.points in ALIGN_POINTS, f"--align-points must be one of {sorted(ALIGN_POINTS)}"),
            (self.mode in ("video", "image"), "--landmark-mode must be video or image"),
            (0.0 <= self.min_detection_confidence <= 1.0, "--min-detection-confidence: 0-1"),
            (self.flow_delta >= 1, "--flow-delta must be >= 1 frame"),
            (1 <= self.flow_grid <= self.size, "--flow-grid must be in 1..--size cells"),
            (self.flow_method in FLOW_METHODS, f"--flow-method must be one of {FLOW_METHODS}"),
            (self.fps > 0, "--fps must be > 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"{message}; got {dataclasses.asdict(self)}")

    def preprocessor(self) -> FacePreprocessor:
        return FacePreprocessor(
            self.size,
            self.margin,
            self.points,
            self.mode,
            min_detection_confidence=self.min_detection_confidence,
        )

    @property
    def flow_settings(self) -> dict:
        return {"delta": self.flow_delta, "grid": self.flow_grid, "method": self.flow_method}


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
    a source frame number to get the label file's frame number (DISFA's labels are 1-based);
    inputs: label files or folders the labels are read from (fingerprinted with the source);
    provenance: set by :func:`run_jobs`, what the written video records."""

    video: str
    subject: str
    source: Path
    fold: int = 0
    labels: Callable[[], FrameLabels] | None = None
    number_offset: int = 0
    inputs: tuple[Path, ...] = ()
    provenance: dict | None = None


@dataclass
class JobResult:
    """What one job did; ``error`` is set when the video was not written."""

    video: str
    source: str
    frames: int = 0
    faces: int = 0
    unlabelled_frames: int = 0
    labels_without_frame: int = 0
    problems: list[str] = field(default_factory=list)  # about its label files
    frame_problems: list[str] = field(default_factory=list)  # frames that could not be read
    error: str | None = None

    def counts(self) -> dict:
        """The counts recorded in the video's provenance (for the dataset summary)."""
        keep = (
            *("frames", "faces", "unlabelled_frames", "labels_without_frame"),
            *("problems", "frame_problems"),
        )
        return {name: getattr(self, name) for name in keep}


def fingerprint(path: Path) -> list | str | None:
    """[size, mtime_ns] of a file; a sha256 over (name, size, mtime_ns) of the files directly in
    a folder (frame folders, label folders); None if missing."""
    path = Path(path)
    try:
        if path.is_dir():
            entries = sorted(
                (entry.name, entry.stat().st_size, entry.stat().st_mtime_ns)
                for entry in os.scandir(path)
                if entry.is_file()
            )
            return hashlib.sha256(json.dumps(entries).encode()).hexdigest()
        stat = path.stat()
    except FileNotFoundError:
        return None
    return [stat.st_size, stat.st_mtime_ns]


def job_provenance(job: VideoJob, recorded: dict) -> dict:
    """What a video is made from: the job's settings, the video's identity and fold, and the
    fingerprint of its source and label files (absolute paths, so the working folder of a
    rerun does not matter)."""
    paths = [Path(path).resolve() for path in (job.source, *job.inputs)]
    return {
        **recorded,
        "video": {
            "subject": job.subject,
            "fold": job.fold,
            "source": str(paths[0]),
            "number_offset": job.number_offset,
        },
        "inputs": {str(path): fingerprint(path) for path in paths},
    }


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
        result.frame_problems += sequence.problems
        result.frames, result.faces = len(sequence.numbers), sequence.faces
        if sequence.faces == 0:
            result.error = f"{job.source}: no face found in any of its {result.frames} frames"
            return result
        occurrence = intensity = None
        if labels is not None:
            occurrence, intensity, result.unlabelled_frames, result.labels_without_frame = (
                attach_labels(sequence.numbers + job.number_offset, labels)
            )
        arrays = {CROP_TO_SOURCE: sequence.crop_to_source}
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
            provenance={**(job.provenance or {}), "result": result.counts()},
        )
        if settings.flow:
            record_flow(writer.video_dir(job.video), settings.flow_settings)
    except (DatasetError, ValueError, OSError) as error:
        result.error = str(error)
    return result


def _shown(names: Sequence[str], count: int = 5) -> str:
    names = sorted(names)
    return ", ".join(names[:count]) + (", ..." if len(names) > count else "")


@dataclass
class Summary:
    """A prepare run: what this run did (written, failed, skipped, dropped) and totals over
    every video of the dataset (from the videos' provenance, so a resumed run counts all)."""

    written: int = 0
    skipped: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)
    videos: int = 0
    frames: int = 0
    faces: int = 0
    unlabelled_frames: int = 0
    labels_without_frame: int = 0
    problems: int = 0
    frame_problems: int = 0
    mismatched: dict[str, list[int]] = field(default_factory=dict)

    def add_video(self, video: str, counts: dict) -> None:
        """Count one finished video of the dataset (``counts``: :meth:`JobResult.counts`)."""
        self.videos += 1
        for name in ("frames", "faces", "unlabelled_frames", "labels_without_frame"):
            setattr(self, name, getattr(self, name) + int(counts.get(name, 0)))
        self.problems += len(counts.get("problems", []))
        self.frame_problems += len(counts.get("frame_problems", []))
        pair = [int(counts.get("unlabelled_frames", 0)), int(counts.get("labels_without_frame", 0))]
        if any(pair):
            self.mismatched[video] = pair

    def lines(self, labelled: bool) -> list[str]:
        found = 100.0 * self.faces / self.frames if self.frames else 0.0
        dropped = f", {len(self.dropped)} dropped" if self.dropped else ""
        lines = [
            f"videos: {self.written} written, {len(self.failed)} failed, "
            f"{self.skipped} already done{dropped}",
            f"dataset: {self.videos} videos, {self.frames} frames, faces found in {self.faces} "
            f"({found:.1f}%)",
        ]
        if labelled:
            lines.append(
                f"frame/label mismatch: {self.unlabelled_frames} frames without labels, "
                f"{self.labels_without_frame} label rows without a frame "
                f"(in {len(self.mismatched)} videos: {_shown(self.mismatched) or 'none'}), "
                f"{self.problems} label-file problems"
            )
        if self.frame_problems:
            lines.append(f"unreadable frames: {self.frame_problems} problems (see the warnings)")
        return lines


def _init_worker() -> None:
    cv2.setNumThreads(1)


def _stale_reason(recorded: dict | None, wanted: dict, video_dir: Path) -> str | None:
    """Why the written video in ``video_dir`` must be redone: its provenance ``recorded`` does
    not match ``wanted``, or it lacks an array this aurep writes (None: it is up to date)."""
    if recorded is None:
        return "it records no provenance"
    recorded = {k: v for k, v in recorded.items() if k != "result"}
    if recorded == wanted:
        if not (video_dir / f"{CROP_TO_SOURCE}.npy").exists():
            return f"it has no {CROP_TO_SOURCE}.npy (prepared by an older aurep)"
        return None
    if recorded.get("inputs") != wanted["inputs"]:
        changed = [
            path
            for path, value in wanted["inputs"].items()
            if recorded.get("inputs", {}).get(path) != value
        ]
        return f"its input changed ({_shown(changed, 2)})"
    return "it was made with other settings, subject or fold"


def run_jobs(
    jobs: Sequence[VideoJob],
    root: Path,
    settings: PrepareSettings,
    meta: dict,
    *,
    workers: int = 2,
    overwrite: bool = False,
    allow_partial: bool = False,
    inputs: Sequence[Path] = (),
    progress: bool = True,
    report: Callable[[str], None] | None = None,
) -> Summary:
    """Prepare every job into the dataset ``root`` and finalize it.

    meta: must hold ``au_codes`` (``[]`` for unlabelled data); the settings, the landmarker's
    sha256, flow settings and the summary are added; its ``source_root`` (SRC) is part of the job
    record, so resuming from another SRC is refused. Videos whose provenance matches are skipped
    (resume), changed ones (or, with flow, ones whose ``flow.json`` differs) redone, ones whose
    source no longer exists dropped; a rerun with other settings is refused
    unless ``overwrite`` (which removes only what aurep wrote). ``inputs``: the folders and files
    the jobs read; ``root`` may not be, hold or lie inside one. ``meta.json`` is written when
    the dataset has videos and none failed (``allow_partial``: even if some failed).
    ``report`` receives warning and error lines (default: stderr above the progress bar)."""
    report = report or partial(tqdm.write, file=sys.stderr)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if not jobs:
        raise ValueError("nothing to prepare: no videos found")
    ids = [job.video for job in jobs]
    if len(set(ids)) != len(ids):
        repeated = sorted({v for v in ids if ids.count(v) > 1})
        raise ValueError(f"several sources map to the same video id: {repeated[:5]}")
    recorded = {
        "settings": dataclasses.asdict(settings),
        "au_codes": list(meta["au_codes"]),
        "source_root": meta.get("source_root"),
    }
    _check_same_source(Path(root), recorded["source_root"], overwrite)
    writer = PreparedDatasetWriter(
        root, overwrite=overwrite, resume=True, job=recorded, inputs=inputs
    )
    (Path(root) / LEGACY_SETTINGS_FILE).unlink(missing_ok=True)  # the marker holds it now
    summary = Summary()
    jobs = [dataclasses.replace(job, provenance=job_provenance(job, recorded)) for job in jobs]
    _drop_vanished(writer, {job.video for job in jobs}, summary, report)
    todo = []
    for job in jobs:
        if writer.has_video(job.video):
            video_dir = writer.video_dir(job.video)
            reason = _stale_reason(writer.provenance(job.video), job.provenance, video_dir)
            wanted_flow = settings.flow_settings
            if reason is None and settings.flow and recorded_flow(video_dir) != wanted_flow:
                reason = f"its flow targets are not {wanted_flow} (see its {FLOW_RECORD})"
            if reason is None:
                continue
            report(f"redoing video {job.video}: {reason}")
            writer.forget_video(job.video)
            for name in ("flow.npy", FLOW_RECORD):  # stale; rewritten if flow is on
                (video_dir / name).unlink(missing_ok=True)
        todo.append(job)
    summary.skipped = len(jobs) - len(todo)
    au_codes = tuple(meta["au_codes"])
    job_function = partial(process_job, settings=settings, writer=writer, au_codes=au_codes)
    bar = tqdm(total=len(todo), desc="prepare", unit="video", disable=not progress)
    for job, result in _results(job_function, todo, workers):
        if isinstance(result, WorkerDied):
            result = JobResult(job.video, str(job.source), error=f"{job.source}: {result.message}")
        for problem in (*result.problems, *result.frame_problems):
            report(f"warning: video {result.video}: {problem}")
        if result.error is not None:
            summary.failed[result.video] = result.error
            report(f"error: video {result.video}: {result.error}")
        else:
            summary.written += 1
        bar.update()
    bar.close()
    for video in writer.written_videos():
        summary.add_video(video, (writer.provenance(video) or {}).get("result", {}))
    for video, (unlabelled, without_frame) in summary.mismatched.items():
        report(
            f"warning: video {video}: {unlabelled} frames without labels, "
            f"{without_frame} label rows without a frame"
        )
    if summary.videos > 0 and (allow_partial or not summary.failed):
        flow = {"flow": settings.flow_settings} if settings.flow else _kept_flow(writer, root)
        writer.finalize(
            {
                **meta,
                "image_size": settings.size,
                "preprocess": {**recorded["settings"], "landmarker_sha256": MODEL_SHA256},
                **flow,
                "summary": dataclasses.asdict(summary),
            }
        )
    return summary


def _check_same_source(root: Path, source_root: str | None, overwrite: bool) -> None:
    """Refuse to resume ``root`` from another SRC than the one it was started from (a rerun
    would drop the videos it does not see)."""
    before = (recorded_job(root) or {}).get("source_root") if not overwrite else None
    if before and source_root and before != source_root:
        raise DatasetError(
            f"{root}: was prepared from {before}, not {source_root}; give the same SRC to "
            "resume it, or another --out for this source"
        )


def _drop_vanished(
    writer: PreparedDatasetWriter, wanted: set[str], summary: Summary, report: Callable
) -> None:
    """Delete unfinished video folders not in ``wanted``, and finished ones whose recorded
    source no longer exists; keep (with a warning) finished ones whose source still exists.
    Folders that cannot be video ids are skipped with a warning."""
    for video_dir in sorted(p for p in (writer.root / VIDEOS_DIR).iterdir() if p.is_dir()):
        video = video_dir.name
        if video in wanted:
            continue
        try:
            check_video_id(video)
        except DatasetError:
            report(f"warning: {video_dir.resolve()}: not a video folder (no video id), skipped")
            continue
        if not writer.has_video(video):
            writer.drop_video(video)
            continue
        source = ((writer.provenance(video) or {}).get("video") or {}).get("source")
        if source and Path(source).exists():
            report(f"warning: video {video}: kept, not among this run's inputs ({source} exists)")
            continue
        summary.dropped.append(video)
        report(f"dropped video {video}: its source {source or '(unrecorded)'} no longer exists")
        writer.drop_video(video)


def _kept_flow(writer: PreparedDatasetWriter, root: Path) -> dict:
    """For a run without flow: ``{"flow": settings}`` when every written video has current
    flow targets made with the same settings (added by ``aurep prepare flow``), ``{}`` when
    none has any; otherwise DatasetError, since ``meta.json`` could not tell the truth."""
    found = {video: recorded_flow(writer.video_dir(video)) for video in writer.written_videos()}
    first = next(iter(found.values()))
    if all(value is None for value in found.values()):
        return {}
    if all(value == first for value in found.values()) and "stale" not in first:
        return {"flow": first}
    listed = {video: value or "none" for video, value in found.items()}
    shown = "; ".join(f"{video}: {listed[video]}" for video in sorted(listed)[:3])
    raise DatasetError(
        f"{root}: meta.json not written: the videos' flow targets disagree ({shown}, ...) and "
        "this --no-flow run computes none; redo the dataset with the flow you want (--flow "
        "--flow-delta/--flow-grid/--flow-method with --overwrite), or use another --out"
    )


def _results(function: Callable, jobs: Sequence[VideoJob], workers: int):
    """(job, JobResult or WorkerDied) for every job, in this process or in workers."""
    if workers == 1 or len(jobs) <= 1:
        return ((job, function(job)) for job in jobs)
    return run_in_workers(function, jobs, min(workers, len(jobs)), _init_worker)


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
    parser.add_argument(
        "--overwrite", action="store_true",
        help="start the output afresh (removes only what aurep wrote there)",
    )  # fmt: skip
    parser.add_argument(
        "--allow-partial", action="store_true",
        help="finish the dataset and exit 0 even if some videos failed",
    )  # fmt: skip
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


def finish(summary: Summary, root: Path, labelled: bool, allow_partial: bool = False) -> int:
    """Print the summary; exit status 1 when the dataset has no video, or when any video
    failed (unless ``allow_partial``)."""
    for line in summary.lines(labelled):
        print(line)
    if summary.videos == 0:
        print(f"error: no video could be prepared; {root} is incomplete")
        return 1
    if summary.failed and not allow_partial:
        print(
            f"error: {len(summary.failed)} videos failed ({_shown(summary.failed)}); {root} is "
            "left incomplete: fix them and run the same command again (finished videos are "
            "kept), or add --allow-partial to accept the dataset without them"
        )
        return 1
    print(f"prepared dataset: {root}")
    return 0


def prepare_from_args(
    jobs: Sequence[VideoJob],
    args: argparse.Namespace,
    meta: dict,
    inputs: Sequence[Path] = (),
) -> int:
    """Run ``jobs`` with the options of :func:`add_preprocess_arguments`, print the summary and
    return the exit status (labels are summarised when ``meta`` names AU codes). ``SRC`` is
    recorded in ``meta`` as ``source_root``; it and ``inputs`` (other files the jobs read) must
    lie apart from ``--out``."""
    summary = run_jobs(
        jobs,
        args.out,
        settings_from_args(args),
        {**meta, "source_root": str(args.src.resolve())},
        workers=args.workers,
        overwrite=args.overwrite,
        allow_partial=args.allow_partial,
        inputs=[args.src, *inputs],
        progress=args.progress,
    )
    return finish(summary, args.out, bool(meta["au_codes"]), args.allow_partial)
