"""The weight-free backend: moving regions from dense optical flow, refined to object masks.

The idea is the pre-mask of the SSP paper: what moves around a sampled frame is a candidate
sounding object. For second l with sampled frame k: Farneback flow to the frames d before and
after (0.4 s apart), camera motion removed by subtracting the median flow, motion magnitude
thresholded robustly (median + 4 MAD, at least 1.5 px over the span), cleaned with morphology, split
into connected components, and each component refined with GrabCut seeded by the motion mask.
Nothing here knows about colours or shapes; sound gating happens in the stage (silent seconds
get no sounding mask).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from avsbench_tools.masks import ObjectMask, box_of, iou
from avsbench_tools.preannotate.flow import flow, grey, resize_mask
from avsbench_tools.preannotate.track import ANALYSIS_SIDE, decode_sampled

if TYPE_CHECKING:
    from avsbench_tools.catalog import Clip
    from avsbench_tools.workspace import Workspace

MIN_AREA_FRACTION = 0.003
MAX_OBJECTS = 4
SPAN_S = 0.4  # compare with the frames 0.4 s before and after: slow movers travel a few pixels
MIN_DISPLACEMENT_PX = 1.5  # over that span


def motion_magnitude(frames: list[np.ndarray], k: int, d: int) -> np.ndarray:
    g = grey(frames[k])
    mags = []
    for j in (k - d, k + d):
        if 0 <= j < len(frames) and j != k:
            f = flow(g, grey(frames[j]))
            f = f - np.median(f.reshape(-1, 2), axis=0)  # camera pan/zoom centre removed
            mags.append(np.linalg.norm(f, axis=2) / abs(j - k))
    if not mags:
        return np.zeros(g.shape, np.float32)
    return np.minimum.reduce(mags) if len(mags) > 1 else mags[0]  # moving in both directions: robust to occlusion trails


def moving_regions(frames: list[np.ndarray], k: int, fps: float, refine: bool = True) -> list[tuple[np.ndarray, float]]:
    """[(bool mask, score)] of the moving objects around frame k, largest first."""
    import cv2

    d = max(1, int(round(fps * SPAN_S)))
    mag = motion_magnitude(frames, k, d)
    med = float(np.median(mag))
    mad = float(np.median(np.abs(mag - med))) * 1.4826
    thr = max(MIN_DISPLACEMENT_PX / d, med + 4 * mad)
    m = (mag > thr).astype(np.uint8)
    h, w = m.shape
    ker = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    m = cv2.morphologyEx(m, cv2.MORPH_OPEN, ker)
    m = cv2.morphologyEx(m, cv2.MORPH_CLOSE, ker, iterations=2)
    n, lab, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    comps = []
    for i in range(1, n):
        area = stats[i, cv2.CC_STAT_AREA]
        if area < MIN_AREA_FRACTION * h * w:
            continue
        comp = lab == i
        score = float(np.clip(mag[comp].mean() / (4 * thr), 0, 1))
        if refine:
            comp = grabcut(frames[k], comp)
        if comp.sum() >= MIN_AREA_FRACTION * h * w:
            comps.append((comp, score))
    comps.sort(key=lambda t: -t[0].sum())
    return comps[:MAX_OBJECTS]


def grabcut(img: np.ndarray, seed: np.ndarray, iterations: int = 5) -> np.ndarray:
    """Refine a rough foreground region to colour boundaries: seed = probable foreground (flow
    blurs past object edges, so nothing is certain), a dilated ring = probable background,
    everything farther = background."""
    import cv2

    h, w = seed.shape
    box = box_of(seed)
    if box is None:
        return seed
    x0, y0, x1, y1 = (int(v) for v in box)
    pad = max(4, int(0.25 * max(x1 - x0, y1 - y0)))
    X0, Y0, X1, Y1 = max(0, x0 - pad), max(0, y0 - pad), min(w, x1 + pad), min(h, y1 + pad)
    crop = np.ascontiguousarray(img[Y0:Y1, X0:X1, ::-1])
    s = seed[Y0:Y1, X0:X1].astype(np.uint8)
    gc = np.full(s.shape, cv2.GC_BGD, np.uint8)
    ker = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))
    gc[cv2.dilate(s, ker, iterations=2) > 0] = cv2.GC_PR_BGD
    gc[s > 0] = cv2.GC_PR_FGD
    if not (gc == cv2.GC_BGD).any() or not ((gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)).any():
        return seed
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    try:
        cv2.grabCut(crop, gc, None, bgd, fgd, iterations, cv2.GC_INIT_WITH_MASK)
    except cv2.error:
        return seed
    out = np.zeros_like(seed)
    out[Y0:Y1, X0:X1] = (gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)
    # GrabCut may grab a same-coloured background blob: keep the component overlapping the seed
    n, lab = cv2.connectedComponents(out.astype(np.uint8))
    if n > 2:
        best = max(range(1, n), key=lambda i: np.logical_and(lab == i, seed).sum())
        out = lab == best
    return out if iou(out, seed) > 0.2 else seed


def propose_motion(frames: list[np.ndarray], sampled: dict[int, int], fps: float,
                   category: str | None) -> list[ObjectMask]:
    """Moving-object proposals for every sampled second, with ids kept across seconds by IoU."""
    out: list[ObjectMask] = []
    prev: list[ObjectMask] = []
    next_fid = 0
    for sec in sorted(sampled):
        cur = []
        for mask, score in moving_regions(frames, sampled[sec], fps):
            best = max(prev, key=lambda p: iou(p.mask, mask), default=None)
            if best is not None and iou(best.mask, mask) > 0.2 and best.fid not in {c.fid for c in cur}:
                fid = best.fid
            else:
                fid, next_fid = next_fid, next_fid + 1
            cur.append(ObjectMask(sec, fid, category, mask, box_of(mask), score,
                                  evidence={"motion_score": round(score, 4)}))
        out.extend(cur)
        prev = cur or prev
    return out


def propose_motion_clip(ws: Workspace, clip: Clip, frames_info: list) -> list[ObjectMask]:
    """The motion backend on one clip (frames_info: its catalog Frame records): flow at ANALYSIS_SIDE,
    masks scaled back to the sampled frame's size."""
    frames, fps, sampled = decode_sampled(ws.path(clip.path), frames_info, ANALYSIS_SIDE)
    full = (frames_info[0].height, frames_info[0].width)
    cat = clip.category if clip.category in ws.recipe.categories else None
    objs = propose_motion(frames, sampled, fps, cat)
    for o in objs:
        o.mask = resize_mask(o.mask, full)
        o.box = box_of(o.mask)
        o.evidence = {**o.evidence, "backend": "motion"}
    return objs
