"""``aurep prepare videos SRC --out DIR``: an unlabelled face-video corpus -> a prepared dataset.

Sources under ``SRC``: every video file (any depth) and every folder that directly holds images
(a frame folder), VoxCeleb style ``identity/video/clip.mp4``. The subject is the top folder under
``SRC`` (the file or folder name for sources at the top level); the video id joins the
relative path with ``__`` (``id0001/abc/00001.mp4`` -> ``id0001__abc__00001``), other characters
than letters, digits, ``.``, ``_`` and ``-`` become ``-``.
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

from aurep.prepare.frames import is_image, is_video
from aurep.prepare.jobs import (
    VideoJob,
    add_preprocess_arguments,
    prepare_from_args,
)

HELP = "prepare an unlabelled face-video corpus (identity/video/clip.mp4 or frame folders)"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def safe_video_id(parts: list[str]) -> str:
    """Path parts -> a video id accepted by the prepared format."""
    video = "__".join(_UNSAFE.sub("-", part) for part in parts)
    return video if video[:1].isalnum() else f"v{video}"


def discover(src: Path) -> list[VideoJob]:
    """One :class:`VideoJob` per video file or frame folder under ``src``, sorted by path."""
    if not src.is_dir():
        raise ValueError(f"{src}: no such directory")
    jobs = []
    for folder, subfolders, files in os.walk(src):
        subfolders.sort()
        base = Path(folder)
        paths = [base / name for name in sorted(files)]
        sources = [p for p in paths if is_video(p)]
        if base != src and any(is_image(p) for p in paths):
            sources.append(base)
        for source in sources:
            parts = list(source.relative_to(src).parts)
            parts[-1] = Path(parts[-1]).stem if source.is_file() else parts[-1]
            jobs.append(VideoJob(safe_video_id(parts), subject=parts[0], source=source))
    if not jobs:
        raise ValueError(f"{src}: no videos or frame folders found")
    return sorted(jobs, key=lambda job: str(job.source))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_preprocess_arguments(parser, "corpus root (identity/video/clip.mp4 or frame folders)")


def run(args: argparse.Namespace) -> int:
    jobs = discover(args.src)
    return prepare_from_args(jobs, args, {"au_codes": [], "source": "videos"})
