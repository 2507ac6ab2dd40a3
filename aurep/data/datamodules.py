"""LightningDataModules: clips for self-supervised pretraining, labelled frames for AU detection.

Both split by subject in ``__init__`` (so ``au_codes``, ``num_aus`` and, for AU detection,
``pos_weight`` exist right after construction), check that every video they use has its array
files, and ship uint8 images: ``on_after_batch_transfer`` (a LightningDataModule hook, called by
the Trainer after the batch reached the device) applies colour augmentation while training and
ImageNet normalisation always. Outside a Trainer, call ``dm.on_after_batch_transfer(batch, 0)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from functools import partial

import numpy as np
import torch
from pytorch_lightning import LightningDataModule
from torch.utils.data import DataLoader

from aurep.au import SYNTH_AUS
from aurep.data.batch import BatchNeeds, ClipBatch, ClipSpec, check_needs
from aurep.data.clips import (
    ClipDataset,
    collate_clips,
    flow_from_previous_frame,
    index_clips,
)
from aurep.data.folds import fold_split, holdout_subjects, sample_label_fraction
from aurep.data.label_stats import pos_weight_from_labels
from aurep.data.labelled import FrameBatch, LabelledFrameDataset, collate_frames
from aurep.data.prepared import DatasetError, PreparedDataset
from aurep.data.rois import roi_names
from aurep.data.samplers import IdentityBatchSampler
from aurep.data.transforms import DeviceAugment, GeometricAugment


def check_video_files(dataset: PreparedDataset, videos: Sequence[str], arrays: Sequence[str]):
    """Raise DatasetError naming the first missing ``<array>.npy`` of ``videos``."""
    for video in videos:
        for name in arrays:
            path = dataset.video_dir(video) / f"{name}.npy"
            if not path.exists():
                raise DatasetError(f"{path}: missing ({name} of video {video} in the manifest)")


def select_subjects(
    dataset: PreparedDataset,
    subjects: Sequence[str] | None,
    exclude: Sequence[str] | None,
) -> list[str]:
    """The dataset's subjects, restricted to ``subjects`` (if given) minus ``exclude``."""
    known = sorted(dataset.manifest["subject"].astype(str).unique())
    unknown = sorted(set(subjects or ()).union(exclude or ()) - set(known))
    if unknown:
        raise DatasetError(f"{dataset.root}: no subjects {unknown} in the manifest")
    chosen = [s for s in known if (subjects is None or s in subjects) and s not in (exclude or ())]
    if not chosen:
        raise DatasetError(f"{dataset.root}: the subject selection leaves no subject")
    return chosen


def require_at_least(owner: str, **settings: tuple[int | None, int]) -> None:
    """ValueError naming the first setting below its minimum: ``name=(value, minimum)``; a None
    value means "the default" and is not checked."""
    for name, (value, minimum) in settings.items():
        if value is not None and value < minimum:
            raise ValueError(f"{owner}: {name} must be >= {minimum}, got {value}")


class _DeviceBatchHook:
    """``on_after_batch_transfer``: uint8 images -> colour-augmented (training only), normalised."""

    device_augment: DeviceAugment
    trainer: object

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        training = bool(getattr(self.trainer, "training", False))
        if isinstance(batch, ClipBatch) and batch.frames.dtype == torch.uint8:
            b, v, t = batch.frames.shape[:3]
            views = batch.frames.flatten(0, 1)  # one parameter set per (clip, view)
            frames = self.device_augment(views, training).view(b, v, t, *views.shape[2:])
            return replace(batch, frames=frames)
        if isinstance(batch, FrameBatch) and batch.images.dtype == torch.uint8:
            images = self.device_augment(batch.images[:, None], training)[:, 0]
            return replace(batch, images=images)
        return batch


class ClipDataModule(_DeviceBatchHook, LightningDataModule):
    """Clips of T consecutive frames, in one or more augmented views, batched across identities.

    What a batch carries follows its consumers: :meth:`provide` takes the heads' needs
    (:class:`~aurep.data.batch.BatchNeeds`), refuses what the data cannot give (naming the head)
    and from then on loads and augments only what is needed (no flow warping when no head
    uses flow, one view when no head needs two). Without :meth:`provide` every input the data
    has is loaded. :attr:`clip_spec` tells consumers the shapes (clip length, image size, RoIs).

    Args:
        root: prepared dataset directory.
        clip_length: T frames per clip. stride: frame step inside a clip.
        batch_size: clips per batch (>= 2; every batch mixes identities, see
            :class:`~aurep.data.samplers.IdentityBatchSampler`). num_workers: loader processes.
        clips_per_identity: clips of each identity in a batch, from different videos while
            the identity has more (must divide ``batch_size``; 1 = every clip another person):
            > 1 for heads that compare a person's videos (``subject_relative`` landmarks,
            ``group: identity`` invariance).
        clips_per_epoch: clips per training epoch (``clips_per_epoch // batch_size`` batches).
        val_clips: clips per validation pass (fixed across epochs); 0 = no validation.
        image_size: output side in px (None: the dataset's; the ``image_size`` attribute).
        num_views: independently augmented views of each clip, 1 or 2; None (default) = as many
            as the heads need.
        roi_aus: AUs whose two RoIs each view carries (default :data:`aurep.au.SYNTH_AUS`);
            roi_size / roi_unit: box side as a face-width fraction (``"face"``) or pixels.
        flip_prob, scale, rotation, translation: per-view geometric augmentation
            (see :class:`~aurep.data.transforms.GeometricAugment`); also used for validation.
        frame_scale, frame_rotation, frame_translation: the same ranges for an extra affine of
            every frame (0 = off): a face's motion inside a clip then differs between views.
        colour_jitter, jitter_prob, grayscale_prob: per-view colour augmentation on the device,
            training only (see :class:`~aurep.data.transforms.DeviceAugment`);
            frame_colour_jitter: an extra colour jitter of every frame (zeros = off);
            frame_illumination: slope of a random light gradient multiplying every frame (0 = off).
        val_fraction: share of identities held out for validation (at least 2 when > 0).
        train_subjects / val_subjects: explicit identity lists instead of ``val_fraction``.
        exclude_subjects: identities never used (e.g. kept for the AU quality benchmark).
        exclude_folds: folds (manifest ``fold`` column) whose subjects are never used: set it to
            the test fold of a later ``aurep cv`` when pretraining with AU labels
            (``au_weight > 0``), so that no test subject's labels are seen.
        seed: seed of the split, the clip sampling and the CPU augmentation.
    """

    def __init__(
        self,
        root: str = "data/synth",
        clip_length: int = 4,
        stride: int = 1,
        batch_size: int = 32,
        clips_per_identity: int = 1,
        num_workers: int = 2,
        clips_per_epoch: int = 8192,
        val_clips: int = 512,
        image_size: int | None = None,
        num_views: int | None = None,
        roi_aus: list[int] | None = None,
        roi_size: float = 0.18,
        roi_unit: str = "face",
        flip_prob: float = 0.5,
        scale: float = 0.1,
        rotation: float = 10.0,
        translation: float = 0.05,
        frame_scale: float = 0.0,
        frame_rotation: float = 0.0,
        frame_translation: float = 0.0,
        colour_jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1),
        jitter_prob: float = 0.8,
        grayscale_prob: float = 0.2,
        frame_colour_jitter: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0),
        frame_illumination: float = 0.0,
        val_fraction: float = 0.1,
        train_subjects: list[str] | None = None,
        val_subjects: list[str] | None = None,
        exclude_subjects: list[str] | None = None,
        exclude_folds: list[int] | None = None,
        seed: int = 0,
    ):
        super().__init__()
        self.save_hyperparameters()
        if num_views not in (None, 1, 2):
            raise ValueError(f"num_views must be 1, 2 or None (as the heads need), got {num_views}")
        require_at_least(
            "ClipDataModule",
            clip_length=(clip_length, 1),
            stride=(stride, 1),
            batch_size=(batch_size, 2),
            clips_per_identity=(clips_per_identity, 1),
            num_workers=(num_workers, 0),
            clips_per_epoch=(clips_per_epoch, batch_size),
            val_clips=(val_clips, 0),
            image_size=(image_size, 1),
        )
        self.dataset = PreparedDataset(root)
        self.au_codes: list[int] = list(self.dataset.au_codes)
        self.num_aus = len(self.au_codes)
        self.roi_aus = list(SYNTH_AUS if roi_aus is None else roi_aus)
        self.roi_names = roi_names(self.roi_aus)
        self.has_flow = self._has_flow()
        excluded = list(exclude_subjects or []) + self._fold_subjects(exclude_folds or [])
        self.train_subjects, self.val_subjects = self._split(
            train_subjects, val_subjects, excluded, val_fraction
        )
        if len(self.train_subjects) < 2:
            raise DatasetError(
                f"{self.dataset.root}: {len(self.train_subjects)} identities left for training "
                f"({len(self.val_subjects)} held out for validation): clip batches need at least "
                "2 identities (cross-identity partners); use more identities"
                + (", or set data.init_args.val_fraction=0" if self.val_subjects else "")
            )
        self.pos_weight = self._pos_weight(self.train_subjects)
        subjects = sorted(set(self.dataset.video_subjects.values()))
        self.identities = {subject: number for number, subject in enumerate(subjects)}
        arrays = ["frames", "landmarks"]
        self.train_index = self._index(self.train_subjects, arrays)
        self.val_index = self._index(self.val_subjects, arrays) if self.val_subjects else None
        self.image_size = self.dataset.image_size if image_size is None else image_size
        self.geometry = GeometricAugment(
            self.image_size,
            flip_prob,
            scale,
            rotation,
            translation,
            frame_scale,
            frame_rotation,
            frame_translation,
        )
        self.device_augment = DeviceAugment(
            colour_jitter, jitter_prob, grayscale_prob, frame_colour_jitter, frame_illumination
        )
        self.needs = BatchNeeds(
            views=num_views or 2, flow=self.has_flow, rois=True, landmarks=True, partner=True
        )

    @property
    def clip_spec(self) -> ClipSpec:
        """What these clips can give: shapes and available inputs."""
        return ClipSpec(
            clip_length=self.hparams.clip_length,
            image_size=self.geometry.out_size,
            num_rois=len(self.roi_names),
            max_views=self.hparams.num_views or 2,
            has_flow=self.has_flow,
            flow_from_previous=self.has_flow
            and flow_from_previous_frame(self.dataset, self.hparams.stride),
            num_identities=len(self.identities),
            has_labels=self.num_aus > 0,
            au_codes=tuple(self.au_codes),
            source=str(self.dataset.root),
        )

    def provide(self, needs_by_consumer: Mapping[str, BatchNeeds]) -> ClipSpec:
        """Load exactly what the consumers (heads, by name) need from now on; DatasetError
        naming the first consumer whose needs the data cannot meet. Returns :attr:`clip_spec`."""
        spec = self.clip_spec
        try:
            check_needs(needs_by_consumer, spec)
        except ValueError as error:
            raise DatasetError(str(error)) from None
        total = BatchNeeds.of_all(needs_by_consumer.values())
        if self.hparams.num_views is not None:
            total = replace(total, views=self.hparams.num_views)
        self.needs = total
        return spec

    def _fold_subjects(self, folds: Sequence[int]) -> list[str]:
        """Subjects of the manifest's ``folds``; DatasetError for a fold with no subject."""
        manifest = self.dataset.manifest
        subjects = []
        for fold in folds:
            chosen = manifest.loc[manifest["fold"] == fold, "subject"].astype(str).unique()
            if len(chosen) == 0:
                raise DatasetError(f"{self.dataset.root}: fold {fold} has no subject to exclude")
            subjects += sorted(chosen)
        return subjects

    def _pos_weight(self, subjects: Sequence[str]) -> torch.Tensor | None:
        """(A,) negatives / positives per AU over the training subjects' known labels."""
        if not self.au_codes:
            return None
        manifest = self.dataset.manifest
        labels = manifest.loc[
            manifest["subject"].astype(str).isin(subjects), self.dataset.label_columns
        ]
        labels = torch.tensor(labels.to_numpy(), dtype=torch.float32)
        return pos_weight_from_labels(labels, labels != -1)

    def _has_flow(self) -> bool:
        """Whether every video has complete flow targets (an interrupted ``aurep prepare flow``
        leaves ``flow_pending`` in meta.json: then none count)."""
        if "flow_pending" in self.dataset.meta:
            return False
        return all(self.dataset.has_array("flow", v) for v in self.dataset.videos)

    def _split(self, train, val, exclude, val_fraction) -> tuple[list[str], list[str]]:
        if train is not None or val is not None:
            if train is None or val is None:
                raise ValueError("give both train_subjects and val_subjects, or neither")
            train = select_subjects(self.dataset, train, exclude)
            val = select_subjects(self.dataset, val, exclude) if val else []
            overlap = sorted(set(train) & set(val))
            if overlap:
                raise ValueError(f"subjects {overlap} are in both train and val")
            return train, val
        subjects = select_subjects(self.dataset, None, exclude)
        return holdout_subjects(subjects, val_fraction, self.hparams.seed, minimum=2)

    def _index(self, subjects: list[str], arrays: list[str]):
        chosen = set(subjects)
        videos = [v for v in self.dataset.videos if self.dataset.video_subjects[v] in chosen]
        check_video_files(self.dataset, videos, arrays)
        hp = self.hparams
        return index_clips(self.dataset, videos, hp.clip_length, hp.stride, self.identities)

    def _loader(self, index, geometry, batches: int, fixed: bool, epoch: int) -> DataLoader:
        hp = self.hparams
        dataset = ClipDataset(
            self.dataset,
            index,
            hp.clip_length,
            hp.stride,
            geometry,
            self.needs,
            self.roi_aus,
            hp.roi_size,
            hp.roi_unit,
        )
        sampler = IdentityBatchSampler(
            index.identity,
            hp.batch_size,
            batches,
            hp.seed,
            fixed,
            clip_videos=index.video,
            clips_per_identity=hp.clips_per_identity,
        )
        sampler.set_epoch(epoch)
        return DataLoader(
            dataset,
            batch_sampler=sampler,
            num_workers=hp.num_workers,
            collate_fn=partial(collate_clips, has_labels=self.num_aus > 0),
            persistent_workers=hp.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        batches = self.hparams.clips_per_epoch // self.hparams.batch_size
        epoch = int(getattr(self.trainer, "current_epoch", 0) or 0)
        return self._loader(self.train_index, self.geometry, batches, fixed=False, epoch=epoch)

    def val_dataloader(self) -> DataLoader | list:
        batches = self.hparams.val_clips // self.hparams.batch_size
        if self.val_index is None or batches == 0:
            return []
        return self._loader(self.val_index, self.geometry, batches, fixed=True, epoch=0)


class AUDataModule(_DeviceBatchHook, LightningDataModule):
    """Labelled frames of one subject-exclusive fold for AU detection.

    Fold ``fold`` tests on manifest part ``fold`` and trains on the other parts; validation
    subjects (``val_fraction`` of the training subjects, seeded) are held out of the training
    parts only. ``label_fraction`` keeps that share of every training subject's labelled frames
    (random frames, per subject, nested across fractions for one seed; see
    :func:`~aurep.data.folds.sample_label_fraction`); validation and test keep all frames.
    Frames count when ``success == 1`` and at least one AU label is known.

    Args:
        root: prepared dataset directory (with AU columns and folds).
        fold: the test part (1..K). val_fraction: share of training subjects for validation.
        label_fraction: share of training frames kept, in (0, 1].
        batch_size, num_workers: loader settings.
        image_size: output side in px (None: the dataset's; the ``image_size`` attribute).
        subjects / exclude_subjects: restrict the dataset to / remove these subjects.
        flip_prob, scale, rotation, translation: light training geometry (eval: resize only).
        colour_jitter, jitter_prob, grayscale_prob: training colour augmentation on the device.
        seed: seed of the validation split and the label-fraction sample.

    Attributes: ``au_codes``, ``num_aus``, ``split`` (:class:`~aurep.data.folds.FoldSplit`),
    ``pos_weight`` (A,) float32 = negatives / positives of the kept training labels (positives
    counted as at least 1).
    """

    def __init__(
        self,
        root: str = "data/bp4d",
        fold: int = 1,
        val_fraction: float = 0.15,
        label_fraction: float = 1.0,
        batch_size: int = 64,
        num_workers: int = 2,
        image_size: int | None = None,
        subjects: list[str] | None = None,
        exclude_subjects: list[str] | None = None,
        flip_prob: float = 0.5,
        scale: float = 0.05,
        rotation: float = 5.0,
        translation: float = 0.03,
        colour_jitter: tuple[float, float, float, float] = (0.2, 0.2, 0.0, 0.0),
        jitter_prob: float = 0.5,
        grayscale_prob: float = 0.0,
        seed: int = 0,
    ):
        super().__init__()
        self.save_hyperparameters()
        require_at_least(
            "AUDataModule",
            fold=(fold, 1),
            batch_size=(batch_size, 1),
            num_workers=(num_workers, 0),
            image_size=(image_size, 1),
        )
        self.dataset = PreparedDataset(root)
        self.au_codes: list[int] = list(self.dataset.au_codes)
        self.num_aus = len(self.au_codes)
        if not self.au_codes:
            raise DatasetError(f"{self.dataset.root}: has no AU label columns")
        manifest = self.dataset.manifest
        kept = set(select_subjects(self.dataset, subjects, exclude_subjects))
        in_selection = manifest["subject"].astype(str).isin(kept).to_numpy()
        labelled = manifest[self.dataset.label_columns].to_numpy() != -1
        usable = in_selection & (manifest["success"].to_numpy() == 1) & labelled.any(axis=1)
        self.split = fold_split(
            manifest[in_selection], fold, val_fraction, seed, str(self.dataset.root)
        )
        self.rows = {
            name: self._rows(usable, getattr(self.split, name)) for name in ("train", "val", "test")
        }
        train_subjects = manifest["subject"].iloc[self.rows["train"]].astype(str)
        sample = sample_label_fraction(train_subjects.reset_index(drop=True), label_fraction, seed)
        self.rows["train"] = self.rows["train"][sample]
        labels = manifest[self.dataset.label_columns].to_numpy()[self.rows["train"]]
        labels = torch.as_tensor(labels, dtype=torch.float32)
        self.pos_weight = pos_weight_from_labels(labels, labels != -1)
        self.image_size = self.dataset.image_size if image_size is None else image_size
        size = self.image_size
        self.train_geometry = GeometricAugment(size, flip_prob, scale, rotation, translation)
        self.eval_geometry = GeometricAugment(size)
        self.device_augment = DeviceAugment(colour_jitter, jitter_prob, grayscale_prob)

    def _rows(self, usable: np.ndarray, subjects: list[str]) -> np.ndarray:
        manifest = self.dataset.manifest
        mask = usable & manifest["subject"].astype(str).isin(subjects).to_numpy()
        rows = np.flatnonzero(mask)
        videos = manifest["video"].iloc[rows].unique().tolist()
        check_video_files(self.dataset, videos, ["frames"])
        return rows

    def _loader(self, name: str, geometry: GeometricAugment, shuffle: bool) -> DataLoader:
        if len(self.rows[name]) == 0:
            raise DatasetError(
                f"{self.dataset.root}: fold {self.hparams.fold} has no labelled {name} frames"
            )
        hp = self.hparams
        return DataLoader(
            LabelledFrameDataset(self.dataset, self.rows[name], geometry),
            batch_size=hp.batch_size,
            shuffle=shuffle,
            drop_last=shuffle and len(self.rows[name]) >= hp.batch_size,
            num_workers=hp.num_workers,
            collate_fn=collate_frames,
            persistent_workers=hp.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.train_geometry, shuffle=True)

    def val_dataloader(self) -> DataLoader | list:
        if not self.split.val:
            return []
        return self._loader("val", self.eval_geometry, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.eval_geometry, shuffle=False)
