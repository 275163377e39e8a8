"""qa: what the review in Label Studio changed, from the catalog alone (no server needed).

- frames: sampled, pushed, reviewed (in the clip's current review set), pending (pushed, not reviewed),
  only skipped, silent, unusable; annotations submitted and cancelled;
- per proposed object of every reviewed frame whose proposal is known (the prediction the chosen
  annotation started from, `parent_prediction`, and the mask versions push sent in it), its outcome:
  kept (final mask identical) or edited (its IoU), deleted in a silent second (the annotator marked the
  frame "no sounding object", or the clip's sound activity says nothing sounds in it) or deleted
  otherwise, and whether it was relabelled (from -> to); objects drawn by hand are counted as
  added. The final masks are the ones the clip shows (`mask_store.shown_masks`, what export writes);
  frames marked unusable are left out;
- per backend and category: those counts, and the mean IoU over kept and edited objects only (a
  deletion is a decision about the object, not a bad outline); a relabel table per category;
- time per frame (Label Studio's lead_time, seconds, draft time included);
- agreement between distinct annotators on one frame (each one's latest annotation; `push --overlap F` has
  Label Studio give a fraction F of the frames to two annotators), on exactly the frames annotated by two or
  more: the IoU of each pair's masks (all objects of the frame together), per category the mean IoU of that
  category's masks, the share of pairs that set each frame flag (silent, unusable) alike, and which annotation
  the review set took;
- reviewed masks in seconds the sample stage found silent (`silent_masks`, counted as
  masks_in_silent_seconds): a mask painted or accepted where the audio analysis hears nothing;
- the frames the annotators changed most, among those where something changed: lowest IoU between the
  frame's whole proposal and its whole final mask, then most pixels changed.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

from avsbench_tools.catalog.reviews import SILENT, UNUSABLE, StudioReview
from avsbench_tools.mask_store import load_mask, reviewed_seconds, shown_masks
from avsbench_tools.masks import iou
from avsbench_tools.studio.review_set import ALPHA_THRESHOLD, CHOICE_RULE, choose
from avsbench_tools.workspace import Workspace

MOST_CHANGED = 12
OUTCOMES = ("kept", "edited", "deleted_silent", "deleted", "added")


@dataclass
class ObjectOutcome:
    """What the review did to one object of one frame. `category`: the proposed one (added: the drawn one)."""

    clip_id: str
    second: int
    fid: int
    backend: str
    category: str
    outcome: str  # one of OUTCOMES
    iou: float | None = None  # kept / edited: IoU between the proposed and the final mask
    relabelled_to: str | None = None  # kept / edited under another label
    silent: str | None = None  # deleted_silent: "marked" (no sounding object) or "audio" (no sound in the second)


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
    deleted: int = 0
    added: int = 0
    relabels: list[str] = field(default_factory=list)  # "guitar -> piano"

    @property
    def changed(self) -> bool:
        return bool(self.changed_pixels or self.deleted or self.added or self.relabels)


@dataclass
class QaReport:
    frames: dict
    rule: str
    alpha_threshold: int
    by_backend: list[dict]
    relabels: list[dict]
    origins: dict[str, int]
    time: dict
    annotators: list[dict]
    agreement: dict
    most_changed: list[FrameChange]
    objects: list[ObjectOutcome]
    # reviewed masks in seconds the sample stage found silent (the audio says nothing sounds there):
    # [{clip_id, second, fid, category, pixels}], each a mask a reviewer should look at again
    silent_masks: list[dict] = field(default_factory=list)

    def to_json(self) -> dict:
        """The report as plain JSON (what `qa --json` prints): the same figures the text and HTML show."""
        from dataclasses import asdict

        out = asdict(self)
        for c in out["most_changed"]:
            c["iou"] = round(c["iou"], 4)
        for o in out["objects"]:
            o["iou"] = _rnd(o["iou"])
        return out


def _rnd(x: float | None, n: int = 4) -> float | None:
    return None if x is None else round(float(x), n)


class _Masks:
    """Stored masks by path, and the frames' sizes (cached per call)."""

    def __init__(self, ws: Workspace):
        self.ws = ws
        self.cache: dict[str, np.ndarray] = {}
        self.shapes: dict[tuple[str, int], tuple[tuple[int, int], str]] = {}

    def get(self, rel: str) -> np.ndarray:
        if rel not in self.cache:
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
    from avsbench_tools.studio.push_build import AUDIO_ONLY

    if r.parent_prediction is None or r.model_version == AUDIO_ONLY:  # the audio's second only: no proposal
        return None
    ids = ws.catalog.prediction_versions(r.project_key, r.parent_prediction, r.task_id, r.model_version)
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
    shown: dict[tuple[str, int], dict[int, object]] = {}
    flags: dict[tuple[str, int], set[str]] = {}
    reviewed: set[tuple[str, int]] = set()
    for clip_id in sorted(ws.catalog.clip_ids_reviewed()):
        reviewed |= {(clip_id, s) for s in reviewed_seconds(ws, clip_id)}
        for v in shown_masks(ws, clip_id, include_unreviewed=False):
            shown.setdefault((clip_id, v.second), {})[v.fid] = v
        flags.update({(clip_id, s): set(f) for s, f in ws.catalog.clip_flags(clip_id).items()})
    counts = {"sampled": sampled, "pushed": len(pushed), "reviewed": len(reviewed),
              "pending": len(pushed - reviewed), "skipped_only": len(set(frames) - reviewed
                                                                     - {k for k, rs in frames.items()
                                                                        if any(r.submitted for r in rs)}),
              "silent": sum(SILENT in flags.get(k, ()) for k in reviewed),
              "unusable": sum(UNUSABLE in flags.get(k, ()) for k in reviewed),
              "annotations": sum(r.submitted for r in reviews),
              "cancelled": sum(not r.submitted for r in reviews)}
    from avsbench_tools.completeness import review_counts  # the rule pull, status and export count clips by

    clip_counts = review_counts(ws)
    counts["clips_reviewed"], counts["clips_partial"] = clip_counts["reviewed"], clip_counts["partial"]
    counts["label_problems"] = sum(bool(g.get("problem")) for r in reviews if r.submitted for g in r.regions)
    objects: list[ObjectOutcome] = []
    quiet: dict[str, set[int]] = {}
    origins: dict[str, int] = {}
    changes: list[FrameChange] = []
    no_proposal = 0
    silent_masks = []
    for clip_id, second in sorted(reviewed):
        if clip_id not in quiet:
            quiet[clip_id] = _audio_silent(ws, clip_id)
        if second in quiet[clip_id] and UNUSABLE not in flags.get((clip_id, second), set()):
            for fid, v in sorted(shown.get((clip_id, second), {}).items()):
                px = int(np.count_nonzero(masks.get(v.path)))
                if px:
                    silent_masks.append({"clip_id": clip_id, "second": second, "fid": fid,
                                         "category": v.category or "unknown", "pixels": px})
        r = choose(frames.get((clip_id, second), []))
        if r is None:
            no_proposal += 1
            continue
        for reg in r.regions:
            origins[reg.get("origin") or "unknown"] = origins.get(reg.get("origin") or "unknown", 0) + 1
        frame_flags = flags.get((clip_id, second), set())
        if UNUSABLE in frame_flags:
            continue
        prop = _proposal(ws, r)
        if prop is None:
            no_proposal += 1
            continue
        backend = (r.model_version or "").split(":")[0] or next((v.backend for v in prop.values()), None) or "unknown"
        shape, frame_path = masks.frame(clip_id, second)
        final = shown.get((clip_id, second), {})
        change = FrameChange(clip_id, second, backend, r.annotator, 0.0, 0, [v.path for v in prop.values()],
                             [v.path for v in final.values()], frame_path, sorted(frame_flags))
        silent = "marked" if SILENT in frame_flags else "audio" if second in quiet[clip_id] else None
        for fid in sorted(set(prop) | set(final)):
            o = _outcome(clip_id, second, fid, backend, prop.get(fid), final.get(fid), silent, masks)
            objects.append(o)
            change.deleted += o.outcome in ("deleted", "deleted_silent")
            change.added += o.outcome == "added"
            if o.relabelled_to is not None:
                change.relabels.append(f"{o.category} -> {o.relabelled_to}")
        pu, fu = masks.union(change.proposal, shape), masks.union(change.final, shape)
        change.iou, change.changed_pixels = iou(pu, fu), int(np.count_nonzero(pu ^ fu))
        changes.append(change)
    counts["without_known_proposal"] = no_proposal
    counts["masks_in_silent_seconds"] = len(silent_masks)
    changes = sorted((c for c in changes if c.changed), key=lambda c: (c.iou, -c.changed_pixels, c.clip_id, c.second))
    return QaReport(counts, CHOICE_RULE, ALPHA_THRESHOLD, _by_backend(objects), _relabels(objects),
                    dict(sorted(origins.items())), _times(reviews, len(reviewed)), _annotators(reviews),
                    _agreement(frames, masks), changes[:most_changed], objects, silent_masks)


def _audio_silent(ws: Workspace, clip_id: str) -> set[int]:
    """The seconds in which the clip's sound activity says nothing sounds (none without an activity record)."""
    from avsbench_tools.audio.activity import Activity

    audio = ws.catalog.audio(clip_id)
    if audio is None or not audio.activity:
        return set()
    active = list(Activity.from_dict(audio.activity).active)
    return {f.second for f in ws.catalog.frames(clip_id) if not (f.second < len(active) and active[f.second])}


def _outcome(clip_id: str, second: int, fid: int, backend: str, p, f, silent: str | None,
             masks: _Masks) -> ObjectOutcome:
    """The outcome of object `fid` in one frame: p its proposed MaskVersion (or None), f its final one (or
    None); silent: why the second is silent ("marked", "audio") or None."""
    if p is None:
        return ObjectOutcome(clip_id, second, fid, backend, f.category or "unknown", "added")
    cat = p.category or "unknown"
    if f is None:
        return ObjectOutcome(clip_id, second, fid, backend, cat, "deleted_silent" if silent else "deleted",
                             silent=silent)
    pm, fm = masks.get(p.path), masks.get(f.path)
    same = pm.shape == fm.shape and np.array_equal(pm, fm)
    value = 1.0 if same else (iou(pm, fm) if pm.shape == fm.shape else 0.0)
    to = f.category if f.category and f.category != p.category else None
    return ObjectOutcome(clip_id, second, fid, backend, cat, "kept" if same else "edited", value, to)


def _by_backend(objects: list[ObjectOutcome]) -> list[dict]:
    groups: dict[tuple[str, str], list[ObjectOutcome]] = {}
    for o in objects:
        groups.setdefault((o.backend, o.category), []).append(o)
    rows = []
    for (backend, cat), objs in sorted(groups.items()):
        n = {k: sum(o.outcome == k for o in objs) for k in OUTCOMES}
        proposed = len(objs) - n["added"]
        kept_or_edited = [o.iou for o in objs if o.outcome in ("kept", "edited")]
        unchanged = sum(o.outcome == "kept" and o.relabelled_to is None for o in objs)
        rows.append({"backend": backend, "category": cat, "proposed": proposed, "unchanged": unchanged,
                     "kept": n["kept"], "edited": n["edited"],
                     "relabelled": sum(o.relabelled_to is not None for o in objs),
                     "deleted_silent": n["deleted_silent"], "deleted": n["deleted"], "added": n["added"],
                     "mean_iou": _rnd(statistics.fmean(kept_or_edited)) if kept_or_edited else None,
                     "share_unchanged": _rnd(unchanged / proposed) if proposed else None})
    return rows


def _relabels(objects: list[ObjectOutcome]) -> list[dict]:
    """Per proposed category, what it was relabelled to and how often."""
    n: dict[tuple[str, str], int] = {}
    for o in objects:
        if o.relabelled_to is not None:
            n[(o.category, o.relabelled_to)] = n.get((o.category, o.relabelled_to), 0) + 1
    return [{"from": a, "to": b, "objects": k} for (a, b), k in sorted(n.items())]


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


def _who(r: StudioReview) -> str:
    """Who made an annotation: the annotator's email, else user id, else the annotation itself (unknown)."""
    if r.annotator:
        return r.annotator
    return f"user {r.annotator_id}" if r.annotator_id is not None else f"annotation {r.annotation_id}"


def _category_ious(a: StudioReview, b: StudioReview, shape: tuple[int, int], masks: _Masks) -> dict[str, float]:
    """{category: IoU of a's and b's masks of that category} for every category either painted (0 where one did
    not paint it)."""
    out = {}
    for cat in sorted({g.get("category") or "unknown" for g in a.regions + b.regions}):
        ua, ub = ([g["path"] for g in r.regions if (g.get("category") or "unknown") == cat] for r in (a, b))
        ma, mb = masks.union(ua, shape), masks.union(ub, shape)
        if ma.any() or mb.any():
            out[cat] = float(iou(ma, mb))
    return out


def _agreement(frames: dict[tuple[str, int], list[StudioReview]], masks: _Masks) -> dict:
    """Agreement on the frames annotated by two or more annotators (each one's latest submitted annotation),
    computed on exactly those frames: per pair the IoU of the whole frame, per category the IoU of that category's
    masks (a category one of them did not paint counts 0), and whether the two set each frame flag alike."""
    rows, ious = [], []
    per_cat: dict[str, list[float]] = {}
    flag_pairs = {flag: [0, 0, 0] for flag in (SILENT, UNUSABLE)}  # pairs that agree: both set, neither; disagree
    for (clip_id, second), rs in sorted(frames.items()):
        latest: dict[str, StudioReview] = {}
        for r in rs:
            if r.submitted and (_who(r) not in latest or choose([latest[_who(r)], r]) is r):
                latest[_who(r)] = r
        if len(latest) < 2:
            continue  # one annotator (however many annotations): nothing to agree on
        sub = sorted(latest.values(), key=lambda r: r.annotation_id)
        shape, _ = masks.frame(clip_id, second)
        unions = {r.annotation_id: masks.union([g["path"] for g in r.regions], shape) for r in sub}
        pairs = []
        for a, b in combinations(sub, 2):
            cats = _category_ious(a, b, shape, masks)
            for cat, v in cats.items():
                per_cat.setdefault(cat, []).append(v)
            for flag, n in flag_pairs.items():
                both = (flag in a.flags, flag in b.flags)
                n[0 if all(both) else 1 if not any(both) else 2] += 1
            pairs.append({"a": _who(a), "b": _who(b), "iou": _rnd(iou(unions[a.annotation_id], unions[b.annotation_id])),
                          "by_category": {c: _rnd(v) for c, v in cats.items()},
                          "flags": {f: [f in a.flags, f in b.flags] for f in flag_pairs}})
        ious += [p["iou"] for p in pairs]
        chosen = choose(rs)
        rows.append({"clip_id": clip_id, "second": second, "annotators": [_who(r) for r in sub], "pairs": pairs,
                     "mean_iou": _rnd(statistics.fmean(p["iou"] for p in pairs)),
                     "chosen": _who(chosen), "chosen_annotation": chosen.annotation_id})
    by_category = [{"category": c, "pairs": len(v), "mean_iou": _rnd(statistics.fmean(v)),
                    "min_iou": _rnd(min(v))} for c, v in sorted(per_cat.items())]
    flags = {f: {"pairs": sum(n), "both": n[0], "neither": n[1], "disagree": n[2],
                 "agreement": _rnd((n[0] + n[1]) / sum(n)) if sum(n) else None} for f, n in flag_pairs.items()}
    return {"frames": len(rows), "pairs": len(ious), "mean_iou": _rnd(statistics.fmean(ious)) if ious else None,
            "by_category": by_category, "flags": flags, "rule": CHOICE_RULE, "per_frame": rows}
