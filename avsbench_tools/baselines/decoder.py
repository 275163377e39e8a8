"""The AVSBench decoder side: the ASPP-like stage projection and the feature-fusion decoder.

Module and parameter names follow the official `Pred_endecoder` (`conv{1..4}.conv2d_list.{0..3}`,
`path{1..4}.resConfUnit{1,2}.conv{1,2}`, `output_conv.{0,2,4}`), so official checkpoints load as is.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

DILATIONS = (3, 6, 12, 18)


class ASPP(nn.Module):
    """Four parallel 3x3 convolutions (bias, weights N(0, 0.01), no BN, no ReLU) with dilation =
    padding = 3, 6, 12, 18, summed: [N, C_in, H, W] -> [N, 256, H, W] (the official Classifier_Module)."""

    def __init__(self, in_channels: int, channels: int = 256):
        super().__init__()
        self.conv2d_list = nn.ModuleList(
            nn.Conv2d(in_channels, channels, 3, padding=d, dilation=d, bias=True) for d in DILATIONS)
        for conv in self.conv2d_list:
            conv.weight.data.normal_(0, 0.01)

    def forward(self, x):
        out = self.conv2d_list[0](x)
        for conv in self.conv2d_list[1:]:
            out = out + conv(x)
        return out


class ResidualConvUnit(nn.Module):
    """Pre-activation residual unit without BN: r = relu(x); return r + conv2(relu(conv1(r))).

    The official unit writes `out = relu(x)` with an in-place ReLU, so its input is rectified in
    place and the skip connection adds relu(x), not x; this reproduces that arithmetic.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=True)

    def forward(self, x):
        r = F.relu(x)
        return r + self.conv2(F.relu(self.conv1(r)))


class FeatureFusionBlock(nn.Module):
    """out = up2(unit2(x + unit1(skip))) (bilinear, align_corners=True); the deepest block (path4)
    has no skip input, and this implementation does not build its unused `resConfUnit1`."""

    def __init__(self, channels: int, has_skip: bool = True):
        super().__init__()
        if has_skip:
            self.resConfUnit1 = ResidualConvUnit(channels)
        self.resConfUnit2 = ResidualConvUnit(channels)

    def forward(self, x, skip=None):
        if skip is not None:
            x = x + self.resConfUnit1(skip)
        x = self.resConfUnit2(x)
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)


def output_head(channels: int, num_classes: int) -> nn.Sequential:
    """conv3x3 256->128, x2 bilinear (align_corners=False), conv3x3 128->32, ReLU, conv1x1 32->K."""
    return nn.Sequential(
        nn.Conv2d(channels, 128, 3, padding=1),
        nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
        nn.Conv2d(128, 32, 3, padding=1),
        nn.ReLU(True),
        nn.Conv2d(32, num_classes, 1),
    )
