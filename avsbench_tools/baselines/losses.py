"""The TPAVI training losses, as the official AVSBench code computes them (see the design note tpavi.md).

- S4: BCE on sigmoid(logits) of the supervised frames, which in S4 train is frame 1 only (all five
  frames still go through TPAVI); no AVM loss in the official S4 runs.
- MS3: BCE on all five frames, plus lambda (0.5) x the AVM loss on every TPAVI stage: the RAW logits
  average-pooled to the stage map's size, THEN sigmoid (a soft mask with gradient), times the
  post-TPAVI stage map, spatial mean -> one visual vector per frame (no L2 normalisation);
  KL(audio || visual) = F.kl_div(log_softmax(visual), softmax(audio), reduction='sum') over all
  frames, averaged over the stages.
- AVSS: per-pixel cross-entropy over the K classes, per-frame mean, weighted by the supervised-frame
  flag and divided by the number of flagged frames; AVM with a HARD mask (argmax != background,
  pooled, no sigmoid), per-frame KL summed over channels, weighted by the same flag.

Background is class 0 (label2idx's first key). The official AVSS code takes `K - 1` as the background
index in its AVM loss (the classes' order there puts background first, so that masks out the last
class instead); this follows the design note and uses the real background.
Everything is computed in float32, also under autocast.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

LAMBDA_AVM = 0.5
BACKGROUND = 0


@dataclass
class LossParts:
    """The total loss and its parts (floats for the log)."""

    total: torch.Tensor
    main: float
    avm: float


def bce_loss(logits: torch.Tensor, masks: torch.Tensor, supervised: torch.Tensor) -> torch.Tensor:
    """nn.BCELoss()(sigmoid(logits), masks) over the supervised frames (S4: frame 1; MS3: all).
    logits [BT, 1, H, W], masks [BT, H, W] in {0, 1}, supervised [BT] 0/1."""
    keep = supervised > 0
    prob = torch.sigmoid(logits[keep, 0].float())
    return F.binary_cross_entropy(prob, masks[keep].float())


def ce_loss(logits: torch.Tensor, labels: torch.Tensor, supervised: torch.Tensor) -> torch.Tensor:
    """Per-pixel CE, mean per frame, weighted by the supervised flag, / number of flagged frames (AVSS)."""
    per_frame = F.cross_entropy(logits.float(), labels.long(), reduction="none").mean((-1, -2))
    flag = supervised.float()
    return (per_frame * flag).sum() / flag.sum().clamp_min(1.0)


def avm_loss_binary(logits: torch.Tensor, stage_maps: list, audio_feats: list) -> torch.Tensor:
    """The MS3 AVM loss: pooled raw logits -> sigmoid -> masked map -> mean; KL(audio || visual), sum over
    frames and channels, averaged over the stages that have audio features."""
    stages = [s for s, a in enumerate(audio_feats) if a is not None]
    total = logits.new_zeros((), dtype=torch.float32)
    for s in stages:
        v_map = stage_maps[s].float()
        soft = torch.sigmoid(F.adaptive_avg_pool2d(logits.float(), v_map.shape[-2:]))
        visual = (v_map * soft).mean((-1, -2))
        audio = audio_feats[s].float().reshape(visual.shape)
        total = total + F.kl_div(F.log_softmax(visual, -1), F.softmax(audio, -1), reduction="sum")
    return total / max(1, len(stages))


def avm_loss_semantic(logits: torch.Tensor, stage_maps: list, audio_feats: list,
                      supervised: torch.Tensor) -> torch.Tensor:
    """The AVSS AVM loss: hard mask (argmax != background) pooled, masked map mean, per-frame KL summed
    over channels, weighted by the supervised flag / flagged frames; averaged over the stages."""
    stages = [s for s, a in enumerate(audio_feats) if a is not None]
    hard = (logits.argmax(1, keepdim=True) != BACKGROUND).float()
    flag = supervised.float()
    total = logits.new_zeros((), dtype=torch.float32)
    for s in stages:
        v_map = stage_maps[s].float()
        visual = (v_map * F.adaptive_avg_pool2d(hard, v_map.shape[-2:])).mean((-1, -2))
        audio = audio_feats[s].float().reshape(visual.shape)
        kl = F.kl_div(F.log_softmax(visual, -1), F.softmax(audio, -1), reduction="none").sum(-1)
        total = total + (kl * flag).sum() / flag.sum().clamp_min(1.0)
    return total / max(1, len(stages))


def tpavi_loss(setting: str, out, masks: torch.Tensor, supervised: torch.Tensor, avm: bool,
               lam: float = LAMBDA_AVM) -> LossParts:
    """The official loss of `setting` for a ModelOutput `out` (logits at the masks' size); `avm` turns the
    AVM term on (official: MS3 and AVSS on, S4 off)."""
    if setting == "avss":
        main = ce_loss(out.logits, masks, supervised)
        extra = avm_loss_semantic(out.logits, out.stage_maps, out.audio_feats, supervised) if avm else None
    else:
        main = bce_loss(out.logits, masks, supervised)
        extra = avm_loss_binary(out.logits, out.stage_maps, out.audio_feats) if avm else None
    total = main if extra is None else main + lam * extra
    return LossParts(total, float(main.detach()), float(extra.detach()) if extra is not None else 0.0)
