"""The weight-free backend: moving regions from dense optical flow, refined to object masks and linked
across the clip's seconds by the flow tracker, so one object keeps one id.

The idea is the pre-mask of the SSP paper: what moves around a sampled frame is a candidate sounding
object. For the sampled frame k of each second: Farneback flow to the frames d before and after
(SPAN_S apart); the camera's motion (the median flow) is subtracted; the motion magnitude is
thresholded robustly (median + 4 MAD, at least MIN_DISPLACEMENT_PX over the span), cleaned with
morphology and split into connected components. A component is dropped when it is scenery rather than
an object: it touches BORDER_SIDES or more sides of the frame, or BORDER_SHARE of its outline lies on
the frame border (a corner of flat sky: its zero flow against a tilting camera looks like motion), or
it barely moves (its median motion is under MIN_MOTION_RATIO times the threshold). The rest are
refined with GrabCut seeded by the motion mask: these are the second's candidates.

Linking (`link_candidates`): the strongest candidate of the clip becomes an object and is carried
through every decoded frame to the other sampled seconds by `track.track_flow`; at each sampled second
the carried mask and the candidates that overlap it are merged and refined with GrabCut, and those
candidates count as explained. The strongest unexplained candidate starts the next object, up to
MAX_OBJECTS. So an object keeps one id across the clip, moving parts of it (an arm, the head) join it
instead of becoming objects of their own, and `ids_in_clip` (in every mask's evidence) says how many
objects the clip got. Nothing here knows colours or shapes; sound gating happens in the stage.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from avsbench_tools.masks import ObjectMask, box_of, iou
from avsbench_tools.preannotate.flow import flow, grey, resize_mask
from avsbench_tools.preannotate.track import ANALYSIS_SIDE, decode_sampled, track_flow

if TYPE_CHECKING:
    from avsbench_tools.catalog import Clip
    from avsbench_tools.workspace import Workspace

MIN_AREA_FRACTION = 0.003
MAX_OBJECTS = 4  # objects (ids) per clip
SPAN_S = 0.4  # compare with the frames 0.4 s before and after: slow movers travel a few pixels
MIN_DISPLACEMENT_PX = 1.5  # over that span
BORDER_SIDES = 3  # a region touching this many sides of the frame is scenery (ground, sky, a wall) ...
BORDER_SHARE = 0.3  # ... and so is one with this share of its outline on the frame border (a corner of sky)
MIN_MOTION_RATIO = 1.5  # a region whose median motion is under this many thresholds barely moves
EXPLAINED_OVERLAP = 0.1  # a candidate with this share of its area inside an object's dilated mask is part of it


def motion_settings() -> dict:
    """What identifies this backend's proposals (recorded in the mask set's settings)."""
    return {"span_s": SPAN_S, "min_displacement_px": MIN_DISPLACEMENT_PX, "refine": "grabcut",
            "border_sides": BORDER_SIDES, "border_share": BORDER_SHARE,
            "min_motion_ratio": MIN_MOTION_RATIO, "max_objects_per_clip": MAX_OBJECTS, "link": "flow-tracker",
            "analysis_side": ANALYSIS_SIDE}


@dataclass
class Candidate:
    """One moving region around a sampled frame (at the analysis size)."""

    mask: np.ndarray
    score: float  # motion strength in [0, 1]
    motion: float  # median motion of the region over the threshold


def motion_magnitude(frames: list[np.ndarray], k: int, d: int) -> np.ndarray:
    """Per-pixel motion (pixels per frame) around frame k beyond the camera's (the median flow)."""
    g = grey(frames[k])
    mags = []
    for j in (k - d, k + d):
        if 0 <= j < len(frames) and j != k:
            f = flow(g, grey(frames[j]))
            f = f - np.median(f.reshape(-1, 2), axis=0)  # camera pan/tilt removed
            mags.append(np.linalg.norm(f, axis=2) / abs(j - k))
    if not mags:
        return np.zeros(g.shape, np.float32)
    return np.minimum.reduce(mags) if len(mags) > 1 else mags[0]  # moving both ways: robust to occlusion trails


def border_contact(comp: np.ndarray) -> tuple[int, float]:
    """(frame sides the region touches, share of its outline lying on the frame border)."""
    import cv2

    edges = [comp[0, :], comp[-1, :], comp[:, 0], comp[:, -1]]
    sides = sum(int(e.any()) for e in edges)
    on_border = sum(int(e.sum()) for e in edges)
    inner = comp & ~cv2.erode(comp.astype(np.uint8), np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE
                              ).astype(bool)
    outline = int(inner.sum()) + on_border  # outline pixels inside the frame plus the border run
    return sides, (on_border / outline if outline else 0.0)


def is_scenery(comp: np.ndarray) -> bool:
    sides, share = border_contact(comp)
    return sides >= BORDER_SIDES or share >= BORDER_SHARE


def moving_regions(frames: list[np.ndarray], k: int, fps: float, refine: bool = True) -> list[Candidate]:
    """The moving objects around frame k, largest first (scenery and barely moving regions dropped)."""
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
    out = []
    for i in range(1, n):
        if stats[i, cv2.CC_STAT_AREA] < MIN_AREA_FRACTION * h * w:
            continue
        comp = lab == i
        motion = float(np.median(mag[comp])) / thr
        if motion < MIN_MOTION_RATIO or is_scenery(comp):
            continue
        score = float(np.clip(mag[comp].mean() / (4 * thr), 0, 1))
        if refine:
            comp = grabcut(frames[k], comp)
        if comp.sum() >= MIN_AREA_FRACTION * h * w and not is_scenery(comp):
            out.append(Candidate(comp, score, motion))
    out.sort(key=lambda c: -c.mask.sum())
    return out


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
    cv2.setRNGSeed(0)  # GrabCut's k-means init draws from the thread's RNG: the same mask whatever ran before
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


def _inside(cand: np.ndarray, region: np.ndarray) -> float:
    """Share of a candidate's area inside a region."""
    a = int(cand.sum())
    return float(np.logical_and(cand, region).sum()) / a if a else 0.0


def link_candidates(frames: list[np.ndarray], sampled: dict[int, int], cands: dict[int, list[Candidate]],
                    category: str | None, max_objects: int = MAX_OBJECTS) -> list[ObjectMask]:
    """Objects with one id each across the sampled seconds, from the seconds' candidates (see the module doc)."""
    import cv2

    explained = {sec: [False] * len(cs) for sec, cs in cands.items()}
    second_at = {k: s for s, k in sampled.items()}
    ker = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9))
    objects: list[list[ObjectMask]] = []

    def absorb(sec: int, mask: np.ndarray) -> list[int]:
        near = cv2.dilate(mask.astype(np.uint8), ker) > 0
        return [i for i, c in enumerate(cands.get(sec, [])) if _inside(c.mask, near) >= EXPLAINED_OVERLAP]

    def refine_mask(frame_index: int, warped: np.ndarray) -> np.ndarray | None:
        sec = second_at.get(frame_index)
        if sec is None:
            return None
        parts = absorb(sec, warped)
        seed = warped.copy()
        for i in parts:
            seed |= cands[sec][i].mask
        return grabcut(frames[frame_index], seed)

    while len(objects) < max_objects:
        left = [(c.score * c.mask.sum(), sec, i) for sec, cs in cands.items() for i, c in enumerate(cs)
                if not explained[sec][i]]
        if not left:
            break
        _, key, i = max(left)
        fid = len(objects)
        start = ObjectMask(key, fid, category, cands[key][i].mask, box_of(cands[key][i].mask), cands[key][i].score,
                           evidence={"motion_score": round(cands[key][i].score, 4)})
        track = track_flow(frames, sampled, key, [start], refine_mask=refine_mask, redetect_every=1)
        for o in track:
            for j in absorb(o.second, o.mask) if o.mask.any() else []:
                explained[o.second][j] = True
            o.evidence = {**o.evidence, "key_second": key, "tracker": "flow"}
        explained[key][i] = True
        objects.append(track)
    n = len(objects)
    out = [o for track in objects for o in track]
    for o in out:
        o.evidence["ids_in_clip"] = n
    return sorted(out, key=lambda o: (o.second, o.fid))


def propose_motion(frames: list[np.ndarray], sampled: dict[int, int], fps: float, category: str | None,
                   max_objects: int = MAX_OBJECTS) -> list[ObjectMask]:
    """Moving-object proposals for every sampled second, one id per object across the clip."""
    cands = {sec: moving_regions(frames, sampled[sec], fps) for sec in sorted(sampled)}
    return link_candidates(frames, sampled, cands, category, max_objects)


def propose_motion_clip(ws: Workspace, clip: Clip, frames_info: list) -> list[ObjectMask]:
    """The motion backend on one clip (frames_info: its catalog Frame records): flow at ANALYSIS_SIDE,
    masks scaled back to the sampled frame's size (seconds where an object's mask is empty store none)."""
    frames, fps, sampled = decode_sampled(ws.path(clip.path), frames_info, ANALYSIS_SIDE)
    full = (frames_info[0].height, frames_info[0].width)
    cat = clip.category if clip.category in ws.recipe.categories else None
    objs = [o for o in propose_motion(frames, sampled, fps, cat) if o.mask.any()]
    for o in objs:
        o.mask = resize_mask(o.mask, full)
        o.box = box_of(o.mask)
        o.evidence = {**o.evidence, "backend": "motion"}
    return objs
