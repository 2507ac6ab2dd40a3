"""The prepared-dataset format: the one on-disk layout every aurep reader and writer shares.

Layout of a prepared dataset directory ``ROOT``::

    ROOT/meta.json                     written last: a directory without it is incomplete
    ROOT/manifest.parquet              one row per frame (columns below)
    ROOT/videos/<video>/frames.npy     uint8 (T, H, W, 3) RGB aligned face crops
    ROOT/videos/<video>/landmarks.npy  float32 (T, 68, 2) iBUG 68 points, pixels of the crop
    ROOT/videos/<video>/provenance.json  settings and input fingerprint the video was made from
    ROOT/videos/<video>/rows.parquet   that video's manifest rows; written last for the video
    ROOT/.aurep-output.json            aurep's marker: aurep wrote this folder, with which job
    ROOT/videos/<video>/<array>.npy    optional per-frame arrays, e.g. ``flow`` (T, 2, h, w),
                                       ``crop_to_source`` (T, 2, 3) (``aurep prepare``)

Manifest columns: ``subject`` (str), ``video`` (str), ``frame`` (int, 0-based row in the video's
arrays), ``source_frame`` (int, the frame number in the original video or label file),
``fold`` (int, 1-3 for subject-exclusive folds, 0 if unassigned), ``success`` (1 if a face was
found), one occurrence column per AU (``AU01``, ``AU02``, ...: int8 1, 0 or -1 = unknown) and
optional intensities (``AU01_int``: float32 0-5, NaN = unknown).

Arrays are plain ``.npy`` files opened with ``mmap_mode="r"``, so reading T consecutive frames of a
video is one contiguous slice. Every file is written to a temporary name and renamed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from aurep.au import OCCURRENCE_VALUES, au_column, au_intensity_column
from aurep.landmarks import NUM_LANDMARKS
from aurep.media import is_image, is_video

FORMAT_VERSION = 1
META_FILE = "meta.json"
MANIFEST_FILE = "manifest.parquet"
VIDEOS_DIR = "videos"
ROWS_FILE = "rows.parquet"
PROVENANCE_FILE = "provenance.json"
MARKER_FILE = ".aurep-output.json"  # aurep wrote this folder; holds the job's settings
LEGACY_SETTINGS_FILE = "prepare.json"  # what prepare jobs recorded before the marker
AUREP_ENTRIES = (META_FILE, MANIFEST_FILE, VIDEOS_DIR, MARKER_FILE, LEGACY_SETTINGS_FILE)
_VIDEO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
BASE_COLUMNS = ("subject", "video", "frame", "source_frame", "fold", "success")


class DatasetError(ValueError):
    """A prepared dataset (or what should become one) is missing, incomplete or malformed."""


def check_video_id(video: str) -> str:
    """Return ``video`` if it is a safe directory name, else raise DatasetError."""
    if not _VIDEO_ID.match(video):
        raise DatasetError(
            f"video id {video!r} must be letters, digits, '.', '_' or '-' (no slashes or spaces)"
        )
    return video


def _save_atomic(path: Path, write) -> None:
    """Call ``write(file_object)`` on a temporary sibling of ``path``, then rename it over."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as handle:
        write(handle)
    os.replace(tmp, path)


def save_array(path: Path, array: np.ndarray) -> None:
    """Write ``array`` as ``.npy`` at ``path`` atomically."""
    _save_atomic(path, lambda handle: np.save(handle, array))


def save_parquet(path: Path, frame: pd.DataFrame) -> None:
    """Write a DataFrame as parquet at ``path`` atomically."""
    _save_atomic(path, lambda handle: frame.to_parquet(handle, index=False))


def save_json(path: Path, data: dict) -> None:
    """Write a dict as indented JSON at ``path`` atomically."""
    _save_atomic(path, lambda handle: handle.write(json.dumps(data, indent=2).encode()))


def check_apart(out: Path, inputs: Sequence[str | Path]) -> None:
    """DatasetError unless the output folder ``out`` is neither an input, inside one, nor
    holding one (paths compared after resolving links)."""
    target = Path(out).resolve()
    for source in inputs:
        source_path = Path(source).resolve()
        if target == source_path:
            relation = "is the input"
        elif target.is_relative_to(source_path):
            relation = "lies inside the input"
        elif source_path.is_relative_to(target):
            relation = "holds the input"
        else:
            continue
        raise DatasetError(
            f"{out}: the output folder {relation} {source}: choose an output folder outside it"
        )


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_aurep_output(root: Path) -> bool:
    """Whether ``root`` carries aurep's marker (or, for folders written before the marker, a
    prepared dataset's meta.json or an unfinished prepare job's prepare.json)."""
    root = Path(root)
    if (root / MARKER_FILE).is_file():
        return True
    meta = _read_json(root / META_FILE) or {}
    legacy_job = _read_json(root / LEGACY_SETTINGS_FILE) or {}
    return ("format_version" in meta and "au_codes" in meta) or "settings" in legacy_job


def recorded_job(root: Path) -> dict | None:
    """The job settings recorded in ``root``'s marker (legacy: prepare.json), or None."""
    marker = _read_json(Path(root) / MARKER_FILE)
    if marker is not None:
        return marker.get("job")
    return _read_json(Path(root) / LEGACY_SETTINGS_FILE)


def describe_difference(recorded: dict | None, wanted: dict) -> str:
    """Short text naming the keys whose values differ between two job records."""
    if recorded is None:
        return "none recorded"
    keys = sorted(k for k in {*recorded, *wanted} if recorded.get(k) != wanted.get(k))
    return "; ".join(f"{k}: {recorded.get(k)!r} there, {wanted.get(k)!r} now" for k in keys)


def remove_aurep_output(root: Path) -> None:
    """Delete what aurep writes in ``root`` (dataset files, the videos folder, temporary
    files, the marker); anything else stays."""
    for entry in Path(root).iterdir():
        ours = entry.name in AUREP_ENTRIES or (
            entry.name.startswith(".") and entry.name.endswith(".tmp")
        )
        if not ours:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


class PreparedDatasetWriter:
    """Writes a prepared dataset video by video; :meth:`finalize` makes it complete.

    Videos can be written from several processes (the writer pickles as its root path). A video
    counts as written once its ``rows.parquet`` exists, so an interrupted job can resume with
    ``resume=True`` and skip finished videos (:meth:`has_video`).

    The folder gets aurep's marker (:data:`MARKER_FILE`) holding ``job``, the settings of the job
    writing it. A non-empty folder is used only when it carries the marker: ``overwrite``
    removes only what aurep wrote there, ``resume`` needs the same ``job``. ``inputs``: paths
    the job reads; the folder may not be, hold or lie inside any of them.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        overwrite: bool = False,
        resume: bool = False,
        job: dict | None = None,
        inputs: Sequence[str | Path] = (),
    ):
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise DatasetError(f"{self.root}: exists and is not a directory")
        check_apart(self.root, inputs)
        job = dict(job or {})
        if self.root.is_dir() and any(self.root.iterdir()):
            if not is_aurep_output(self.root):
                foreign = sorted(p.name for p in self.root.iterdir())
                raise DatasetError(
                    f"{self.root}: holds files aurep did not write ({', '.join(foreign[:3])}"
                    f"{', ...' if len(foreign) > 3 else ''}) and no {MARKER_FILE}: "
                    "choose a new or empty output folder"
                )
            if overwrite:
                remove_aurep_output(self.root)
            elif not resume:
                raise DatasetError(
                    f"{self.root}: holds a dataset aurep wrote (pass --overwrite to replace "
                    "what aurep wrote there)"
                )
            elif recorded_job(self.root) != job:
                raise DatasetError(
                    f"{self.root}: was started with other settings "
                    f"({describe_difference(recorded_job(self.root), job)}); pass --overwrite "
                    "to redo it (only what aurep wrote there is replaced)"
                )
        try:
            (self.root / VIDEOS_DIR).mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise DatasetError(
                f"{self.root}: cannot create output directory ({error.strerror})"
            ) from None
        if not os.access(self.root, os.W_OK):
            raise DatasetError(f"{self.root}: output directory is not writable")
        (self.root / META_FILE).unlink(missing_ok=True)  # incomplete until finalize()
        save_json(self.root / MARKER_FILE, {"written_by": "aurep", "job": job})

    def video_dir(self, video: str) -> Path:
        return self.root / VIDEOS_DIR / check_video_id(video)

    def has_video(self, video: str) -> bool:
        return (self.video_dir(video) / ROWS_FILE).exists()

    def write_video(
        self,
        video: str,
        subject: str,
        frames: np.ndarray,
        landmarks: np.ndarray,
        au_codes: Sequence[int] = (),
        occurrence: np.ndarray | None = None,
        intensity: np.ndarray | None = None,
        *,
        fold: int = 0,
        success: np.ndarray | None = None,
        source_frames: np.ndarray | None = None,
        arrays: dict[str, np.ndarray] | None = None,
        provenance: dict | None = None,
    ) -> pd.DataFrame:
        """Write one video and return its manifest rows.

        frames: uint8 (T, H, W, 3); landmarks: (T, 68, 2) pixels; occurrence: (T, A) in {1, 0, -1}
        for ``au_codes`` (None = all unknown); intensity: (T, A) float, NaN = unknown;
        success: (T,) 0/1 (default all 1); arrays: extra per-frame arrays saved as ``<name>.npy``;
        provenance: what the video was made from, saved as ``provenance.json`` (see
        :meth:`provenance`). A video written before is incomplete until this one is done.
        """
        frames = np.asarray(frames)
        length = len(frames)
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or length == 0:
            raise DatasetError(
                f"video {video}: frames must be uint8 (T>0, H, W, 3), got {frames.dtype} {frames.shape}"
            )
        landmarks = np.asarray(landmarks, dtype=np.float32)
        if landmarks.shape != (length, NUM_LANDMARKS, 2):
            raise DatasetError(
                f"video {video}: landmarks must be ({length}, {NUM_LANDMARKS}, 2), got {landmarks.shape}"
            )
        rows = pd.DataFrame(
            {
                "subject": str(subject),
                "video": video,
                "frame": np.arange(length, dtype=np.int32),
                "source_frame": np.arange(length) if source_frames is None else source_frames,
                "fold": np.int8(fold),
                "success": np.ones(length, np.int8) if success is None else success,
            }
        )
        rows["source_frame"] = rows["source_frame"].astype(np.int64)
        rows["success"] = rows["success"].astype(np.int8)
        if occurrence is None:
            occurrence = np.full((length, len(au_codes)), -1, dtype=np.int8)
        occurrence = np.asarray(occurrence)
        if occurrence.shape != (length, len(au_codes)):
            raise DatasetError(
                f"video {video}: occurrence must be ({length}, {len(au_codes)}), got {occurrence.shape}"
            )
        bad = ~np.isin(occurrence, OCCURRENCE_VALUES)
        if bad.any():
            raise DatasetError(
                f"video {video}: occurrence labels must be 1, 0 or -1, got {occurrence[bad][0]}"
            )
        for index, code in enumerate(au_codes):
            rows[au_column(code)] = occurrence[:, index].astype(np.int8)
        if intensity is not None:
            intensity = np.asarray(intensity, dtype=np.float32)
            if intensity.shape != occurrence.shape:
                raise DatasetError(f"video {video}: intensity shape {intensity.shape} != labels")
            for index, code in enumerate(au_codes):
                rows[au_intensity_column(code)] = intensity[:, index]
        directory = self.video_dir(video)
        directory.mkdir(parents=True, exist_ok=True)
        self.forget_video(video)
        save_array(directory / "frames.npy", frames)
        save_array(directory / "landmarks.npy", landmarks)
        for name, array in (arrays or {}).items():
            if len(array) != length:
                raise DatasetError(
                    f"video {video}: array {name!r} has {len(array)} rows, not {length}"
                )
            save_array(directory / f"{name}.npy", np.asarray(array))
        if provenance is not None:
            save_json(directory / PROVENANCE_FILE, provenance)
        save_parquet(directory / ROWS_FILE, rows)
        return rows

    def forget_video(self, video: str) -> None:
        """Mark ``video`` unwritten (its rows and provenance go; arrays are overwritten later)."""
        (self.video_dir(video) / ROWS_FILE).unlink(missing_ok=True)
        (self.video_dir(video) / PROVENANCE_FILE).unlink(missing_ok=True)

    def drop_video(self, video: str) -> None:
        """Delete everything written for ``video``."""
        shutil.rmtree(self.video_dir(video), ignore_errors=True)

    def written_videos(self) -> list[str]:
        """Ids of the videos written so far, sorted."""
        return sorted(path.parent.name for path in (self.root / VIDEOS_DIR).glob(f"*/{ROWS_FILE}"))

    def provenance(self, video: str) -> dict | None:
        """The provenance recorded for a written video (None: none recorded)."""
        return _read_json(self.video_dir(video) / PROVENANCE_FILE)

    def finalize(self, meta: dict) -> Path:
        """Gather every video's rows into the manifest and write ``meta.json`` (last).

        meta: must hold ``au_codes`` (list of int) and ``image_size`` (int, square crops, px);
        anything else (generator settings, source) is kept as provenance.
        """
        for key in ("au_codes", "image_size"):
            if key not in meta:
                raise DatasetError(f"{self.root}: meta is missing {key!r}")
        parts = sorted((self.root / VIDEOS_DIR).glob(f"*/{ROWS_FILE}"))
        if not parts:
            raise DatasetError(f"{self.root}: no video was written")
        manifest = pd.concat([pd.read_parquet(path) for path in parts], ignore_index=True)
        manifest = manifest.sort_values(["video", "frame"], kind="stable", ignore_index=True)
        save_parquet(self.root / MANIFEST_FILE, manifest)
        full_meta = {
            "format_version": FORMAT_VERSION,
            "num_frames": len(manifest),
            "num_videos": int(manifest["video"].nunique()),
            **meta,
        }
        full_meta["au_codes"] = [int(code) for code in meta["au_codes"]]
        save_json(self.root / META_FILE, full_meta)
        return self.root


def _holds_raw_media(root: Path) -> bool:
    """Whether a video or image file lies anywhere under ``root`` (stops at the first)."""
    for folder, _, files in os.walk(root):
        if any(is_video(Path(folder, f)) or is_image(Path(folder, f)) for f in files):
            return True
    return False


def _why_not_prepared(root: Path) -> str:
    """The error for a dataset root without meta.json: unfinished job, raw media or neither."""
    if is_aurep_output(root) or (root / VIDEOS_DIR).is_dir():
        return (
            f"{root}: incomplete prepared dataset (no {META_FILE}); the job that wrote "
            "it was interrupted, failed or is still running: run it again"
        )
    if _holds_raw_media(root):
        return (
            f"{root}: holds raw videos or images, not a prepared dataset: run "
            f"`aurep prepare videos {root} --out DIR` (or bp4d/disfa/gft) and use DIR"
        )
    return f"{root}: not a prepared dataset (no {META_FILE}, no videos)"


class PreparedDataset:
    """Read access to a prepared dataset directory (see the module docstring for the layout).

    ``manifest``: pandas DataFrame, one row per frame; ``au_codes``: list of AU codes with
    occurrence columns; ``frames``/``landmarks``/``array`` return copies of T consecutive rows.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: no such dataset directory")
        meta_path = self.root / META_FILE
        if not meta_path.exists():
            raise DatasetError(_why_not_prepared(self.root))
        try:
            self.meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError as error:
            raise DatasetError(f"{meta_path}: malformed JSON ({error})") from None
        if self.meta.get("format_version") != FORMAT_VERSION:
            raise DatasetError(
                f"{meta_path}: format_version {self.meta.get('format_version')!r}, "
                f"this aurep reads {FORMAT_VERSION}"
            )
        manifest_path = self.root / MANIFEST_FILE
        if not manifest_path.exists():
            raise DatasetError(f"{manifest_path}: missing")
        self.manifest = pd.read_parquet(manifest_path)
        self.au_codes: list[int] = [int(code) for code in self.meta["au_codes"]]
        self.image_size: int = int(self.meta["image_size"])
        self._validate(manifest_path)
        lengths = self.manifest.groupby("video", sort=True).size()
        self.video_lengths: dict[str, int] = {str(k): int(v) for k, v in lengths.items()}
        first = self.manifest.drop_duplicates("video").set_index("video")
        self.video_subjects: dict[str, str] = first["subject"].astype(str).to_dict()
        self._arrays: dict[tuple[str, str], np.ndarray] = {}

    def _validate(self, manifest_path: Path) -> None:
        missing = [c for c in BASE_COLUMNS if c not in self.manifest.columns]
        missing += [au_column(c) for c in self.au_codes if au_column(c) not in self.manifest]
        if missing:
            raise DatasetError(f"{manifest_path}: missing columns {missing}")
        for code in self.au_codes:
            column = self.manifest[au_column(code)]
            bad = ~column.isin(OCCURRENCE_VALUES)
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0])
                raise DatasetError(
                    f"{manifest_path}: column {au_column(code)} row {row} has label "
                    f"{column.iloc[row]}; labels must be 1, 0 or -1 (unknown)"
                )

    def __len__(self) -> int:
        return len(self.manifest)

    @property
    def videos(self) -> list[str]:
        return list(self.video_lengths)

    @property
    def label_columns(self) -> list[str]:
        return [au_column(code) for code in self.au_codes]

    def video_dir(self, video: str) -> Path:
        return self.root / VIDEOS_DIR / video

    def has_array(self, name: str, video: str | None = None) -> bool:
        """Whether the per-frame array ``name`` exists (for ``video``, or the first video)."""
        video = video if video is not None else self.videos[0]
        return (self.video_dir(video) / f"{name}.npy").exists()

    def array(self, video: str, name: str, start: int = 0, length: int | None = None) -> np.ndarray:
        """Rows ``start:start+length`` of the per-frame array ``name`` of ``video`` (a copy)."""
        total = self.video_lengths.get(video)
        if total is None:
            raise DatasetError(f"{self.root}: no video {video!r} in the manifest")
        length = total - start if length is None else length
        if start < 0 or length < 0 or start + length > total:
            raise DatasetError(
                f"video {video}: frames {start}..{start + length - 1} requested, it has {total}"
            )
        key = (video, name)
        data = self._arrays.get(key)
        if data is None:
            path = self.video_dir(video) / f"{name}.npy"
            if not path.exists():
                raise DatasetError(f"{path}: missing ({name} of video {video})")
            try:
                data = np.load(path, mmap_mode="r")
            except (ValueError, OSError) as error:
                raise DatasetError(f"{path}: unreadable ({error})") from None
            if len(data) != total:
                raise DatasetError(
                    f"{path}: has {len(data)} frames but the manifest lists {total} for {video}"
                )
            self._arrays[key] = data
        return np.array(data[start : start + length])

    def frames(self, video: str, start: int = 0, length: int | None = None) -> np.ndarray:
        """uint8 (T, H, W, 3) RGB frames ``start:start+length`` of ``video``."""
        return self.array(video, "frames", start, length)

    def landmarks(self, video: str, start: int = 0, length: int | None = None) -> np.ndarray:
        """float32 (T, 68, 2) landmarks in pixels of the stored frames."""
        return self.array(video, "landmarks", start, length)

    def video_rows(self, video: str) -> pd.DataFrame:
        """The manifest rows of one video, in frame order."""
        return self.manifest[self.manifest["video"] == video]

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_arrays"] = {}  # memory maps are reopened in each worker process
        return state
