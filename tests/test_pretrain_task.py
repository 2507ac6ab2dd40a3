"""The multitask pretraining model and its LightningModule on real batches of a tiny synthetic
corpus: the data contract, encode-once, the weighted sum, optimiser-step hooks, checkpoints."""

import copy
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from aurep.cli import main
from aurep.data.batch import BatchNeeds
from aurep.data.datamodules import ClipDataModule
from aurep.data.prepared import DatasetError
from aurep.heads import (
    CrossIdentityReconstructionHead,
    OpticalFlowHead,
    PretrainModel,
    RoIInpaintingHead,
    TemporalContrastiveHead,
)
from aurep.heads.multitask import pooled_parameters
from aurep.models.backbone import Backbone
from aurep.tasks.pretrain import PretrainTask

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "pretrain"
HEADS = ("temporal", "cross_identity", "inpainting", "flow")


def make_heads(only=HEADS, queue_size=16) -> dict:
    heads = {
        "temporal": TemporalContrastiveHead(embed_dim=16, hidden_dim=32, queue_size=queue_size),
        "cross_identity": CrossIdentityReconstructionHead(au_dim=8, id_dim=8, render_size=16),
        "inpainting": RoIInpaintingHead(num_masked=4, patch_size=4, dim=32),
        "flow": OpticalFlowHead(width=16),
    }
    return {name: heads[name] for name in only}


def make_task(datamodule: ClipDataModule, only=HEADS, queue_size=16) -> PretrainTask:
    """A task attached to the data as ``Trainer.fit`` would do it (setup's contract step)."""
    task = PretrainTask(
        make_heads(only, queue_size),
        backbone="test_resnet",
        au_codes=datamodule.au_codes,
        au_weight=1.0,
    )
    task.model.attach(datamodule.provide(task.model.needs()))
    return task


@pytest.fixture(scope="module")
def datamodule(tiny_corpus) -> ClipDataModule:
    return ClipDataModule(
        root=str(tiny_corpus), clip_length=3, batch_size=4, num_workers=0, image_size=32
    )


@pytest.fixture(scope="module")
def batch(datamodule):
    datamodule.provide({"all": BatchNeeds(views=2, flow=True, rois=True, labels=True)})
    batch = next(iter(datamodule.train_dataloader()))
    return datamodule.on_after_batch_transfer(batch, 0)


def test_the_data_loads_only_what_the_heads_need(tiny_corpus):
    data = ClipDataModule(root=str(tiny_corpus), clip_length=3, batch_size=4, num_workers=0)
    spec = data.provide({"cross_identity": CrossIdentityReconstructionHead.needs})
    assert spec.num_rois == len(data.roi_names) and spec.image_size == 64
    batch = next(iter(data.train_dataloader()))
    assert batch.num_views == 1 and batch.flow is None and batch.rois is None
    assert batch.landmarks is None and batch.partner is not None
    spec = data.provide({"flow": OpticalFlowHead.needs, "temporal": TemporalContrastiveHead.needs})
    batch = next(iter(data.train_dataloader()))
    assert batch.num_views == 2 and batch.flow is not None and batch.rois is None


def test_one_generic_check_names_the_head_and_the_missing_input(tiny_corpus):
    data = ClipDataModule(root=str(tiny_corpus), num_views=1, num_workers=0)
    with pytest.raises(DatasetError, match="the temporal head needs 2 views per clip"):
        data.provide({"temporal": TemporalContrastiveHead.needs})
    unlabelled = BatchNeeds(labels=True)
    data.has_flow, data.num_aus = False, 0  # as if the corpus had neither
    with pytest.raises(DatasetError, match="the flow head needs optical-flow targets"):
        data.provide({"flow": OpticalFlowHead.needs})
    with pytest.raises(DatasetError, match="the au head needs AU labels"):
        data.provide({"au": unlabelled})


def test_every_head_sends_gradients_to_the_shared_backbone(datamodule, batch):
    for name in HEADS:
        task = make_task(datamodule, only=(name,))
        task.training_step(batch, 0)  # warm the heads (e.g. fill the contrastive queue)
        task.model.after_optimizer_step()
        task.zero_grad()
        task.model(batch).loss.backward()
        grads = [p.grad for p in task.backbone.parameters() if p.grad is not None]
        assert grads and sum(g.abs().sum() for g in grads) > 0, name


@pytest.mark.parametrize(("decoder", "warned"), [("map", True), ("pooled", False)])
def test_a_backbone_stage_no_head_trains_is_named_once(datamodule, batch, capsys, decoder, warned):
    """A flow decoder on the second-deepest map leaves the deepest stage, which the pooled
    feature passes through, without gradient: one warning names it; the pooled decoder does not."""
    flow = OpticalFlowHead(width=16, feature_level=-2, decoder=decoder)
    task = PretrainTask({"flow": flow}, backbone="test_resnet", au_codes=datamodule.au_codes)
    task.attach(datamodule.provide(task.model.needs()))
    assert all(p.grad is None for p in task.backbone.parameters())  # the check leaves none
    rng_state = torch.get_rng_state()
    assert pooled_parameters(task.backbone, 32) == task._pooled_parameters
    assert torch.equal(torch.get_rng_state(), rng_state)  # nor moves the training's stream
    for _ in range(2):
        task.zero_grad()
        task.model(batch).loss.backward()
        task.on_after_backward()
    err = capsys.readouterr().err
    assert err.count("aurep: warning") == int(warned)
    assert ("stage(s) layer4:" in err) is warned


def test_the_total_is_the_weighted_sum_of_the_head_losses(datamodule, batch):
    heads = make_heads(("cross_identity", "flow"))
    heads["flow"].weight = 0.25
    model = PretrainModel(Backbone("test_resnet", levels=(-2, -1)), heads, au_weight=2.0)
    model.attach(datamodule.clip_spec)
    torch.manual_seed(0)
    out = model(batch)
    logs = out.logs
    expected = logs["cross_identity/loss"] + 0.25 * logs["flow/loss"] + 2.0 * logs["au/loss"]
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize("real_only", [True, False])
def test_only_real_frames_update_batchnorm_statistics(real_only, datamodule, batch):
    """The inpainting head encodes masked faces: they must not move the running statistics."""
    torch.manual_seed(0)
    backbone = Backbone("test_resnet", levels=(-2, -1))
    reference = copy.deepcopy(backbone)
    model = PretrainModel(backbone, make_heads(("inpainting",)), bn_from_real_frames=real_only)
    model.attach(datamodule.clip_spec)
    model.train()(batch)
    reference.train()(batch.frames[:, 0].flatten(0, 1))  # the real frames alone
    same = [
        torch.equal(a, b)
        for (name, a), b in zip(
            backbone.state_dict().items(), reference.state_dict().values(), strict=True
        )
        if "running" in name or "num_batches" in name
    ]
    assert same and all(same) is real_only


def test_short_overfit_lowers_every_head_loss(datamodule, batch):
    torch.manual_seed(0)
    task = make_task(datamodule, queue_size=0)  # a fixed batch would fill the queue with positives
    optimizer = torch.optim.Adam([p for p in task.parameters() if p.requires_grad], lr=1e-3)

    def head_losses() -> dict[str, float]:
        torch.manual_seed(0)
        logs = task.model(batch).logs
        return {name: logs[f"{name}/loss"].item() for name in HEADS}

    before = head_losses()
    for _ in range(25):
        optimizer.zero_grad()
        task.training_step(batch, 0).backward()
        optimizer.step()
        task.model.after_optimizer_step()
    after = head_losses()
    for name in HEADS:
        assert after[name] < 0.85 * before[name], (name, before[name], after[name])


def test_optimizer_skips_the_momentum_encoder(datamodule):
    task = make_task(datamodule, only=("temporal",))
    optimised = {
        id(p) for group in task.configure_optimizers().param_groups for p in group["params"]
    }
    frozen = list(task.model.heads["temporal"].key_backbone.parameters())
    assert frozen and not any(id(p) in optimised for p in frozen)


class _Trainer:
    def __init__(self, step: int):
        self.global_step = step


def test_post_step_hooks_run_once_per_optimiser_step(datamodule, monkeypatch):
    """Detected by a change of global_step: none between the micro-batches of one step."""
    task = make_task(datamodule, only=("cross_identity",))
    calls = []
    monkeypatch.setattr(task.model, "after_optimizer_step", lambda: calls.append(1))
    steps = [0, 0, 1, 1, 2, 2, 3]  # global_step after each batch, 2 micro-batches per step
    for batch_idx, step in enumerate(steps):
        monkeypatch.setattr(PretrainTask, "global_step", property(lambda self, s=step: s))
        if batch_idx == 0:
            task.on_train_start()
        task.on_train_batch_end(None, None, batch_idx)
    assert len(calls) == 3


def test_checkpoint_round_trip_restores_heads_queue_and_ema(datamodule, batch):
    task = make_task(datamodule)
    task.training_step(batch, 0).backward()
    task.model.after_optimizer_step()
    restored = make_task(datamodule)
    restored.load_state_dict(task.state_dict())
    for key, value in task.state_dict().items():
        assert torch.equal(value, restored.state_dict()[key]), key


def test_checkpoints_from_before_the_head_mapping_still_load(datamodule, batch):
    """Format 1 kept ``backbone.*`` / ``heads.<slot>.*`` at the top level."""
    task = make_task(datamodule, only=("temporal", "flow"))
    task.model.after_optimizer_step()
    state = task.state_dict()
    old = {key.removeprefix("model."): value for key, value in state.items()}
    checkpoint = {"state_dict": old}
    restored = make_task(datamodule, only=("temporal", "flow"))
    restored.on_load_checkpoint(checkpoint)
    restored.load_state_dict(checkpoint["state_dict"])
    for key, value in state.items():
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
            f"--config={CONFIGS / 'base.yaml'}",
            f"--config={CONFIGS / 'heads' / 'flow.yaml'}",
            f"--data.init_args.root={corpus}",
            "--model.init_args.backbone=test_resnet",
            "--data.init_args.image_size=32",
            "--data.init_args.num_workers=0",
            "--data.init_args.stride=1",
            "--trainer.max_epochs=1",
            "--trainer.enable_progress_bar=false",
        ]
    )
    assert code == 1
    assert "flow head loss is nan" in capsys.readouterr().err
