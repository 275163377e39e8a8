"""The TPAVI baseline model (AVSBench), as one module: visual encoder, frozen VGGish, per-stage ASPP,
TPAVI on the chosen stages, the fusion decoder. See /design/tpavi.md for the facts it follows.

    cfg = ModelConfig(backbone="resnet50", num_classes=1, setting="ms3")
    model = build_model(cfg, visual_weights=path_or_None, vggish_weights=path_or_None)
    out = model(frames [B*T, 3, 224, 224], logmel [B*T, 1, 96, 64], frame_flags=None, no_audio=False)

Frames are video-major (the T frames of a video are consecutive) and TPAVI runs over consecutive
groups of `cfg.frames` (5) frames: AVSS's 10 frames per video are two independent groups, as in the
official code. Top-level module names are the official `Pred_endecoder`'s (`resnet` or
`encoder_backbone`, `conv1..4`, `tpavi_b1..4`, `path1..4`, `output_conv`) plus `vggish`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from avsbench_tools.baselines.decoder import ASPP, FeatureFusionBlock, output_head
from avsbench_tools.baselines.model_config import BACKBONES, CHANNELS, SETTINGS, ModelConfig
from avsbench_tools.baselines.tpavi import TPAVI

__all__ = ["BACKBONES", "CHANNELS", "SETTINGS", "ModelConfig", "ModelOutput", "TPAVIModel", "build_model"]

@dataclass
class ModelOutput:
    """logits [B*T, K, H, W]; stage_maps: the 4 post-TPAVI maps [B*T, 256, h, w] as the official AVM
    loss sees them (rectified: the official decoder's in-place ReLU runs before the loss);
    audio_feats: per stage the aligned audio [B*T, 256], None where the stage has no TPAVI."""

    logits: torch.Tensor
    stage_maps: list = field(default_factory=list)
    audio_feats: list = field(default_factory=list)


def _built(build, init: bool) -> nn.Module:
    """build() as is, or (init False) built on the meta device and given empty CPU storage; buffers
    are zeroed so that a state dict without `num_batches_tracked` still leaves defined values."""
    if init:
        return build()
    with torch.device("meta"):
        module = build()
    module = module.to_empty(device="cpu")
    for b in module.buffers():
        b.zero_()
    return module


class TPAVIModel(nn.Module):
    """The AVSBench TPAVI network with a frozen VGGish inside (see the module docstring)."""

    def __init__(self, cfg: ModelConfig, init_visual: bool = True, init_vggish: bool = True):
        """init_visual / init_vggish False: that part is left uninitialised (weights follow at once;
        build_model does this when given weights files, skipping ~150M random draws)."""
        super().__init__()
        from avsbench_tools.audio.vggish import build_vggish

        self.cfg = cfg
        self.warnings: list[str] = []
        if cfg.backbone == "pvt_v2_b5":
            from avsbench_tools.baselines.pvt import pvt_v2_b5

            self.encoder_backbone = _built(lambda: pvt_v2_b5(drop_path=cfg.drop_path), init_visual)
        else:
            from avsbench_tools.baselines.resnet import ResNetEncoder

            self.resnet = _built(lambda: ResNetEncoder(cfg.backbone), init_visual)
        dims = self.visual.channels
        for i in (4, 3, 2, 1):
            setattr(self, f"conv{i}", ASPP(dims[i - 1], cfg.channels))
        for i in (4, 3, 2, 1):
            setattr(self, f"path{i}", FeatureFusionBlock(cfg.channels, has_skip=i != 4))
        for s in cfg.tpavi_stages:
            setattr(self, f"tpavi_b{s + 1}", TPAVI(cfg.channels, cfg.frames, cfg.align_bias, cfg.tpavi_impl == "dense"))
        self.output_conv = output_head(cfg.channels, cfg.num_classes)
        self.vggish = _built(build_vggish, init_vggish)
        self.vggish.requires_grad_(False)
        self.vggish.eval()

    @property
    def visual(self) -> nn.Module:
        """The visual encoder (`resnet` or `encoder_backbone`)."""
        return self.encoder_backbone if self.cfg.backbone == "pvt_v2_b5" else self.resnet

    def train(self, mode: bool = True):
        """As nn.Module.train, but VGGish stays in eval mode (it is frozen)."""
        super().train(mode)
        self.vggish.eval()
        return self

    def trainable_parameters(self) -> list:
        """Everything but the frozen VGGish: what the optimiser gets."""
        return [p for p in self.parameters() if p.requires_grad]

    def channels_last(self) -> TPAVIModel:
        """Convert the 2-D convolutions to channels-last (the Conv3d weights of TPAVI stay 5-D)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                m.to(memory_format=torch.channels_last)
        return self

    def audio_embeddings(self, logmel):
        """[B*T, 1, 96, 64] log-mel examples -> [B*T, 128] frozen VGGish embeddings (no gradient)."""
        with torch.no_grad():
            return self.vggish(logmel.to(next(self.vggish.parameters()).dtype)).to(logmel.dtype)

    def forward(self, frames, logmel=None, frame_flags=None, no_audio: bool = False, audio=None) -> ModelOutput:
        """frames [B*T, 3, H, W] (ImageNet-normalised, video-major); logmel [B*T, 1, 96, 64], or
        `audio` [B*T, 128] precomputed VGGish embeddings instead; frame_flags [B*T] (AVSS frame-exists
        flag: features, audio and logits of padded frames are zeroed) or None; no_audio zeroes the
        VGGish embeddings (the paper's audio-impact check). -> ModelOutput."""
        bt = frames.shape[0]
        if bt % self.cfg.frames:
            raise ValueError(f"{bt} frames is not a multiple of the TPAVI group size {self.cfg.frames}")
        flag = None if frame_flags is None else frame_flags.reshape(-1, 1, 1, 1).to(frames.dtype)
        maps = [getattr(self, f"conv{i + 1}")(f) for i, f in enumerate(self.visual(frames))]
        if flag is not None:
            maps = [m * flag for m in maps]
        audio_feats = [None] * 4
        if self.cfg.tpavi_stages:
            if audio is None:
                if logmel is None:
                    raise ValueError("the model needs logmel examples or precomputed VGGish embeddings")
                audio = self.audio_embeddings(logmel)
            audio = audio.to(maps[0].dtype)
            if no_audio:
                audio = torch.zeros_like(audio)
            if flag is not None:
                audio = audio * flag.reshape(-1, 1)
            for s in self.cfg.tpavi_stages:
                m, a = getattr(self, f"tpavi_b{s + 1}")(maps[s], audio)
                maps[s] = m if flag is None else m * flag
                audio_feats[s] = a
        maps = [F.relu(m) for m in maps]  # what the official in-place ReLU of the decoder leaves
        x = self.path4(maps[3])
        for i in (3, 2, 1):
            if flag is not None:
                x = x * flag
            x = getattr(self, f"path{i}")(x, maps[i - 1])
        if flag is not None:
            x = x * flag
        logits = self.output_conv(x)
        if flag is not None:
            logits = logits * flag
        return ModelOutput(logits=logits, stage_maps=maps, audio_feats=audio_feats)


def build_model(cfg: ModelConfig, visual_weights: Path | None = None,
                vggish_weights: Path | None = None) -> TPAVIModel:
    """The model with ImageNet weights in its visual encoder and torchvggish weights in VGGish, when
    given; otherwise random, with a loud line in `model.warnings` for each. One-line errors on a
    missing or wrong weights file."""
    from avsbench_tools.baselines.weights import read_vggish_weights, read_visual_weights
    from avsbench_tools.checkpoints import checkpoint_hash

    # read and check the files first: a wrong file fails in a second, before the model is built
    visual = None if visual_weights is None else read_visual_weights(Path(visual_weights), cfg.backbone)
    vggish = None if vggish_weights is None else read_vggish_weights(Path(vggish_weights))
    model = TPAVIModel(cfg, init_visual=visual is None, init_vggish=False)  # VGGish: the weights, or the fixed init
    if visual is not None:
        model.visual.load_state_dict(visual, strict=False)  # complete but for num_batches_tracked (checked)
    else:
        what = "PVT-v2-b5 ImageNet" if cfg.backbone == "pvt_v2_b5" else "ImageNet"
        model.warnings.append(f"WARNING: no {what} weights for {cfg.backbone} (--visual-weights): "
                              "the visual encoder trains from scratch")
    if vggish is not None:
        model.vggish.load_state_dict(vggish, strict=True)
        model.vggish_sha = checkpoint_hash(Path(vggish_weights))
    else:
        from avsbench_tools.baselines.weights import FIXED_VGGISH, FIXED_VGGISH_ID, fixed_vggish

        fixed_vggish(model.vggish)
        model.vggish_sha = FIXED_VGGISH_ID
        model.warnings.append(f"WARNING: no VGGish weights (--vggish-weights): the frozen audio encoder is "
                              f"{FIXED_VGGISH}, not the released VGGish: its audio features keep the log-mel's "
                              "information but mean nothing a trained VGGish learnt")
    return model
