"""The numbers of a release: counts from the metadata, and mask statistics from whole clips spread over it.

Counts that need only the metadata cover every row. Those that need masks read whole clips, spread
evenly over the release, up to MAX_MASKS masks, and say how many clips they read. "Sounding
objects" per frame are what the masks can tell (by the format's mask kind): semantic label maps
(AVSS) the distinct class indices; per-object masks (Ref-AVS) the referred objects whose mask is
non-empty; binary masks (S4/MS3) cannot tell objects apart, so they report connected regions and
are labelled so.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from avsbench_tools import formats
from avsbench_tools.progress import Progress
from avsbench_tools.release_reader import Item, read_release
from avsbench_tools.validate import (
    MaskSurvey,
    clip_key,
    provenance_warnings,
    refavs_category,
    release_warnings,
)

MAX_MASKS = 4000  # mask files read for the mask statistics (whole clips, evenly spread over the release)
SOUNDING_LABEL = {  # by the format's mask kind
    "semantic": "sounding classes per annotated frame (distinct class indices in the label map; "
                "two objects of one class count once)",
    "per-object": "referred objects per annotated frame (objects whose mask is non-empty; a Ref-AVS mask shows "
                  "its object whether or not it sounds)",
    "binary": "connected regions per annotated mask (binary masks cannot tell objects apart: "
              "touching objects count once, an object split by occlusion counts twice)",
}


def _clip_masks(items: list[Item], fmt: str) -> dict[str, dict[str, dict[int, Path]]]:
    """clip -> object -> second -> mask path (one object per clip except Ref-AVS fids; null rows left out)."""
    out: dict[str, dict[str, dict[int, Path]]] = {}
    for it in items:
        if it.null:
            continue
        obj = str(it.row.get("fid", "0")) if formats.get(fmt).per_object else ""
        out.setdefault(clip_key(it, fmt), {}).setdefault(obj, {}).update(it.masks)
    return out


def _read_mask(path: Path) -> np.ndarray | None:
    from PIL import Image

    try:
        with Image.open(path) as im:
            arr = np.asarray(im if im.mode in ("L", "P", "1", "I;16", "I") else im.convert("L"))
    except (OSError, ValueError, SyntaxError):
        return None
    return arr


def provenance(root: Path) -> dict | None:
    """What the release's DATASET_CARD.md (export writes it at the release root) says of where its object masks
    come from: {"reviewed", "proposals", "masks", "share_unreviewed", "card"}; None without a card."""
    import re

    for folder in (root, root.parent):
        card = folder / "DATASET_CARD.md"
        try:
            text = card.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        rev = re.search(r"^- object masks from human review: (\d+)$", text, re.M)
        pro = re.search(r"^- object masks from unreviewed pre-annotation: (\d+)$", text, re.M)
        if rev and pro:
            r, p = int(rev.group(1)), int(pro.group(1))
            return {"reviewed": r, "proposals": p, "masks": r + p, "share_unreviewed": p / (r + p) if r + p else 0.0,
                    "card": card.name}
    return None


def compute_stats(root: Path, fmt: str, progress: Progress | None = None) -> dict:
    """The statistics of the release at `root` in layout `fmt` (a dict; '_areas' holds the raw mask areas)."""
    progress = progress or (lambda *a: None)
    rel = read_release(root, fmt)
    f = formats.get(fmt)
    items = rel.items
    st: dict = {"format": fmt, "root": str(rel.root), "rows": len(items)}
    videos: dict[str, set] = defaultdict(set)  # split -> video keys
    per_cat_split: dict[str, Counter] = defaultdict(Counter)
    annotated = Counter()
    media_missing = 0
    objects_per_video: dict[str, set] = defaultdict(set)
    expr_len: list[int] = []
    for it in items:
        videos[it.split].add(clip_key(it, fmt))
        annotated[it.split] += len(it.masks)
        if not it.frames[0].exists():
            media_missing += 1
        if f.semantic:
            objs = [o for o in str(it.row.get(f.category_column, "")).split("_") if o]
            for o in set(objs):
                per_cat_split[o][it.split] += 1
            objects_per_video[it.name] = set(objs) - {"background"}
        elif f.per_object:
            if not it.null:
                per_cat_split[refavs_category(it)][it.split] += 1
                objects_per_video[it.row["vid"]].add(it.row.get("fid"))
        elif f.category_column:
            per_cat_split[it.row.get(f.category_column) or "?"][it.split] += 1
        if f.per_object:
            expr_len.append(len(str(it.row.get("exp", "")).split()))
    st["videos_per_split"] = {s: len(v) for s, v in sorted(videos.items())}
    st["videos"] = len(set().union(*videos.values())) if videos else 0
    st["rows_per_split"] = dict(sorted(Counter(it.split for it in items).items()))
    st["annotated_frames_per_split"] = dict(sorted(annotated.items()))
    st["per_category_split"] = {c: dict(v) for c, v in sorted(per_cat_split.items())}
    named = f.per_object or f.category_column is not None  # MS3 metadata names no category
    st["categories"] = len([c for c in per_cat_split if c not in ("background", "?")]) if named else None
    st["media_missing_rows"] = media_missing
    if objects_per_video:
        st["objects_per_video"] = dict(sorted(Counter(len(v) for v in objects_per_video.values()).items()))
        st["objects_per_video_label"] = ("sounding categories per video (a_obj)" if f.semantic
                                         else "referred objects per video (distinct fid)")
    if expr_len:
        st["expression_words"] = {"mean": float(np.mean(expr_len)), "max": int(max(expr_len)),
                                  "min": int(min(expr_len)), "histogram": dict(sorted(Counter(expr_len).items()))}
        st["null_expressions"] = sum(1 for it in items if it.null)
    _mask_stats(st, rel, fmt, progress)
    return st


def _mask_stats(st: dict, rel, fmt: str, progress: Progress) -> None:
    """Masks of whole clips spread evenly over the release: areas, sounding objects per frame, the survey."""
    import cv2

    f = formats.get(fmt)
    clips = _clip_masks(rel.items, fmt)
    total_masks = sum(len(m) for objs in clips.values() for m in objs.values())
    step = max(1, math.ceil(total_masks / MAX_MASKS))
    chosen = list(clips)[::step]
    survey = MaskSurvey(clips_total=len(clips))
    areas: list[float] = []
    per_frame: Counter = Counter()
    read, absent = 0, 0
    for i, ck in enumerate(chosen):
        seconds: dict[int, int] = defaultdict(int)  # Ref-AVS: objects sounding at each second
        for _obj, masks in clips[ck].items():
            for sec, p in sorted(masks.items()):
                survey.add(ck, p, None)
                m = _read_mask(p) if p.exists() else None
                if m is None:
                    absent += 1
                    continue
                read += 1
                survey.add(ck, p, m)
                fg = m > 0
                areas.append(float(fg.mean()))
                if f.semantic:
                    per_frame[len(set(np.unique(m).tolist()) - {0})] += 1
                elif f.per_object:
                    seconds[sec] += int(fg.any())
                else:
                    n, _ = cv2.connectedComponents(fg.astype(np.uint8))
                    per_frame[n - 1] += 1
        if f.per_object:
            for sec in {s for masks in clips[ck].values() for s in masks}:
                if all(p in survey.nonempty for masks in clips[ck].values() for s, p in masks.items() if s == sec):
                    per_frame[seconds[sec]] += 1
        if i % 20 == 0 or i == len(chosen) - 1:
            progress("reading masks", i + 1, len(chosen), ck)
    st["mask_clips_read"] = len(chosen)
    st["mask_clips_total"] = len(clips)
    st["mask_files_read"] = read
    st["mask_files_absent"] = absent
    if areas:
        a = np.asarray(areas)
        st["mask_area"] = {"mean": float(a.mean()), "median": float(np.median(a)),
                           "empty_fraction": float((a == 0).mean()), "masks": len(a),
                           "histogram": np.histogram(a, bins=10, range=(0, 1))[0].tolist()}
        st["_areas"] = a
    if per_frame:
        st["sounding_per_frame"] = dict(sorted(per_frame.items()))
        st["sounding_per_frame_label"] = SOUNDING_LABEL[f.masks]
    st["warnings"] = release_warnings(rel, survey if read else None) + provenance_warnings(Path(rel.root))
    prov = provenance(Path(rel.root))
    if prov is not None:
        st["provenance"] = prov
        if prov["proposals"]:
            st["warnings"].append(f"{prov['proposals']} of {prov['masks']} object masks "
                                  f"({100 * prov['share_unreviewed']:.0f}%) are unreviewed machine proposals, "
                                  f"not human reviews (the release's {prov['card']})")

