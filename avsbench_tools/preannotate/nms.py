"""Bounded proposals: class-aware box NMS, a per-frame cap, and a minimum mask area.

Grounding DINO returns every query over the box threshold (up to 900 per frame); each would become a
SAM mask and a mask version. Before SAM, overlapping boxes of one category are suppressed and only the
`max_objects` most confident boxes of a frame are kept; after SAM, masks smaller than `min_area` of
the frame are dropped (the defaults, and why: options.py). `CapStats` counts the frames where the cap
cut something, for the summary line.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avsbench_tools.masks import ObjectMask
from avsbench_tools.preannotate.options import MAX_OBJECTS, NMS_IOU


@dataclass
class CapStats:
    """How often the per-frame cap cut proposals (frames counted once per clip and second)."""

    frames: int = 0  # frames bounded
    capped: int = 0  # frames that had more than max_objects boxes after NMS
    most: int = 0  # the largest number of boxes one frame had after NMS

    def add(self, other: CapStats) -> None:
        self.frames += other.frames
        self.capped += other.capped
        self.most = max(self.most, other.most)


def _class_ids(dets: list[ObjectMask]) -> list[int]:
    """One integer per category (a detection without one is grouped by its phrase)."""
    ids: dict[str, int] = {}
    return [ids.setdefault(d.category if d.category is not None else "phrase:" + str(d.evidence.get("phrase")),
                           len(ids)) for d in dets]


def bound_detections(dets: list[ObjectMask], nms_iou: float = NMS_IOU, max_objects: int = MAX_OBJECTS,
                     stats: CapStats | None = None) -> list[ObjectMask]:
    """Class-aware NMS at nms_iou, then the max_objects most confident boxes, most confident first.

    Box-only detections of one frame (as from_dino makes them); `stats`, when given, counts the frame."""
    import torch
    from torchvision.ops import batched_nms

    kept = dets
    if len(dets) > 1:
        boxes = torch.tensor([d.box for d in dets], dtype=torch.float32)
        scores = torch.tensor([d.score for d in dets], dtype=torch.float32)
        keep = batched_nms(boxes, scores, torch.tensor(_class_ids(dets)), float(nms_iou))
        kept = [dets[i] for i in keep.tolist()]  # by decreasing score
    if stats is not None:
        stats.frames += 1
        stats.most = max(stats.most, len(kept))
        stats.capped += len(kept) > max_objects
    return kept[:max_objects]


def large_enough(objs: list[ObjectMask], min_area: float) -> list[ObjectMask]:
    """The masks covering at least min_area of their frame (and at least one pixel)."""
    out = []
    for o in objs:
        area = int(np.count_nonzero(o.mask))
        if area and area >= min_area * o.mask.size:
            out.append(o)
    return out
