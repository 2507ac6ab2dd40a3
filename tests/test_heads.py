"""The self-supervised heads and the AU head on tiny tensors and a tiny timm backbone."""

from __future__ import annotations

import copy
import dataclasses
import functools
import math

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from conftest import GRID, SPEC, B, R, T, features_of, make_batch, template_landmarks

from aurep.data.label_stats import pos_weight_from_labels
from aurep.heads import (
    AUClassifier,
    ClipFeatures,
    CrossIdentityReconstructionHead,
    KeyQueue,
    OpticalFlowHead,
    RoIInpaintingHead,
    TemporalContrastiveHead,
    end_point_error,
    gather,
    layers,
    margin_info_nce,
    mask_rois,
    masked_bce,
    masked_patch_l1,
    temporal_log_weights,
    temporal_ranking_loss,
)
from aurep.heads.clip_invariance import ClipInvarianceHead, between_clip_share
from aurep.heads.identity_adversary import IdentityAdversaryHead, reverse_gradient
from aurep.heads.landmark_shape import LandmarkShapeHead
from aurep.heads.optical_flow import (
    displacement_from_clip_start,
    flow_in_face_frame,
    without_affine_motion,
)
from aurep.heads.roi_inpainting import ring_mean_patches
from aurep.landmarks import EYE_CORNERS
from aurep.models.backbone import Backbone


def make_head(name: str, **kwargs):
    """A small head of the given name; ``kwargs`` override the tiny defaults."""
    heads = {
        "tcl": (TemporalContrastiveHead, {"embed_dim": 16, "hidden_dim": 32, "queue_size": 32}),
        "cir": (
            CrossIdentityReconstructionHead,
            {"au_dim": 8, "id_dim": 8, "hidden_dim": 32, "decoder_width": 16, "render_size": 16},
        ),
        "inpaint": (
            RoIInpaintingHead,
            {"num_masked": 2, "patch_size": 4, "dim": 32},
        ),
        "flow": (OpticalFlowHead, {"width": 16}),
    }
    cls, defaults = heads[name]
    return cls(**{**defaults, **kwargs})


@pytest.fixture
def backbone() -> Backbone:
    torch.manual_seed(0)
    return Backbone("test_resnet", levels=(-2, -1))


# ---------------------------------------------------------------- losses against direct formulas


def test_temporal_log_weights_grow_with_distance():
    w = temporal_log_weights(4, power=1.0).exp()
    assert w[0, 1] == pytest.approx(1 / 3) and w[0, 2] == pytest.approx(2 / 3)
    assert w[0, 3] == pytest.approx(1.0) and w[2, 1] == pytest.approx(1 / 3)
    assert torch.all(temporal_log_weights(4, power=0.0) == 0)


def test_margin_info_nce_matches_hand_computation():
    torch.manual_seed(0)
    q = F.normalize(torch.randn(2, 4, 5), dim=-1)
    k = F.normalize(torch.randn(2, 4, 5), dim=-1)
    queue = F.normalize(torch.randn(3, 5), dim=-1)
    tau, m = 0.2, 0.3
    log_w = temporal_log_weights(4, power=2.0)
    total = 0.0
    for b in range(2):
        for i in range(4):
            pos = math.exp((float(q[b, i] @ k[b, i]) - m) / tau)
            neg = sum(
                ((abs(i - j) / 3) ** 2) * math.exp(float(q[b, i] @ k[b, j]) / tau)
                for j in range(4)
                if j != i
            )
            neg += sum(math.exp(float(q[b, i] @ n) / tau) for n in queue)
            total += -math.log(pos / (pos + neg))
    got = margin_info_nce(q, k, queue, tau, m, log_w)
    assert got.item() == pytest.approx(total / 8, rel=1e-5)


def circle_embeddings(order: list[int]) -> torch.Tensor:
    """(1, T, 2) unit vectors whose angle grows with the position in ``order``."""
    angle = torch.tensor(order, dtype=torch.float32) * 0.4
    return torch.stack([angle.cos(), angle.sin()], dim=-1)[None]


def test_tcl_prefers_temporally_ordered_embeddings():
    ordered = circle_embeddings([0, 1, 2, 3, 4, 5])
    shuffled = circle_embeddings([0, 3, 1, 5, 2, 4])  # same positives, neighbours scattered
    weighted = temporal_log_weights(6, power=1.0)
    loss_ordered = margin_info_nce(ordered, ordered, None, 0.1, 0.1, weighted)
    loss_shuffled = margin_info_nce(shuffled, shuffled, None, 0.1, 0.1, weighted)
    assert loss_ordered < loss_shuffled - 0.05
    # without distance weighting the temporal order is invisible to the loss
    plain = [margin_info_nce(e, e, None, 0.1, 0.1, None) for e in (ordered, shuffled)]
    assert plain[0].item() == pytest.approx(plain[1].item(), rel=1e-5)
    # the ranking term is satisfied by the ordered clip only
    rank = [temporal_ranking_loss(e @ e.transpose(1, 2), margin=0.0) for e in (ordered, shuffled)]
    assert rank[0] == 0 and rank[1] > 0


def test_ranking_loss_matches_hand_computation():
    s = torch.randn(2, 4, 4)
    delta = 0.1
    terms = [
        max(0.0, delta - float(s[b, i, j] - s[b, i, k]))
        for b in range(2)
        for i in range(4)
        for j in range(4)
        for k in range(4)
        if abs(i - j) < abs(i - k)
    ]
    assert temporal_ranking_loss(s, delta).item() == pytest.approx(
        sum(terms) / len(terms), rel=1e-5
    )


def test_end_point_error_is_mean_vector_norm():
    pred, target = torch.zeros(1, 2, 1, 2), torch.tensor([[[[3.0, 0.0]], [[4.0, 1.0]]]])
    assert end_point_error(pred, target).item() == pytest.approx((5.0 + 1.0) / 2)


def test_masked_bce_ignores_unknown_labels():
    logits = torch.tensor([[0.5, -1.0, 2.0], [1.5, 0.2, -0.3]])
    labels = torch.tensor([[1.0, 0.0, float("nan")], [0.0, 9.0, 1.0]])
    mask = torch.tensor([[True, True, False], [True, False, True]])
    known = [(0.5, 1.0), (-1.0, 0.0), (1.5, 0.0), (-0.3, 1.0)]
    expected = sum(
        -(
            y * math.log(torch.sigmoid(torch.tensor(x)).item())
            + (1 - y) * math.log(1 - torch.sigmoid(torch.tensor(x)).item())
        )
        for x, y in known
    ) / len(known)
    assert masked_bce(logits, labels, mask).item() == pytest.approx(expected, rel=1e-5)
    other = labels.clone()
    other[~mask] = 0.0
    changed_logits = logits.clone()
    changed_logits[~mask] = 100.0
    assert masked_bce(changed_logits, other, mask) == masked_bce(logits, labels, mask)


def test_masked_bce_all_unknown_is_zero_without_nan():
    logits = torch.randn(3, 4, requires_grad=True)
    labels = torch.full((3, 4), float("nan"))
    loss = masked_bce(logits, labels, torch.zeros(3, 4, dtype=torch.bool), torch.ones(4))
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(logits.grad).all()


def test_masked_bce_pos_weight_scales_positive_terms():
    logits, labels, mask = torch.tensor([[0.3]]), torch.tensor([[1.0]]), torch.tensor([[True]])
    assert masked_bce(logits, labels, mask, torch.tensor([3.0])) == pytest.approx(
        3 * masked_bce(logits, labels, mask).item()
    )


def test_pos_weight_from_labels_counts_known_labels_only():
    labels = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 1.0], [1.0, 0.0, 1.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 1], [1, 1, 1], [0, 1, 1]], dtype=torch.bool)
    weights = pos_weight_from_labels(labels, mask, max_weight=10.0)
    assert weights.tolist() == pytest.approx([2.0, 3.0, 1 / 3])
    never = pos_weight_from_labels(torch.zeros(4, 1), torch.ones(4, 1, dtype=torch.bool), 10.0)
    assert never.item() == 10.0


@pytest.mark.parametrize("hidden", [0, 16])
def test_au_classifier_maps_pooled_features_to_logits(hidden):
    head = AUClassifier(32, 12, hidden=hidden, dropout=0.1)
    assert head(torch.randn(5, 32)).shape == (5, 12)


# ---------------------------------------------------------------- RoI masking and inpainting loss


def test_mask_rois_fills_only_masked_boxes():
    images = torch.randn(1, 3, 16, 16)
    boxes = torch.tensor([[[2.0, 2.0, 6.0, 6.0], [10.0, 10.0, 14.0, 14.0]]])
    masked = torch.tensor([[True, False]])
    out = mask_rois(images, boxes, masked, "zero")
    assert torch.all(out[..., 2:6, 2:6] == 0)
    inside = torch.zeros(16, 16, dtype=torch.bool)
    inside[2:6, 2:6] = True
    assert torch.equal(out[..., ~inside], images[..., ~inside])
    mean = mask_rois(images, boxes, masked, "mean")
    assert torch.allclose(mean[0, :, 3, 3], images[0].mean(dim=(1, 2)))
    with pytest.raises(ValueError, match="fill"):
        mask_rois(images, boxes, masked, "blur")


def test_inpainting_loss_only_sees_masked_rois():
    torch.manual_seed(0)
    images = torch.randn(1, 3, 32, 32)
    boxes = torch.tensor([[[2.0, 2.0, 10.0, 10.0], [20.0, 20.0, 28.0, 28.0]]])
    masked = torch.tensor([[True, False]])
    prediction = torch.randn(1, 2, 3, 4, 4)
    base = masked_patch_l1(prediction, images, boxes, masked)
    outside = images.clone()
    outside[..., 16:, :] += 5.0  # the unmasked RoI and background only
    assert masked_patch_l1(prediction, outside, boxes, masked) == base
    inside = images.clone()
    inside[..., 4:8, 4:8] += 5.0
    assert masked_patch_l1(prediction, inside, boxes, masked) > base + 1.0


def test_ring_mean_fill_reads_only_visible_pixels_around_each_box():
    """A box inside a flat region is filled exactly (trivial L1 0); the pixels of a masked
    neighbour in its band do not count; a box with no visible band gets the mean colour 0."""
    images = torch.zeros(1, 3, 32, 32)
    images[..., 0:16, 0:16] = 1.0  # flat region around box 0
    images[..., 6:10, 11:15] = 100.0  # box 1, masked, overlapping box 0's 2-px band
    boxes = torch.tensor([[[4.0, 4.0, 10.0, 10.0], [11.0, 6.0, 15.0, 10.0], [0, 0, 32, 32]]])
    masked = torch.tensor([[True, True, False]])
    patches = ring_mean_patches(images, boxes, masked, size=4)
    assert patches.shape == (1, 3, 3, 4, 4)
    assert torch.allclose(patches[0, 0], torch.ones(3, 4, 4))
    assert torch.equal(patches[0, 2], torch.zeros(3, 4, 4))  # the band lies outside the image
    assert masked_patch_l1(patches[:, :1], images, boxes[:, :1], masked[:, :1]) < 1e-6


def test_inpainting_head_logs_its_trivial_baseline(backbone):
    head = make_head("inpaint")
    head.attach(backbone, SPEC)
    batch = make_batch()
    output = head(batch, features_of(backbone, batch), backbone)
    assert set(output.logs) == {"ring_l1"} and output.logs["ring_l1"] > 0


def test_inpainting_clip_mean_base_predicts_residuals_on_the_clip_mean_patch(backbone):
    """With ``patch_base="clip_mean"`` a silent decoder reconstructs each masked patch as the
    clip's mean frame's patch: the loss equals the logged trivial baseline, which is 0 for a
    still clip (every frame is the clip mean) and not for a moving one."""
    head = make_head("inpaint", patch_base="clip_mean")
    head.attach(backbone, SPEC)
    torch.nn.init.zeros_(head.to_pixels[-1].weight)
    torch.nn.init.zeros_(head.to_pixels[-1].bias)
    batch = make_batch()
    still = dataclasses.replace(
        batch, frames=batch.frames[:, :, :1].expand_as(batch.frames).contiguous()
    )
    for clip, moving in [(batch, True), (still, False)]:
        output = head(clip, features_of(backbone, clip), backbone)
        assert set(output.logs) == {"clip_mean_l1"}
        assert output.loss.item() == pytest.approx(output.logs["clip_mean_l1"].item(), abs=1e-6)
        assert (output.loss.item() > 1e-3) is moving
    with pytest.raises(ValueError, match="patch_base"):
        make_head("inpaint", patch_base="ring")


def test_inpainting_standardised_target_ignores_the_light_on_a_patch(backbone):
    """With ``patch_base="standardised"`` a silent decoder scores the logged baseline (each
    patch filled with its own mean), and brighter, more contrasted light (the same images times
    1.5, plus 0.2) leaves the loss unchanged; the raw target's ring baseline changes."""
    head = make_head("inpaint", patch_base="standardised")
    head.attach(backbone, SPEC)
    torch.nn.init.zeros_(head.to_pixels[-1].weight)
    torch.nn.init.zeros_(head.to_pixels[-1].bias)
    raw = make_head("inpaint")
    raw.attach(backbone, SPEC)
    batch = make_batch()
    lit = dataclasses.replace(batch, frames=batch.frames * 1.5 + 0.2)
    losses, rings = [], []
    for clip in (batch, lit):
        torch.manual_seed(0)  # the same frames and RoIs masked
        output = head(clip, features_of(backbone, clip), backbone)
        assert set(output.logs) == {"patch_mean_l1"}
        assert output.loss.item() == pytest.approx(output.logs["patch_mean_l1"].item(), abs=1e-6)
        losses.append(output.loss.item())
        torch.manual_seed(0)
        rings.append(raw(clip, features_of(backbone, clip), backbone).logs["ring_l1"].item())
    assert losses[0] == pytest.approx(losses[1], rel=2e-2)  # up to the std floor eps
    assert abs(rings[0] - rings[1]) > 0.05


def test_inpainting_head_takes_the_number_of_rois_from_the_data(backbone):
    head = RoIInpaintingHead(num_masked=2)
    head.attach(backbone, SPEC)
    assert head.relation_embedding.shape == (R, head.dim)
    with pytest.raises(ValueError, match="num_rois=7 but the data gives 6"):
        RoIInpaintingHead(num_rois=R + 1, num_masked=2).attach(backbone, SPEC)
    with pytest.raises(ValueError, match="num_masked=7"):
        RoIInpaintingHead(num_masked=R + 1).attach(backbone, SPEC)


@pytest.mark.parametrize("decoder", ["map", "pooled"])
def test_flow_head_needs_flow_and_is_zero_on_perfect_prediction(backbone, decoder):
    head = make_head("flow", decoder=decoder)
    head.attach(backbone, SPEC)
    head.eval()
    batch = make_batch(flow=False)
    features = features_of(backbone, batch)
    with pytest.raises(ValueError, match="OpticalFlowHead"):
        head(batch, features, backbone)
    with torch.no_grad():
        perfect = head.predict(features, (GRID, GRID))
    batch.flow = torch.stack([perfect, torch.randn_like(perfect)], dim=1)
    assert head(batch, features, backbone).loss.item() == pytest.approx(0.0, abs=1e-6)
    batch.flow = batch.flow + 1.0
    assert head(batch, features, backbone).loss.item() == pytest.approx(math.sqrt(2), rel=1e-5)


# ---------------------------------------------------------------- heads on a tiny backbone


def test_cir_gradients_reach_backbone_through_rendered_faces_only(backbone):
    """With the self term off, the only path to the backbone left is re-encoding x'."""
    head = make_head("cir", self_weight=0.0, cross_id_weight=0.0)
    head.attach(backbone, SPEC)
    batch = make_batch()
    features = features_of(backbone, batch)
    head(
        batch, ClipFeatures([m.detach() for m in features.maps], features.pooled.detach()), backbone
    ).loss.backward()
    assert sum(p.grad.abs().sum() for p in backbone.parameters() if p.grad is not None) > 0


def test_cir_cycle_term_is_optional(backbone):
    batch = make_batch()
    for weight, expected in [(0.0, False), (0.5, True)]:
        head = make_head("cir", cycle_weight=weight)
        head.attach(backbone, SPEC)
        assert ("cycle" in head(batch, features_of(backbone, batch), backbone).logs) is expected


def test_cir_logs_the_clip_mean_frame_as_its_trivial_baseline(backbone):
    """A still clip is its own mean frame: the trivial self-reconstruction is exact; a moving
    clip's is not."""
    head = make_head("cir")
    head.attach(backbone, SPEC)
    batch = make_batch()
    still = dataclasses.replace(
        batch, frames=batch.frames[:, :, :1].expand_as(batch.frames).contiguous()
    )
    logs = head(still, features_of(backbone, still), backbone).logs
    assert logs["clip_mean_l1"].item() < 1e-6
    assert head(batch, features_of(backbone, batch), backbone).logs["clip_mean_l1"] > 0.1


@pytest.mark.parametrize(
    ("render_base", "silent_decoder_is_trivial"), [("none", False), ("clip_mean", True)]
)
def test_cir_clip_mean_base_renders_residuals_on_the_clip_mean(
    backbone, render_base, silent_decoder_is_trivial
):
    """With ``render_base="clip_mean"`` a decoder that outputs nothing renders each frame as
    its clip's mean frame, so its self term is exactly the trivial baseline; rendering whole
    faces, it is the L1 of the frames themselves."""
    head = make_head("cir", render_base=render_base)
    head.attach(backbone, SPEC)
    last = head.decoder.body[-1]
    torch.nn.init.zeros_(last.weight)
    torch.nn.init.zeros_(last.bias)
    batch = make_batch()
    logs = head(batch, features_of(backbone, batch), backbone).logs
    assert torch.isclose(logs["self"], logs["clip_mean_l1"]).item() is silent_decoder_is_trivial
    with pytest.raises(ValueError, match="render_base"):
        make_head("cir", render_base="template")


def test_tcl_momentum_encoder_gets_no_grad_and_follows_ema(backbone):
    head = make_head("tcl", momentum=0.9)
    head.attach(backbone, SPEC)
    batch = make_batch()
    head(batch, features_of(backbone, batch), backbone).loss.backward()
    assert all(not p.requires_grad and p.grad is None for p in head.key_backbone.parameters())
    assert all(not p.requires_grad for p in head.key_projector.parameters())
    assert any(p.grad is not None for p in head.projector.parameters())

    before = copy.deepcopy(head.key_backbone.state_dict())
    with torch.no_grad():
        for p in backbone.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    head.after_optimizer_step(backbone)
    online = dict(backbone.named_parameters())
    for key, value in head.key_backbone.named_parameters():
        assert torch.allclose(value, 0.9 * before[key] + 0.1 * online[key], atol=1e-6)


def test_tcl_enqueues_keys_and_refuses_one_view(backbone):
    head = make_head("tcl")
    head.attach(backbone, SPEC)
    batch = make_batch()
    head(batch, features_of(backbone, batch), backbone)
    expected = head.encode_keys(batch.frames[:, 1]).flatten(0, 1)
    head.after_optimizer_step(backbone)
    # keys are computed before the EMA step moved the key encoder: compare to those
    assert torch.allclose(head.queue.queue[: B * T], expected, atol=1e-6)
    assert head.queue.pointer.item() == B * T
    single = make_batch()
    single.frames = single.frames[:, :1]
    with pytest.raises(ValueError, match="2 views"):
        head(single, features_of(backbone, single), backbone)


def test_key_queue_wraps_around():
    queue = KeyQueue(5, 2)
    keys = torch.arange(16.0).view(8, 2)
    queue.enqueue(keys[:3])
    queue.enqueue(keys[3:7])
    assert queue.pointer.item() == 2
    assert torch.equal(queue.queue, torch.stack([keys[5], keys[6], keys[2], keys[3], keys[4]]))
    assert torch.equal(gather(keys), keys)  # no process group: identity
    empty = KeyQueue(0, 2)
    empty.enqueue(keys)
    assert empty.keys.shape == (0, 2)


def _enqueue_on_rank(rank: int, world: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        queue = KeyQueue(8, 2)
        queue.enqueue(torch.full((3, 2), float(rank)))
        torch.save(queue.state_dict(), f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_key_queue_gathers_keys_across_ranks(tmp_path):
    mp.spawn(_enqueue_on_rank, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2)
    states = [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(2)]
    expected = torch.tensor([0.0] * 3 + [1.0] * 3)
    for state in states:
        assert torch.equal(state["queue"][:6, 0], expected) and state["pointer"].item() == 6


@pytest.mark.parametrize(
    ("reference", "still_clip_loss_is_zero"),
    [
        ("clip_mean", False),
        ("clip_relative", True),
        ("subject_relative", True),  # make_batch: every clip another identity
        ("video_mean", False),
        ("subject_mean", False),
    ],
)
def test_landmark_shape_clip_relative_regresses_only_changes_within_a_clip(
    backbone, reference, still_clip_loss_is_zero
):
    """A clip whose frames are one repeated image has no shape change: ``clip_relative``
    centres the prediction too, so nothing is left to regress (loss exactly 0); ``clip_mean``
    still asks the features to predict the (zero) target from a single frame, and
    ``video_mean`` the clip's shape relative to its video's mean, which no centring removes."""
    batch = make_batch()
    still = dataclasses.replace(
        batch,
        frames=batch.frames[:, :, :1].expand_as(batch.frames).contiguous(),
        landmarks=batch.landmarks[:, :, :1].expand_as(batch.landmarks).contiguous(),
        video_landmarks=batch.landmarks[:, :, -1],
        subject_landmarks=batch.landmarks[:, :, -1],
    )
    head = LandmarkShapeHead(reference=reference)
    head.attach(backbone, SPEC)
    loss = head(still, features_of(backbone, still), backbone).loss
    assert loss.item() < 1e-6 if still_clip_loss_is_zero else loss.item() > 1e-2


def test_group_centring_removes_the_mean_of_every_clip_with_the_same_label():
    values = torch.randn(4, 3, 5)
    by_clip = layers.group_centred(values, torch.arange(4))
    torch.testing.assert_close(by_clip, layers.clip_centred(values))
    pairs = layers.group_centred(values, torch.tensor([7, 2, 7, 2]))
    for first, second in ((0, 2), (1, 3)):
        both = torch.cat([values[first], values[second]])  # (2T, 5) frames of one label
        torch.testing.assert_close(pairs[first], values[first] - both.mean(dim=0))
        assert pairs[[first, second]].sum(dim=(0, 1)).abs().max() < 1e-5


def test_landmark_shape_subject_relative_regresses_differences_between_a_persons_videos(
    backbone,
):
    """Clips that each repeat one frame have no change within them: ``clip_relative`` has
    nothing to regress. Two such clips of one person from videos with different expressions
    still differ: ``subject_relative`` regresses that difference, and without identities it
    says what it needs."""
    batch = make_batch()
    still = dataclasses.replace(
        batch,
        frames=batch.frames[:, :, :1].expand_as(batch.frames).contiguous(),
        landmarks=batch.landmarks[:, :, :1].expand_as(batch.landmarks).contiguous(),
        identity=torch.tensor([0, 0, 1, 1]),
    )
    losses = {}
    for reference in ("clip_relative", "subject_relative"):
        head = LandmarkShapeHead(reference=reference, hidden_dim=0)
        head.attach(backbone, SPEC)
        losses[reference] = head(still, features_of(backbone, still), backbone).loss.item()
    assert losses["clip_relative"] < 1e-6 and losses["subject_relative"] > 1e-2
    shapes = head.shapes(still.landmarks[:, 0], identity=still.identity)  # (B, T, 68, 2)
    torch.testing.assert_close(shapes[0], -shapes[1])  # two clips: each minus their mean
    with pytest.raises(ValueError, match="identity"):
        head.shapes(still.landmarks[:, 0])


def test_landmark_head_with_whitening_logs_both_fits_and_checks_its_floor(backbone):
    batch = make_batch()
    head = LandmarkShapeHead(reference="clip_relative", hidden_dim=0, whiten=1e-4)
    head.attach(backbone, SPEC)
    output = head(batch, features_of(backbone, batch), backbone)
    assert set(output.logs) == {"explained", "explained_whitened"}
    assert torch.isfinite(output.loss) and output.loss.requires_grad
    assert not torch.equal(head.target_covariance.covariance, torch.eye(136))
    plain = LandmarkShapeHead(reference="clip_relative", hidden_dim=0)
    plain.attach(backbone, SPEC)
    assert not hasattr(plain, "target_covariance")
    for floor in (0.0, 1.5):
        with pytest.raises(ValueError, match="whiten"):
            LandmarkShapeHead(whiten=floor)


def test_landmark_shape_video_mean_target_is_the_expression_change_from_the_video_mean(backbone):
    """Frames that are the video's mean shape moved, turned and zoomed have a zero target;
    lowering the lower lip (point 57) in some frames moves that point in the target, and the
    others only by the shift of the face frame's origin (the mean point) that it causes."""
    g = torch.Generator().manual_seed(0)
    layout = torch.from_numpy(template_landmarks()).float() * 40 + 12
    video = layout + torch.randn(B, 68, 2, generator=g)  # (B, 68, 2) each clip's video mean
    angle = torch.rand(B, T, generator=g) - 0.5
    cos, sin = angle.cos(), angle.sin()
    turn = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
    zoom = 0.8 + 0.4 * torch.rand(B, T, 1, 1, generator=g)
    landmarks = zoom * video[:, None] @ turn.transpose(-1, -2) + torch.rand(B, T, 1, 2) * 5
    lowered = landmarks.clone()
    lowered[:, 1:, 57] += 3.0 * zoom[:, 1:, 0] * turn[:, 1:, :, 1]  # 3 px down the face
    head = LandmarkShapeHead(reference="video_mean", hidden_dim=0)
    head.attach(backbone, SPEC)
    assert head.shapes(landmarks, video).abs().max() < 1e-4
    change = head.shapes(lowered, video)  # (B, T, 68, 2)
    assert change[:, 0].abs().max() < 1e-4  # frame 0 was not changed
    moved = change[:, 1:] - change[:, 1:].mean(dim=2, keepdim=True)  # origin shift removed
    assert (moved[:, :, 57, 1] > 0.05).all()  # down, in eye distances (about 3 / 25)
    assert torch.cat([moved[:, :, :57], moved[:, :, 58:]], 2).abs().max() < 0.01
    with pytest.raises(ValueError, match="video_landmarks"):
        head.targets(landmarks)


def test_landmark_shape_subject_mean_reads_the_subject_landmarks(backbone):
    """``subject_mean`` regresses the shape relative to ``batch.subject_landmarks``: changing
    the video means leaves its loss as it is, changing the subject means does not; without
    them it names the field it needs."""
    batch = make_batch()
    first, last = batch.landmarks[:, :, 0], batch.landmarks[:, :, -1]
    head = LandmarkShapeHead(reference="subject_mean", hidden_dim=0)
    head.attach(backbone, SPEC)

    def loss(video, subject):
        means = dataclasses.replace(batch, video_landmarks=video, subject_landmarks=subject)
        return head(means, features_of(backbone, means), backbone).loss

    torch.testing.assert_close(loss(first, last), loss(last, last))
    assert (loss(first, last) - loss(first, first)).abs() > 1e-3
    with pytest.raises(ValueError, match="subject_landmarks"):
        head(batch, features_of(backbone, batch), backbone)


@pytest.mark.parametrize(
    ("head_class", "module"),
    [
        (LandmarkShapeHead, "regressor"),
        (IdentityAdversaryHead, "classifier"),
        (functools.partial(OpticalFlowHead, decoder="pooled"), "regressor"),
    ],
)
@pytest.mark.parametrize(("hidden_dim", "linear"), [(0, True), (32, False)])
def test_hidden_dim_zero_gives_a_linear_map(backbone, head_class, module, hidden_dim, linear):
    """With ``hidden_dim=0`` the head's map is affine in the pooled feature: doubling a
    feature offset doubles the output's change, as no hidden layer would."""
    head = head_class(hidden_dim=hidden_dim)
    head.attach(backbone, SPEC)
    head.eval()
    base, step = torch.randn(4, backbone.num_features), torch.randn(4, backbone.num_features)
    with torch.no_grad():
        once = getattr(head, module)(base + step) - getattr(head, module)(base)
        twice = getattr(head, module)(base + 2 * step) - getattr(head, module)(base)
    assert torch.allclose(twice, 2 * once, atol=1e-4) == linear
    with pytest.raises(ValueError, match="hidden_dim"):
        head_class(hidden_dim=-1).attach(backbone, SPEC)


def test_flow_clip_relative_regresses_displacement_from_the_clip_start(backbone):
    """Targets: motion from the previous clip frame. A prediction equal to the summed motion
    plus any per-clip offset is perfect (loss 0); one frame's error shows; data whose targets
    are not from the previous clip frame are refused at attach."""
    steps = torch.randn(B, T, 2, GRID, GRID)
    displacement = displacement_from_clip_start(steps)
    assert torch.equal(displacement[:, 0], torch.zeros_like(displacement[:, 0]))
    torch.testing.assert_close(displacement[:, 2], steps[:, 1] + steps[:, 2])

    head = make_head("flow", reference="clip_relative")
    with pytest.raises(ValueError, match="previous clip frame"):
        head.attach(backbone, SPEC)
    head.attach(backbone, dataclasses.replace(SPEC, flow_from_previous=True))
    head.eval()
    batch = make_batch(flow=False)
    features = features_of(backbone, batch)
    with torch.no_grad():
        predicted = head.predict(features, (GRID, GRID))
    offset = torch.randn(B, 1, 2, GRID, GRID)  # per clip: invisible to a clip-relative loss
    first_steps = predicted - predicted[:, :1] + offset
    # motion from the previous frame that sums to the prediction: its differences
    motion = torch.cat([first_steps[:, :1], first_steps.diff(dim=1)], dim=1)
    batch.flow = torch.stack([motion, torch.randn_like(motion)], dim=1)
    output = head(batch, features, backbone)
    assert output.loss.item() == pytest.approx(0.0, abs=1e-5)
    assert output.logs["zero_epe"] > 1e-3  # predicting no motion is not perfect here
    batch.flow[:, 0, 1] += 1.0  # frame 1 moved: frames 1..T-1 shift against frame 0
    assert head(batch, features, backbone).loss.item() > 0.1


def test_without_affine_motion_keeps_only_local_deformation():
    """An affine field (shift, rotation, zoom) is removed entirely; a field with no affine
    part (a bump at the centre, minus its own fit) is kept; the sum is split into the two."""
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, GRID), torch.linspace(-1, 1, GRID), indexing="ij")
    affine = torch.stack([0.7 + 0.2 * xs - 0.3 * ys, -0.4 + 0.3 * xs + 0.2 * ys])
    bump = torch.exp(-(xs**2 + ys**2) / 0.1).expand(2, GRID, GRID)
    local = without_affine_motion(bump)
    assert without_affine_motion(affine).abs().max() < 1e-5
    torch.testing.assert_close(without_affine_motion(local), local, atol=1e-5, rtol=0)
    torch.testing.assert_close(without_affine_motion(affine + local), local, atol=1e-5, rtol=0)
    assert local.abs().max() > 0.5


def test_flow_head_without_global_motion_ignores_a_shaking_face(backbone):
    """With ``global_motion="affine"`` a target made of per-frame affine shakes costs a silent
    decoder nothing; with the stored flow it does."""
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, GRID), torch.linspace(-1, 1, GRID), indexing="ij")
    shakes = torch.randn(B, 2, T, 2, 3)  # per frame and component: a + b x + c y
    basis = torch.stack([torch.ones_like(xs), xs, ys])  # (3, GRID, GRID)
    batch = make_batch(flow=False)
    batch.flow = torch.einsum("bvtck,kyx->bvtcyx", shakes, basis)
    features = features_of(backbone, batch)
    for global_motion, free in [("keep", False), ("affine", True)]:
        head = make_head("flow", global_motion=global_motion)
        head.attach(backbone, SPEC)
        torch.nn.init.zeros_(head.decoder[-1][-1].weight)
        torch.nn.init.zeros_(head.decoder[-1][-1].bias)
        loss = head(batch, features, backbone).loss.item()
        assert (loss < 1e-4) is free
    with pytest.raises(ValueError, match="global_motion"):
        make_head("flow", global_motion="translation")


@pytest.mark.parametrize(
    ("decoder", "feature_level", "deepest_trained"),
    [
        ("map", -2, False),
        ("map", -1, True),
        ("pooled", -2, True),
    ],
)
def test_flow_decoder_source_decides_which_stages_learn(
    backbone, decoder, feature_level, deepest_trained
):
    """A map decoder on the second-deepest map sends the deepest stage no gradient (the
    pooled feature the probes read stays at its initialisation); the pooled decoder trains it."""
    head = make_head("flow", decoder=decoder, feature_level=feature_level)
    head.attach(backbone, SPEC)
    batch = make_batch()
    head(batch, features_of(backbone, batch), backbone).loss.backward()
    deepest_stage = [p for n, p in backbone.named_parameters() if n.startswith("model.layer4")]
    assert deepest_stage
    got_gradient = any(p.grad is not None and p.grad.abs().sum() > 0 for p in deepest_stage)
    assert got_gradient is deepest_trained
    with pytest.raises(ValueError, match="decoder"):
        make_head("flow", decoder="pixels")


@pytest.mark.parametrize("clip_centred", [False, True])
def test_tcl_clip_centred_embeddings_ignore_what_a_clip_shares(clip_centred):
    """A per-clip offset of the projections (identity, background) changes nothing once
    centred; without centring it moves the embeddings."""
    head = make_head("tcl", clip_centred=clip_centred, queue_size=0)
    projected = torch.randn(B, T, 16)
    shifted = projected + 5.0 * torch.randn(B, 1, 16)
    same = torch.allclose(head.normalise(projected), head.normalise(shifted), atol=1e-5)
    assert same == clip_centred
    with pytest.raises(ValueError, match="queue_size=0"):
        make_head("tcl", clip_centred=True, queue_size=8)


def test_identity_adversary_reverses_the_gradient_reaching_the_backbone():
    """The classifier's own gradient is untouched; what flows on into the features is negated
    and scaled: the backbone is pushed to make identities harder to tell apart."""
    features = torch.randn(6, 8, requires_grad=True)
    weights = torch.randn(8, 3)
    (features @ weights).sum().backward()
    plain = features.grad.clone()
    features.grad = None
    (reverse_gradient(features, 0.5) @ weights).sum().backward()
    torch.testing.assert_close(features.grad, -0.5 * plain)


def test_identity_adversary_needs_identity_numbers(backbone):
    head = IdentityAdversaryHead()
    with pytest.raises(ValueError, match="at least 2 people"):
        head.attach(backbone, dataclasses.replace(SPEC, num_identities=1))


def test_between_clip_share_is_zero_within_clip_variation_and_one_between_clips():
    within = torch.randn(B, T, 8)
    within = within - within.mean(dim=1, keepdim=True)  # every clip has the same mean
    between = torch.randn(B, 1, 8).expand(B, T, 8)  # frames of a clip are identical
    assert between_clip_share(within).item() == pytest.approx(0.0, abs=1e-6)
    assert between_clip_share(between).item() == pytest.approx(1.0, abs=1e-4)
    mixed = between_clip_share(within + between).item()
    assert 0.2 < mixed < 0.8
    assert between_clip_share(10 * (within + between)).item() == pytest.approx(mixed, rel=1e-4)


def test_between_identity_share_lets_a_persons_videos_differ():
    """Clips 0 and 1 show one person, 2 and 3 another: clip means that differ only within a
    person are invisible to the identity groups and count fully for the clip groups."""
    offset = torch.linspace(1.0, 2.0, 8).view(1, 1, 8)
    clips = torch.cat([offset, -offset, offset, -offset]).expand(B, T, 8)  # (B, T, 8)
    people = torch.tensor([0, 0, 1, 1])
    assert between_clip_share(clips, groups=people).item() == pytest.approx(0.0, abs=1e-6)
    assert between_clip_share(clips).item() == pytest.approx(1.0, abs=1e-4)
    head = ClipInvarianceHead(group="identity")
    batch = dataclasses.replace(make_batch(), identity=people)
    loss = head(batch, ClipFeatures(maps=[], pooled=clips), encode=None).loss
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="group"):
        ClipInvarianceHead(group="video")


def _placed_face(field_in_face, template: torch.Tensor, origin, angle: float, scale: float):
    """The landmarks and image-grid flow of a face whose frame field is ``field_in_face``
    (a function of face points (..., 2) -> vectors (..., 2)), placed in a 64-px image at
    ``origin`` (px), turned by ``angle`` (rad) and zoomed to ``scale`` px per eye distance."""
    cos, sin = math.cos(angle), math.sin(angle)
    rotation = torch.tensor([[cos, sin], [-sin, cos]])  # image axes -> face axes
    origin = torch.tensor(origin)
    landmarks = origin + scale * template @ rotation
    pixels = torch.stack(torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="xy"), -1)
    in_face = (pixels - origin) @ rotation.T / scale
    flow = scale * field_in_face(in_face) @ rotation  # vectors back to image axes, pixels
    return landmarks, flow.permute(2, 0, 1)


def test_flow_in_face_frame_is_the_same_wherever_the_face_sits():
    """One deformation, three placements of the face (shift, turn, zoom): the same field in the
    face frame; the image-grid fields differ."""
    template = torch.randn(68, 2) * 0.6
    template[EYE_CORNERS[0]] = torch.tensor([-0.5, -0.3])
    template[EYE_CORNERS[3]] = torch.tensor([0.5, -0.3])
    template = template - template.mean(0)  # face frame: mean at 0, eyes 1 apart on the x axis

    def field(points):
        x, y = points.unbind(-1)
        return torch.stack([0.2 * x * y, 0.1 * (x**2 - y)], -1)

    placements = [((32.0, 32.0), 0.0, 12.0), ((29.0, 35.0), 0.3, 10.0), ((34.0, 30.0), -0.2, 11.0)]
    faces = [_placed_face(field, template, *placement) for placement in placements]
    resampled = [flow_in_face_frame(flow, marks, 64, 1.5) for marks, flow in faces]
    side = torch.linspace(-1.5, 1.5, 64)
    expected = field(torch.stack(torch.meshgrid(side, side, indexing="xy"), -1)).permute(2, 0, 1)
    expected = expected * 64 / 3  # pixels of a 64-px crop 3 eye distances across
    for got in resampled:
        torch.testing.assert_close(got, expected, atol=0.05, rtol=0)  # of values up to 10 px
    assert (faces[0][1] - faces[1][1]).abs().amax() > 0.5


def test_flow_head_in_face_frame_needs_landmarks_and_the_pooled_decoder(backbone):
    head = make_head("flow", decoder="pooled", frame="face")
    assert head.needs.landmarks and head.needs.flow
    head.attach(backbone, SPEC)
    batch = make_batch()
    head(batch, features_of(backbone, batch), backbone).loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in backbone.parameters())
    with pytest.raises(ValueError, match="decoder=pooled"):
        make_head("flow", frame="face")
    with pytest.raises(ValueError, match="frame must be one of"):
        make_head("flow", decoder="pooled", frame="screen")
