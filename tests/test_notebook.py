"""The embeddings notebook runs on a tiny checkpoint; the scores it shows behave as defined."""

from __future__ import annotations

from pathlib import Path

import cv2
import nbformat
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from aurep.cli import main
from aurep.data.prepared import PreparedDataset
from aurep.embeddings import (
    SCORE_READINGS,
    Embeddings,
    extract_embeddings,
    nearest_neighbours,
    person_independence,
    score_table,
    untrained_backbone,
)
from aurep.models.checkpoints import load_backbone
from aurep.plot.categories import category_styles, scatter_categories

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "embeddings.ipynb"


def synthetic_embeddings(features: str, subjects: int = 4, videos: int = 2, frames: int = 10):
    """Frames whose AU patterns repeat across subjects; features encode ``"identity"`` (one-hot
    subject) or ``"aus"`` (the labels), plus a little noise."""
    rng = np.random.default_rng(0)
    patterns = rng.integers(0, 2, (videos * frames, 3)).astype(np.int8)
    labels = np.tile(patterns, (subjects, 1))
    subject = np.repeat(np.arange(subjects), videos * frames)
    video = np.repeat(np.arange(subjects * videos), frames)
    if features == "identity":
        values = np.eye(subjects)[subject]
    else:
        values = np.concatenate([labels == 1, labels == 0], axis=1).astype(float)
    values = values + 0.01 * rng.normal(size=values.shape)
    return Embeddings(
        features=values.astype(np.float32),
        labels=labels,
        au_codes=[1, 2, 12],
        subjects=np.array([f"S{s}" for s in subject]),
        videos=np.array([f"S{s}_v{v}" for s, v in zip(subject, video, strict=True)]),
        frames=np.tile(np.arange(frames), subjects * videos),
    )


def test_identity_features_are_person_dependent():
    scores = person_independence(synthetic_embeddings("identity"), k=3)
    assert scores["identity_accuracy"] == 1.0 and scores["identity_chance"] == 0.25
    assert scores["cross_identity_rate"] == 0.0 and scores["person_independence"] == 0.0


def test_au_features_are_person_independent():
    scores = person_independence(synthetic_embeddings("aus"), k=3)
    assert scores["au_f1"] == 1.0 and scores["au_accuracy"] == 1.0
    # identity-blind features: neighbours show other people as often as random frames do
    assert scores["person_independence"] == pytest.approx(1.0, abs=0.1)
    assert scores["identity_accuracy"] < 0.5
    assert set(scores) >= {"au_f1/AU01", "au_f1/AU02", "au_f1/AU12"}


def test_neighbours_come_from_other_groups():
    emb = synthetic_embeddings("identity")
    for exclude, groups in (("subject", emb.subjects), ("video", emb.videos)):
        neighbours = nearest_neighbours(emb, 5, exclude=exclude, chunk=7)
        assert neighbours.shape == (len(emb), 5)
        assert (groups[neighbours] != groups[:, None]).all()
    with pytest.raises(ValueError, match="k must be in 1..60"):
        nearest_neighbours(emb, 61)


def test_bad_checkpoints_are_named(tmp_path):
    with pytest.raises(ValueError, match="nothing.ckpt: no such checkpoint file"):
        load_backbone(tmp_path / "nothing.ckpt")
    torch.save({"state_dict": {}}, tmp_path / "other.ckpt")
    with pytest.raises(ValueError, match="other.ckpt: no 'backbone' hyper-parameter"):
        load_backbone(tmp_path / "other.ckpt")


def test_committed_notebook_has_no_outputs_and_env_parameters():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(not cell.outputs and cell.execution_count is None for cell in code)
    assert "parameters" in code[0].metadata.get("tags", [])
    assert "AUREP_CHECKPOINT" in code[0].source and "AUREP_DATASET" in code[0].source


@pytest.fixture(scope="module")
def tiny_checkpoint(tiny_corpus, tmp_path_factory) -> Path:
    """A PretrainTask checkpoint trained for 2 steps by the real CLI (CLP, test_resnet, 32 px)."""
    out = tmp_path_factory.mktemp("clp")
    args = [
        "fit",
        "--config", str(REPO / "configs" / "pretrain" / "base.yaml"),
        "--config", str(REPO / "configs" / "pretrain" / "clp.yaml"),
        f"--data.init_args.root={tiny_corpus}",
        "--model.init_args.backbone=test_resnet",
        "--data.init_args.image_size=32",
        "--data.init_args.batch_size=4",
        "--data.init_args.num_workers=0",
        "--data.init_args.clips_per_epoch=8",
        "--data.init_args.val_clips=0",
        "--trainer.max_epochs=1",
        "--trainer.accelerator=cpu",
        "--trainer.enable_progress_bar=false",
        f"--trainer.default_root_dir={out}",
        f"--trainer.logger.init_args.save_dir={out}",
        f"--trainer.callbacks.init_args.dirpath={out}/checkpoints",
    ]  # fmt: skip
    assert main(args) == 0
    return out / "checkpoints" / "last.ckpt"


@pytest.mark.slow
def test_extracted_embeddings_are_the_backbone_features(tiny_checkpoint, tiny_corpus):
    backbone, data_hparams = load_backbone(tiny_checkpoint)
    assert data_hparams["image_size"] == 32
    dataset = PreparedDataset(tiny_corpus)
    emb = extract_embeddings(backbone, dataset, image_size=32, frame_step=2, batch_size=5)
    assert len(emb) == len(dataset) // 2 and emb.features.shape[1] == backbone.num_features
    assert (emb.frames % 2 == 0).all() and emb.labels.shape == (len(emb), len(dataset.au_codes))
    # the first frame by hand: area resize 64 -> 32 px, ImageNet-normalise, backbone
    frame = dataset.frames(emb.videos[0], int(emb.frames[0]), 1)[0]
    image = cv2.resize(frame, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    image = (image - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    with torch.no_grad():
        expected = backbone(torch.from_numpy(image).permute(2, 0, 1)[None].float()).pooled[0]
    assert torch.allclose(torch.from_numpy(emb.features[0]), expected, atol=1e-4, rtol=1e-4)


def run_notebook(checkpoint: Path, dataset: Path, monkeypatch) -> tuple[list, str, str]:
    """Execute the notebook on ``dataset``: its outputs, printed text and HTML tables."""
    from nbclient import NotebookClient

    monkeypatch.setenv("AUREP_CHECKPOINT", str(checkpoint))
    monkeypatch.setenv("AUREP_DATASET", str(dataset))
    monkeypatch.setenv("AUREP_FRAME_STEP", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    client.execute()  # raises CellExecutionError on any failing cell
    outputs = [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs]
    text = "".join(out.get("text", "") for out in outputs)
    tables = "".join(out.get("data", {}).get("text/html", "") for out in outputs)
    return outputs, text, tables


def images_in(outputs: list) -> int:
    return sum("image/png" in out.get("data", {}) for out in outputs)


@pytest.mark.slow
def test_notebook_runs_and_plots(tiny_checkpoint, tiny_corpus, monkeypatch):
    outputs, text, tables = run_notebook(tiny_checkpoint, tiny_corpus, monkeypatch)
    # per-AU F1 bars, maps by identity and clip, 2 x maps by AU, NN grid, trajectories
    assert images_in(outputs) >= 6
    identities = PreparedDataset(tiny_corpus).manifest["subject"].nunique()
    assert f"{len(PreparedDataset(tiny_corpus))} frames of {identities} identities" in text
    for score in ("au_f1", "person_independence", "identity_accuracy"):
        assert score in tables and SCORE_READINGS[score].split(";")[0] in tables
    assert "random init" in tables and "checkpoint" in tables


@pytest.mark.slow
def test_notebook_runs_on_unlabelled_prepared_videos(tiny_checkpoint, prepared, monkeypatch):
    """What `aurep prepare videos` writes: no AU columns (the notebook used to crash here)."""
    root = prepared(subjects={"A": 0, "B": 0, "C": 0}, au_codes=(), length=8)
    assert PreparedDataset(root).au_codes == []
    outputs, text, tables = run_notebook(tiny_checkpoint, root, monkeypatch)
    assert "no AU labels (unlabelled data)" in text
    assert "maps coloured by AU are skipped" in text
    assert "<th>person_independence</th>" in tables and "<th>au_f1</th>" not in tables
    assert images_in(outputs) == 3  # maps by identity and clip, NN grid, trajectories


def test_every_summary_score_says_how_to_read_it():
    scores = person_independence(synthetic_embeddings("aus"), k=3)
    table = score_table(scores)
    assert list(table.index) == [name for name in scores if "/" not in name]
    assert table["how to read"].str.len().gt(30).all()
    np.testing.assert_allclose(table["value"], [round(scores[n], 3) for n in table.index])


def test_category_styles_tell_many_groups_apart():
    names = [f"S{i:03d}" for i in range(130)]
    styles = category_styles(names[::-1] + names[:5])  # order and repeats do not matter
    assert list(styles) == names
    assert len(set(styles.values())) == 130  # no two identities look alike
    assert len({colour for colour, _ in list(styles.values())[:60]}) == 60
    ax = Figure().subplots()
    xy = np.random.default_rng(0).normal(size=(260, 2))
    scatter_categories(ax, xy, names * 2, "by identity", legend=40)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[:2] == ["S000", "S001"] and labels[-1] == "... 90 more" and len(labels) == 41
    assert ax.get_title() == "by identity (130)"


def test_untrained_backbone_has_active_branches_and_data_statistics():
    images = torch.randn(40, 3, 32, 32) * 2 + 1
    backbone = untrained_backbone("test_resnet", images, seed=0)
    again = untrained_backbone("test_resnet", images, seed=0)
    assert not backbone.training
    state, repeat = backbone.state_dict(), again.state_dict()
    assert all(torch.equal(state[k], repeat[k]) for k in state)  # seeded
    norms = [m for m in backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(m.weight.abs().sum() > 0 for m in norms)  # no zero-initialised last gammas
    assert norms[0].running_mean.abs().max() > 0.01  # statistics of these images, not 0/1
