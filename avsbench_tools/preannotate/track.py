"""Carry key-frame object masks to the other sampled frames with stable object ids.

CPU tracker (`flow`): the mask is warped frame by frame through every decoded frame between
sampled frames with dense optical flow (so each step is a small motion), optionally re-prompted
with the warped box through SAM (`refine(frame_index, box) -> mask`), and matched to fresh
detections every K sampled frames by mask IoU (`redetect(frame_index) -> [ObjectMask]`). Objects
whose mask vanishes are flagged lost; a later detection that overlaps the last known mask re-finds
them under the same id. Without a tracker, `assign_ids` matches each second's masks to the previous
second's by IoU.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from avsbench_tools.masks import ObjectMask, box_of, iou
from avsbench_tools.preannotate.flow import decode_frames, flow, grey, warp_mask

LOST_FRACTION = 0.15  # a mask smaller than this share of its key-frame area counts as lost
MATCH_IOU = 0.3
ANALYSIS_SIDE = 320  # optical flow runs at this longer side; masks are scaled back to the frame size


def decode_sampled(path: Path, frames_info: list, max_side: int) -> tuple[list[np.ndarray], float, dict[int, int]]:
    """Every frame of a clip at max_side, its fps, and second -> index of the sampled frame in them
    (frames_info: the clip's catalog Frame records)."""
    frames, fps = decode_frames(path, max_side)
    return frames, fps, {f.second: min(f.frame_index, len(frames) - 1) for f in frames_info}


def assign_ids(per_second: dict[int, list[ObjectMask]]) -> None:
    """Stable ids without a tracker: match each second's masks to the previous second's by IoU."""
    prev: list[ObjectMask] = []
    next_fid = 0
    for sec in sorted(per_second):
        used = set()
        for o in sorted(per_second[sec], key=lambda o: -o.score):
            cands = [(iou(p.mask, o.mask), p) for p in prev if p.fid not in used and p.category == o.category]
            best = max(cands, key=lambda t: t[0], default=(0.0, None))
            if best[1] is not None and best[0] > 0.2:
                o.fid = best[1].fid
            else:
                o.fid, next_fid = next_fid, next_fid + 1
            used.add(o.fid)
        prev = per_second[sec] or prev


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
               progress: Callable[[int, int], None] | None = None,
               refine_mask: Callable[[int, np.ndarray], np.ndarray | None] | None = None) -> list[ObjectMask]:
    """frames: every decoded frame (analysis resolution); sampled: second -> frame index.

    At each sampled frame the warped mask may be refined: `refine(frame_index, box)` re-prompts with its
    box (SAM), `refine_mask(frame_index, mask)` with the mask itself (the motion backend: GrabCut seeded
    by the warped mask and the moving regions there); a refinement is kept when it overlaps the warped
    mask (IoU > 0.3). Returns one ObjectMask per (second, key object) for every sampled second, key
    frame included.
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
                if refine_mask is not None and mask.any():
                    refined = refine_mask(target, mask)
                    if refined is not None and refined.any() and iou(refined, mask) > 0.3:
                        mask = refined
                        ev["refined"] = True
                elif refine is not None and mask.any():
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
                is_lost = bool(mask.sum() < LOST_FRACTION * key_area[fid])
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


def track_sam2(video: list[np.ndarray], sam2, sampled: dict[int, int], key_second: int,
               key_masks: list[ObjectMask]) -> list[ObjectMask]:
    """SAM 2 video propagation (transformers Sam2VideoModel) from the key frame, both directions,
    through every decoded frame between the first and last sampled frame; masks at the video's size."""
    from avsbench_tools.errors import require

    torch = require("torch", "models")
    lo, hi = min(sampled.values()), max(sampled.values())
    frames = video[lo:hi + 1]
    h, w = frames[0].shape[:2]
    sess = sam2.processor.init_video_session(video=frames, inference_device=sam2.device, dtype=torch.float32,
                                             video_storage_device="cpu")
    k0 = sampled[key_second] - lo
    fids = [m.fid for m in key_masks]
    sam2.processor.add_inputs_to_inference_session(inference_session=sess, frame_idx=k0, obj_ids=fids,
                                                   input_masks=[m.mask for m in key_masks])
    want = {k - lo: s for s, k in sampled.items()}
    got: dict[int, dict[int, np.ndarray]] = {}
    with torch.inference_mode():
        sam2.model(inference_session=sess, frame_idx=k0)
        for reverse in (False, True):
            for o in sam2.model.propagate_in_video_iterator(sess, start_frame_idx=k0, reverse=reverse):
                if o.frame_idx not in want or o.frame_idx in got:
                    continue
                ms = sam2.processor.post_process_masks([o.pred_masks], original_sizes=[[h, w]], binarize=True)[0]
                ids = list(getattr(o, "object_ids", None) or fids)
                got[o.frame_idx] = {fid: ms[i, 0].cpu().numpy().astype(bool) for i, fid in enumerate(ids)}
    key_area = {m.fid: max(1, int(m.mask.sum())) for m in key_masks}
    out = []
    for m in key_masks:
        was_lost = False
        for sec in sorted(sampled, key=lambda s: (abs(s - key_second), s)):
            if sec == key_second:
                out.append(ObjectMask(sec, m.fid, m.category, m.mask.copy(), box_of(m.mask), m.score,
                                      evidence={**m.evidence, "key_frame": True, "tracker": "sam2"}))
                continue
            mask = got.get(sampled[sec] - lo, {}).get(m.fid)
            if mask is None:
                mask = np.zeros((h, w), bool)
            lost = bool(mask.sum() < LOST_FRACTION * key_area[m.fid])
            ev = {"tracker": "sam2", "frames_from_key": abs(sampled[sec] - sampled[key_second])}
            if lost and not was_lost:
                ev["lost_here"] = True
            if was_lost and not lost:
                ev["refound"] = True
            was_lost = lost
            out.append(ObjectMask(sec, m.fid, m.category, mask, box_of(mask), m.score, evidence=ev, tracked=True,
                                  lost=lost))
    return sorted(out, key=lambda o: (o.second, o.fid))


def ids_summary(ids: dict[str, int], listed: int = 5) -> str:
    """One line on how many objects (ids) each clip got: every clip when few, else a histogram and the
    clip with the most."""
    if len(ids) <= listed:
        return "objects (ids) per clip: " + ", ".join(f"{c} {n}" for c, n in sorted(ids.items()))
    hist: dict[int, int] = {}
    for n in ids.values():
        hist[n] = hist.get(n, 0) + 1
    most = max(sorted(ids), key=lambda c: ids[c])
    parts = ", ".join(f"{n} in {k} clip{'s' if k != 1 else ''}" for n, k in sorted(hist.items()))
    return f"objects (ids) per clip: {parts} (most: {most} {ids[most]})"
