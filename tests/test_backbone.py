"""The timm backbone wrapper gives feature maps and pooled vectors for CNNs and ViTs."""

import pytest
import torch

from aurep.models import Backbone


@pytest.mark.parametrize(("name", "kwargs"), [("test_resnet", {}), ("test_vit", {"img_size": 64})])
def test_feature_map_and_pooled(name, kwargs):
    backbone = Backbone(name, levels=(-2, -1), **kwargs)
    out = backbone(torch.randn(2, 3, 64, 64))
    assert len(out.feature_maps) == 2
    for fmap, channels, reduction in zip(
        out.feature_maps, backbone.channels, backbone.reductions, strict=True
    ):
        assert fmap.shape == (2, channels, 64 // reduction, 64 // reduction)
    assert out.pooled.shape == (2, backbone.num_features)
    torch.testing.assert_close(out.pooled, out.feature_map.mean(dim=(2, 3)))


def test_gradients_flow():
    backbone = Backbone("test_resnet")
    backbone(torch.randn(2, 3, 32, 32)).pooled.sum().backward()
    assert all(p.grad is not None for p in backbone.parameters() if p.requires_grad)


def test_unknown_name_is_a_clear_error():
    with pytest.raises(ValueError, match="no_such_net"):
        Backbone("no_such_net")
