"""Tests every self-supervised head gets without being listed: each SSLHead subclass found in
aurep/heads/ is built with its defaults and checked generically. A new head file is covered (or
fails) without an edit here; the last test proves a head defined outside the package trains
through the real CLI from one YAML fragment."""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import fields, replace
from pathlib import Path

import pytest
import torch
from conftest import SPEC, TINY_FIT, features_of, make_batch

import aurep.heads
from aurep.cli import main
from aurep.data.batch import BatchNeeds, ClipBatch
from aurep.heads import ClipFeatures, HeadOutput, PretrainModel, SSLHead
from aurep.models.backbone import Backbone

REPO = Path(__file__).resolve().parents[1]
SHIPPED = {
    "TemporalContrastiveHead",
    "CrossIdentityReconstructionHead",
    "RoIInpaintingHead",
    "OpticalFlowHead",
}


def registered_heads() -> list[type[SSLHead]]:
    """Every concrete SSLHead subclass defined in a module of aurep/heads/."""
    for module in pkgutil.iter_modules(aurep.heads.__path__):
        importlib.import_module(f"aurep.heads.{module.name}")
    found, pending = set(), list(SSLHead.__subclasses__())
    while pending:
        cls = pending.pop()
        pending += cls.__subclasses__()
        if cls.__module__.startswith("aurep.heads."):
            found.add(cls)
    return sorted(found, key=lambda cls: cls.__name__)


HEADS = registered_heads()


def only_declared_inputs(batch: ClipBatch, needs: BatchNeeds) -> ClipBatch:
    """The batch with every input the head did not declare removed (None, or one view)."""
    kept = {
        "flow": needs.flow,
        "rois": needs.rois,
        "landmarks": needs.landmarks,
        "labels": needs.labels,
        "label_mask": needs.labels,
    }
    stripped = {name: None for name, keep in kept.items() if not keep}
    views = slice(0, needs.views)
    trimmed = {
        f.name: getattr(batch, f.name)[:, views]
        for f in fields(batch)
        if f.name in ("frames", "flow", "rois", "landmarks") and getattr(batch, f.name) is not None
    }
    return replace(batch, **{**trimmed, **stripped})


@pytest.fixture
def backbone() -> Backbone:
    torch.manual_seed(0)
    return Backbone("test_resnet", levels=(-2, -1))


def build(cls: type[SSLHead], backbone: Backbone) -> SSLHead:
    torch.manual_seed(0)
    head = cls()
    head.attach(backbone, SPEC)
    return head


def run(head: SSLHead, backbone: Backbone, batch: ClipBatch) -> HeadOutput:
    return head(batch, features_of(backbone, batch), backbone)


def test_the_registry_finds_the_shipped_heads():
    assert {cls.__name__ for cls in HEADS} >= SHIPPED


@pytest.mark.parametrize("cls", HEADS, ids=lambda cls: cls.__name__)
def test_head_runs_on_what_it_declares_and_sends_gradients_to_the_backbone(cls, backbone):
    head = build(cls, backbone)
    batch = only_declared_inputs(make_batch(), head.needs)
    out = run(head, backbone, batch)
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    assert all(not value.requires_grad and value.ndim == 0 for value in out.logs.values())
    assert "loss" not in out.logs  # the model logs <name>/loss itself
    out.loss.backward()
    grads = [p.grad.abs().sum() for p in backbone.parameters() if p.grad is not None]
    assert grads and sum(grads) > 0


@pytest.mark.parametrize("cls", HEADS, ids=lambda cls: cls.__name__)
def test_head_state_survives_a_checkpoint_round_trip(cls, backbone):
    head = build(cls, backbone)
    batch = make_batch()
    for _ in range(2):
        run(head, backbone, batch).loss.backward()
        with torch.no_grad():
            next(backbone.parameters()).add_(0.5)  # the post-step hook sees a new backbone
        head.after_optimizer_step(backbone)
    torch.manual_seed(1)  # a differently initialised twin
    restored = cls()
    restored.attach(Backbone("test_resnet", levels=(-2, -1)), SPEC)
    restored.load_state_dict(head.state_dict())
    for key, value in head.state_dict().items():
        assert torch.equal(restored.state_dict()[key], value), key


@pytest.mark.slow
@pytest.mark.parametrize("cls", HEADS, ids=lambda cls: cls.__name__)
def test_head_loss_falls_when_overfitting_one_batch(cls, backbone):
    """40 Adam steps on one fixed batch. The post-step hook is not called: a memory queue filled
    with the same batch's keys would make its own positives into negatives. An adversarial
    head's backbone works against its loss, so there only the head itself is trained."""
    head = build(cls, backbone)
    batch = only_declared_inputs(make_batch(), head.needs)
    trained = (
        [*head.parameters()] if cls.adversarial else [*backbone.parameters(), *head.parameters()]
    )
    params = [p for p in trained if p.requires_grad]
    optimiser = torch.optim.Adam(params, lr=1e-2)
    losses = []
    for _ in range(40):
        torch.manual_seed(len(losses))  # heads that pick random frames or RoIs
        loss = run(head, backbone, batch).loss
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < 0.7 * first, [round(v, 3) for v in losses]


def test_a_head_with_weight_zero_is_off(backbone):
    heads = {"a": HEADS[0](), "b": HEADS[1](weight=0.0)}
    model = PretrainModel(backbone, heads)
    assert list(model.heads) == ["a"]
    with pytest.raises(ValueError, match="every head is off"):
        PretrainModel(backbone, {"b": HEADS[1](weight=0.0)})


@pytest.mark.parametrize("name", ["Flow", "two words", "au", "x.y"])
def test_head_names_must_be_plain(name, backbone):
    with pytest.raises(ValueError, match="head name"):
        PretrainModel(backbone, {name: HEADS[0]()})


# ---------------------------------------------------------------- a head outside the package


class FrameOrderHead(SSLHead):
    """Toy fifth head: is frame t later than frame 0? (a logistic score on pooled differences)"""

    needs = BatchNeeds()  # view 0's frames only

    def __init__(self, hidden: int = 8, weight: float = 1.0):
        super().__init__(weight)
        self.hidden = hidden

    def attach(self, backbone: Backbone, spec) -> None:
        self.scorer = torch.nn.Sequential(
            torch.nn.Linear(backbone.num_features, self.hidden), torch.nn.Linear(self.hidden, 1)
        )

    def forward(self, batch: ClipBatch, features: ClipFeatures, encode) -> HeadOutput:
        later = features.pooled[:, 1:] - features.pooled[:, :1]  # (B, T-1, C)
        earlier = -later
        logits = self.scorer(torch.cat([later, earlier], dim=1)).squeeze(-1)
        target = torch.cat([torch.ones_like(logits[:, :1]), torch.zeros_like(logits[:, :1])], 1)
        target = target.repeat_interleave(later.shape[1], dim=1)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, target)
        return HeadOutput(loss, {"accuracy": ((logits > 0) == target.bool()).float().mean()})


@pytest.mark.slow
def test_a_new_head_is_one_class_and_one_yaml_fragment(tiny_corpus, tmp_path, monkeypatch):
    fragment = tmp_path / "frame_order.yaml"
    fragment.write_text(
        "trainer:\n"
        "  default_root_dir: runs/pretrain/frame_order\n"
        "model:\n"
        "  init_args:\n"
        "    heads:\n"
        "      frame_order:\n"
        f"        class_path: {__name__}.FrameOrderHead\n"
        "        init_args: {hidden: 4, weight: 0.5}\n"
    )
    monkeypatch.chdir(tmp_path)
    code = main(
        [
            "fit",
            f"--config={REPO / 'configs' / 'pretrain' / 'base.yaml'}",
            f"--config={fragment}",
            f"--data.init_args.root={tiny_corpus}",
            *TINY_FIT,
            "--data.init_args.clips_per_epoch=8",
            "--trainer.max_epochs=1",
        ]
    )
    assert code == 0
    run_dir = tmp_path / "runs" / "pretrain" / "frame_order"
    state = torch.load(
        run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False
    )
    assert any(k.startswith("model.heads.frame_order.scorer") for k in state["state_dict"])
    header = next(run_dir.glob("version_*/metrics.csv")).read_text().splitlines()[0]
    assert "train/frame_order/loss" in header and "train/frame_order/accuracy" in header
