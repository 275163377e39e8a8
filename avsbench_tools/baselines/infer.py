"""Running the model over a split: frozen VGGish embeddings once per clip, then logits per clip.

Shared by training (validation), `baseline eval`, `baseline predict` and `release-check`, so every
number and every saved prediction comes from the same forward pass.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from avsbench_tools import metrics
from avsbench_tools.baselines.dataset import SIZE, ClipDataset, collate
from avsbench_tools.progress import Progress


@dataclass
class Runtime:
    """Where and how the model runs: device, autocast (CUDA only), channels-last inputs, audio off."""

    device: str = "cpu"
    amp: bool = False
    channels_last: bool = False
    no_audio: bool = False

    def autocast(self):
        if self.amp and self.device.startswith("cuda"):
            return torch.autocast("cuda", dtype=torch.float16)
        return torch.autocast("cpu", enabled=False)


def embed_audio(model, ds: ClipDataset, rt: Runtime, progress: Progress | None = None,
                chunk: int = 16) -> torch.Tensor:
    """[N, T, 128] frozen-VGGish embeddings of every clip of `ds` (zeros with no_audio or no TPAVI stage), `chunk`
    clips per VGGish call. VGGish is frozen and deterministic, so they are computed once and reused every epoch."""
    t = ds.t
    if rt.no_audio or not model.cfg.tpavi_stages:
        return torch.zeros((len(ds), t, 128), device=rt.device)
    out = torch.empty((len(ds), t, 128), device=rt.device)
    for s in range(0, len(ds), chunk):  # several clips per call: VGGish's 4096-wide layers are read once per chunk
        idx = range(s, min(s + chunk, len(ds)))
        logmel = torch.from_numpy(np.concatenate([ds.logmel(i) for i in idx])).to(rt.device)
        out[s:s + len(idx)] = model.audio_embeddings(logmel).float().reshape(len(idx), t, -1)
        if progress:
            progress(f"audio ({ds.split})", idx[-1] + 1, len(ds), ds.items[idx[-1]].name)
    return out


def to_device(batch: dict, rt: Runtime) -> tuple[torch.Tensor, ...]:
    frames = batch["frames"].to(rt.device, non_blocking=True)
    if rt.channels_last:
        frames = frames.contiguous(memory_format=torch.channels_last)
    return (frames, batch["masks"].to(rt.device, non_blocking=True), batch["exists"].to(rt.device),
            batch["supervised"].to(rt.device))


def forward(model, frames: torch.Tensor, audio: torch.Tensor, exists: torch.Tensor, setting: str, rt: Runtime):
    """One forward pass; logits upsampled (bilinear) to the official 224x224 when the input is smaller."""
    with rt.autocast():
        out = model(frames, audio=audio, frame_flags=exists if setting == "avss" else None, no_audio=rt.no_audio)
    if out.logits.shape[-1] != SIZE or out.logits.shape[-2] != SIZE:
        out.logits = F.interpolate(out.logits.float(), size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    return out


def clip_logits(model, ds: ClipDataset, audio: torch.Tensor, rt: Runtime, batch: int = 1,
                indices: list[int] | None = None, progress: Progress | None = None,
                what: str = "predicting") -> Iterator[tuple[int, dict, np.ndarray]]:
    """(index, sample, logits float32 [T, K, 224, 224]) for each clip, in eval mode, no gradient."""
    model.eval()
    idx = list(range(len(ds))) if indices is None else list(indices)
    done = 0
    with torch.no_grad():
        for s in range(0, len(idx), batch):
            group = idx[s:s + batch]
            samples = [ds[i] for i in group]
            frames, _, exists, _ = to_device(collate(samples), rt)
            a = audio[group].reshape(-1, audio.shape[-1])
            logits = forward(model, frames, a, exists, ds.setting, rt).logits.float().cpu().numpy()
            logits = logits.reshape(len(group), ds.t, *logits.shape[1:])
            for k, i in enumerate(group):
                done += 1
                if progress:
                    progress(what, done, len(idx), ds.items[i].name)
                yield i, samples[k], logits[k]


class Scorer:
    """The official metrics, accumulated clip by clip (nothing but per-frame numbers kept in memory).

    S4/MS3: per-frame IoU of sigmoid > 0.5 (empty-GT rule) and F-curves over the 255 thresholds of the
    annotated frames (`avsbench_tools.metrics`); F official = mean over batches of `batch_frames` frames of
    the max of the batch's mean curve, and batch-free. AVSS: per-class IoU/F sums and counts of
    `metrics.avss_scores`, clip by clip, over all (also padded) frames as the official code, or over the
    annotated frames only with `annotated_only` (what `avs-tools evaluate` scores). `clip_stats` keeps, per clip
    in the order added, what the split's mIoU is a sum of (S4/MS3 [IoU sum, frames]; AVSS [per-class IoU sums,
    per-class counts]), so a resample of the clips can be scored again (release_check.spread)."""

    def __init__(self, setting: str, num_classes: int, batch_frames: int = 5, annotated_only: bool = False):
        self.setting, self.k, self.batch_frames = setting, num_classes, batch_frames
        self.annotated_only = annotated_only
        self.iou: list[float] = []
        self.curves: list[np.ndarray] = []
        self.valid: list[bool] = []
        self.sums = np.zeros((3, num_classes))  # iou sum, F sum, count
        self.clip_stats: list = []  # per clip, what its share of the split's mIoU is made of (see result())

    def add(self, logits: np.ndarray, sample: dict) -> float:
        """Add one clip ([T, K, 224, 224] logits and its sample); returns the clip's own mIoU (AVSS: over the
        classes present in the clip's frames or predictions)."""
        if self.setting == "avss":
            keep = sample["supervised"] > 0 if self.annotated_only else slice(None)
            res = metrics.avss_scores(logits[keep].argmax(1), sample["masks"][keep], self.k)
            count = np.asarray(res["per_class_count"])
            per_iou = np.asarray(res["per_class_iou"])
            self.sums += np.stack([per_iou * count, np.asarray(res["per_class_f"]) * count, count])
            self.clip_stats.append([(per_iou * count).tolist(), count.tolist()])
            return float(per_iou[count > 0].mean()) if (count > 0).any() else 0.0
        keep = sample["supervised"] > 0
        prob = 1.0 / (1.0 + np.exp(-logits[keep, 0].astype(np.float64)))
        gt = sample["masks"][keep] > 0.5
        iou = metrics.frame_iou(prob > 0.5, gt)
        curves, valid = metrics.f_curves(prob, gt)
        self.iou += iou.tolist()
        self.curves += list(curves)
        self.valid += valid.tolist()
        self.clip_stats.append([float(iou.sum()), len(iou)])
        return float(iou.mean()) if len(iou) else 0.0

    def result(self) -> dict:
        if self.setting == "avss":
            iou_sum, f_sum, count = self.sums
            per_iou = np.where(count > 0, iou_sum / np.maximum(count, 1), 0.0)
            per_f = np.where(count > 0, f_sum / np.maximum(count, 1), 0.0)
            return {"miou": float(per_iou.mean()), "fscore": float(per_f.mean()), "fscore_batch_free": float(per_f.mean()),
                    "per_class_iou": per_iou.tolist(), "per_class_count": count.tolist(), "clip_stats": self.clip_stats}
        curves, valid = np.asarray(self.curves), np.asarray(self.valid, bool)
        batches = []
        for s in range(0, len(curves), self.batch_frames):
            c, v = curves[s:s + self.batch_frames], valid[s:s + self.batch_frames]
            if v.any():
                batches.append(c[v].mean(0).max())
        return {"miou": float(np.mean(self.iou)) if self.iou else 0.0,
                "fscore": float(np.mean(batches)) if batches else 0.0,
                "fscore_batch_free": float(curves[valid].mean(0).max()) if valid.any() else 0.0,
                "clip_stats": self.clip_stats}


def validate(model, ds: ClipDataset, audio: torch.Tensor, rt: Runtime, batch: int = 1,
             progress: Progress | None = None) -> dict:
    """The validation scores of `ds` (F over batches of one video, the official validation batch)."""
    sc = Scorer(ds.setting, ds.data.num_classes, batch_frames=ds.t)
    for _, sample, lg in clip_logits(model, ds, audio, rt, batch, progress=progress, what="validating"):
        sc.add(lg, sample)
    return sc.result()
