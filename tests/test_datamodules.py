"""ClipDataModule and AUDataModule on tiny prepared datasets (see conftest.py)."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest
import pytorch_lightning as pl
import torch
from conftest import template_landmarks

from aurep.data.batch import BatchNeeds
from aurep.data.datamodules import AUDataModule, ClipDataModule
from aurep.data.prepared import MANIFEST_FILE, DatasetError, PreparedDataset, PreparedDatasetWriter
from aurep.data.transforms import DeviceAugment
from aurep.heads.landmark_shape import normalised_shape
from aurep.synth.corpus import generate_corpus

NO_AUGMENT = {"flip_prob": 0.0, "scale": 0.0, "rotation": 0.0, "translation": 0.0}


def clip_module(root, **kwargs) -> ClipDataModule:
    defaults = {"batch_size": 4, "num_workers": 0, "clips_per_epoch": 16, "val_fraction": 0.0}
    return ClipDataModule(str(root), **{**defaults, **kwargs})


def batches(module, count: int = 4):
    loader = module.train_dataloader()
    return [batch for _, batch in zip(range(count), loader, strict=False)]


def test_clips_are_strided_frames_of_one_video_with_success(prepared):
    def success(video, length):
        flags = np.ones(length, np.int8)
        flags[5] = 0
        return flags

    root = prepared(length=14, success=success)
    module = clip_module(
        root, clip_length=3, stride=2, num_views=1, clips_per_epoch=32, **NO_AUGMENT
    )
    dataset = PreparedDataset(root)
    video_names = sorted(dataset.videos)  # written in subject order: number = sorted position
    manifest = dataset.manifest
    seen = 0
    for batch in batches(module, 8):
        origin = batch.frames[:, 0, :, :2, 0, 0].numpy()  # (B, T, 2): video number, frame
        for b in range(batch.batch_size):
            video_numbers, frames = origin[b, :, 0], origin[b, :, 1]
            assert (video_numbers == video_numbers[0]).all()
            assert (np.diff(frames) == 2).all()
            assert 5 not in frames
            video = video_names[video_numbers[0]]
            assert module.identities[dataset.video_subjects[video]] == batch.identity[b]
            rows = manifest[(manifest.video == video) & manifest.frame.isin(frames)]
            labels = rows[dataset.label_columns].to_numpy()
            assert np.array_equal(batch.label_mask[b].numpy(), labels != -1)
            assert np.array_equal(batch.labels[b].numpy(), np.clip(labels, 0, 1))
            seen += 1
    assert seen == 32


def test_batches_pair_different_identities(prepared):
    root = prepared(subjects={"A": 1, "B": 2, "C": 3}, videos_per_subject=1)
    module = clip_module(root, batch_size=8, clips_per_epoch=64)
    for batch in batches(module, 8):
        assert len(batch.identity.unique()) >= 2
        assert (batch.identity[batch.partner] != batch.identity).all()
    many = clip_module(prepared(), batch_size=6)
    for batch in batches(many, 4):  # 6 identities, batch of 6: all distinct
        assert len(batch.identity.unique()) == 6
        assert (batch.identity[batch.partner] != batch.identity).all()


def test_clips_per_identity_gives_each_person_clips_of_different_videos(prepared):
    root = prepared(subjects={"A": 1, "B": 2, "C": 3}, videos_per_subject=3)
    dataset = PreparedDataset(root)
    video_names = sorted(dataset.videos)  # written in subject order: number = sorted position
    module = clip_module(
        root, batch_size=6, clips_per_identity=3, clips_per_epoch=48, num_views=1, **NO_AUGMENT
    )
    for batch in batches(module, 8):
        groups = batch.identity.view(2, 3)  # adjacent clips of one identity
        assert (groups == groups[:, :1]).all() and groups[0, 0] != groups[1, 0]
        videos = batch.frames[:, 0, 0, 0, 0, 0].view(2, 3).tolist()  # video number, as written
        assert all(len(set(row)) == 3 for row in videos)
        subjects = [[dataset.video_subjects[video_names[v]] for v in row] for row in videos]
        assert [[module.identities[s] for s in row] for row in subjects] == groups.tolist()
        assert (batch.identity[batch.partner] != batch.identity).all()
    for size, per_identity in ((6, 4), (6, 6)):
        with pytest.raises(ValueError, match="clips_per_identity|one identity"):
            clip_module(root, batch_size=size, clips_per_identity=per_identity).train_dataloader()


def test_batch_shapes_and_device_normalisation(flow_dataset):
    module = clip_module(flow_dataset, image_size=32, num_views=2, roi_aus=[1, 12])
    raw = batches(module, 1)[0]
    assert raw.frames.dtype == torch.uint8 and raw.frames.shape == (4, 2, 4, 3, 32, 32)
    assert raw.landmarks.shape == (4, 2, 4, 68, 2) and raw.rois.shape == (4, 2, 4, 4, 4)
    assert raw.flow.shape == (4, 2, 4, 2, 28, 28) and raw.labels.shape == (4, 4, 4)
    assert module.au_codes == [1, 2, 4, 12] and module.num_aus == 4
    assert module.roi_names == ["AU01_a", "AU01_b", "AU12_a", "AU12_b"]
    expected = (raw.frames.float() / 255 - 0.485) / 0.229
    batch = module.on_after_batch_transfer(raw, 0)  # no trainer: normalisation only
    assert batch.frames.dtype == torch.float32
    torch.testing.assert_close(batch.frames[:, :, :, 0], expected[:, :, :, 0])


def test_views_share_geometry_across_frames_and_differ_between_views(flow_dataset):
    module = clip_module(flow_dataset, num_views=2, flip_prob=0.5, rotation=15.0)
    batch = batches(module, 1)[0]
    # the template slides 1 px per frame: consecutive landmark offsets are one shared vector
    steps = batch.landmarks[:, :, 1:] - batch.landmarks[:, :, :-1]  # (B, V, T-1, 68, 2)
    assert torch.allclose(steps, steps[:, :, :1, :1], atol=1e-3)
    assert not torch.allclose(batch.landmarks[:, 0], batch.landmarks[:, 1])


def test_video_landmarks_are_the_mean_over_the_video_frames_with_a_face(prepared):
    """Frame f's landmarks are the layout shifted f px right; frame 5 of every video has no
    face, so the video mean is the layout shifted by the mean of the other 11 frame indices."""

    def success(video, length):
        flags = np.ones(length, np.int8)
        flags[5] = 0
        return flags

    root = prepared(length=12, success=success)
    module = clip_module(root, clip_length=2, num_views=1, image_size=48, **NO_AUGMENT)
    mean_frame = (sum(range(12)) - 5) / 11
    for batch in batches(module, 2):
        assert batch.video_landmarks.shape == (4, 1, 68, 2)
        frame = batch.frames[:, 0, 0, 1, 0, 0].double()  # (B,) first clip frame's index
        offset = batch.video_landmarks[:, 0].double() - batch.landmarks[:, 0, 0].double()
        expected = torch.stack([mean_frame - frame, torch.zeros_like(frame)], -1)[:, None]
        torch.testing.assert_close(offset, expected.expand_as(offset), atol=1e-4, rtol=0)


def test_subject_landmarks_are_the_mean_over_every_video_of_the_subject(prepared):
    """Each subject's two videos lose different frames (v0 its first, v1 its first six): the
    subject mean weights every frame with a face of both videos alike, so it differs from
    either video's mean."""

    def success(video, length):
        flags = np.ones(length, np.int8)
        flags[: 6 if video.endswith("_v1") else 1] = 0
        return flags

    root = prepared(length=12, success=success)
    module = clip_module(root, clip_length=2, num_views=1, image_size=48, **NO_AUGMENT)
    dataset = PreparedDataset(root)
    video_names = sorted(dataset.videos)
    manifest = dataset.manifest

    def face_points(video):  # (F, 68, 2) stored landmarks of the frames with a face
        found = manifest.loc[manifest.video == video, "success"].to_numpy() == 1
        return dataset.landmarks(video)[found]

    for batch in batches(module, 2):
        origin = batch.frames[:, 0, 0, :2, 0, 0].numpy()  # (B, 2): video number, frame
        for b, (number, frame) in enumerate(origin):
            video = video_names[number]
            subject = dataset.video_subjects[video]
            own = [face_points(v) for v in video_names if dataset.video_subjects[v] == subject]
            expected = np.concatenate(own).mean(axis=0) - dataset.landmarks(video)[frame]
            offset = batch.subject_landmarks[b, 0] - batch.landmarks[b, 0, 0]
            np.testing.assert_allclose(offset.numpy(), expected, atol=1e-3)
            gap = batch.subject_landmarks[b, 0] - batch.video_landmarks[b, 0]
            assert gap[:, 0].abs().mean() > 0.5  # frames 1-11 / 6-11 against both videos


def test_video_landmarks_follow_each_view_flips_included(flow_dataset):
    """Every frame of the fixture is the same layout shifted, so in every view (mirrored,
    turned) the video mean has the frames' normalised shape."""
    module = clip_module(flow_dataset, num_views=2, flip_prob=0.5, rotation=15.0, scale=0.2)
    batch = batches(module, 1)[0]
    shape = normalised_shape(batch.landmarks[:, :, 0].double())
    torch.testing.assert_close(
        normalised_shape(batch.video_landmarks.double()), shape, atol=1e-4, rtol=0
    )


def test_sampling_is_reproducible_for_a_seed_and_worker_count(prepared):
    root = prepared()
    first = batches(clip_module(root, seed=3), 2)
    again = batches(clip_module(root, seed=3, num_workers=1), 2)
    other = batches(clip_module(root, seed=4), 2)
    for a, b in zip(first, again, strict=True):
        assert torch.equal(a.frames, b.frames) and torch.equal(a.landmarks, b.landmarks)
    assert not torch.equal(first[0].frames, other[0].frames)


def test_flipped_view_mirrors_landmark_indices_and_coordinates(tmp_path):
    """A dot drawn at landmark 36 must show up, after a flip and a resize, at landmark 45."""
    size = 48
    writer = PreparedDatasetWriter(tmp_path)
    points = template_landmarks() * (size - 1)
    points[36] = np.round(points[36])
    for subject in ("A", "B"):
        frames = np.zeros((4, size, size, 3), np.uint8)
        for frame in frames:
            cv2.circle(frame, tuple(int(v) for v in points[36]), 1, (255, 255, 255), -1)
        writer.write_video(f"{subject}_v", subject, frames, np.repeat(points[None], 4, 0))
    writer.finalize({"au_codes": [], "image_size": size})
    module = clip_module(tmp_path, num_views=1, image_size=32, **{**NO_AUGMENT, "flip_prob": 1.0})
    batch = batches(module, 1)[0]
    assert batch.labels is None and batch.label_mask is None
    image = batch.frames[0, 0, 0, 0].numpy().astype(float)
    ys, xs = np.mgrid[: image.shape[0], : image.shape[1]]
    dot = np.array([(xs * image).sum(), (ys * image).sum()]) / image.sum()
    flipped = batch.landmarks[0, 0, 0].numpy()
    np.testing.assert_allclose(flipped[45], dot, atol=0.3)
    assert flipped[36, 0] < flipped[45, 0]  # 36 stays the image-left outer eye corner
    expected_x = (size - 1 - points[:, 0] + 0.5) * 32 / size - 0.5  # mirror, then resize
    np.testing.assert_allclose(np.sort(flipped[:, 0]), np.sort(expected_x), atol=1e-3)


def write_bad_labels(root):
    manifest = pd.read_parquet(root / MANIFEST_FILE)
    manifest.loc[3, "AU02"] = 2
    manifest.to_parquet(root / MANIFEST_FILE)


@pytest.mark.parametrize("module_class", [ClipDataModule, AUDataModule])
def test_bad_datasets_name_the_problem(prepared, module_class):
    root = prepared()
    (root / "videos" / "S4_v1" / "frames.npy").unlink()
    with pytest.raises(DatasetError, match=r"S4_v1.*frames\.npy|frames\.npy.*S4_v1"):
        module_class(str(root), num_workers=0)
    root = prepared()
    write_bad_labels(root)
    with pytest.raises(DatasetError, match=r"manifest.*AU02 row 3 has label 2"):
        module_class(str(root), num_workers=0)


def test_short_video_and_missing_flow_are_clear_errors(prepared):
    root = prepared(length=6)
    with pytest.raises(DatasetError, match=r"video S0_v0 has 6 frames, shorter than one clip"):
        clip_module(root, clip_length=4, stride=2)
    module = clip_module(root)
    assert module.has_flow is False and batches(module, 1)[0].flow is None
    with pytest.raises(DatasetError, match=r"flow head needs .* run `aurep prepare flow"):
        module.provide({"flow": BatchNeeds(flow=True)})


def test_clip_validation_identities_are_held_out(prepared):
    module = clip_module(prepared(), val_fraction=0.3, val_clips=8, exclude_subjects=["S5"])
    assert len(module.val_subjects) == 2
    assert not set(module.val_subjects) & set(module.train_subjects)
    assert "S5" not in module.train_subjects + module.val_subjects
    train_ids = {module.identities[s] for s in module.train_subjects}
    for batch in batches(module, 4):
        assert set(batch.identity.tolist()) <= train_ids
    val = list(module.val_dataloader())
    assert len(val) == 2
    val_ids = {module.identities[s] for s in module.val_subjects}
    assert all(set(batch.identity.tolist()) <= val_ids for batch in val)
    again = list(module.val_dataloader())
    assert torch.equal(val[0].frames, again[0].frames)  # fixed validation clips


def test_clip_module_can_leave_out_whole_folds(prepared):
    root = prepared()
    module = clip_module(root, val_fraction=0.3, exclude_folds=[2])
    manifest = module.dataset.manifest
    fold_two = set(manifest.loc[manifest["fold"] == 2, "subject"])
    assert fold_two and not fold_two & set(module.train_subjects + module.val_subjects)
    labels = manifest[manifest["subject"].isin(module.train_subjects)][module.dataset.label_columns]
    assert module.pos_weight.shape == (labels.shape[1],)
    with pytest.raises(DatasetError, match="fold 7 has no subject"):
        clip_module(root, exclude_folds=[7])


def test_au_folds_are_subject_exclusive_and_validation_avoids_test(prepared):
    subjects = {f"S{i}": 1 + i % 3 for i in range(12)}
    root = prepared(subjects=subjects, videos_per_subject=1, length=6)
    for fold in (1, 2, 3):
        module = AUDataModule(str(root), fold=fold, val_fraction=0.25, num_workers=0)
        split = module.split
        assert split.test == sorted(s for s, f in subjects.items() if f == fold)
        assert len(split.val) == 2 and not set(split.val) & set(split.test)
        assert not set(split.val) & set(split.train)
        assert set(split.train) | set(split.val) == {s for s, f in subjects.items() if f != fold}
        manifest = module.dataset.manifest
        for name, names in (("train", split.train), ("val", split.val), ("test", split.test)):
            assert set(manifest.subject.iloc[module.rows[name]]) == set(names)
        batch = module.on_after_batch_transfer(next(iter(module.test_dataloader())), 0)
        assert set(batch.subject) <= set(split.test) and batch.images.dtype == torch.float32


def test_label_fraction_is_reproducible_nested_and_per_subject(prepared):
    root = prepared(length=40)

    def rows(fraction, seed=0):
        return AUDataModule(str(root), label_fraction=fraction, seed=seed, num_workers=0)

    small, large, again, other = rows(0.1), rows(0.5), rows(0.1), rows(0.1, seed=1)
    assert np.array_equal(small.rows["train"], again.rows["train"])
    assert not np.array_equal(small.rows["train"], other.rows["train"])
    assert set(small.rows["train"]) < set(large.rows["train"])
    full = rows(1.0)
    manifest = full.dataset.manifest
    per_subject = manifest.subject.iloc[full.rows["train"]].value_counts()
    small_counts = manifest.subject.iloc[small.rows["train"]].value_counts()
    assert set(small_counts.index) == set(per_subject.index)
    assert (small_counts == np.ceil(0.1 * per_subject)).all()


def test_au_rows_and_pos_weight(prepared):
    def success(video, length):
        return (np.arange(length) != 2).astype(np.int8)

    module = AUDataModule(str(prepared(success=success)), num_workers=0, val_fraction=0.0)
    manifest = module.dataset.manifest
    train = manifest.iloc[module.rows["train"]]
    assert (train.success == 1).all()
    labels = train[module.dataset.label_columns].to_numpy()
    assert (labels != -1).any(axis=1).all()
    everything = manifest[manifest.subject.isin(module.split.train)]
    usable = (everything.success == 1) & (everything[module.dataset.label_columns] != -1).any(
        axis=1
    )
    assert len(train) == usable.sum()
    positives, negatives = (labels == 1).sum(0), (labels == 0).sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = np.where(positives > 0, negatives / positives, 100.0)  # clamped: never positive
    expected = np.clip(expected, 0.01, 100.0)
    torch.testing.assert_close(module.pos_weight, torch.tensor(expected, dtype=torch.float32))
    assert module.val_dataloader() == []


def test_au_fold_errors(prepared):
    root = prepared(subjects={"A": 1, "B": 2})
    with pytest.raises(DatasetError, match=r"fold 3 is empty; the dataset has folds \[1, 2\]"):
        AUDataModule(str(root), fold=3)
    with pytest.raises(DatasetError, match=r"no folds assigned"):
        AUDataModule(str(prepared(subjects={"A": 0, "B": 0})))
    with pytest.raises(DatasetError, match=r"no subjects \['Z'\]"):
        AUDataModule(str(root), subjects=["A", "Z"])
    with pytest.raises(DatasetError, match=r"only fold \[1\]"):
        AUDataModule(str(root), subjects=["A"])


def test_datamodules_read_the_synthetic_corpus(tmp_path):
    root = generate_corpus(
        tmp_path / "synth", identities=6, clips_per_identity=1, frames=8, size=48,
        workers=1, progress=False,
    )  # fmt: skip
    clips = clip_module(root, image_size=32, val_fraction=0.3, val_clips=4)
    clips.provide({"tcl": BatchNeeds(views=2), "flow": BatchNeeds(flow=True)})
    batch = clips.on_after_batch_transfer(batches(clips, 1)[0], 0)
    assert batch.flow.shape == (4, 2, 4, 2, 28, 28) and batch.labels.shape == (4, 4, 15)
    assert torch.isfinite(batch.frames).all() and batch.label_mask.all()
    frames = AUDataModule(str(root), fold=1, val_fraction=0.25, batch_size=4, num_workers=0)
    assert frames.num_aus == 15 and frames.pos_weight.shape == (15,)
    assert next(iter(frames.train_dataloader())).images.shape == (4, 3, 48, 48)


class _RecordingModule(pl.LightningModule):
    """Records what each step receives, trains one parameter."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))
        self.seen = []

    def _step(self, batch):
        self.seen.append((self.trainer.training, batch.frames.dtype, batch.frames.mean().item()))
        return (batch.frames.mean() * self.weight) ** 2 + self.weight**2

    def training_step(self, batch, batch_idx):
        return self._step(batch)

    def validation_step(self, batch, batch_idx):
        self._step(batch)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_trainer_calls_the_datamodule_transfer_hook(prepared):
    module = clip_module(prepared(), val_fraction=0.3, val_clips=4, clips_per_epoch=8)
    model = _RecordingModule()
    trainer = pl.Trainer(
        max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
    )  # fmt: skip
    trainer.fit(model, datamodule=module)
    assert [training for training, _, _ in model.seen] == [True, True, False] * 2
    assert all(dtype == torch.float32 for _, dtype, _ in model.seen)
    assert all(abs(mean) < 3 for _, _, mean in model.seen)  # normalised, not 0-255


def test_device_colour_augment_is_shared_by_the_frames_of_a_view():
    torch.manual_seed(0)
    frame = torch.randint(0, 256, (1, 1, 3, 16, 16), dtype=torch.uint8)
    frames = frame.expand(8, 4, 3, 16, 16).contiguous()  # 8 views of 4 identical frames
    augment = DeviceAugment(jitter_prob=1.0, grayscale_prob=0.0)
    jittered, plain = augment(frames, train=True), augment(frames, train=False)
    torch.testing.assert_close(jittered, jittered[:, :1].expand_as(jittered))
    assert not torch.allclose(jittered[0], jittered[1])
    assert not torch.allclose(jittered, plain)
