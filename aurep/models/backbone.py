"""A timm backbone that returns feature maps and a pooled vector for any timm model name."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import timm
import torch
from torch import nn


@dataclass
class BackboneOutput:
    """feature_maps: list of (B, C_i, h_i, w_i), shallow to deep; pooled: (B, C) of the last."""

    feature_maps: list[torch.Tensor]
    pooled: torch.Tensor

    @property
    def feature_map(self) -> torch.Tensor:
        """The deepest feature map (B, C, h, w)."""
        return self.feature_maps[-1]


class Backbone(nn.Module):
    """Wraps ``timm.create_model(name)`` (CNNs and ViTs alike) via ``forward_intermediates``.

    Args:
        name: any timm model name, e.g. ``resnet18``, ``vit_small_patch16_224``, ``test_resnet``.
        pretrained: load timm weights (needs the network or a local cache; off by default).
        levels: which intermediate stages to return, as indices into the model's stages
            (negative from the end); the last one is pooled. ``(-1,)`` = deepest map only.
        img_size: input size for models that need it fixed at build time (ViTs), pixels.
        **timm_kwargs: passed to ``timm.create_model`` (e.g. ``drop_path_rate``).
    """

    def __init__(
        self,
        name: str = "resnet18",
        pretrained: bool = False,
        levels: Sequence[int] = (-1,),
        img_size: int | None = None,
        **timm_kwargs,
    ):
        super().__init__()
        if img_size is not None:
            timm_kwargs["img_size"] = img_size
        try:
            self.model = timm.create_model(
                name, pretrained=pretrained, num_classes=0, **timm_kwargs
            )
        except RuntimeError as error:
            raise ValueError(f"timm cannot build backbone {name!r}: {error}") from None
        self.name = name
        info = self.model.feature_info
        stages = len(info)
        self.levels = sorted({level % stages for level in levels})
        self.channels: list[int] = [int(info[i]["num_chs"]) for i in self.levels]
        self.reductions: list[int] = [int(info[i]["reduction"]) for i in self.levels]
        self.num_features: int = self.channels[-1]

    @property
    def input_size(self) -> tuple[int, int] | None:
        """(H, W) in px that the model only accepts (a ViT built with a fixed ``img_size``),
        None when any size works."""
        embed = getattr(self.model, "patch_embed", None)
        if embed is None or not getattr(embed, "strict_img_size", False):
            return None
        return tuple(int(side) for side in embed.img_size)

    def check_input_size(self, size: int, source: str) -> None:
        """ValueError when this backbone cannot take ``size`` x ``size`` px images (``source``
        names where the size comes from)."""
        fixed = self.input_size
        if fixed is not None and fixed != (size, size):
            raise ValueError(
                f"backbone {self.name} is built for {fixed[0]}x{fixed[1]} px images but {source} "
                f"is {size} px: set model.init_args.img_size={size} (or {source}={fixed[0]})"
            )

    def forward(self, images: torch.Tensor) -> BackboneOutput:
        """images: (B, 3, H, W) normalised floats -> :class:`BackboneOutput`."""
        maps = self.model.forward_intermediates(
            images, indices=self.levels, intermediates_only=True
        )
        return BackboneOutput(feature_maps=list(maps), pooled=maps[-1].mean(dim=(2, 3)))
