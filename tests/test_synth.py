"""The synthetic corpus: AU regions, labels, identities, determinism, format and bad input."""

import cv2
import numpy as np
import pytest

from aurep.au import OCCURRENCE_THRESHOLD, SYNTH_AUS, au_column, au_intensity_column
from aurep.cli import main
from aurep.data import DatasetError, PreparedDataset
from aurep.synth import FaceRenderer, SynthSettings, generate_corpus, identity_of, render_clip
from aurep.synth import corpus as corpus_module
from aurep.synth.dynamics import sample_motion
from aurep.synth.landmarks import AU_BASIS

SIZE = 64
UPPER_AUS = (1, 2, 4, 6, 7)
# EAC-Net RoI centres (docs/method.md, "AU regions of interest"):
# AU -> ((landmark, landmark), y offset in rulers).
ROI_CENTRES = {
    1: ((21, 22), -1 / 2), 2: ((18, 25), -1 / 3), 4: ((19, 24), 1 / 3), 6: ((41, 46), 1.0),
    7: ((38, 43), 0.0), 10: ((49, 53), 0.0), 12: ((48, 54), 0.0), 14: ((48, 54), 0.0),
    15: ((48, 54), 0.0), 17: ((56, 58), 1 / 2), 23: ((61, 63), 0.0), 24: ((61, 63), 0.0),
}  # fmt: skip


@pytest.fixture(scope="module")
def renderer():
    return FaceRenderer(identity_of(0, 0, difficulty=0.0), SIZE)


def _intensities(code=None, value=5.0):
    au = np.zeros(len(SYNTH_AUS))
    if code is not None:
        au[SYNTH_AUS.index(code)] = value
    return au


def _far_mask(code, landmarks):
    """Pixels far from AU ``code``'s region: below the upper lip for upper-face AUs, below the
    lower lip for AU9, above the eye line for lower-face AUs."""
    rows = np.arange(SIZE)[:, None] * np.ones((1, SIZE))
    if code in UPPER_AUS:
        return rows > landmarks[51, 1] + 1
    if code == 9:
        return rows > landmarks[57, 1] + 2
    return rows < landmarks[39, 1]


@pytest.mark.parametrize("code", SYNTH_AUS)
def test_each_au_acts_on_its_own_region(renderer, code):
    neutral, neutral_points = renderer.render(_intensities())
    active, active_points = renderer.render(_intensities(code))
    diff = np.abs(active.astype(float) - neutral.astype(float)).mean(-1)
    moved = np.flatnonzero(np.abs(AU_BASIS[SYNTH_AUS.index(code)]).sum(1))
    low = neutral_points[moved].min(0) - 0.08 * SIZE
    high = neutral_points[moved].max(0) + 0.08 * SIZE
    own = diff[int(low[1]) : int(high[1]) + 1, int(low[0]) : int(high[0]) + 1]
    far = diff[_far_mask(code, neutral_points)]
    assert own.mean() > 1.0, f"AU{code} barely changes its region"
    assert far.mean() < 0.1 * own.mean(), f"AU{code} changes distant pixels"
    assert far.max() < 8, f"AU{code} changes distant pixels"
    # Landmarks: the AU's own points move, every other point stays exactly where it was.
    shift = np.linalg.norm(active_points - neutral_points, axis=1)
    assert shift[moved].max() > 0.75
    still = np.setdiff1d(np.arange(68), moved)
    np.testing.assert_allclose(active_points[still], neutral_points[still], atol=1e-5)


@pytest.mark.parametrize("code", sorted(ROI_CENTRES))
def test_eac_roi_centres_land_on_the_au(renderer, code):
    neutral, points = renderer.render(_intensities())
    active, _ = renderer.render(_intensities(code))
    diff = np.abs(active.astype(float) - neutral.astype(float)).mean(-1)
    ruler = abs(points[39, 0] - points[42, 0])
    (a, b), offset = ROI_CENTRES[code]
    half = int(round(ruler / 2))
    for index in (a, b):
        x, y = np.round(points[index] + (0, offset * ruler)).astype(int)
        window = diff[max(y - half, 0) : y + half + 1, max(x - half, 0) : x + half + 1]
        assert window.mean() > 2 * diff.mean(), f"AU{code} RoI centre at landmark {index}"


def test_intensity_scales_the_change(renderer):
    neutral, _ = renderer.render(_intensities())
    weak, _ = renderer.render(_intensities(12, 1.0))
    strong, _ = renderer.render(_intensities(12, 5.0))
    assert (
        np.abs(strong.astype(float) - neutral).sum()
        > 2 * np.abs(weak.astype(float) - neutral).sum()
    )


def test_identities_differ():
    faces = [FaceRenderer(identity_of(0, i, 0.5), SIZE).render(_intensities())[0] for i in range(3)]
    for i in range(3):
        for j in range(i + 1, 3):
            assert np.abs(faces[i].astype(float) - faces[j]).mean() > 5


def test_resting_offsets_look_like_aus_but_are_not_labelled():
    hard = [identity_of(0, i, 1.0) for i in range(30)]
    easy = [identity_of(0, i, 0.0) for i in range(30)]
    assert max(max(p.rest_geometry) for p in hard) > 1.0
    assert all(max(p.rest_geometry) == 0 and max(p.rest_shading) == 0 for p in easy)


def test_clip_labels_and_landmarks():
    settings = SynthSettings(identities=2, clips_per_identity=2, frames=12, size=SIZE, seed=3)
    video = render_clip(settings, 1, 0)
    assert video.frames.shape == (12, SIZE, SIZE, 3) and video.frames.dtype == np.uint8
    assert video.landmarks.shape == (12, 68, 2)
    np.testing.assert_array_equal(video.occurrence, video.intensity >= OCCURRENCE_THRESHOLD)
    assert video.intensity.min() >= 0 and video.intensity.max() <= 5
    inside = (video.landmarks > -2) & (video.landmarks < SIZE + 2)
    assert inside.all()
    # Eyes above nose above mouth above chin in every frame, after the alignment warp.
    y = video.landmarks[..., 1]
    assert (y[:, 37] < y[:, 30]).all() and (y[:, 30] < y[:, 62]).all()
    assert (y[:, 62] < y[:, 8]).all()


def test_base_rates_are_unequal_and_speech_moves_the_mouth():
    motions = [sample_motion(np.random.default_rng(i), 40) for i in range(300)]
    rates = np.mean([(m.intensity >= 2).mean(0) for m in motions], 0)
    assert rates.max() > 4 * rates.min() > 0
    talking = [m for m in motions if m.speech]
    assert 0.2 < len(talking) / len(motions) < 0.5
    lips = SYNTH_AUS.index(25)
    assert np.mean([np.diff(m.intensity[:, lips]).std() for m in talking]) > 0.2


def test_same_seed_same_bytes_other_seed_differs():
    settings = SynthSettings(identities=2, clips_per_identity=1, frames=4, size=SIZE, seed=7)
    first, again = render_clip(settings, 1, 0), render_clip(settings, 1, 0)
    np.testing.assert_array_equal(first.frames, again.frames)
    np.testing.assert_array_equal(first.intensity, again.intensity)
    other = render_clip(SynthSettings(frames=4, size=SIZE, seed=8), 1, 0)
    assert not np.array_equal(first.frames, other.frames)


def _corpus(root, **kwargs):
    options = dict(identities=3, clips_per_identity=2, frames=6, size=SIZE, seed=1,
                   workers=1, progress=False)  # fmt: skip
    options.update(kwargs)
    return generate_corpus(root, **options)


def test_corpus_reads_back(tmp_path):
    dataset = PreparedDataset(_corpus(tmp_path / "synth"))
    assert len(dataset) == 3 * 2 * 6
    assert dataset.videos == [
        "S000_C00",
        "S000_C01",
        "S001_C00",
        "S001_C01",
        "S002_C00",
        "S002_C01",
    ]
    assert dataset.au_codes == list(SYNTH_AUS) and dataset.image_size == SIZE
    assert dataset.meta["source"] == "synth"
    assert dataset.meta["flow"] == {"delta": 1, "grid": 28, "method": "farneback"}
    assert dataset.frames("S001_C01").shape == (6, SIZE, SIZE, 3)
    assert dataset.landmarks("S001_C01").shape == (6, 68, 2)
    assert dataset.array("S001_C01", "flow").shape == (6, 2, 28, 28)
    manifest = dataset.manifest
    folds = manifest.groupby("subject")["fold"].nunique()
    assert (folds == 1).all()
    assert sorted(manifest.drop_duplicates("subject")["fold"]) == [1, 2, 3]
    for code in SYNTH_AUS:
        expected = (manifest[au_intensity_column(code)] >= OCCURRENCE_THRESHOLD).astype(int)
        assert (manifest[au_column(code)] == expected).all()


@pytest.mark.slow
def test_worker_count_does_not_change_the_bytes(tmp_path):
    one = PreparedDataset(_corpus(tmp_path / "one", flow=False))
    two = PreparedDataset(_corpus(tmp_path / "two", flow=False, workers=2))
    assert not one.has_array("flow")
    for video in one.videos:
        np.testing.assert_array_equal(one.frames(video), two.frames(video))
        np.testing.assert_array_equal(one.landmarks(video), two.landmarks(video))
    assert one.manifest.equals(two.manifest)


def test_interrupted_corpus_is_refused(tmp_path, monkeypatch):
    calls = []
    real = corpus_module.render_clip

    def failing(*args):
        calls.append(args)
        if len(calls) == 3:
            raise RuntimeError("worker died")
        return real(*args)

    monkeypatch.setattr(corpus_module, "render_clip", failing)
    with pytest.raises(RuntimeError):
        _corpus(tmp_path / "synth", flow=False)
    with pytest.raises(DatasetError, match="incomplete"):
        PreparedDataset(tmp_path / "synth")


@pytest.mark.parametrize(
    "options, message",
    [
        (["--identities", "0"], "identities must be a positive integer"),
        (["--frames", "-3"], "frames must be a positive integer"),
        (["--clips-per-identity", "0"], "clips_per_identity must be a positive integer"),
        (["--size", "16"], "size must be at least 32"),
        (["--difficulty", "2"], "difficulty must be in"),
        (["--workers", "0"], "workers must be a positive integer"),
    ],
)
def test_bad_arguments_are_one_line_errors(tmp_path, capsys, options, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["synth", "--out", str(tmp_path / "out"), *options])
    assert exit_info.value.code != 0
    error = capsys.readouterr().err
    assert message in error and len(error.strip().splitlines()) == 1


def test_unusable_output_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    (tmp_path / "file").write_text("x")
    cases = ((tmp_path / "full", "aurep did not write (x)"), (tmp_path / "file" / "sub", "cannot"))
    for out, message in cases:
        with pytest.raises(SystemExit) as exit_info:
            main(["synth", "--out", str(out), "--identities", "1", "--frames", "2"])
        assert exit_info.value.code != 0
        error = capsys.readouterr().err
        assert message in error and len(error.strip().splitlines()) == 1
        assert "--overwrite" not in error  # it would not help, and must not be suggested
    assert (tmp_path / "full" / "x").read_text() == "x"


def test_contact_sheet_command(tmp_path):
    out = tmp_path / "sheet.png"
    assert main(["contact-sheet", "--out", str(out), "--identities", "2", "--size", "48"]) == 0
    sheet = cv2.imread(str(out))
    assert sheet.shape[0] > 2 * 48 and sheet.shape[1] > 16 * 48


@pytest.mark.parametrize("frames", [1, 2, 5])
def test_very_short_clips(frames):
    video = render_clip(SynthSettings(frames=frames, size=32), 0, 0)
    assert video.frames.shape == (frames, 32, 32, 3)
