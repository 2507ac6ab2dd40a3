"""AU detection on a video, an image folder or an image, streamed with bounded memory.

A producer thread decodes frames and observes and aligns faces (:class:`FaceObserver`); the
calling thread batches the aligned crops (``batch_size``) through the detector, so decoding and
face finding overlap with the model (PyAV, MediaPipe and PyTorch release the GIL). At most
``queue_size`` aligned crops wait between the two; source frames are dropped once observed.

Output: one CSV row per face per frame (up to ``max_faces``; frames ordered, their faces by
``face_id``) with OpenFace-compatible columns (:func:`csv_columns`): ``frame`` (1-based),
``face_id`` (0, 1, ...: stable across frames, :mod:`aurep.infer.tracking`; a face unseen for a
while gets a new id; always 0 when ``max_faces`` is 1), ``timestamp`` (s), ``confidence`` (face
detector score, see :mod:`aurep.infer.faces`), ``success``, the face box ``face_x``,
``face_y``, ``face_w``, ``face_h`` (the 68 landmarks' bounding box), head pose ``pose_Tx`` ..
``pose_Rz`` (mm, rad), landmarks ``x_0`` .. ``x_67``, ``y_0`` .. ``y_67`` (source-frame
pixels), ``AUxx_c`` (0/1, the detector's per-AU thresholds), ``AUxx_p`` (probability) and,
optionally, MediaPipe's 52 blendshape scores ``bs_<name>`` (as py-feat reports them).
AUDetector predicts occurrence only, so there are no ``AUxx_r`` intensity columns. Frames
without a face, and unreadable frames (a broken image in a folder, a video cut short), have one
row with face_id 0, success 0 and empty cells. The CSV (and the optional ``.npy`` of pooled
backbone features, one row per CSV row, NaN rows without a face) are written to temporary names
and renamed when both are complete (temporary files are removed on error).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from aurep.au import au_column
from aurep.data.images import normalise, resize_frames
from aurep.data.prepared import META_FILE
from aurep.infer.faces import BLENDSHAPES, POSE_COLUMNS, FaceObservation, FaceObserver
from aurep.infer.tracking import FaceTracker
from aurep.landmarks import NUM_LANDMARKS
from aurep.models.checkpoints import TRAINING_DATA_KEY, read_checkpoint
from aurep.prepare.faces.align import DEFAULT_MARGIN, DEFAULT_POINTS, DEFAULT_SIZE, FaceAligner
from aurep.prepare.faces.landmarker import ignore_profiling_signal
from aurep.prepare.frames import is_image, iter_frames

BOX_COLUMNS = ("face_x", "face_y", "face_w", "face_h")


@dataclass
class FaceResult:
    """One CSV row: a face of an input frame, or the frame's only row when it has none
    (``face`` None), its pixels already dropped; ``unreadable``: why the frame (and maybe the
    next ones) could not be read, naming the file, else None."""

    index: int
    timestamp_ms: float
    face: FaceObservation | None
    unreadable: str | None = None
    face_id: int = 0


def _dataset_meta(root: str | None) -> dict:
    """A prepared dataset's meta.json ({} if unavailable)."""
    meta = Path(root) / META_FILE if root else None
    if meta is None or not meta.is_file():
        return {}
    try:
        loaded = json.loads(meta.read_text())
    except (json.JSONDecodeError, OSError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _is_pretraining_checkpoint(checkpoint: dict) -> bool:
    """Whether a checkpoint holds a PretrainTask (SSL heads) rather than an AUDetector."""
    class_path = str(checkpoint.get("hyper_parameters", {}).get("_class_path", ""))
    state = checkpoint["state_dict"]
    return class_path.endswith("PretrainTask") or any(k.startswith("model.") for k in state)


class AUPredictor:
    """A trained :class:`~aurep.tasks.detector.AUDetector` for inference on aligned crops.

    ``training_data``: the entries of the training dataset's meta.json that the checkpoint
    records (:data:`~aurep.models.checkpoints.TRAINING_DATA_KEY`; older checkpoints: that
    dataset's meta.json if it is still at the saved ``root``; else empty); ``alignment``: its "preprocess" entry, the
    ``size``/``margin``/``points`` it was prepared with. ``image_size``: the side of the
    detector's training inputs (the DataModule's ``image_size`` saved in the checkpoint, else
    the training data's image side, else its crop side, else None: crops are used at their own
    size).
    ``thresholds``: per-AU decision thresholds. ValueError naming the file for a pretraining
    checkpoint or anything else that is not an AUDetector checkpoint.
    """

    def __init__(self, checkpoint: str | Path, device: str = "cpu"):
        from aurep.tasks.detector import AUDetector

        stored = read_checkpoint(checkpoint)
        if _is_pretraining_checkpoint(stored):
            raise ValueError(
                f"{checkpoint}: a pretraining checkpoint, not an AU detector: train a detector "
                "on it with `aurep cv ... -- --model.init_args.pretrained_ckpt="
                f"{checkpoint}` and give its fold checkpoint to --ckpt"
            )
        model = AUDetector.from_checkpoint(stored, checkpoint)
        self.model = model.to(device)
        self.device = torch.device(device)
        self.au_codes: list[int] = list(model.au_codes)
        self.num_features: int = model.backbone.num_features
        self.thresholds = model.thresholds.detach().cpu().numpy()
        data = stored.get("datamodule_hyper_parameters", {})
        data = data if isinstance(data, dict) else {}
        self.training_root: str | None = data.get("root")
        recorded = stored.get(TRAINING_DATA_KEY)
        self.training_data: dict = (
            recorded if isinstance(recorded, dict) else _dataset_meta(self.training_root)
        )
        preprocess = self.training_data.get("preprocess", {})
        self.alignment: dict = dict(preprocess) if isinstance(preprocess, dict) else {}
        self.image_size: int | None = (
            data.get("image_size")
            or self.training_data.get("image_size")
            or self.alignment.get("size")
        )

    @property
    def trained_on_synthetic(self) -> bool:
        """Whether the training data's meta.json says it is an ``aurep synth`` corpus."""
        return self.training_data.get("source") == "synth"

    def aligner(
        self, size: int | None = None, margin: float | None = None, points: str | None = None
    ) -> FaceAligner:
        """The face crop of the training data: crop side (px), margin and alignment points
        default to the training data's (``aurep prepare`` and ``aurep synth`` record the
        template's in meta.json), else to ``image_size`` (or ``DEFAULT_SIZE``) and the
        template's margin and points."""
        size = size if size is not None else self.alignment.get("size") or self.image_size
        margin = margin if margin is not None else self.alignment.get("margin", DEFAULT_MARGIN)
        return FaceAligner(
            size or DEFAULT_SIZE, margin, points or self.alignment.get("points", DEFAULT_POINTS)
        )

    def inputs(self, crops: np.ndarray) -> torch.Tensor:
        """uint8 (B, S, S, 3) RGB crops -> float32 (B, 3, s, s) model inputs on the device:
        resized to ``image_size`` and normalised as in evaluation (:mod:`aurep.data.images`)."""
        if self.image_size:
            crops = resize_frames(crops, self.image_size)
        return normalise(torch.from_numpy(crops).to(self.device).permute(0, 3, 1, 2))

    @torch.inference_mode()
    def __call__(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """crops: uint8 (B, S, S, 3) RGB -> (probabilities (B, A), pooled features (B, C))."""
        pooled = self.model.backbone(self.inputs(crops)).pooled
        probs = self.model.head(pooled).sigmoid()
        return probs.float().cpu().numpy(), pooled.float().cpu().numpy()


def face_results(
    source: Path, aligner: FaceAligner, fps: float, blendshapes: bool = True, max_faces: int = 1
) -> Iterator[FaceResult]:
    """The observed faces (up to ``max_faces``, tracked by :class:`FaceTracker`; face_id 0 when
    ``max_faces`` is 1) of every frame of ``source`` in frame order, each frame's by ``face_id``
    (a single image uses image mode); frames without a face, or that cannot be read
    (:func:`~aurep.prepare.frames.iter_frames` gives them no image), give one row without a
    face carrying the reader's problem."""
    mode = "image" if is_image(Path(source)) else "video"
    tracker = FaceTracker()
    with FaceObserver(aligner, mode, blendshapes, max_faces=max_faces) as observer:
        for index, frame in enumerate(iter_frames(Path(source), fps)):
            faces = [] if frame.image is None else observer(frame.image, frame.timestamp_ms)
            ids = tracker([face.box for face in faces]) if max_faces > 1 else [0] * len(faces)
            if not faces:
                yield FaceResult(index, frame.timestamp_ms, None, frame.problem)
            for face_id, face in sorted(zip(ids, faces, strict=True), key=lambda p: p[0]):
                yield FaceResult(index, frame.timestamp_ms, face, frame.problem, face_id)


def in_background(items: Iterable, maxsize: int) -> Iterator:
    """Iterate ``items`` in a producer thread, at most ``maxsize`` items ahead; exceptions of
    the producer are raised here. Stopping early stops the producer."""
    buffer: queue.Queue = queue.Queue(maxsize)
    done, stop = object(), threading.Event()

    def put(item) -> bool:
        """Wait for room for ``item``; False once the consumer has stopped."""
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(done)
        except BaseException as error:  # handed to the consumer
            put(error)

    thread = threading.Thread(target=produce, name="aurep-faces", daemon=True)
    thread.start()
    try:
        while True:
            item = buffer.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


def batches(items: Iterable, size: int) -> Iterator[list]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def csv_columns(au_codes: list[int], blendshapes: bool = True) -> list[str]:
    """The CSV header, in order (see the module docstring)."""
    columns = ["frame", "face_id", "timestamp", "confidence", "success"]
    columns += [*BOX_COLUMNS, *POSE_COLUMNS]
    columns += [f"x_{i}" for i in range(NUM_LANDMARKS)] + [f"y_{i}" for i in range(NUM_LANDMARKS)]
    columns += [f"{au_column(code)}_c" for code in au_codes]
    columns += [f"{au_column(code)}_p" for code in au_codes]
    if blendshapes:
        columns += [f"bs_{name.lstrip('_')}" for name in BLENDSHAPES]
    return columns


def _face_values(batch: list[FaceResult], width: int, values) -> np.ndarray:
    """float32 (len(batch), width): ``values(face)`` per frame with a face, NaN rows without."""
    rows = np.full((len(batch), width), np.nan, dtype=np.float32)
    for row, result in enumerate(batch):
        if result.face is not None:
            rows[row] = values(result.face)
    return rows


def rows_frame(
    batch: list[FaceResult],
    probs: np.ndarray,
    thresholds: np.ndarray,
    au_codes: list[int],
    blendshapes: bool = True,
) -> pd.DataFrame:
    """The CSV rows of one batch; ``probs`` (F, A) holds the rows of the F faces in order."""
    found = np.array([r.face is not None for r in batch])
    full = np.full((len(batch), len(au_codes)), np.nan, dtype=np.float32)
    full[found] = probs
    table = {
        "frame": [r.index + 1 for r in batch],
        "face_id": [r.face_id for r in batch],
        "timestamp": np.round([r.timestamp_ms / 1000.0 for r in batch], 3),
        "confidence": np.round([r.face.confidence if r.face else 0.0 for r in batch], 3),
        "success": found.astype(np.int8),
    }
    geometry = _face_values(batch, len(BOX_COLUMNS) + len(POSE_COLUMNS), _box_and_pose)
    table.update(zip((*BOX_COLUMNS, *POSE_COLUMNS), geometry.T, strict=True))
    points = _face_values(batch, 2 * NUM_LANDMARKS, lambda f: f.landmarks.T.ravel())
    table.update({f"x_{i}": points[:, i] for i in range(NUM_LANDMARKS)})
    table.update({f"y_{i}": points[:, NUM_LANDMARKS + i] for i in range(NUM_LANDMARKS)})
    occurrence = (full >= thresholds).astype(np.int8)
    for index, code in enumerate(au_codes):
        table[f"{au_column(code)}_c"] = pd.Series(occurrence[:, index], dtype="Int8").mask(~found)
    for index, code in enumerate(au_codes):
        table[f"{au_column(code)}_p"] = full[:, index]
    if blendshapes:
        scores = _face_values(batch, len(BLENDSHAPES), lambda f: f.blendshapes)
        table.update({f"bs_{n.lstrip('_')}": scores[:, i] for i, n in enumerate(BLENDSHAPES)})
    return pd.DataFrame(table)


def _box_and_pose(face: FaceObservation) -> np.ndarray:
    return np.concatenate([face.box, face.pose])


@dataclass
class InferSummary:
    """frames, face_frames (frames with a face), faces: counts (a frame may have several
    faces); unreadable: the readers' messages about unreadable frames (their rows have
    success 0); seconds: wall time end to end, model_seconds: of which in the detector."""

    frames: int = 0
    face_frames: int = 0
    faces: int = 0
    unreadable: list[str] = field(default_factory=list)
    seconds: float = 0.0
    model_seconds: float = 0.0

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0


def infer(
    source: Path,
    predictor: AUPredictor,
    out: Path,
    *,
    embeddings: Path | None = None,
    batch_size: int = 32,
    aligner: FaceAligner | None = None,
    fps: float = 30.0,
    blendshapes: bool = True,
    max_faces: int = 1,
    queue_size: int = 64,
    progress=None,
) -> InferSummary:
    """Detect AUs on up to ``max_faces`` faces in every frame of ``source``; write ``out`` (CSV)
    and optionally ``embeddings`` (float32 (rows, C) ``.npy``, a row per CSV row).
    ``aligner``: the face crop (default: as for the training data, :meth:`AUPredictor.aligner`);
    ``blendshapes``: add the ``bs_*`` columns; ``batch_size``: faces per model batch.
    ``progress``: optional tqdm bar (counts frames)."""
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    if fps <= 0:
        raise ValueError(f"frame rate must be > 0, got {fps}")
    aligner = aligner or predictor.aligner()
    out, summary, start, rows = Path(out), InferSummary(), time.perf_counter(), 0
    last_face = -1  # the last frame with a face so far (its faces may span two batches)
    tmp_csv = out.with_name(f".{out.name}.tmp")
    tmp_raw = embeddings.with_name(f".{embeddings.name}.raw") if embeddings else None
    tmp_npy = embeddings.with_name(f".{embeddings.name}.tmp") if embeddings else None
    try:
        with contextlib.ExitStack() as files:
            handle = files.enter_context(open(tmp_csv, "w", newline=""))
            features = files.enter_context(open(tmp_raw, "wb")) if tmp_raw else None
            # MediaPipe starts in the producer thread, where Python cannot set signals
            ignore_profiling_signal()
            observed = face_results(source, aligner, fps, blendshapes, max_faces)
            for batch in batches(in_background(observed, queue_size), batch_size):
                crops = [r.face.aligned.image for r in batch if r.face is not None]
                probs = np.zeros((0, len(predictor.au_codes)), np.float32)
                pooled = None
                if crops:
                    tick = time.perf_counter()
                    probs, pooled = predictor(np.stack(crops))
                    summary.model_seconds += time.perf_counter() - tick
                frame = rows_frame(
                    batch, probs, predictor.thresholds, predictor.au_codes, blendshapes
                )
                frame.to_csv(handle, header=rows == 0, index=False, float_format="%.4f")
                if features is not None:
                    features.write(_feature_rows(batch, pooled, predictor.num_features).tobytes())
                rows += len(batch)
                seen, summary.frames = summary.frames, batch[-1].index + 1
                summary.faces += len(crops)
                summary.face_frames += len({r.index for r in batch if r.face} - {last_face})
                last_face = max((r.index for r in batch if r.face), default=last_face)
                summary.unreadable += [r.unreadable for r in batch if r.unreadable]
                if progress is not None:
                    progress.update(summary.frames - seen)
        if summary.frames == 0:
            raise ValueError(f"{source}: no frames")
        if embeddings is not None:
            _raw_to_npy(tmp_raw, tmp_npy, rows, predictor.num_features)
            # both complete. The old CSV goes first and the new one comes last, so a CSV that
            # exists always has the embeddings of its own run beside it
            out.unlink(missing_ok=True)
            os.replace(tmp_npy, embeddings)
        os.replace(tmp_csv, out)
    finally:
        for path in (tmp_csv, tmp_raw, tmp_npy):
            if path is not None and path.exists():
                path.unlink()
    summary.seconds = time.perf_counter() - start
    return summary


def _feature_rows(batch: list[FaceResult], pooled: np.ndarray | None, width: int) -> np.ndarray:
    """(len(batch), C) float32 features, NaN rows for rows without a face."""
    rows = np.full((len(batch), width), np.nan, dtype=np.float32)
    found = [i for i, r in enumerate(batch) if r.face is not None]
    if found:
        rows[found] = pooled
    return rows


def _raw_to_npy(raw: Path, target: Path, rows: int, width: int, chunk: int = 4096) -> None:
    """Raw float32 rows -> ``target`` .npy (rows, width), copied in chunks (bounded memory);
    the caller renames ``target`` into place and removes it on error."""
    data = np.memmap(raw, dtype=np.float32, mode="r", shape=(rows, width))
    array = np.lib.format.open_memmap(target, mode="w+", dtype=np.float32, shape=(rows, width))
    for begin in range(0, rows, chunk):
        array[begin : begin + chunk] = data[begin : begin + chunk]
    array.flush()
    del array, data
