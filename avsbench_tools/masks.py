"""The one mask/detection type, its adapters, and mask-version storage in the catalog.

`ObjectMask` is what every backend produces and every consumer reads: Grounding DINO boxes
(`from_dino`), SAM masks (`from_sam`), tracked masks (the tracker sets `tracked`), Label Studio
brush masks (studio stage) and the exporters (`mask_png`, `load_mask`). Masks are stored as
single-channel PNGs (0/255) under `ws/masks/`; each is one row of `mask_versions`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass, field

import numpy as np

from avsbench_tools.catalog import now
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


def from_sam(det: ObjectMask, masks: np.ndarray, iou_scores: np.ndarray) -> ObjectMask:
    """Pick SAM's best of its multimask outputs for a box prompt; keep the detection's identity."""
    masks = np.asarray(masks).reshape(-1, *np.asarray(masks).shape[-2:])
    scores = np.asarray(iou_scores, dtype=float).ravel()
    k = int(np.argmax(scores)) if scores.size else 0
    det.mask = masks[k] > 0 if masks.dtype != bool else masks[k]
    det.evidence = {**det.evidence, "sam_iou": round(float(scores[k]) if scores.size else 0.0, 4)}
    return det


# -- storage ---------------------------------------------------------------------------------
def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"{type(o).__name__} is not JSON serializable")


def settings_hash(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


def mask_png(mask: np.ndarray) -> bytes:
    from avsbench_tools.pngfast import encode_png

    return encode_png(mask.astype(np.uint8) * 255)


def load_mask(ws: Workspace, rel: str) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(ws.path(rel))) > 0


def save_versions(ws: Workspace, clip_id: str, objs: list[ObjectMask], kind: str, backend: str, settings: dict,
                  author: str | None = None, seconds: list[int] | None = None) -> int:
    """Write mask PNGs, then all rows in one transaction (and a 'done' marker per second, even if empty).

    Rows for the same (clip, settings hash) are replaced as a whole; other settings' rows are kept.
    """
    h = settings_hash(settings)
    base = ws.path("masks", clip_id, f"{kind}-{h}")
    rows = []
    written = []
    try:
        for o in objs:
            if o.mask is None:
                continue
            p = base / f"{o.second}_{o.fid}.png"
            written.append(p)
            atomic_write_bytes(p, mask_png(o.mask))
            rows.append((clip_id, o.second, o.fid, kind, o.category, float(o.score),
                         None if o.sounding is None else int(o.sounding),
                         json.dumps({**o.evidence, "tracked": bool(o.tracked), "lost": bool(o.lost), "box": o.box},
                                    sort_keys=True, default=_json_default),
                         backend, h, json.dumps(settings, sort_keys=True), ws.rel(p), now(), author))
        done_seconds = sorted(set(seconds if seconds is not None else [o.second for o in objs]))
        with ws.catalog.tx() as db:
            db.execute("DELETE FROM mask_versions WHERE clip_id=? AND kind=? AND settings_hash=?", (clip_id, kind, h))
            db.executemany("INSERT INTO mask_versions(clip_id, second, fid, kind, category, score, sounding, evidence, "
                           "backend, settings_hash, settings_json, path, created_at, author) "
                           "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)",
                       (f"masks-done:{kind}:{h}:{clip_id}", json.dumps(done_seconds)))
    except BaseException:
        # nothing committed: remove the files of this set unless an earlier committed set uses them
        kept = {r[0] for r in ws.catalog.query("SELECT path FROM mask_versions WHERE clip_id=? AND settings_hash=?",
                                               (clip_id, h))}
        for p in written:
            if ws.rel(p) not in kept:
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
        raise
    return len(rows)


def versions_done(ws: Workspace, clip_id: str, kind: str, settings: dict) -> bool:
    key = f"masks-done:{kind}:{settings_hash(settings)}:{clip_id}"
    return bool(ws.catalog.query("SELECT 1 FROM meta WHERE key=?", (key,)))


def latest_masks(ws: Workspace, clip_id: str, kinds: tuple[str, ...] = ("review", "proposal")) -> list[dict]:
    """The newest mask row per (second, fid), preferring reviewed over proposals (kind order)."""
    rows = ws.catalog.query("SELECT * FROM mask_versions WHERE clip_id=? ORDER BY version_id", (clip_id,))
    best: dict[tuple[int, int], dict] = {}
    rank = {k: i for i, k in enumerate(kinds)}
    for r in rows:
        if r["kind"] not in rank:
            continue
        key = (r["second"], r["fid"])
        cur = best.get(key)
        if cur is None or rank[r["kind"]] < rank[cur["kind"]] or (
                rank[r["kind"]] == rank[cur["kind"]] and r["version_id"] > cur["version_id"]):
            best[key] = dict(r)
    # a newer proposal run replaces the whole older set, not per object: keep one settings hash per kind
    newest = {}
    for r in best.values():
        if r["kind"] not in newest or r["version_id"] > newest[r["kind"]][0]:
            newest[r["kind"]] = (r["version_id"], r["settings_hash"])
    return sorted((r for r in best.values() if r["settings_hash"] == newest[r["kind"]][1]),
                  key=lambda r: (r["second"], r["fid"]))


NOT_SOUNDING_COLOUR = 7  # grey in the overlay palette


def latest_masks_for_preview(ws: Workspace, clip_id: str, second: int) -> list[tuple[int, np.ndarray]]:
    """(colour id, mask) per object; objects believed silent in this second are grey."""
    return [(r["fid"] if r["sounding"] != 0 else NOT_SOUNDING_COLOUR, load_mask(ws, r["path"]))
            for r in latest_masks(ws, clip_id) if r["second"] == second]
