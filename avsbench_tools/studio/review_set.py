"""From Label Studio annotations to the catalog: one annotation -> a `StudioReview` with its region masks,
and a clip's pulled annotations -> its review set (`ClipReviews`). No server here: `pull.py` fetches.

Rules (the README and `avs-tools qa` state them too):
- only submitted annotations give masks; a cancelled (skipped) one is recorded with no regions and counted;
- a brush region's alpha is binarised at >= ALPHA_THRESHOLD (the editor anti-aliases stroke edges), the
  threshold is recorded with each mask;
- a region keeps the object id of the prediction it came from (region id "o<fid>"); a hand-drawn region
  gets a new id from HAND_DRAWN_FIDS up, shared with any region of the clip carrying the same expression
  text (so a Ref-AVS object drawn by hand in several frames stays one object), kept across pulls;
- "no sounding object": the frame's reviewed set is empty (its regions are dropped and counted);
  "unusable frame": a frame flag, and export leaves the clip out;
- several annotators on one frame: all are kept; the review set takes CHOICE_RULE (the latest submitted);
- a region's label becomes its object's category through `LabelRules`: a category the clip had before a
  set-category becomes the one that replaced it (a pull never restores an old category); a label outside
  the recipe keeps the proposal's category; both, and a label that contradicts a single-source clip's
  category, are reported (`label_problem`);
- an annotation with regions of a control the recipe does not know (a second BrushLabels, a polygon) is
  not stored: `parse_annotation` raises BadAnnotation, and pull lists it, skips it and tries it again.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from avsbench_tools.catalog.records import MaskVersion, now
from avsbench_tools.catalog.reviews import REVIEW_SET, SILENT, ClipReviews, StudioReview
from avsbench_tools.studio import labelling as config
from avsbench_tools.studio.rle import ALPHA_THRESHOLD  # 128: the editor anti-aliases stroke edges

HAND_DRAWN_FIDS = 1000
CHOICE_RULE = "the latest submitted annotation of a frame (by its updated_at, then annotation id)"
MASK_FROM, FRAME_FROM, TEXT_FROM = config.MASK, config.FRAME, config.EXPRESSION  # the labelling config's names
SETTINGS = {"source": "label-studio", "alpha_threshold": ALPHA_THRESHOLD, "choice": "latest-submitted"}
_PREDICTED = re.compile(r"o(\d+)")
#: result types that paint or outline a region on the image: only MASK_FROM's brushlabels are ours
REGION_TYPES = {"brushlabels", "brush", "bitmasklabels", "bitmask", "polygonlabels", "polygon", "rectanglelabels",
                "rectangle", "ellipselabels", "ellipse", "keypointlabels", "keypoint", "magicwand"}


class BadAnnotation(ValueError):
    """An annotation pull cannot use (malformed RLE, a size that is not the frame's, unknown controls)."""


@dataclass
class LabelRules:
    """How a pulled region label becomes its object's category, for one clip (see the module doc).

    labels: the recipe's categories; clip_category: the clip's category now; old: {a category the clip
    had before a set-category: the category it has now}; proposals: {fid: category of its proposal};
    single_source: the recipe has one sounding category per clip (a label other than the clip's is a
    contradiction)."""

    labels: set[str]
    clip_category: str | None = None
    old: dict[str, str] = field(default_factory=dict)
    proposals: dict[int, str | None] = field(default_factory=dict)
    single_source: bool = False

    @classmethod
    def of(cls, ws, clip_id: str) -> LabelRules:
        cat = ws.catalog
        clip = cat.clip(clip_id)
        current = clip.category if clip is not None else None
        old: dict[str, str] = {}
        for before, after in cat.category_changes(clip_id):
            if before:
                old[before] = after
        for k in list(old):  # follow a chain (a -> b -> c) to the category the clip has now
            seen = {k}
            while old[k] in old and old[k] not in seen:
                seen.add(old[k])
                old[k] = old[old[k]]
        if current:
            old.pop(current, None)
        props: dict[int, str | None] = {}
        for v in cat.mask_versions(clip_id, ["proposal"]):
            props[int(v.fid)] = v.category or props.get(int(v.fid))
        return cls(set(ws.recipe.categories), current, old, props, not ws.recipe.multi_source)

    def category(self, label: str | None, fid: int) -> tuple[str | None, str | None]:
        """(the category to store, the problem to report or None) for a region label on object `fid`."""
        fallback = self.proposals.get(fid) or self.clip_category
        if label in self.old:
            return self.old[label], f"old category {label!r} (the clip is {self.old[label]!r} since set-category)"
        if label is not None and label not in self.labels:
            return fallback, f"label {label!r} is not in the recipe (kept {fallback!r})"
        if label and self.single_source and self.clip_category and label != self.clip_category:
            return label, f"label {label!r} contradicts the clip's category {self.clip_category!r}"
        return label, None


@dataclass
class TaskInfo:
    """What pull knows of the frame task an annotation belongs to."""

    project_key: str
    task_id: int
    clip_id: str
    second: int
    shape: tuple[int, int]  # the frame's (H, W)
    model_versions: dict[int, str] = field(default_factory=dict)  # prediction id -> model_version


@dataclass
class FidBook:
    """The object ids of one clip's hand-drawn regions and expression texts (persisted as studio_objects)."""

    clip_id: str
    keys: dict[str, int]
    next_fid: int
    new: list[tuple[str, str, int]] = field(default_factory=list)  # (clip, key, fid) to store

    def register(self, key: str, fid: int) -> None:
        if key not in self.keys:
            self.keys[key] = fid
            self.new.append((self.clip_id, key, fid))

    def hand_drawn(self, annotation_id: int, region_id: str, text_key: str | None) -> int:
        """The fid of a hand-drawn region: the one it had in an earlier pull, else the one of its text, else new."""
        rkey = f"region:{annotation_id}:{region_id}"
        fid = self.keys.get(rkey)
        if fid is None and text_key:
            fid = self.keys.get(text_key)
        if fid is None:
            fid, self.next_fid = self.next_fid, self.next_fid + 1
        self.register(rkey, fid)
        return fid


def text_key(texts: list[str]) -> str | None:
    """The key of an expression text (lower case, single spaces), or None without text."""
    for t in texts:
        words = " ".join(t.lower().split())
        if words:
            return f"text:{words}"
    return None


def ls_time(value) -> str:
    """Label Studio's datetimes as one sortable text ('2026-01-02T03:04:05.123456Z')."""
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        from datetime import timezone

        value = value.astimezone(timezone.utc).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
    text = str(value).replace(" ", "T").replace("+00:00", "Z")
    if "." not in text and text.endswith("Z"):
        text = text[:-1] + ".000000Z"
    return text


def annotator_of(ann: dict, users: dict[int, str]) -> tuple[str | None, int | None]:
    """(email, user id) of the person who completed an annotation."""
    uid = ann.get("completed_by")
    uid = uid.get("id") if isinstance(uid, dict) else uid
    email = users.get(int(uid)) if uid is not None else None
    if email is None and ann.get("created_username"):
        email = str(ann["created_username"]).split(",")[0].strip() or None
    return email, (int(uid) if uid is not None else None)


def parse_annotation(ann: dict, task: TaskInfo, users: dict[int, str], fids: FidBook,
                     write_mask: Callable[[str, np.ndarray], str],
                     rules: LabelRules | None = None) -> tuple[StudioReview, int]:
    """One Label Studio annotation of a frame task -> (StudioReview, regions dropped on a silent frame).

    write_mask(name, mask) stores a region's bool mask and returns its path relative to the workspace
    (name: "<second>_a<annotation>_<stamp>_<fid>"); nothing is written unless every region decodes.
    rules: how a label becomes a category (each region keeps its raw "label", its "category" and any
    "problem"). BadAnnotation for an annotation pull cannot use (a malformed region, regions of a control
    the recipe does not know). Results of other (non-region) controls are ignored."""
    from avsbench_tools.studio.convert import flags_from_studio, from_studio

    email, uid = annotator_of(ann, users)
    parent = ann.get("parent_prediction")
    parent = int(parent.get("id") if isinstance(parent, dict) else parent) if parent is not None else None
    stamp = ls_time(ann.get("updated_at"))
    review = StudioReview(
        task.project_key, int(ann["id"]), task.task_id, task.clip_id, task.second,
        "cancelled" if ann.get("was_cancelled") else "submitted", email, uid,
        None if ann.get("lead_time") is None else float(ann["lead_time"]), ann.get("last_action"), parent,
        task.model_versions.get(parent) if parent is not None else None,
        ls_created_at=ls_time(ann.get("created_at")) or None, ls_updated_at=stamp, pulled_at=now())
    if not review.submitted:
        return review, 0
    results = [r for r in ann.get("result") or [] if isinstance(r, dict)]
    foreign = sorted({f"{r.get('from_name')} ({r.get('type')})" for r in results
                      if r.get("type") in REGION_TYPES and not (r.get("type") == "brushlabels"
                                                                 and r.get("from_name", MASK_FROM) == MASK_FROM)})
    if foreign:
        raise BadAnnotation(f"regions of a control the recipe does not know: {', '.join(foreign)} (only "
                            f"'{MASK_FROM}' brush labels are pulled; fix the project's labelling config)")
    review.flags = flags_from_studio(results)
    brushes = [r for r in results if r.get("type") == "brushlabels" and r.get("from_name", MASK_FROM) == MASK_FROM]
    if SILENT in review.flags:
        return review, len(brushes)
    texts: dict[str, list[str]] = {}
    for r in results:
        if r.get("type") == "textarea" and r.get("from_name") == TEXT_FROM and r.get("id"):
            texts.setdefault(str(r["id"]), []).extend(
                " ".join(t.split()) for t in (r.get("value") or {}).get("text") or [] if isinstance(t, str) and t.strip())
    decoded = []  # every region decoded before anything is written: a bad one skips the whole annotation
    seen: set[str] = set()
    for r in brushes:
        rid = str(r.get("id") or f"r{len(seen)}")
        if rid in seen:
            continue
        seen.add(rid)
        try:
            decoded.append((r, rid, from_studio(r, task.second, 0, task.shape, threshold=ALPHA_THRESHOLD)))
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise BadAnnotation(str(exc) if str(exc).startswith("region") else f"region {rid!r}: {exc}") from None
    file_stamp = re.sub(r"[^0-9]", "", stamp)[-12:] or "0"
    for r, rid, o in decoded:
        rtexts = texts.get(rid, [])
        m = _PREDICTED.fullmatch(rid)
        if m and r.get("origin") != "manual":
            fid = int(m.group(1))
        else:
            fid = fids.hand_drawn(review.annotation_id, rid, text_key(rtexts))
        key = text_key(rtexts)
        if key:
            fids.register(key, fid)
        path = write_mask(f"{task.second}_a{review.annotation_id}_{file_stamp}_{fid}", o.mask)
        category, problem = rules.category(o.category, fid) if rules is not None else (o.category, None)
        reg = {"region_id": rid, "fid": fid, "category": category, "label": o.category, "origin": r.get("origin"),
               "path": path, "pixels": int(o.mask.sum()), "box": o.box,
               "partial_alpha": o.evidence["partial_alpha_pixels"], "texts": rtexts}
        if problem:
            reg["problem"] = problem
        review.regions.append(reg)
    return review, 0


def choose(reviews: list[StudioReview]) -> StudioReview | None:
    """The review a frame's set takes (CHOICE_RULE) among its pulled annotations; None if none was submitted."""
    submitted = [r for r in reviews if r.submitted]
    return max(submitted, key=lambda r: (r.ls_updated_at, r.annotation_id)) if submitted else None


def by_frame(reviews: list[StudioReview]) -> dict[int, list[StudioReview]]:
    out: dict[int, list[StudioReview]] = {}
    for r in reviews:
        out.setdefault(r.second, []).append(r)
    return out


def clip_reviews(clip_id: str, reviews: list[StudioReview], expected: set[int],
                 rules: LabelRules | None = None) -> ClipReviews:
    """A clip's review set from all its pulled annotations (retracted ones are never chosen): per frame the
    chosen one (CHOICE_RULE). expected: the seconds that must be reviewed for the clip to count as done;
    rules: how each region's label becomes its category, applied again at every rebuild (so a
    set-category made after an annotation was pulled holds)."""
    reviews = [r for r in reviews if not r.retracted_at]
    out = ClipReviews()
    for second, frame in sorted(by_frame(reviews).items()):
        chosen = choose(frame)
        if chosen is None:
            continue
        out.seconds.append(second)
        if chosen.flags:
            out.flags[second] = list(chosen.flags)
        n = sum(r.submitted for r in frame)
        for reg in chosen.regions:
            fid = int(reg["fid"])
            if rules is not None:
                reg = dict(reg, category=rules.category(reg.get("label", reg.get("category")), fid)[0])
            out.reviewed_fids.add(fid)
            out.objects[fid] = reg.get("category") or out.objects.get(fid)
            for t in reg.get("texts") or []:  # one expression per wording (case aside) and object
                if t.lower() not in {x.lower() for x in out.expressions.setdefault(fid, [])}:
                    out.expressions[fid].append(t)
            out.versions.append(review_version(clip_id, chosen, reg, n))
    out.done = bool(out.seconds) and set(expected) <= set(out.seconds)
    return out


def review_version(clip_id: str, r: StudioReview, reg: dict, annotators: int) -> MaskVersion:
    """The MaskVersion of one region of a chosen review, its provenance in `evidence`."""
    evidence = {"annotator": r.annotator, "annotator_id": r.annotator_id, "lead_time": r.lead_time,
                "parent_prediction": r.parent_prediction, "model_version": r.model_version,
                "last_action": r.last_action, "origin": reg.get("origin"), "region_id": reg.get("region_id"),
                "task_id": r.task_id, "annotation_id": r.annotation_id, "project": r.project_key,
                "alpha_threshold": ALPHA_THRESHOLD, "partial_alpha_pixels": reg.get("partial_alpha"),
                "updated_at": r.ls_updated_at, "annotators": annotators, "choice": SETTINGS["choice"],
                "tracked": False, "lost": False, "box": reg.get("box")}
    return MaskVersion(None, clip_id, r.second, int(reg["fid"]), "review", reg.get("category"), 1.0, True, evidence,
                       "studio", REVIEW_SET, dict(SETTINGS), reg["path"], now(), r.annotator)
