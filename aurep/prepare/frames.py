"""Frame sources: decode a video (PyAV, bundled FFmpeg), read an image folder or one image.

Every source yields :class:`SourceFrame` one at a time (bounded memory for long videos). Frame
numbers: a video's frames are numbered 0, 1, ... in decoding order; a folder's images by the
integer in their file name (``2440.jpg`` -> 2440, padding ignored) when every name has one,
else 0, 1, ... in name order. A source that cannot be opened raises
:class:`~aurep.data.DatasetError` naming the file. Inside a source, a frame that cannot be read
is yielded with ``image=None`` and a ``problem`` naming the file (preprocessing marks it
``success = 0``): an unreadable or truncated image of a folder (a JPEG without its end marker,
a PNG without IEND), the frames a video's container lists but that do not decode (a cut file,
a decoding error), so the clip keeps the length and frame numbers its labels expect.
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
from aurep.media import VIDEO_SUFFIXES, is_image, is_video

_NUMBER = re.compile(r"(\d+)(?!.*\d)")  # the last run of digits
_JPEG_SCAN, _JPEG_END, _PNG_END = b"\xff\xda", b"\xff\xd9", b"IEND\xaeB`\x82"


@dataclass
class SourceFrame:
    """number: frame number in the source; timestamp_ms: presentation time (folders: number /
    fps); image: uint8 (H, W, 3) RGB, None when unreadable; problem: why (set on the first of a
    run of unreadable frames, or on a video's last frame when decoding stopped after it)."""

    number: int
    timestamp_ms: float
    image: np.ndarray | None
    problem: str | None = None


def is_truncated_image(path: Path) -> bool:
    """Whether a JPEG lacks an end marker (EOI) after its last scan (SOS), or a PNG its IEND
    chunk: a cut file, which OpenCV would decode with a grey or garbled bottom. Data after the
    end marker is allowed (an EOI before the scan, a thumbnail's, does not count). Other
    formats: False."""
    suffix = Path(path).suffix.lower()
    if suffix not in (".jpg", ".jpeg", ".png"):
        return False
    data = Path(path).read_bytes()
    if suffix == ".png":
        return _PNG_END not in data
    return data.rfind(_JPEG_END) < data.rfind(_JPEG_SCAN)


def read_image(path: Path) -> np.ndarray:
    """uint8 (H, W, 3) RGB pixels of an image file; DatasetError if unreadable or truncated."""
    pixels = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if pixels is None:
        raise DatasetError(f"{path}: unreadable image")
    if is_truncated_image(path):
        raise DatasetError(f"{path}: truncated image (no end marker)")
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
    """Decode the first video stream of ``path`` frame by frame. Frames its container lists
    beyond the last decodable one come as ``image=None`` (a problem names the file); a decoding
    error with no listed frame missing is the problem of the last decoded frame."""
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as error:
        raise DatasetError(f"{path}: cannot open video ({error})") from None
    with container:
        if not container.streams.video:
            raise DatasetError(f"{path}: has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        listed = int(stream.frames or 0)  # 0: the container does not say
        rate = float(stream.average_rate or 30.0)
        number, failure, held = 0, None, None  # held: the last decoded frame, not yet yielded
        try:
            for frame in container.decode(stream):
                time = frame.time if frame.time is not None else number / rate
                if held is not None:
                    yield held
                held = SourceFrame(number, 1000.0 * time, frame.to_ndarray(format="rgb24"))
                number += 1
        except av.FFmpegError as error:
            failure = f"decoding failed at frame {number} ({error})"
        if number == 0 and failure:
            raise DatasetError(f"{path}: {failure}")
        if failure and number >= listed:  # no frame is known to be missing: say so on the last
            held.problem = f"{path}: {failure}; kept the {number} frames decoded before it"
        if held is not None:
            yield held
        if number < listed:
            reason = failure or f"truncated: decoded {number} of the {listed} frames it lists"
            problem = f"{path}: {reason}; frames {number}-{listed - 1} are marked success = 0"
            for missing in range(number, listed):
                yield SourceFrame(missing, 1000.0 * missing / rate, None, problem)
                problem = None


def iter_image_folder(folder: Path, fps: float = 30.0) -> Iterator[SourceFrame]:
    """The images of ``folder`` in frame order; timestamps = frame number / ``fps``. An
    unreadable or truncated image comes as ``image=None`` with its problem."""
    for number, path in image_files(folder):
        try:
            yield SourceFrame(number, 1000.0 * number / fps, read_image(path))
        except (DatasetError, OSError) as error:
            yield SourceFrame(number, 1000.0 * number / fps, None, f"{error}: success = 0")


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
