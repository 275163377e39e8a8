"""PVT-v2 (Pyramid Vision Transformer v2) visual encoder, built locally with the official key layout.

The layout is the one of the official `pvt_v2_b5.pth` (and of AVSBench's `encoder_backbone`):
`patch_embed{1..4}.{proj,norm}`, `block{1..4}.{j}.{norm1,attn.{q,kv,proj,sr,norm},norm2,
mlp.{fc1,dwconv.dwconv,fc2}}`, `norm{1..4}`; the classifier `head.*` of the ImageNet file is not built.
timm's layout (`patch_embed`, `stages.{i}.downsample/blocks/norm`) is mapped by `from_timm_keys`.

pvt_v2_b5: embed dims 64/128/320/512, depths 3/6/40/3, heads 1/2/5/8, spatial reduction 8/4/2/1,
MLP ratio 4, qkv bias, LayerNorm eps 1e-6 in the blocks and stage norms (1e-5 in the patch embedding
and the reduction norm, as the official code), stochastic depth rising linearly to 0.1.
"""

from __future__ import annotations

import math
import re

import torch
import torch.nn.functional as F
from torch import nn

B5 = dict(embed_dims=(64, 128, 320, 512), depths=(3, 6, 40, 3), num_heads=(1, 2, 5, 8),
          sr_ratios=(8, 4, 2, 1), mlp_ratio=4)


def _init(m: nn.Module) -> None:
    """The official initialisation: trunc-normal(0.02) linears, unit LayerNorms, He-normal convs."""
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Conv2d):
        fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
        m.weight.data.normal_(0, math.sqrt(2.0 / fan_out))
        if m.bias is not None:
            m.bias.data.zero_()


class DropPath(nn.Module):
    """Stochastic depth: drop the residual branch per sample with probability p (training only)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep


class PatchEmbed(nn.Module):
    """Overlapping patch embedding: conv (k, stride, padding k//2) then LayerNorm over channels."""

    def __init__(self, in_chans: int, dim: int, patch: int, stride: int):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, patch, stride, padding=patch // 2)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x):
        x = self.proj(x)
        h, w = x.shape[-2:]
        return self.norm(x.flatten(2).transpose(1, 2)), h, w


class Attention(nn.Module):
    """Spatial-reduction attention: keys/values from a stride-`sr` conv of the map (sr > 1)."""

    def __init__(self, dim: int, heads: int, sr: int):
        super().__init__()
        self.heads, self.sr_ratio = heads, sr
        self.q = nn.Linear(dim, dim, bias=True)
        self.kv = nn.Linear(dim, dim * 2, bias=True)
        self.proj = nn.Linear(dim, dim)
        if sr > 1:
            self.sr = nn.Conv2d(dim, dim, sr, sr)
            self.norm = nn.LayerNorm(dim)

    def forward(self, x, h, w):
        b, n, c = x.shape
        d = c // self.heads
        q = self.q(x).reshape(b, n, self.heads, d).transpose(1, 2)
        if self.sr_ratio > 1:
            x = self.sr(x.transpose(1, 2).reshape(b, c, h, w)).flatten(2).transpose(1, 2)
            x = self.norm(x)
        k, v = self.kv(x).reshape(b, -1, 2, self.heads, d).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)  # softmax(q k^T / sqrt(d)) v
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class DWConv(nn.Module):
    """Depth-wise 3x3 conv on the token map (the key `dwconv.dwconv` is the official one)."""

    def __init__(self, dim: int):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 3, 1, 1, bias=True, groups=dim)

    def forward(self, x, h, w):
        b, n, c = x.shape
        return self.dwconv(x.transpose(1, 2).reshape(b, c, h, w)).flatten(2).transpose(1, 2)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = DWConv(hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x, h, w):
        return self.fc2(F.gelu(self.dwconv(self.fc1(x), h, w)))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, sr: int, mlp_ratio: float, drop_path: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads, sr)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x, h, w):
        x = x + self.drop_path(self.attn(self.norm1(x), h, w))
        return x + self.drop_path(self.mlp(self.norm2(x), h, w))


class PVTv2(nn.Module):
    """PVT-v2 backbone; forward(x [N, 3, H, W]) -> four maps [N, C_i, H/4..H/32, W/4..W/32]."""

    def __init__(self, embed_dims=B5["embed_dims"], depths=B5["depths"], num_heads=B5["num_heads"],
                 sr_ratios=B5["sr_ratios"], mlp_ratio=B5["mlp_ratio"], drop_path: float = 0.1):
        super().__init__()
        self.channels = tuple(embed_dims)
        rates = torch.linspace(0, drop_path, sum(depths), device="cpu").tolist()
        cur = 0
        for i, (dim, depth) in enumerate(zip(embed_dims, depths, strict=True)):
            setattr(self, f"patch_embed{i + 1}", PatchEmbed(3 if i == 0 else embed_dims[i - 1], dim,
                                                            7 if i == 0 else 3, 4 if i == 0 else 2))
            setattr(self, f"block{i + 1}", nn.ModuleList(
                Block(dim, num_heads[i], sr_ratios[i], mlp_ratio, rates[cur + j]) for j in range(depth)))
            setattr(self, f"norm{i + 1}", nn.LayerNorm(dim, eps=1e-6))
            cur += depth
        self.apply(_init)

    def forward(self, x):
        outs = []
        for i in range(len(self.channels)):
            x, h, w = getattr(self, f"patch_embed{i + 1}")(x)
            for blk in getattr(self, f"block{i + 1}"):
                x = blk(x, h, w)
            x = getattr(self, f"norm{i + 1}")(x)
            x = x.reshape(x.shape[0], h, w, -1).permute(0, 3, 1, 2).contiguous()
            outs.append(x)
        return outs


def pvt_v2_b5(drop_path: float = 0.1) -> PVTv2:
    """The PVT-v2-b5 backbone used by AVSBench (81,443,008 parameters without the ImageNet head)."""
    return PVTv2(drop_path=drop_path)


def from_timm_keys(state: dict) -> dict:
    """timm's pvt_v2 key layout -> the official one (inverse of timm's checkpoint_filter_fn); official
    keys pass through unchanged."""
    out = {}
    for k, v in state.items():
        k = re.sub(r"^patch_embed\.", "patch_embed1.", k)
        k = re.sub(r"^stages\.(\d+)\.downsample\.", lambda m: f"patch_embed{int(m.group(1)) + 1}.", k)
        k = re.sub(r"^stages\.(\d+)\.blocks\.(\d+)\.", lambda m: f"block{int(m.group(1)) + 1}.{m.group(2)}.", k)
        k = re.sub(r"^stages\.(\d+)\.norm\.", lambda m: f"norm{int(m.group(1)) + 1}.", k)
        k = re.sub(r"\.mlp\.dwconv\.(weight|bias)$", r".mlp.dwconv.dwconv.\1", k)
        out[k] = v
    return out
