"""Frame sources: decode a video (PyAV, bundled FFmpeg), read an image folder or one image.

Every source yields :class:`SourceFrame` one at a time (bounded memory for long videos). Frame
numbers: a video's frames are numbered 0, 1, ... in decoding order; a folder's images by the
integer in their file name (``2440.jpg`` -> 2440, padding ignored) when every name has one,
else 0, 1, ... in name order. Unreadable input raises :class:`~aurep.data.DatasetError` naming
the file (and the frame).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np

from aurep.data.prepared import DatasetError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
_NUMBER = re.compile(r"(\d+)(?!.*\d)")  # the last run of digits


@dataclass
class SourceFrame:
    """number: frame number in the source; timestamp_ms: presentation time (folders: number /
    fps); image: uint8 (H, W, 3) RGB."""

    number: int
    timestamp_ms: float
    image: np.ndarray


def is_video(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES


def is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


def read_image(path: Path) -> np.ndarray:
    """uint8 (H, W, 3) RGB pixels of an image file; DatasetError if unreadable."""
    pixels = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if pixels is None:
        raise DatasetError(f"{path}: unreadable image")
    return cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)


def image_files(folder: Path) -> list[tuple[int, Path]]:
    """(frame number, path) of the images directly in ``folder``, in frame order."""
    paths = sorted(p for p in folder.iterdir() if is_image(p))
    numbers = [_NUMBER.search(p.stem) for p in paths]
    if paths and all(numbers):
        pairs = sorted((int(m.group(1)), p) for m, p in zip(numbers, paths, strict=True))
        repeated = [n for n, count in Counter(n for n, _ in pairs).items() if count > 1]
        if repeated:
            raise DatasetError(f"{folder}: several images with frame number {min(repeated)}")
        return pairs
    return list(enumerate(paths))


def iter_video(path: Path) -> Iterator[SourceFrame]:
    """Decode the first video stream of ``path`` frame by frame."""
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as error:
        raise DatasetError(f"{path}: cannot open video ({error})") from None
    with container:
        if not container.streams.video:
            raise DatasetError(f"{path}: has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        number = 0
        try:
            for frame in container.decode(stream):
                time = frame.time if frame.time is not None else number / 30.0
                yield SourceFrame(number, 1000.0 * time, frame.to_ndarray(format="rgb24"))
                number += 1
        except av.FFmpegError as error:
            raise DatasetError(f"{path}: decoding failed at frame {number} ({error})") from None


def iter_image_folder(folder: Path, fps: float = 30.0) -> Iterator[SourceFrame]:
    """The images of ``folder`` in frame order; timestamps = frame number / ``fps``."""
    for number, path in image_files(folder):
        yield SourceFrame(number, 1000.0 * number / fps, read_image(path))


def iter_frames(source: Path, fps: float = 30.0) -> Iterator[SourceFrame]:
    """Frames of a video file, an image folder or a single image (``fps``: folders only)."""
    source = Path(source)
    if source.is_dir():
        return iter_image_folder(source, fps)
    if is_video(source):
        return iter_video(source)
    if is_image(source):
        return iter([SourceFrame(0, 0.0, read_image(source))])
    if not source.exists():
        raise DatasetError(f"{source}: no such file or directory")
    raise DatasetError(
        f"{source}: not a video ({', '.join(VIDEO_SUFFIXES)}), an image or an image folder"
    )


def encode_video(
    path: Path, frames: Iterable[np.ndarray], fps: int = 25, codec: str = "mpeg4"
) -> int:
    """Encode uint8 (H, W, 3) RGB frames (even H and W) into a video file; returns the count."""
    path = Path(path)
    count = 0
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.pix_fmt = "yuv420p"
        for image in frames:
            if count == 0:
                stream.height, stream.width = image.shape[:2]
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
            count += 1
        for packet in stream.encode():
            container.mux(packet)
    return count
