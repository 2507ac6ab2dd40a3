"""``aurep prepare flow DIR``: optical-flow targets for every video of a prepared dataset, in place.

Each video gets ``videos/<video>/flow.npy``, float16 (T, 2, grid, grid) pixels (dx, dy), see
:mod:`aurep.data.flow`. It resumes: videos whose ``flow.npy`` already has the right shape are
skipped unless ``--overwrite``. The settings are recorded in ``meta.json`` as ``flow_pending``
before the first video and moved to ``flow`` when every video is done, so a rerun with other
settings is refused until ``--overwrite``.
"""

from __future__ import annotations

import argparse
import multiprocessing
from functools import partial
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from aurep.data.flow import FLOW_METHODS, video_flow_targets
from aurep.data.prepared import META_FILE, PreparedDataset, save_array, save_json

HELP = "add optical-flow targets to the prepared dataset DIR, in place"


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


def _flow_done(path: Path, shape: tuple[int, ...]) -> bool:
    try:
        return np.load(path, mmap_mode="r").shape == shape
    except (OSError, ValueError):
        return False


def _video_flow(video_dir: Path, delta: int, grid: int, method: str) -> None:
    frames = np.load(video_dir / "frames.npy", mmap_mode="r")
    save_array(video_dir / "flow.npy", video_flow_targets(np.asarray(frames), delta, grid, method))


def prepare_flow(
    root: Path,
    delta: int = 1,
    grid: int = 28,
    method: str = "dis",
    workers: int = 2,
    overwrite: bool = False,
    progress: bool = True,
) -> int:
    """Add flow targets to every video of the prepared dataset ``root``; returns videos computed."""
    if method not in FLOW_METHODS:
        raise ValueError(f"unknown flow method {method!r}; choose from {FLOW_METHODS}")
    if delta < 1 or grid < 1 or workers < 1:
        raise ValueError(f"delta, grid and workers must be >= 1, got {delta}, {grid}, {workers}")
    dataset = PreparedDataset(root)
    settings = {"delta": delta, "grid": grid, "method": method}
    previous = dataset.meta.get("flow_pending") or dataset.meta.get("flow")
    if previous and previous != settings and not overwrite:
        raise ValueError(
            f"{root}: flow targets exist with {previous}, not {settings}; pass --overwrite"
        )
    meta = {k: v for k, v in dataset.meta.items() if k != "flow"}
    save_json(dataset.root / META_FILE, {**meta, "flow_pending": settings})
    todo = [
        video
        for video, length in dataset.video_lengths.items()
        if overwrite
        or not _flow_done(dataset.video_dir(video) / "flow.npy", (length, 2, grid, grid))
    ]
    for video in todo:
        if not (dataset.video_dir(video) / "frames.npy").exists():
            raise ValueError(f"{dataset.video_dir(video) / 'frames.npy'}: missing (video {video})")
    job = partial(_video_flow, delta=delta, grid=grid, method=method)
    bar = tqdm(total=len(todo), desc="flow", unit="video", disable=not progress)
    if workers == 1:
        for video in todo:
            job(dataset.video_dir(video))
            bar.update()
    else:
        context = multiprocessing.get_context("forkserver")
        with context.Pool(workers, initializer=cv2.setNumThreads, initargs=(1,)) as pool:
            for _ in pool.imap_unordered(job, [dataset.video_dir(v) for v in todo]):
                bar.update()
    bar.close()
    meta.pop("flow_pending", None)
    save_json(dataset.root / META_FILE, {**meta, "flow": settings})
    return len(todo)


def run(args: argparse.Namespace) -> int:
    done = prepare_flow(
        args.root, args.delta, args.grid, args.method, args.workers, args.overwrite, args.progress
    )
    print(f"flow targets: computed {done} videos in {args.root}")
    return 0
