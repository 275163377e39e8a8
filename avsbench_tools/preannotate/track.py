"""Carry key-frame object masks to the other sampled frames with stable object ids.

CPU tracker (`flow`): the mask is warped frame by frame through every decoded frame between
sampled frames with dense optical flow (so each step is a small motion), optionally re-prompted
with the warped box through SAM (`refine(frame_index, box) -> mask`), and matched to fresh
detections every K sampled frames by mask IoU (`redetect(frame_index) -> [ObjectMask]`). Objects
whose mask vanishes are flagged lost; a later detection that overlaps the last known mask re-finds
them under the same id.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from avsbench_tools.masks import ObjectMask, box_of, iou
from avsbench_tools.preannotate.flow import flow, grey, warp_mask

LOST_FRACTION = 0.15  # a mask smaller than this share of its key-frame area counts as lost
MATCH_IOU = 0.3


def pick_key_second(detections: dict[int, list[ObjectMask]], marked: int | None = None) -> int:
    """The annotator's mark if any, else the second whose detections have the highest confidence."""
    if marked is not None:
        return marked
    best, key = -1.0, 0
    for sec, dets in sorted(detections.items()):
        s = max((d.score for d in dets), default=-1.0)
        if s > best:
            best, key = s, sec
    return key


def track_flow(frames: list[np.ndarray], sampled: dict[int, int], key_second: int, key_masks: list[ObjectMask],
               refine: Callable[[int, tuple], np.ndarray | None] | None = None,
               redetect: Callable[[int], list[ObjectMask]] | None = None, redetect_every: int = 3,
               progress: Callable[[int, int], None] | None = None) -> list[ObjectMask]:
    """frames: every decoded frame (analysis resolution); sampled: second -> frame index.

    Returns one ObjectMask per (second, key object) for every sampled second, key frame included.
    """
    greys = [grey(f) for f in frames]
    out: list[ObjectMask] = [ObjectMask(key_second, m.fid, m.category, m.mask.copy(), box_of(m.mask), m.score,
                                        evidence={**m.evidence, "key_frame": True}) for m in key_masks]
    key_area = {m.fid: max(1, int(m.mask.sum())) for m in key_masks}
    k0 = sampled[key_second]
    seconds = sorted(sampled)
    for direction in (+1, -1):
        todo = sorted((s for s in seconds if (s - key_second) * direction > 0), key=lambda s: abs(s - key_second))
        if not todo:
            continue
        cur = {m.fid: m.mask.copy() for m in key_masks}
        last_good = dict(cur)
        lost = {fid: False for fid in cur}
        idx = k0
        for step, sec in enumerate(todo, start=1):
            target = sampled[sec]
            while idx != target:
                nxt = idx + direction
                back = flow(greys[nxt], greys[idx])  # flow from the new frame back to the current one
                for fid in cur:
                    if cur[fid].any():
                        cur[fid] = warp_mask(cur[fid], back)
                idx = nxt
            dets = redetect(target) if (redetect is not None and step % redetect_every == 0) else []
            for m in key_masks:
                fid = m.fid
                mask = cur[fid]
                ev = {"frames_from_key": abs(target - k0)}
                if refine is not None and mask.any():
                    refined = refine(target, box_of(mask))
                    if refined is not None and refined.any() and iou(refined, mask) > 0.3:
                        mask = refined
                        ev["sam_reprompt"] = True
                match = None
                if dets:
                    ref = mask if mask.any() else last_good[fid]
                    scored = [(iou(d.mask, ref), d) for d in dets if d.mask is not None]
                    if scored:
                        best_iou, best = max(scored, key=lambda t: t[0])
                        if best_iou >= MATCH_IOU:
                            match = best
                if match is not None:
                    if lost[fid]:
                        ev["refound"] = True
                    mask = match.mask.copy()
                    ev["redetected"] = round(float(match.score), 4)
                is_lost = mask.sum() < LOST_FRACTION * key_area[fid]
                if is_lost and not lost[fid]:
                    ev["lost_here"] = True
                lost[fid] = is_lost
                if not is_lost:
                    last_good[fid] = mask
                cur[fid] = mask
                out.append(ObjectMask(sec, fid, m.category, mask.copy(), box_of(mask), m.score, evidence=ev,
                                      tracked=True, lost=is_lost))
            if progress is not None:
                progress(step, len(todo))
    return sorted(out, key=lambda o: (o.second, o.fid))
