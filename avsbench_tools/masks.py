"""The one mask/detection type, its adapters, and mask-version storage in the catalog.

`ObjectMask` is the in-memory type every backend produces and every consumer reads: Grounding DINO
boxes (`from_dino`), SAM masks (`from_sam`), tracked masks (the tracker sets `tracked`), Label
Studio brush masks (studio stage) and the exporters. Stored, a mask is a catalog `MaskVersion`
(one row of `mask_versions`, its PNG (0/255) under `ws/masks/`): `save_versions` stores a set of
ObjectMasks (`MaskVersion.from_object_mask` rows, `Catalog.save_mask_set`), `latest_masks` picks
the versions a clip shows, and `MaskVersion.to_object_mask(ws.root)` loads one back.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass, field

import numpy as np

from avsbench_tools.catalog import MaskVersion
from avsbench_tools.fsutil import atomic_write_bytes
from avsbench_tools.workspace import Workspace


@dataclass
class ObjectMask:
    """One object in one sampled frame."""

    second: int
    fid: int  # object id, stable across a clip's frames
    category: str | None
    mask: np.ndarray | None  # bool [H, W]; None for a box-only detection
    box: tuple[float, float, float, float] | None = None  # x0, y0, x1, y1 in pixels
    score: float = 0.0
    sounding: bool | None = None  # believed to make sound in this second
    evidence: dict = field(default_factory=dict)  # why: activity dB, tagger scores, tracker state
    tracked: bool = False  # carried from the key frame rather than detected here
    lost: bool = False  # the tracker lost it in this frame (mask may be empty)


def box_of(mask: np.ndarray) -> tuple[float, float, float, float] | None:
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return None
    return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    inter = np.logical_and(a, b).sum()
    union = np.logical_or(a, b).sum()
    return float(inter / union) if union else 1.0


# -- adapters --------------------------------------------------------------------------------
def from_dino(second: int, boxes, scores, labels: list[str], shape: tuple[int, int],
              category_of) -> list[ObjectMask]:
    """Grounding DINO post-processed output -> box-only ObjectMasks (fid assigned later).

    Boxes are clipped to the frame (shape = (H, W)); boxes thinner than a pixel are dropped;
    category_of(phrase) maps the detected phrase onto a category (or None)."""
    h, w = shape
    out = []
    for b, s, lab in zip(np.asarray(boxes, dtype=float).reshape(-1, 4), np.asarray(scores, dtype=float).ravel(),
                         labels, strict=True):
        lab = str(lab).strip()
        x0, x1 = (min(max(float(v), 0.0), w) for v in (b[0], b[2]))
        y0, y1 = (min(max(float(v), 0.0), h) for v in (b[1], b[3]))
        if x1 - x0 < 1 or y1 - y0 < 1:
            continue
        out.append(ObjectMask(second, -1, category_of(lab), None, (x0, y0, x1, y1), float(s),
                              evidence={"phrase": lab, "detector": "grounding-dino"}))
    return out


def from_studio(result: dict, second: int, fid: int, shape: tuple[int, int], category: str | None = None,
                threshold: int = 128) -> ObjectMask:
    """A Label Studio brush result (`type` "brushlabels", `value.format` "rle") -> a reviewed ObjectMask.

    The RLE covers the RGBA array of the mask at the result's `original_height` x `original_width`; its
    alpha channel is binarised at `alpha >= threshold` (the editor's strokes are anti-aliased: alpha 1..254
    at the edges) and, when that size is not the frame's (`shape` = (H, W)), resized to it (nearest).
    category: the brush label (the first of `brushlabels`) unless given. The evidence records the region
    id, its origin (prediction / prediction-changed / manual), the threshold and how many pixels had a
    partial alpha. A result that is not a brush RLE is a ValueError."""
    value = result.get("value") or {}
    if result.get("type") != "brushlabels" or value.get("format") != "rle" or not isinstance(value.get("rle"), list):
        raise ValueError(f"region {result.get('id')!r}: not a brush RLE result (type {result.get('type')!r})")
    h = int(result.get("original_height") or shape[0])
    w = int(result.get("original_width") or shape[1])
    alpha = _decode_alpha(value["rle"], h, w)
    mask = alpha >= threshold
    if (h, w) != tuple(shape):
        from PIL import Image

        mask = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize((shape[1], shape[0]), Image.NEAREST)) > 0
    labels = value.get("brushlabels") or []
    evidence = {"region_id": result.get("id"), "origin": result.get("origin"), "alpha_threshold": int(threshold),
                "partial_alpha_pixels": int(np.count_nonzero((alpha > 0) & (alpha < 255)))}
    return ObjectMask(int(second), int(fid), category or (labels[0] if labels else None), mask, box_of(mask),
                      score=1.0, sounding=True, evidence=evidence)


def _decode_alpha(rle: list[int], height: int, width: int) -> np.ndarray:
    """The alpha channel [H, W] (uint8) of a brush RLE (our codec: reads the SDK's and the editor's output)."""
    from avsbench_tools.studio.rle import decode

    return decode(rle, height, width)


def from_sam(det: ObjectMask, masks: np.ndarray, iou_scores: np.ndarray) -> ObjectMask:
    """Pick SAM's best of its multimask outputs for a box prompt; keep the detection's identity."""
    masks = np.asarray(masks).reshape(-1, *np.asarray(masks).shape[-2:])
    scores = np.asarray(iou_scores, dtype=float).ravel()
    k = int(np.argmax(scores)) if scores.size else 0
    det.mask = masks[k] > 0 if masks.dtype != bool else masks[k]
    det.evidence = {**det.evidence, "sam_iou": round(float(scores[k]) if scores.size else 0.0, 4)}
    return det


# -- storage ---------------------------------------------------------------------------------
def settings_hash(settings: dict) -> str:
    """The short id of a settings dict (its sorted JSON): mask versions made with it share it."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


def mask_png(mask: np.ndarray) -> bytes:
    from avsbench_tools.pngfast import encode_png

    return encode_png(mask.astype(np.uint8) * 255)


def load_mask(ws: Workspace, rel: str) -> np.ndarray:
    """A stored mask PNG (path relative to the workspace) as a bool array [H, W]."""
    from PIL import Image

    return np.asarray(Image.open(ws.path(rel))) > 0


def save_versions(ws: Workspace, clip_id: str, objs: list[ObjectMask], kind: str, backend: str, settings: dict,
                  author: str | None = None, seconds: list[int] | None = None) -> int:
    """Store a clip's mask set: the PNGs first, then its MaskVersion rows and the set's record of done
    seconds (even those without objects) in one transaction (`Catalog.save_mask_set`).

    The versions of the same (clip, kind, settings hash) are replaced as a whole; other settings' are
    kept. Box-only ObjectMasks (mask None) are not stored. Returns the number of versions stored.
    """
    h = settings_hash(settings)
    base = ws.path("masks", clip_id, f"{kind}-{h}")
    versions: list[MaskVersion] = []
    written = []
    try:
        for o in objs:
            if o.mask is None:
                continue
            p = base / f"{o.second}_{o.fid}.png"
            written.append(p)
            atomic_write_bytes(p, mask_png(o.mask))
            versions.append(MaskVersion.from_object_mask(o, clip_id, kind, backend, h, settings, ws.rel(p), author))
        done_seconds = sorted(set(seconds if seconds is not None else [o.second for o in objs]))
        return ws.catalog.save_mask_set(clip_id, kind, h, versions, done_seconds)
    except BaseException:
        # nothing committed: remove the files of this set unless an earlier committed set uses them
        kept = ws.catalog.mask_paths(clip_id, h)
        for p in written:
            if ws.rel(p) not in kept:
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
        raise


def versions_done(ws: Workspace, clip_id: str, kind: str, settings: dict) -> bool:
    """True if the clip's mask set of this kind and these settings was stored whole."""
    return ws.catalog.mask_set_done(clip_id, kind, settings_hash(settings))


def latest_masks(ws: Workspace, clip_id: str, kinds: tuple[str, ...] = ("review", "proposal")) -> list[MaskVersion]:
    """The versions a clip shows: the newest per (second, fid), preferring the earlier kind in `kinds`
    (a review over a proposal), by (second, fid). A newer set of one kind replaces the whole older set
    of that kind, not object by object: only the newest settings hash per kind is kept."""
    rank = {k: i for i, k in enumerate(kinds)}
    best: dict[tuple[int, int], MaskVersion] = {}
    for v in ws.catalog.mask_versions(clip_id, kinds):
        key = (v.second, v.fid)
        cur = best.get(key)
        if cur is None or (rank[v.kind], -v.version_id) < (rank[cur.kind], -cur.version_id):
            best[key] = v
    newest: dict[str, MaskVersion] = {}
    for v in best.values():
        if v.kind not in newest or v.version_id > newest[v.kind].version_id:
            newest[v.kind] = v
    return sorted((v for v in best.values() if v.settings_hash == newest[v.kind].settings_hash),
                  key=lambda v: (v.second, v.fid))
