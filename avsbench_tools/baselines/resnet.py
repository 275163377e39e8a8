"""ResNet visual encoders (torchvision's builders), returning the four stage maps at 1/4..1/32.

`resnet18-w16` is ResNet-18 at a quarter of the width (stages of 16, 32, 64, 128 channels; 0.7M parameters
instead of 11.2M), built from torchvision's BasicBlock with its initialisation: for CPU sanity runs from scratch
(the tones world's audio check, release-check on CPU), where ResNet-18's 11M parameters cost most of each step
and no ImageNet weights exist for either anyway. Not an official backbone.

Parameter names are torchvision's (`conv1`, `bn1`, `layer1..4`), so a torchvision ImageNet state dict
loads directly (its `fc.*` is dropped). The official AVSBench `B2_ResNet` names the used stages
`layer3_1`/`layer4_1` and also builds `layer3_2`/`layer4_2` copies that forward never runs;
weights.py maps the names and drops the copies. `duplicate_stage_parameters` counts them.
"""

from __future__ import annotations

from torch import nn

STAGE_CHANNELS = {"resnet50": (256, 512, 1024, 2048), "resnet18": (64, 128, 256, 512),
                  "resnet18-w16": (16, 32, 64, 128)}


class ResNetEncoder(nn.Module):
    """conv1/bn1/relu/maxpool + layer1..4 of a torchvision ResNet; forward -> [x1, x2, x3, x4]."""

    def __init__(self, name: str):
        super().__init__()
        from torchvision import models

        net = narrow_resnet18(STAGE_CHANNELS[name]) if name == "resnet18-w16" else getattr(models, name)(weights=None)
        self.channels = STAGE_CHANNELS[name]
        for part in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"):
            setattr(self, part, getattr(net, part))

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x1 = self.layer1(x)
        x2 = self.layer2(x1)
        x3 = self.layer3(x2)
        return [x1, x2, x3, self.layer4(x3)]


def duplicate_stage_parameters() -> int:
    """Parameters of the official B2_ResNet's unused `layer3_2` + `layer4_2` (built from 512 channels):
    counted on the meta device, nothing allocated."""
    import torch
    from torchvision.models.resnet import Bottleneck

    def layer(inplanes, planes, blocks):
        down = nn.Sequential(nn.Conv2d(inplanes, planes * 4, 1, stride=2, bias=False), nn.BatchNorm2d(planes * 4))
        mods = [Bottleneck(inplanes, planes, 2, down)] + [Bottleneck(planes * 4, planes) for _ in range(blocks - 1)]
        return nn.Sequential(*mods)

    with torch.device("meta"):
        mods = nn.ModuleList([layer(512, 256, 6), layer(1024, 512, 3)])
    return sum(p.numel() for p in mods.parameters())


def narrow_resnet18(widths: tuple[int, ...]) -> nn.Module:
    """ResNet-18's layout (two BasicBlocks per stage, 7x7 stem, max-pool) with the given stage widths, initialised
    as torchvision initialises a ResNet (Kaiming-normal fan-out convolutions, BatchNorm 1 / 0)."""
    from torchvision.models.resnet import BasicBlock

    def layer(inplanes: int, planes: int, stride: int) -> nn.Sequential:
        down = None
        if stride != 1 or inplanes != planes:
            down = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))
        return nn.Sequential(BasicBlock(inplanes, planes, stride, down), BasicBlock(planes, planes))

    net = nn.Module()
    net.conv1 = nn.Conv2d(3, widths[0], 7, 2, 3, bias=False)
    net.bn1 = nn.BatchNorm2d(widths[0])
    net.relu = nn.ReLU(inplace=True)
    net.maxpool = nn.MaxPool2d(3, 2, 1)
    inplanes = widths[0]
    for i, planes in enumerate(widths):
        setattr(net, f"layer{i + 1}", layer(inplanes, planes, 1 if i == 0 else 2))
        inplanes = planes
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)
    return net
