"""TPAVI (temporal pixel-wise audio-visual interaction), the AVSBench fusion block, in its exact
factorised form, plus the dense form of the official code as a reference.

The official block (dot mode, audio-visual) over one group of T frames, with N = T*H*W positions:

    a_t   = align(audio_t)                    (128 -> 256; bias in S4/MS3, none in AVSS)
    y_i   = (1/N) * sum_j (theta_i . phi_j) * g_j      i, j over the N positions
    z     = LayerNorm_C( W_z(y) + x )         (W_z = 1x1x1 Conv3d + BatchNorm3d, BN initialised to 0)

where phi_j = phi(a_t(j)) is the audio of position j's frame, tiled over HxW. The official code builds
the N x N matrix (15,680^2 at stage 1: about 1 GB per video in fp32). Because phi_j only depends on
the frame of j, the sum over j splits exactly:

    y_i = (1/N) * sum_t' (theta_i . p_t') * G_t',   p_t' = phi(a_t'),  G_t' = sum_hw g_{t',hw}
        = theta_i^T M,                             M = (1/N) * sum_t' p_t' G_t'^T   (C' x C')

and since g is a 1x1 convolution, G_t' = H*W * (W_g mean_hw(x_t') + b_g). The factorised block
costs O(N*C'^2) instead of O(N^2*C'). `dense_tpavi` computes the official formula literally (tiling,
Conv3d, the N x N matrix) with the same parameters; tests check both agree in float64 (values and
gradients), and `TPAVI(dense=True)` runs it inside the model for the benchmark.

Parameter names follow the official `TPAVIModule` (`align_channel`, `theta`, `phi`, `g`, `W_z.0`,
`W_z.1`, `norm_layer`), so official checkpoints load without renaming. 165,760 parameters per block
with the align bias (S4/MS3), 165,504 without (AVSS).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

AUDIO_DIM = 128  # VGGish embedding size


class TPAVI(nn.Module):
    """One TPAVI block over groups of `frames` consecutive frames of [B*T, C, H, W] features.

    forward(x, audio) with x [B*T, C, H, W] (video-major: frames of a video are consecutive, B*T a
    multiple of `frames`) and audio [B*T, 128] VGGish embeddings -> (z [B*T, C, H, W], a [B*T, C]),
    a being the aligned audio projection (what the AVM loss compares against).
    """

    def __init__(self, channels: int = 256, frames: int = 5, align_bias: bool = True, dense: bool = False):
        super().__init__()
        inter = channels // 2
        self.channels, self.inter, self.frames, self.dense = channels, inter, frames, dense
        self.align_channel = nn.Linear(AUDIO_DIM, channels, bias=align_bias)
        self.norm_layer = nn.LayerNorm(channels)
        self.g = nn.Conv3d(channels, inter, kernel_size=1)
        self.W_z = nn.Sequential(nn.Conv3d(inter, channels, kernel_size=1), nn.BatchNorm3d(channels))
        nn.init.constant_(self.W_z[1].weight, 0)
        nn.init.constant_(self.W_z[1].bias, 0)
        self.theta = nn.Conv3d(channels, inter, kernel_size=1)
        self.phi = nn.Conv3d(channels, inter, kernel_size=1)

    def forward(self, x, audio):
        bt, c, h, w = x.shape
        if bt % self.frames:
            raise ValueError(f"TPAVI: {bt} frames is not a multiple of the group size {self.frames}")
        if self.dense:
            x5 = x.reshape(-1, self.frames, c, h, w).permute(0, 2, 1, 3, 4)
            z, a = dense_tpavi(self, x5, audio.reshape(-1, self.frames, audio.shape[-1]))
            return z.permute(0, 2, 1, 3, 4).reshape(bt, c, h, w), a.reshape(bt, c)
        return factorised_tpavi(self, x, audio)


def _mat(conv: nn.Conv3d):
    """A 1x1x1 Conv3d's weight as a [out, in] matrix."""
    return conv.weight.reshape(conv.weight.shape[0], conv.weight.shape[1])


def factorised_tpavi(block: TPAVI, x, audio):
    """The exact factorised TPAVI (see the module docstring). x [B*T, C, H, W], audio [B*T, 128].

    M is formed from per-frame means, M = (1/T) sum_t' p_t' gbar_t'^T with gbar = g(mean_hw x) (equal
    to the (1/N) sum with G = H*W*gbar), in float32 (at least) even under autocast: a fp16 sum over 3,136
    positions could overflow."""
    bt, c, h, w = x.shape
    t = block.frames
    groups = bt // t
    a = block.align_channel(audio)                                               # [BT, C]
    acc = torch.promote_types(x.dtype, torch.float32)  # float32, or float64 for float64 inputs
    with torch.autocast(x.device.type, enabled=False):
        p = F.linear(a.to(acc), _mat(block.phi).to(acc), block.phi.bias.to(acc))              # [BT, C']
        gbar = F.linear(x.to(acc).mean(dim=(2, 3)), _mat(block.g).to(acc), block.g.bias.to(acc))  # [BT, C']
        m = torch.einsum("gtc,gtd->gcd", p.reshape(groups, t, -1), gbar.reshape(groups, t, -1)) / t
    theta = F.conv2d(x, block.theta.weight.squeeze(-1), block.theta.bias)       # [BT, C', H, W]
    y = torch.einsum("gtchw,gcd->gtdhw", theta.reshape(groups, t, block.inter, h, w), m.to(theta.dtype))
    y = y.reshape(bt, block.inter, h, w)
    conv, bn = block.W_z
    wy = F.conv2d(y, conv.weight.squeeze(-1), conv.bias)
    wy = bn(wy.unsqueeze(2)).squeeze(2)  # BatchNorm3d over [BT, C, 1, H, W]: the same statistics as [B, C, T, H, W]
    z = F.layer_norm((wy + x).permute(0, 2, 3, 1), (c,), block.norm_layer.weight, block.norm_layer.bias,
                     block.norm_layer.eps)
    return z.permute(0, 3, 1, 2), a


def dense_tpavi(block: TPAVI, x5, audio):
    """The official dense formula, literally: x5 [G, C, T, H, W], audio [G, T, 128] ->
    (z [G, C, T, H, W], aligned audio [G, T, C]). Materialises the N x N matrix (test oracle only)."""
    g_, c, t, h, w = x5.shape
    a = block.align_channel(audio)                                          # [G, T, C]
    tiled = a.permute(0, 2, 1)[..., None, None].repeat(1, 1, 1, h, w)      # [G, C, T, H, W]
    g_x = block.g(x5).reshape(g_, block.inter, -1).permute(0, 2, 1)         # [G, N, C']
    theta_x = block.theta(x5).reshape(g_, block.inter, -1).permute(0, 2, 1)  # [G, N, C']
    phi_x = block.phi(tiled).reshape(g_, block.inter, -1)                   # [G, C', N]
    f = torch.matmul(theta_x, phi_x)                                        # [G, N, N]
    y = torch.matmul(f / f.shape[-1], g_x)                                  # [G, N, C']
    y = y.permute(0, 2, 1).reshape(g_, block.inter, t, h, w)
    z = block.W_z(y) + x5
    z = block.norm_layer(z.permute(0, 2, 3, 4, 1)).permute(0, 4, 1, 2, 3)
    return z, a
