"""The one mask/detection type and its pure adapters (a leaf: numpy only, no catalog, workspace or studio).

`ObjectMask` is the in-memory type every backend produces and every consumer reads: Grounding DINO
boxes (`from_dino`), SAM masks (`from_sam`), tracked masks (the tracker sets `tracked`), Label Studio
brush results (`studio/convert.py`, both directions) and the release writers (`masks_to_clip`).
Stored, a mask is a catalog `MaskVersion` (`MaskVersion.from_object_mask` / `.to_object_mask`); the
storage and the rule of which masks a clip shows are in `mask_store.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class ObjectMask:
    """One object in one sampled frame."""

    second: int
    fid: int  # object id, stable across a clip's frames
    category: str | None
    mask: np.ndarray | None  # bool [H, W]; None for a box-only detection
    box: tuple[float, float, float, float] | None = None  # x0, y0, x1, y1 in pixels
    score: float = 0.0
    sounding: bool | None = None  # believed to make sound in this second
    evidence: dict = field(default_factory=dict)  # why: activity dB, tagger scores, tracker state
    tracked: bool = False  # carried from the key frame rather than detected here
    lost: bool = False  # the tracker lost it in this frame (mask may be empty)


def box_of(mask: np.ndarray) -> tuple[float, float, float, float] | None:
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return None
    return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    inter = np.logical_and(a, b).sum()
    union = np.logical_or(a, b).sum()
    return float(inter / union) if union else 1.0


# -- adapters --------------------------------------------------------------------------------
def from_dino(second: int, boxes, scores, labels: list[str], shape: tuple[int, int],
              category_of) -> list[ObjectMask]:
    """Grounding DINO post-processed output -> box-only ObjectMasks (fid assigned later).

    Boxes are clipped to the frame (shape = (H, W)); boxes thinner than a pixel are dropped;
    category_of(phrase) maps the detected phrase onto a category (or None)."""
    h, w = shape
    out = []
    for b, s, lab in zip(np.asarray(boxes, dtype=float).reshape(-1, 4), np.asarray(scores, dtype=float).ravel(),
                         labels, strict=True):
        lab = str(lab).strip()
        x0, x1 = (min(max(float(v), 0.0), w) for v in (b[0], b[2]))
        y0, y1 = (min(max(float(v), 0.0), h) for v in (b[1], b[3]))
        if x1 - x0 < 1 or y1 - y0 < 1:
            continue
        out.append(ObjectMask(second, -1, category_of(lab), None, (x0, y0, x1, y1), float(s),
                              evidence={"phrase": lab, "detector": "grounding-dino"}))
    return out


def from_sam(det: ObjectMask, masks: np.ndarray, iou_scores: np.ndarray) -> ObjectMask:
    """Pick SAM's best of its multimask outputs for a box prompt; keep the detection's identity."""
    masks = np.asarray(masks).reshape(-1, *np.asarray(masks).shape[-2:])
    scores = np.asarray(iou_scores, dtype=float).ravel()
    k = int(np.argmax(scores)) if scores.size else 0
    det.mask = masks[k] > 0 if masks.dtype != bool else masks[k]
    det.evidence = {**det.evidence, "sam_iou": round(float(scores[k]) if scores.size else 0.0, 4)}
    return det
