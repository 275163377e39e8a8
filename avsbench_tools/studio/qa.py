"""qa: what the review in Label Studio changed, from the catalog alone (no server needed).

- frames: sampled, pushed, reviewed (a submitted annotation), pending (pushed, none submitted), only
  skipped, silent, unusable;
- per backend and category, over the objects of every reviewed frame whose proposal is known (the
  prediction the annotation started from, `parent_prediction`, and the mask versions push sent in it):
  the mean IoU between the object's proposed mask and its final mask (an object the annotator deleted,
  or one drawn by hand, counts with IoU 0), and the share of proposed objects accepted unchanged (final
  mask identical to the proposal); frames marked unusable are left out;
- time per frame (Label Studio's lead_time, seconds, draft time included);
- agreement on frames with several submitted annotations: the IoU of each pair's masks (all objects of
  the frame together), and which one the review set took (review_set.CHOICE_RULE);
- the frames the annotators changed most: lowest IoU between the frame's whole proposal and its whole
  final mask (then most pixels changed).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

from avsbench_tools.catalog.reviews import SILENT, UNUSABLE, StudioReview
from avsbench_tools.masks import iou
from avsbench_tools.studio.review_set import ALPHA_THRESHOLD, CHOICE_RULE, choose
from avsbench_tools.workspace import Workspace

MOST_CHANGED = 12


@dataclass
class FrameChange:
    """One reviewed frame whose proposal is known: its whole proposal against its whole final mask."""

    clip_id: str
    second: int
    backend: str
    annotator: str | None
    iou: float
    changed_pixels: int
    proposal: list[str] = field(default_factory=list)  # mask paths of the proposed objects
    final: list[str] = field(default_factory=list)  # mask paths of the final objects
    frame: str = ""  # the frame image (relative path)
    flags: list[str] = field(default_factory=list)


@dataclass
class QaReport:
    frames: dict
    rule: str
    alpha_threshold: int
    by_backend: list[dict]
    origins: dict[str, int]
    time: dict
    annotators: list[dict]
    agreement: dict
    most_changed: list[FrameChange]

    def to_json(self) -> dict:
        """The report as plain JSON (what `qa --json` prints)."""
        from dataclasses import asdict

        out = asdict(self)
        for c in out["most_changed"]:
            c["iou"] = round(c["iou"], 4)
        return out


def _rnd(x: float | None, n: int = 4) -> float | None:
    return None if x is None else round(float(x), n)


class _Masks:
    """Stored masks by path, and empty masks of a frame's size (cached per call)."""

    def __init__(self, ws: Workspace):
        self.ws = ws
        self.cache: dict[str, np.ndarray] = {}
        self.shapes: dict[tuple[str, int], tuple[tuple[int, int], str]] = {}

    def get(self, rel: str) -> np.ndarray:
        if rel not in self.cache:
            from avsbench_tools.masks import load_mask

            self.cache[rel] = load_mask(self.ws, rel)
        return self.cache[rel]

    def frame(self, clip_id: str, second: int) -> tuple[tuple[int, int], str]:
        if (clip_id, second) not in self.shapes:
            for f in self.ws.catalog.frames(clip_id):
                self.shapes[(clip_id, f.second)] = ((int(f.height or 0), int(f.width or 0)), f.path)
        return self.shapes.get((clip_id, second), ((0, 0), ""))

    def union(self, paths: list[str], shape: tuple[int, int]) -> np.ndarray:
        out = np.zeros(shape, bool)
        for p in paths:
            m = self.get(p)
            if m.shape == out.shape:
                out |= m
        return out


def _proposal(ws: Workspace, r: StudioReview) -> dict[int, object] | None:
    """{fid: MaskVersion} of the prediction a review started from, or None when it is not known."""
    if r.parent_prediction is None:
        return None
    ids = ws.catalog.prediction_versions(r.project_key, r.parent_prediction)
    if ids is None:
        return None
    versions = ws.catalog.versions_by_id(ids)
    if len(versions) != len(set(ids)):
        return None  # the proposal was replaced since it was pushed: its masks are gone
    return {v.fid: v for v in versions}


def qa(ws: Workspace, most_changed: int = MOST_CHANGED) -> QaReport:
    """The QA report of a workspace's pulled reviews (see the module docstring for every figure)."""
    reviews = ws.catalog.studio_reviews()
    masks = _Masks(ws)
    frames = by_clip_frame(reviews)
    sampled = sum(len(ws.catalog.frames(c.clip_id)) for c in ws.catalog.clips())
    pushed = ws.catalog.pushed_frames()
    reviewed = {k for k, rs in frames.items() if any(r.submitted for r in rs)}
    chosen = {k: choose(rs) for k, rs in frames.items() if k in reviewed}
    counts = {"sampled": sampled, "pushed": len(pushed), "reviewed": len(reviewed),
              "pending": len(pushed - reviewed), "skipped_only": len(set(frames) - reviewed),
              "silent": sum(SILENT in r.flags for r in chosen.values()),
              "unusable": sum(UNUSABLE in r.flags for r in chosen.values()),
              "annotations": sum(r.submitted for r in reviews),
              "cancelled": sum(not r.submitted for r in reviews)}
    groups: dict[tuple[str, str], dict] = {}
    origins: dict[str, int] = {}
    changes: list[FrameChange] = []
    no_proposal = 0
    for (clip_id, second), r in sorted(chosen.items()):
        for reg in r.regions:
            origins[reg.get("origin") or "unknown"] = origins.get(reg.get("origin") or "unknown", 0) + 1
        if UNUSABLE in r.flags:
            continue
        prop = _proposal(ws, r)
        if prop is None:
            no_proposal += 1
            continue
        backend = (r.model_version or "").split(":")[0] or next((v.backend for v in prop.values()), None) or "unknown"
        shape, frame_path = masks.frame(clip_id, second)
        final = {int(g["fid"]): g for g in r.regions}
        for fid in sorted(set(prop) | set(final)):
            p = masks.get(prop[fid].path) if fid in prop else np.zeros(shape, bool)
            f = masks.get(final[fid]["path"]) if fid in final else np.zeros(shape, bool)
            cat = (prop[fid].category if fid in prop else None) or final.get(fid, {}).get("category") or "unknown"
            g = groups.setdefault((backend, cat), {"ious": [], "proposed": 0, "unchanged": 0, "deleted": 0, "added": 0})
            g["ious"].append(iou(p, f) if p.shape == f.shape else 0.0)
            if fid in prop:
                g["proposed"] += 1
                g["unchanged"] += int(fid in final and p.shape == f.shape and np.array_equal(p, f))
                g["deleted"] += int(fid not in final)
            else:
                g["added"] += 1
        pu = masks.union([v.path for v in prop.values()], shape)
        fu = masks.union([g["path"] for g in r.regions], shape)
        changes.append(FrameChange(clip_id, second, backend, r.annotator, iou(pu, fu), int(np.count_nonzero(pu ^ fu)),
                                   [v.path for v in prop.values()], [g["path"] for g in r.regions], frame_path,
                                   list(r.flags)))
    by_backend = [{"backend": b, "category": c, "objects": len(g["ious"]), "proposed": g["proposed"],
                   "mean_iou": _rnd(statistics.fmean(g["ious"])) if g["ious"] else None,
                   "accepted_unchanged": g["unchanged"],
                   "share_unchanged": _rnd(g["unchanged"] / g["proposed"]) if g["proposed"] else None,
                   "deleted": g["deleted"], "drawn_by_hand": g["added"]} for (b, c), g in sorted(groups.items())]
    counts["without_known_proposal"] = no_proposal
    changes.sort(key=lambda c: (c.iou, -c.changed_pixels, c.clip_id, c.second))
    return QaReport(counts, CHOICE_RULE, ALPHA_THRESHOLD, by_backend, dict(sorted(origins.items())),
                    _times(reviews, len(reviewed)), _annotators(reviews), _agreement(frames, masks),
                    changes[:most_changed])


def by_clip_frame(reviews: list[StudioReview]) -> dict[tuple[str, int], list[StudioReview]]:
    out: dict[tuple[str, int], list[StudioReview]] = {}
    for r in reviews:
        out.setdefault((r.clip_id, r.second), []).append(r)
    return out


def _times(reviews: list[StudioReview], frames: int) -> dict:
    t = [float(r.lead_time) for r in reviews if r.submitted and r.lead_time is not None]
    return {"annotations_timed": len(t), "mean_s": _rnd(statistics.fmean(t), 2) if t else None,
            "median_s": _rnd(statistics.median(t), 2) if t else None, "total_s": _rnd(sum(t), 2),
            "per_reviewed_frame_s": _rnd(sum(t) / frames, 2) if frames and t else None}


def _annotators(reviews: list[StudioReview]) -> list[dict]:
    out: dict[str, dict] = {}
    for r in reviews:
        a = out.setdefault(r.annotator or "unknown", {"annotator": r.annotator or "unknown", "submitted": 0,
                                                      "cancelled": 0, "lead_time_s": 0.0})
        a["submitted" if r.submitted else "cancelled"] += 1
        a["lead_time_s"] = round(a["lead_time_s"] + float(r.lead_time or 0.0), 2)
    return [out[k] for k in sorted(out)]


def _agreement(frames: dict[tuple[str, int], list[StudioReview]], masks: _Masks) -> dict:
    rows, ious = [], []
    for (clip_id, second), rs in sorted(frames.items()):
        sub = sorted((r for r in rs if r.submitted), key=lambda r: r.annotation_id)
        if len(sub) < 2:
            continue
        shape, _ = masks.frame(clip_id, second)
        unions = {r.annotation_id: masks.union([g["path"] for g in r.regions], shape) for r in sub}
        pairs = [{"a": a.annotator, "b": b.annotator, "iou": _rnd(iou(unions[a.annotation_id], unions[b.annotation_id]))}
                 for a, b in combinations(sub, 2)]
        ious += [p["iou"] for p in pairs]
        chosen = choose(sub)
        rows.append({"clip_id": clip_id, "second": second, "annotators": [r.annotator for r in sub], "pairs": pairs,
                     "mean_iou": _rnd(statistics.fmean(p["iou"] for p in pairs)),
                     "chosen": chosen.annotator, "chosen_annotation": chosen.annotation_id})
    return {"frames": len(rows), "pairs": len(ious), "mean_iou": _rnd(statistics.fmean(ious)) if ious else None,
            "rule": CHOICE_RULE, "per_frame": rows}
