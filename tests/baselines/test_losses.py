"""The training losses equal transcriptions of the official AVSBench loss code (avs_s4/avs_ms3/avss loss.py)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from avsbench_tools.baselines.losses import (
    avm_loss_binary,
    avm_loss_semantic,
    bce_loss,
    ce_loss,
    tpavi_loss,
)
from avsbench_tools.baselines.model import ModelOutput


def _official_ms3_avm(pred_masks, a_fea_list, v_map_list, count_stages):
    """avs_ms3/loss.py A_MaskedV_SimmLoss with mask_pooling_type='avg', norm_fea=False, threshold=False,
    kl_flag=True (the official MS3 run), transcribed."""
    total_loss = 0
    for stage in count_stages:
        a_fea, v_map = a_fea_list[stage], v_map_list[stage]
        a_fea = a_fea.view(-1, a_fea.shape[-1])
        H, W = v_map.shape[-2], v_map.shape[-1]
        downsample_pred_masks = nn.AdaptiveAvgPool2d((H, W))(pred_masks)
        downsample_pred_masks = torch.sigmoid(downsample_pred_masks)
        masked_v_map = torch.mul(v_map, downsample_pred_masks)
        masked_v_fea = masked_v_map.mean(-1).mean(-1)
        loss = F.kl_div(masked_v_fea.softmax(dim=-1).log(), a_fea.softmax(dim=-1), reduction="sum")
        total_loss += loss
    return total_loss / len(count_stages)


def _official_avss_avm(pred_masks, a_fea_list, v_map_list, flag, count_stages, bg_idx):
    """avss/loss.py A_MaskedV_SimmLoss (avg pooling, no threshold, no norm, kl_flag), transcribed; the official
    code passes bg_idx = K - 1, the design note (and this implementation) the real background 0."""
    pred_masks = torch.argmax(torch.softmax(pred_masks, dim=1), dim=1).unsqueeze(1)
    pred_masks = (pred_masks != bg_idx).float()
    total_loss = 0
    for stage in count_stages:
        a_fea, v_map = a_fea_list[stage], v_map_list[stage]
        a_fea = a_fea.view(-1, a_fea.shape[-1])
        H, W = v_map.shape[-2], v_map.shape[-1]
        down = nn.AdaptiveAvgPool2d((H, W))(pred_masks)
        masked_v_fea = torch.mul(v_map, down).mean(-1).mean(-1)
        loss = F.kl_div(masked_v_fea.softmax(dim=-1).log(), a_fea.softmax(dim=-1), reduction="none").sum(-1)
        loss = torch.sum(loss * flag) / torch.sum(flag)
        total_loss += loss
    return total_loss / len(count_stages)


def _maps(bt, sizes=(56, 28, 14, 7), c=256):
    g = torch.Generator().manual_seed(1)
    return ([torch.relu(torch.randn(bt, c, s, s, generator=g)) for s in sizes],
            [torch.randn(bt, c, generator=g) for _ in sizes])


def test_s4_bce_supervises_frame_one_only():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(10, 1, 224, 224, generator=g)
    masks = (torch.rand(10, 224, 224, generator=g) > 0.7).float()
    sup = torch.tensor([1.0, 0, 0, 0, 0] * 2)
    # official F1_IoU_BCELoss: frames 0, 5, ... of sigmoid(pred) against the first frames' masks
    want = nn.BCELoss()(torch.sigmoid(logits)[::5], masks[::5].unsqueeze(1))
    assert torch.allclose(bce_loss(logits, masks, sup), want, atol=1e-6)
    # MS3 F5_IoU_BCELoss: all five frames
    assert torch.allclose(bce_loss(logits, masks, torch.ones(10)),
                          nn.BCELoss()(torch.sigmoid(logits), masks.unsqueeze(1)), atol=1e-6)


def test_ms3_avm_is_the_official_kl_of_pooled_raw_logits():
    maps, audio = _maps(10)
    logits = torch.randn(10, 1, 224, 224, generator=torch.Generator().manual_seed(2)) * 3
    want = _official_ms3_avm(logits, audio, maps, [0, 1, 2, 3])
    got = avm_loss_binary(logits, maps, audio)
    assert torch.allclose(got, want, rtol=1e-5), (got, want)
    # stages without TPAVI (audio None) are left out, as the official count_stages would be
    part = avm_loss_binary(logits, maps, [audio[0], None, audio[2], None])
    assert torch.allclose(part, _official_ms3_avm(logits, audio, maps, [0, 2]), rtol=1e-5)
    # the pooled RAW logits go through the sigmoid: pooling sigmoid(logits) instead gives another number
    yy, xx = torch.meshgrid(torch.arange(224), torch.arange(224), indexing="ij")
    logits = torch.where((yy % 2 == 0) & (xx % 2 == 0), 8.0, -1.0).expand(10, 1, 224, 224)
    got = avm_loss_binary(logits, maps, audio)
    assert torch.allclose(got, _official_ms3_avm(logits, audio, maps, [0, 1, 2, 3]), rtol=1e-5)
    alt = sum(F.kl_div(F.log_softmax((m * F.adaptive_avg_pool2d(torch.sigmoid(logits), m.shape[-2:])).mean((-1, -2)),
                                     -1), F.softmax(a, -1), reduction="sum") for m, a in zip(maps, audio, strict=True)) / 4
    assert not torch.allclose(got, alt, rtol=1e-3)


def test_avss_ce_and_hard_mask_avm_weighted_by_the_supervised_flag():
    k = 9
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(20, k, 224, 224, generator=g)
    labels = torch.randint(0, k, (20, 224, 224), generator=g)
    flag = torch.tensor(([1.0] + [0.0] * 9) + [1.0] * 5 + [0.0] * 5)  # a v1s train clip, a v1m clip
    per_frame = nn.CrossEntropyLoss(reduction="none")(logits, labels).mean(-1).mean(-1)
    want_ce = torch.sum(per_frame * flag) / torch.sum(flag)  # official F10_IoU_BCELoss
    assert torch.allclose(ce_loss(logits, labels, flag), want_ce, atol=1e-6)
    maps, audio = _maps(20)
    want = _official_avss_avm(logits, audio, maps, flag, [0, 1, 2, 3], bg_idx=0)
    assert torch.allclose(avm_loss_semantic(logits, maps, audio, flag), want, rtol=1e-5)


def test_tpavi_loss_per_setting():
    maps, audio = _maps(5)
    logits = torch.randn(5, 1, 224, 224, generator=torch.Generator().manual_seed(4))
    masks = (torch.rand(5, 224, 224, generator=torch.Generator().manual_seed(5)) > 0.5).float()
    out = ModelOutput(logits=logits, stage_maps=maps, audio_feats=audio)
    ms3 = tpavi_loss("ms3", out, masks, torch.ones(5), avm=True)
    assert abs(ms3.main - float(bce_loss(logits, masks, torch.ones(5)))) < 1e-6
    assert abs(float(ms3.total) - (ms3.main + 0.5 * ms3.avm)) < 1e-4 and ms3.avm > 0
    s4 = tpavi_loss("s4", out, masks, torch.tensor([1.0, 0, 0, 0, 0]), avm=False)
    assert s4.avm == 0.0 and float(s4.total) == s4.main
