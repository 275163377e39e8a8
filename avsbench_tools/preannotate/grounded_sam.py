"""The grounded-sam backend for one clip.

Grounding DINO finds boxes for the clip's text prompts in every sampled frame (`--batch-size`
frames per forward pass), SAM turns boxes into masks (one image embedding per frame, reused for
every box on it), then the key frame's objects are carried to the other sampled frames by a
tracker: `flow` (optical flow at ANALYSIS_SIDE with SAM re-prompts and re-detection), `sam2`
(SAM 2 video propagation at SAM2_SIDE), or `none` (each frame on its own, ids matched by IoU).
Masks always come back at the sampled frame's size.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from avsbench_tools.masks import ObjectMask, box_of
from avsbench_tools.preannotate.flow import resize_mask
from avsbench_tools.preannotate.track import ANALYSIS_SIDE, assign_ids, decode_sampled, pick_key_second

if TYPE_CHECKING:
    from avsbench_tools.catalog import Clip
    from avsbench_tools.preannotate.models import Models
    from avsbench_tools.preannotate.options import PreannotateOptions
    from avsbench_tools.workspace import Workspace

SAM2_SIDE = 1024  # frames given to SAM 2 (it works at 1024 internally)


def prompts_for(ws: Workspace, clip: Clip, prompt: list[str] | None) -> dict[str, str]:
    """{category: text prompt}: the --prompt texts (matched onto recipe categories), else the clip's
    category, else every recipe category."""
    if prompt:
        return {(ws.recipe.match_category(p) or p): p for p in prompt}
    if clip.category and clip.category in ws.recipe.categories:
        return {clip.category: ws.recipe.prompt_for(clip.category)}
    return dict(ws.recipe.categories)


def propose_grounded_sam(ws: Workspace, clip: Clip, models: Models, opts: PreannotateOptions,
                         frames_info: list, heard: list[set[str]] | None = None) -> list[ObjectMask]:
    """Object masks for every sampled frame of a clip (frames_info: its catalog Frame records).

    heard: categories heard per second (audio tagger); only those are prompted in that second."""
    return GroundedSam(ws, clip, models, opts, frames_info, heard).propose()


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
                 heard: list[set[str]] | None = None):
        self.ws, self.clip, self.models, self.opts = ws, clip, models, opts
        self.frames_info, self.heard = frames_info, heard
        self.prompts = prompts_for(ws, clip, opts.prompt)
        self.imgs = {f.second: _load_image(ws, f.path) for f in frames_info}
        self.full = next(iter(self.imgs.values())).shape[:2] if self.imgs else (0, 0)
        self.dets: dict[int, list[ObjectMask]] = {}
        self._embedded: int | None = None  # the second whose image embedding SAM holds
        self._masked: dict[int, list[ObjectMask]] = {}
        self._small: tuple[int, int] = self.full  # the flow tracker's frame size
        self._second_at: dict[int, int] = {}  # the flow tracker's frame index -> sampled second

    def propose(self) -> list[ObjectMask]:
        self.dets = self.detect()
        if self.opts.tracker == "none" or not any(self.dets.values()):
            per = {s: self.masks_at(s) for s in self.imgs}
            assign_ids(per)
            return [o for s in sorted(per) for o in per[s]]
        key = pick_key_second(self.dets, self.opts.key_second)
        key_objs = self.masks_at(key)
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
        """Box detections per second, --batch-size frames per Grounding DINO forward pass."""
        secs = sorted(self.imgs)
        bs = max(1, self.opts.batch_size)
        dets: dict[int, list[ObjectMask]] = {}
        for k in range(0, len(secs), bs):
            chunk = secs[k:k + bs]
            found = self.models.dino.detect_batch([self.imgs[s] for s in chunk], [self.prompts_at(s) for s in chunk],
                                                  chunk, self.opts.box_threshold, self.opts.text_threshold)
            dets.update(zip(chunk, found, strict=True))
        return dets

    def embed(self, second: int) -> None:
        """Give SAM this second's frame, unless it holds it already."""
        if self._embedded != second:
            self.models.sam.set_image(self.imgs[second])
            self._embedded = second

    def masks_at(self, second: int) -> list[ObjectMask]:
        """SAM masks for the second's detections (computed once), empty masks dropped."""
        from avsbench_tools.preannotate.models import best_masks

        if second not in self._masked:
            self.embed(second)
            self._masked[second] = [m for m in best_masks(self.models.sam, self.dets[second]) if m.mask.any()]
        return self._masked[second]

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

        frames, _, sampled = decode_sampled(self.ws.path(self.clip.path), self.frames_info, ANALYSIS_SIDE)
        self._small = frames[0].shape[:2]
        self._second_at = {v: k for k, v in sampled.items()}
        return track_flow(frames, sampled, key, [rescaled(o, self._small) for o in key_objs], refine=self._refine,
                          redetect=self._redetect, redetect_every=self.opts.redetect_every)

    def _refine(self, frame_index: int, box_small) -> np.ndarray | None:
        """SAM's best mask for a box given at the tracker's size (None off the sampled frames)."""
        sec = self._second_at.get(frame_index)
        if sec is None or box_small is None:
            return None
        self.embed(sec)
        sy, sx = self.full[0] / self._small[0], self.full[1] / self._small[1]
        x0, y0, x1, y1 = box_small
        m, sc = self.models.sam.predict([(x0 * sx, y0 * sy, x1 * sx, y1 * sy)])
        return resize_mask(m[0][int(np.argmax(sc[0]))], self._small)

    def _redetect(self, frame_index: int) -> list[ObjectMask]:
        sec = self._second_at.get(frame_index)
        return [rescaled(o, self._small) for o in self.masks_at(sec)] if sec is not None else []


def _load_image(ws: Workspace, rel: str) -> np.ndarray:
    from PIL import Image

    return np.array(Image.open(ws.path(rel)).convert("RGB"))
