"""``aurep prepare flow DIR``: optical-flow targets for every video of a prepared dataset, in place.

Each video gets ``videos/<video>/flow.npy``, float16 (T, 2, grid, grid) pixels (dx, dy), see
:mod:`aurep.data.flow`, and ``flow.json``: the settings it was computed with and the size and
modification time of the ``frames.npy`` it was computed from. It resumes: a video is skipped
only when its ``flow.json`` matches (or, for flow written before ``flow.json`` existed, when
``meta.json`` records these settings as complete and the shape fits); ``--overwrite``
recomputes every video. The settings are recorded in ``meta.json`` as ``flow_pending`` before
the first video and moved to ``flow`` when every video is done, so a rerun with other settings
is refused until ``--overwrite``. A video that fails (its worker process died, its frames are
unreadable) is named; the run then exits 1 with ``flow_pending`` kept, and a rerun resumes.
"""

from __future__ import annotations

import argparse
import json
import sys
from functools import partial
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from aurep.data.flow import FLOW_METHODS, video_flow_targets
from aurep.data.prepared import META_FILE, DatasetError, PreparedDataset, save_array, save_json
from aurep.workers import WorkerDied, run_in_workers

HELP = "add optical-flow targets to the prepared dataset DIR, in place"
FLOW_RECORD = "flow.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "root", metavar="DIR", type=Path, help="prepared dataset directory (updated in place)"
    )
    parser.add_argument("--delta", type=int, default=1, help="frames between source and target")
    parser.add_argument("--grid", type=int, default=28, help="target grid side, cells")
    parser.add_argument("--method", choices=FLOW_METHODS, default="dis", help="OpenCV flow method")
    parser.add_argument("--workers", type=int, default=2, help="parallel processes")
    parser.add_argument("--overwrite", action="store_true", help="recompute existing targets")
    parser.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=True,
        help="show a progress bar",
    )  # fmt: skip


def flow_record(video_dir: Path, settings: dict) -> dict:
    """What ``flow.npy`` of ``video_dir`` is made from: the flow settings and the size and
    modification time (ns) of its ``frames.npy``."""
    stat = (Path(video_dir) / "frames.npy").stat()
    return {**settings, "frames": [stat.st_size, stat.st_mtime_ns]}


def record_flow(video_dir: Path, settings: dict) -> None:
    """Write ``flow.json`` for the ``flow.npy`` just saved in ``video_dir``."""
    save_json(Path(video_dir) / FLOW_RECORD, flow_record(video_dir, settings))


def recorded_flow(video_dir: Path) -> dict | None:
    """The flow settings (delta, grid, method) in ``video_dir``'s ``flow.json``; None without
    one; ``{"stale": True}`` when it was computed from other frames than the current ones."""
    try:
        record = json.loads((Path(video_dir) / FLOW_RECORD).read_text())
        settings = {k: v for k, v in record.items() if k != "frames"}
        if record != flow_record(video_dir, settings):
            return {"stale": True}
    except FileNotFoundError:
        return None
    except (OSError, ValueError, AttributeError):
        return {"stale": True}
    return settings


def _flow_done(video_dir: Path, length: int, settings: dict, legacy_complete: bool) -> bool:
    """Whether ``video_dir`` holds flow targets made with ``settings`` from its current frames
    (``legacy_complete``: accept flow without ``flow.json`` when its shape fits)."""
    grid = settings["grid"]
    try:
        if np.load(video_dir / "flow.npy", mmap_mode="r").shape != (length, 2, grid, grid):
            return False
        record_path = video_dir / FLOW_RECORD
        if not record_path.exists():
            return legacy_complete
        return json.loads(record_path.read_text()) == flow_record(video_dir, settings)
    except (OSError, ValueError):
        return False


def _video_flow(video_dir: Path, delta: int, grid: int, method: str) -> None:
    try:
        frames = np.asarray(np.load(video_dir / "frames.npy", mmap_mode="r"))
    except (OSError, ValueError) as error:
        raise DatasetError(f"{video_dir / 'frames.npy'}: unreadable ({error})") from None
    settings = {"delta": delta, "grid": grid, "method": method}
    save_array(video_dir / "flow.npy", video_flow_targets(frames, delta, grid, method))
    record_flow(video_dir, settings)


def _safe_video_flow(video_dir: Path, delta: int, grid: int, method: str) -> str | None:
    """:func:`_video_flow`; returns the error message instead of raising (None: done)."""
    try:
        _video_flow(video_dir, delta, grid, method)
    except (DatasetError, ValueError, OSError) as error:
        return str(error)
    return None


def prepare_flow(
    root: Path,
    delta: int = 1,
    grid: int = 28,
    method: str = "dis",
    workers: int = 2,
    overwrite: bool = False,
    progress: bool = True,
) -> tuple[int, dict[str, str]]:
    """Add flow targets to every video of the prepared dataset ``root``.

    Returns (videos computed, {video: error} of those that failed); with failures ``meta.json``
    keeps ``flow_pending``. Error lines go to stderr as they happen."""
    if method not in FLOW_METHODS:
        raise ValueError(f"unknown flow method {method!r}; choose from {FLOW_METHODS}")
    if delta < 1 or grid < 1 or workers < 1:
        raise ValueError(f"delta, grid and workers must be >= 1, got {delta}, {grid}, {workers}")
    dataset = PreparedDataset(root)
    settings = {"delta": delta, "grid": grid, "method": method}
    previous = dataset.meta.get("flow_pending") or dataset.meta.get("flow")
    if previous and previous != settings and not overwrite:
        raise ValueError(
            f"{root}: flow targets exist with {previous}, not {settings}; pass --overwrite "
            "to recompute them"
        )
    legacy_complete = dataset.meta.get("flow") == settings and "flow_pending" not in dataset.meta
    meta = {k: v for k, v in dataset.meta.items() if k != "flow"}
    todo = [
        video
        for video, length in dataset.video_lengths.items()
        if overwrite or not _flow_done(dataset.video_dir(video), length, settings, legacy_complete)
    ]
    for video in todo:
        if not (dataset.video_dir(video) / "frames.npy").exists():
            raise ValueError(f"{dataset.video_dir(video) / 'frames.npy'}: missing (video {video})")
    save_json(dataset.root / META_FILE, {**meta, "flow_pending": settings})
    for video in todo:
        (dataset.video_dir(video) / FLOW_RECORD).unlink(missing_ok=True)  # redone below
    job = partial(_safe_video_flow, delta=delta, grid=grid, method=method)
    failed: dict[str, str] = {}
    bar = tqdm(total=len(todo), desc="flow", unit="video", disable=not progress)
    directories = [dataset.video_dir(video) for video in todo]
    if workers == 1 or len(todo) <= 1:
        results = ((directory, job(directory)) for directory in directories)
    else:
        count = min(workers, len(todo))
        results = run_in_workers(job, directories, count, cv2.setNumThreads, (1,))
    for directory, error in results:
        if isinstance(error, WorkerDied):
            error = error.message
        if error is not None:
            failed[directory.name] = error
            tqdm.write(f"error: video {directory.name}: {error}", file=sys.stderr)
        bar.update()
    bar.close()
    if not failed:
        meta.pop("flow_pending", None)
        save_json(dataset.root / META_FILE, {**meta, "flow": settings})
    return len(todo) - len(failed), failed


def run(args: argparse.Namespace) -> int:
    done, failed = prepare_flow(
        args.root, args.delta, args.grid, args.method, args.workers, args.overwrite, args.progress
    )
    print(f"flow targets: computed {done} videos in {args.root}, {len(failed)} failed")
    if failed:
        print(
            f"error: flow targets of {len(failed)} videos failed ({', '.join(sorted(failed)[:5])}"
            f"{', ...' if len(failed) > 5 else ''}); {args.root} keeps them pending: "
            "run the same command again to finish"
        )
        return 1
    return 0
