"""The grounded-sam backend for one clip.

Grounding DINO finds boxes for the clip's text prompts in every sampled frame (`--batch-size`
frames per forward pass), class-aware NMS and the `--max-objects` cap bound them (nms.py), SAM turns
boxes into masks (one image embedding per frame, reused for every box on it; batching.py), masks under
`--min-area` are dropped, then the key frame's objects are carried to the other sampled frames by a
tracker: `flow` (optical flow at ANALYSIS_SIDE with SAM re-prompts and re-detection), `sam2`
(SAM 2 video propagation at SAM2_SIDE), or `none` (each frame on its own, ids matched by IoU).
Masks always come back at the sampled frame's size. A clip's frames (and, for `flow`, its decoded
video) are read by `load_media`, which the stage runs on a background thread ahead of the models.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from avsbench_tools.masks import ObjectMask, box_of, from_sam
from avsbench_tools.preannotate.batching import Segmenter, detect_frames
from avsbench_tools.preannotate.flow import resize_mask
from avsbench_tools.preannotate.nms import CapStats, bound_detections, large_enough
from avsbench_tools.preannotate.prompts import prompts_for
from avsbench_tools.preannotate.track import ANALYSIS_SIDE, assign_ids, decode_sampled, pick_key_second

if TYPE_CHECKING:
    from avsbench_tools.catalog import Clip
    from avsbench_tools.preannotate.backends import Models
    from avsbench_tools.preannotate.options import PreannotateOptions
    from avsbench_tools.workspace import Workspace

SAM2_SIDE = 1024  # frames given to SAM 2 (it works at 1024 internally)


@dataclass
class ClipMedia:
    """What grounded-sam reads from disk for one clip: its sampled frames (RGB, by second) and, for the
    flow tracker, every frame at ANALYSIS_SIDE with its fps and second -> frame index (decode_sampled)."""

    images: dict[int, np.ndarray]
    video: tuple[list[np.ndarray], float, dict[int, int]] | None = None


def load_media(ws: Workspace, clip: Clip, frames_info: list, tracker: str | None = None) -> ClipMedia:
    """Read a clip's sampled frames (and its video at ANALYSIS_SIDE for the flow tracker). No catalog
    access: safe on a background thread."""
    images = {f.second: _load_image(ws, f.path) for f in frames_info}
    video = decode_sampled(ws.path(clip.path), frames_info, ANALYSIS_SIDE) if tracker == "flow" and images else None
    return ClipMedia(images, video)


def propose_grounded_sam(ws: Workspace, clip: Clip, models: Models, opts: PreannotateOptions,
                         frames_info: list, heard: list[set[str]] | None = None, media: ClipMedia | None = None,
                         stats: CapStats | None = None) -> list[ObjectMask]:
    """Object masks for every sampled frame of a clip (frames_info: its catalog Frame records).

    heard: categories heard per second (audio tagger); only those are prompted in that second.
    media: the clip's frames if already loaded (else read here); stats: counts the frames cut by the cap."""
    return GroundedSam(ws, clip, models, opts, frames_info, heard, media, stats).propose()


def rescaled(o: ObjectMask, shape: tuple[int, int]) -> ObjectMask:
    """A copy of o with its mask resized to shape (box left to the tracker)."""
    return ObjectMask(o.second, o.fid, o.category, resize_mask(o.mask, shape), None, o.score,
                      evidence=dict(o.evidence))


def at_frame_size(tracked: list[ObjectMask], key_objs: list[ObjectMask], key: int, full: tuple[int, int],
                  evidence: dict) -> list[ObjectMask]:
    """Tracker output -> masks at the sampled frame's size; the key frame keeps SAM's full-size masks."""
    by_fid = {o.fid: o for o in key_objs}
    out = []
    for t in tracked:
        ev = {**t.evidence, **evidence, "key_second": key}
        if t.second == key:
            src = by_fid[t.fid]
            m, ev = src.mask, {**src.evidence, **ev}
        else:
            m = resize_mask(t.mask, full)
        out.append(ObjectMask(t.second, t.fid, t.category, m, box_of(m), t.score, evidence=ev, tracked=t.tracked,
                              lost=t.lost))
    return out


class GroundedSam:
    """One clip: detections per second, SAM masks on demand (one embedding per frame), tracking."""

    def __init__(self, ws: Workspace, clip: Clip, models: Models, opts: PreannotateOptions, frames_info: list,
                 heard: list[set[str]] | None = None, media: ClipMedia | None = None, stats: CapStats | None = None):
        self.ws, self.clip, self.models, self.opts = ws, clip, models, opts
        self.frames_info, self.heard, self.stats = frames_info, heard, stats
        self.prompts = prompts_for(ws, clip, opts.prompt)
        self.media = media or load_media(ws, clip, frames_info)
        self.imgs = self.media.images
        self.full = next(iter(self.imgs.values())).shape[:2] if self.imgs else (0, 0)
        self.dets: dict[int, list[ObjectMask]] = {}
        self.seg = Segmenter(models.sam, opts.batch_size, opts.precision)
        self._masked: dict[int, list[ObjectMask]] = {}
        self._small: tuple[int, int] = self.full  # the flow tracker's frame size
        self._second_at: dict[int, int] = {}  # the flow tracker's frame index -> sampled second

    def propose(self) -> list[ObjectMask]:
        self.dets = self.detect()
        if self.opts.tracker == "none" or not any(self.dets.values()):
            per = self.masks_for(sorted(self.imgs))
            assign_ids(per)
            return [o for s in sorted(per) for o in per[s]]
        key = pick_key_second(self.dets, self.opts.key_second)
        if self.opts.tracker == "flow":  # it re-prompts SAM on every sampled frame: embed them in batches now
            self.seg.embed(self.imgs)
        key_objs = self.masks_for([key])[key]
        for i, o in enumerate(sorted(key_objs, key=lambda o: -o.score)):
            o.fid = i
        if self.opts.tracker == "sam2":
            if not key_objs:
                return []
            return at_frame_size(self.track_sam2(key, key_objs), key_objs, key, self.full, {})
        return at_frame_size(self.track_flow(key, key_objs), key_objs, key, self.full, {"tracker": "flow"})

    # -- detection and masks ------------------------------------------------------------------
    def prompts_at(self, second: int) -> dict[str, str]:
        if self.heard is None or second >= len(self.heard):
            return self.prompts
        return {c: p for c, p in self.prompts.items() if c in self.heard[second]}

    def detect(self) -> dict[int, list[ObjectMask]]:
        """Box detections per second (--batch-size frames per Grounding DINO pass), bounded by class-aware
        NMS and the --max-objects cap."""
        o = self.opts
        secs = sorted(self.imgs)
        found = detect_frames(self.models.dino, [self.imgs[s] for s in secs], [self.prompts_at(s) for s in secs], secs,
                              o.box_threshold, o.text_threshold, o.batch_size, o.precision)
        return {s: bound_detections(f, o.nms_iou, o.max_objects, self.stats) for s, f in zip(secs, found, strict=True)}

    def masks_for(self, seconds: list[int]) -> dict[int, list[ObjectMask]]:
        """SAM masks for the seconds' detections (each second computed once, several per SAM pass),
        masks under --min-area dropped."""
        todo = [s for s in seconds if s not in self._masked]
        if todo:
            got = self.seg.masks(self.imgs, {s: [d.box for d in self.dets[s]] for s in todo})
            for s in todo:
                m, sc = got[s]
                objs = [from_sam(d, m[i], sc[i:i + 1]) for i, d in enumerate(self.dets[s])]
                self._masked[s] = large_enough(objs, self.opts.min_area)
        return {s: self._masked[s] for s in seconds}

    # -- trackers -------------------------------------------------------------------------------
    def track_sam2(self, key: int, key_objs: list[ObjectMask]) -> list[ObjectMask]:
        """SAM 2 video propagation; masks at the decoded video's size."""
        from avsbench_tools.preannotate.track import track_sam2

        video, _, sampled = decode_sampled(self.ws.path(self.clip.path), self.frames_info, SAM2_SIDE)
        vsize = video[0].shape[:2]
        return track_sam2(video, self.models.sam2, sampled, key, [rescaled(o, vsize) for o in key_objs])

    def track_flow(self, key: int, key_objs: list[ObjectMask]) -> list[ObjectMask]:
        """Flow tracking at ANALYSIS_SIDE, re-prompting SAM with the warped box and re-detecting."""
        from avsbench_tools.preannotate.track import track_flow

        frames, _, sampled = self.media.video or decode_sampled(self.ws.path(self.clip.path), self.frames_info,
                                                                ANALYSIS_SIDE)
        self._small = frames[0].shape[:2]
        self._second_at = {v: k for k, v in sampled.items()}
        return track_flow(frames, sampled, key, [rescaled(o, self._small) for o in key_objs], refine=self._refine,
                          redetect=self._redetect, redetect_every=self.opts.redetect_every)

    def _refine(self, frame_index: int, box_small) -> np.ndarray | None:
        """SAM's best mask for a box given at the tracker's size (None off the sampled frames)."""
        sec = self._second_at.get(frame_index)
        if sec is None or box_small is None:
            return None
        sy, sx = self.full[0] / self._small[0], self.full[1] / self._small[1]
        x0, y0, x1, y1 = box_small
        m, _ = self.seg.masks(self.imgs, {sec: [(x0 * sx, y0 * sy, x1 * sx, y1 * sy)]})[sec]
        return resize_mask(m[0], self._small)

    def _redetect(self, frame_index: int) -> list[ObjectMask]:
        sec = self._second_at.get(frame_index)
        return [rescaled(o, self._small) for o in self.masks_for([sec])[sec]] if sec is not None else []


def _load_image(ws: Workspace, rel: str) -> np.ndarray:
    from PIL import Image

    return np.array(Image.open(ws.path(rel)).convert("RGB"))
