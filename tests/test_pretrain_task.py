"""The multitask pretraining LightningModule on real batches of a tiny synthetic corpus."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from aurep.cli import main
from aurep.data.datamodules import ClipDataModule
from aurep.heads import (
    CrossIdentityReconstructionHead,
    OpticalFlowHead,
    RoIInpaintingHead,
    TemporalContrastiveHead,
)
from aurep.tasks.pretrain import PretrainTask

FLOW_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "pretrain" / "flow.yaml"
HEADS = ("temporal", "cross_identity", "inpainting", "flow")


def make_task(au_codes, only=HEADS, queue_size=16) -> PretrainTask:
    heads = {
        "temporal": TemporalContrastiveHead(embed_dim=16, hidden_dim=32, queue_size=queue_size),
        "cross_identity": CrossIdentityReconstructionHead(au_dim=8, id_dim=8, render_size=16),
        "inpainting": RoIInpaintingHead(num_rois=30, num_masked=4, patch_size=4, dim=32),
        "flow": OpticalFlowHead(width=16),
    }
    chosen = {name: heads[name] for name in only}
    return PretrainTask(
        backbone="test_resnet", backbone_levels=[-2, -1], au_codes=au_codes, au_weight=1.0, **chosen
    )


@pytest.fixture(scope="module")
def batch_and_codes(tiny_corpus):
    datamodule = ClipDataModule(
        root=str(tiny_corpus), clip_length=3, batch_size=4, num_workers=0, image_size=32
    )
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    return datamodule.on_after_batch_transfer(batch, 0), datamodule.au_codes


def test_every_head_sends_gradients_to_the_shared_backbone(batch_and_codes):
    batch, codes = batch_and_codes
    for name in HEADS:
        task = make_task(codes, only=(name,))
        task.training_step(batch, 0)  # warm the heads (e.g. fill the contrastive queue)
        task.zero_grad()
        features = task.encode_clips(batch)
        task.heads[name](batch, features, task.backbone).loss.backward()
        grads = [p.grad for p in task.backbone.parameters() if p.grad is not None]
        assert grads and sum(g.abs().sum() for g in grads) > 0, name


def test_short_overfit_lowers_every_head_loss(batch_and_codes):
    batch, codes = batch_and_codes
    torch.manual_seed(0)
    task = make_task(codes, queue_size=0)  # a fixed batch would fill the queue with positives
    optimizer = torch.optim.Adam([p for p in task.parameters() if p.requires_grad], lr=1e-3)

    def head_losses() -> dict[str, float]:
        features = task.encode_clips(batch)
        return {n: h(batch, features, task.backbone).loss.item() for n, h in task.heads.items()}

    before = head_losses()
    for _ in range(25):
        optimizer.zero_grad()
        task.training_step(batch, 0).backward()
        optimizer.step()
        task.on_train_batch_end(None, batch, 0)
    after = head_losses()
    for name in HEADS:
        assert after[name] < 0.85 * before[name], (name, before[name], after[name])


def test_optimizer_skips_the_momentum_encoder(batch_and_codes):
    _, codes = batch_and_codes
    task = make_task(codes, only=("temporal",))
    optimised = {
        id(p) for group in task.configure_optimizers().param_groups for p in group["params"]
    }
    frozen = list(task.heads["temporal"].key_backbone.parameters())
    assert frozen and not any(id(p) in optimised for p in frozen)


def test_checkpoint_round_trip_restores_heads_queue_and_ema(batch_and_codes):
    batch, codes = batch_and_codes
    task = make_task(codes)
    task.training_step(batch, 0).backward()
    task.on_train_batch_end(None, batch, 0)
    restored = make_task(codes)
    restored.load_state_dict(task.state_dict())
    for key, value in task.state_dict().items():
        assert torch.equal(value, restored.state_dict()[key]), key


@pytest.mark.slow
def test_nan_loss_stops_training_naming_the_head(tiny_corpus, tmp_path, monkeypatch, capsys):
    corpus = tmp_path / "corpus"
    shutil.copytree(tiny_corpus, corpus)
    for flow_file in (corpus / "videos").glob("*/flow.npy"):
        flow = np.load(flow_file)
        flow[:] = np.nan
        np.save(flow_file, flow)
    monkeypatch.chdir(tmp_path)
    code = main(
        [
            "fit",
            f"--config={FLOW_CONFIG}",
            f"--data.init_args.root={corpus}",
            "--model.init_args.backbone=test_resnet",
            "--data.init_args.image_size=32",
            "--data.init_args.num_workers=0",
            "--trainer.max_epochs=1",
            "--trainer.enable_progress_bar=false",
        ]
    )
    assert code == 1
    assert "flow head loss is nan" in capsys.readouterr().err
