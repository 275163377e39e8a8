"""Mask storage: a clip's masks as catalog `MaskVersion`s (1-bit PNGs under WS/masks/), and THE rule of
which masks a clip shows.

- `save_versions` stores a set of `masks.ObjectMask`s (one transaction, `Catalog.save_mask_set`);
  `versions_done` says whether a set was stored whole; `write_mask` writes one PNG (the pull's review
  masks), `load_mask` reads one back;
- `latest_masks` picks, per (second, object), the newest version of the preferred kind;
- `shown_masks(ws, clip, include_unreviewed)` is the one rule every consumer of "the clip's masks"
  uses (export, preview, qa): a reviewed second shows its review and nothing else (a proposal the
  annotator deleted never comes back); an unreviewed second shows its proposals only when
  `include_unreviewed`, else nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json

import numpy as np

from avsbench_tools.catalog import MaskVersion
from avsbench_tools.fsutil import atomic_write_bytes
from avsbench_tools.masks import ObjectMask
from avsbench_tools.workspace import Workspace

KINDS = ("review", "proposal")  # preference order: a review over a proposal


def settings_hash(settings: dict) -> str:
    """The short id of a settings dict (its sorted JSON): mask versions made with it share it."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


def mask_png(mask: np.ndarray) -> bytes:
    """A bool mask as the PNG every stored mask is: 1-bit grey, painted white (pngfast.encode_png_1bit: ~5x smaller
    and ~4x faster to read back than 8-bit 0/255; masks stored as 8-bit 0/255 before are read the same)."""
    from avsbench_tools.pngfast import encode_png_1bit

    return encode_png_1bit(mask)


def write_mask(ws: Workspace, clip_id: str, folder: str, name: str, mask: np.ndarray):
    """Write one mask PNG at WS/masks/<clip>/<folder>/<name>.png (atomically); returns its absolute path
    (`ws.rel` of it is what a MaskVersion or review row records)."""
    p = ws.path("masks", clip_id, folder, f"{name}.png")
    atomic_write_bytes(p, mask_png(mask))
    return p


def load_mask(ws: Workspace, rel: str) -> np.ndarray:
    """A stored mask PNG (path relative to the workspace) as a bool array [H, W]."""
    from avsbench_tools.pngfast import read_mask

    return read_mask(ws.path(rel))


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


def latest_masks(ws: Workspace, clip_id: str, kinds: tuple[str, ...] = KINDS,
                 versions: list[MaskVersion] | None = None) -> list[MaskVersion]:
    """The newest version per (second, fid), preferring the earlier kind in `kinds` (a review over a
    proposal), by (second, fid). A newer set of one kind replaces the whole older set of that kind, not
    object by object: only the newest settings hash per kind is kept. Mixes kinds within a second: use
    `shown_masks` for what a clip shows. `versions`: the clip's versions already read (any kinds, oldest
    first: `Catalog.mask_versions`), else read."""
    rank = {k: i for i, k in enumerate(kinds)}
    best: dict[tuple[int, int], MaskVersion] = {}
    for v in (ws.catalog.mask_versions(clip_id, kinds) if versions is None else versions):
        if v.kind not in rank:
            continue
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


def reviewed_seconds(ws: Workspace, clip_id: str, versions: list[MaskVersion] | None = None) -> set[int]:
    """The seconds of the clip's current review set (with or without objects); for reviews saved
    without a set record, the seconds of its review versions (`versions`, else read)."""
    seconds = ws.catalog.review_seconds(clip_id)
    if seconds:
        return set(seconds)
    if versions is None:
        versions = ws.catalog.mask_versions(clip_id, ("review",))
    return {v.second for v in versions if v.kind == "review"}


def shown_masks(ws: Workspace, clip_id: str, include_unreviewed: bool = False,
                versions: list[MaskVersion] | None = None) -> list[MaskVersion]:
    """THE masks a clip shows, by (second, fid): its review in every reviewed second (only the review:
    an object the annotator deleted is gone, a frame reviewed empty stays empty), and in the other
    seconds its newest proposals when `include_unreviewed`, else nothing. `versions`: the clip's versions
    already read (every kind: `Catalog.mask_versions`), else read."""
    latest = latest_masks(ws, clip_id, KINDS if include_unreviewed else ("review",), versions)
    reviewed = reviewed_seconds(ws, clip_id, latest)
    return [v for v in latest if v.kind == "review" or v.second not in reviewed]
