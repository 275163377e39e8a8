"""The official AVS metrics (see the shared design note metrics.md), as a public numpy API.

Binary tasks (S4, MS3): `mask_iou` (the Jaccard reported as mIoU, with the official empty-GT
rule) and the F-score with beta^2 = 0.3 over 255 thresholds, both the official batch-averaged
figure (`fscore_official`, depends on the batch size) and the batch-independent variant
(`fscore_batch_free`). AVSS: `avss_scores` (71-class mIoU and F, absent classes count 0).
Ref-AVS: `refavs_jf` (J at threshold 0.4, F) and `null_s`. The baseline trainer uses these too.
"""

from __future__ import annotations

import numpy as np

EPS_IOU = 1e-7
EPS_F = 1e-20
BETA2 = 0.3
THRESHOLDS = np.linspace(0, 1 - 1e-10, 255)


def frame_iou(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Per-frame IoU of bool [N, H, W] arrays; an empty GT frame scores the fraction of pixels left empty."""
    pred = np.asarray(pred, bool).reshape(len(pred), -1)
    gt = np.asarray(gt, bool).reshape(len(gt), -1)
    inter = (pred & gt).sum(1)
    union = (pred | gt).sum(1)
    iou = inter / (union + EPS_IOU)
    empty = gt.sum(1) == 0
    iou[empty] = (~pred[empty] & ~gt[empty]).sum(1) / gt.shape[1]
    return iou


def mask_iou(prob: np.ndarray, gt: np.ndarray, threshold: float = 0.5) -> float:
    """Mean per-frame IoU of (prob > threshold) against the GT (the official S4/MS3 'mIoU')."""
    return float(frame_iou(np.asarray(prob) > threshold, gt).mean()) if len(gt) else 0.0


def f_curves(prob: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """F-curves [N, 255] (positive iff prob >= threshold) and the mask of frames with a non-empty GT."""
    prob = np.asarray(prob, np.float64).reshape(len(prob), -1)
    gt = np.asarray(gt, bool).reshape(len(gt), -1)
    curves = np.zeros((len(prob), THRESHOLDS.size))
    valid = gt.sum(1) > 0
    for i in np.nonzero(valid)[0]:
        # bin j = number of thresholds <= p, minus one: the pixel is positive for thresholds 0..j
        b = np.searchsorted(THRESHOLDS, prob[i], side="right") - 1
        keep = b >= 0
        n_pred = np.bincount(b[keep], minlength=THRESHOLDS.size)[::-1].cumsum()[::-1]
        n_tp = np.bincount(b[keep & gt[i]], minlength=THRESHOLDS.size)[::-1].cumsum()[::-1]
        p = n_tp / (n_pred + EPS_F)
        r = n_tp / (gt[i].sum() + EPS_F)
        with np.errstate(invalid="ignore", divide="ignore"):
            f = (1 + BETA2) * p * r / (BETA2 * p + r)
        curves[i] = np.nan_to_num(f, nan=0.0)
    return curves, valid


def fscore_official(prob: np.ndarray, gt: np.ndarray, batch_size: int = 4 * 5) -> float:
    """The official figure: per batch, mean F-curve over its frames with GT, max over thresholds;
    then the mean over batches. It depends on batch_size (official S4/MS3 test: 4 videos x 5 frames)."""
    curves, valid = f_curves(prob, gt)
    scores = []
    for s in range(0, len(curves), batch_size):
        c, v = curves[s:s + batch_size], valid[s:s + batch_size]
        if v.any():
            scores.append(c[v].mean(0).max())
    return float(np.mean(scores)) if scores else 0.0


def fscore_batch_free(prob: np.ndarray, gt: np.ndarray) -> float:
    """Batch-independent variant: mean F-curve over all frames with GT, then the max over thresholds."""
    curves, valid = f_curves(prob, gt)
    return float(curves[valid].mean(0).max()) if valid.any() else 0.0


def avss_scores(pred: np.ndarray, gt: np.ndarray, n_classes: int = 71) -> dict[str, float]:
    """pred, gt: class-index maps, [N, H, W] or sequences of [H, W] (sizes may differ between frames).

    mIoU and F over ALL classes, background included (absent classes count 0)."""
    iou_sum = np.zeros(n_classes)
    f_sum = np.zeros(n_classes)
    count = np.zeros(n_classes)
    for p, g in zip(pred, gt, strict=True):
        p = np.asarray(p).ravel().astype(np.int64)
        g = np.asarray(g).ravel().astype(np.int64)
        inter = np.bincount(g[p == g], minlength=n_classes)[:n_classes].astype(float)
        area_p = np.bincount(p, minlength=n_classes)[:n_classes].astype(float)
        area_g = np.bincount(g, minlength=n_classes)[:n_classes].astype(float)
        union = area_p + area_g - inter
        present = union > 0
        iou_sum[present] += inter[present] / (union[present] + EPS_IOU)
        with np.errstate(invalid="ignore", divide="ignore"):
            prec = inter / area_p
            rec = inter / area_g
            f = np.nan_to_num((1 + BETA2) * prec * rec / (BETA2 * prec + rec), nan=0.0)
        f_sum[present] += f[present]
        count[present] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        per_iou = np.where(count > 0, iou_sum / np.maximum(count, 1), 0.0)
        per_f = np.where(count > 0, f_sum / np.maximum(count, 1), 0.0)
    return {"miou": float(per_iou.mean()), "fscore": float(per_f.mean()),
            "per_class_iou": per_iou.tolist(), "per_class_f": per_f.tolist(), "per_class_count": count.tolist()}


def refavs_jf(prob: np.ndarray, gt: np.ndarray, batch_size: int = 4 * 10) -> dict[str, float]:
    """Ref-AVS seen/unseen: J = IoU of prob > 0.4, F = the F-score (official batches of 4 expressions x 10 frames)."""
    return {"J": mask_iou(prob, gt, 0.4), "F": fscore_official(prob, gt, batch_size),
            "F_batch_free": fscore_batch_free(prob, gt)}


def null_s(prob: np.ndarray, batch_size: int = 4 * 10) -> float:
    """Ref-AVS null split (lower is better): per batch sqrt(foreground pixels / all pixels) at 0.5, mean over batches."""
    prob = np.asarray(prob)
    vals = [np.sqrt((prob[s:s + batch_size] > 0.5).mean()) for s in range(0, len(prob), batch_size)]
    return float(np.mean(vals)) if vals else 0.0
