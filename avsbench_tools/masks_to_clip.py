"""A clip's object masks -> the `writers.ReleaseClip` of one release format.

The one place that decides what a release's mask files hold, used by `export` (masks from the
catalog's mask versions) and by synth's gold release (masks from a synthetic world's exact ground
truth), so the two can never disagree:

- binary (S4, MS3): per second, the union of the objects that sound in it; the clip's category is
  the given one, else the most frequent category of its sounding objects, else 'unknown';
- semantic (AVSS): per second, each sounding object painted with its category's class index (objects
  without a known category stay background); `a_obj` lists the sounding categories in the order the
  masks come; the label (v1s/v1m/v2) and uid follow from it;
- per-object (Ref-AVS): one mask track per object id (fid), sounding or not, with the object's
  expressions, or the template 'the <category>' when it has none.

An object counts as sounding when its `sounding` is True or unknown (None). Masks are visited in the
order given: where objects overlap in an AVSS label map, the later one wins.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from avsbench_tools import formats
from avsbench_tools.masks import ObjectMask
from avsbench_tools.writers.avss import avss_label, avss_uid, class_list
from avsbench_tools.writers.release_writer import RefObject, ReleaseClip


@dataclass
class ClipNotes:
    """What a built clip lacks, for export's counts and warnings."""

    uncategorised: bool = False  # S4/MS3 'unknown', AVSS objects left as background, Ref-AVS 'object'
    objects: int = 0  # Ref-AVS objects written
    template_expressions: int = 0  # Ref-AVS objects given the template expression 'the <category>'


def is_sounding(o: ObjectMask) -> bool:
    """Sounding, or not known to be silent (a mask without a sounding verdict counts as sounding)."""
    return o.sounding is None or bool(o.sounding)


def masks_to_clip(fmt: str | formats.ReleaseFormat, masks: Iterable[ObjectMask], *, name: str, video_id: str,
                 start: float, split: str, frames: Sequence[np.ndarray], pcm: np.ndarray,
                 logmel: np.ndarray | None = None, category: str | None = None,
                 expressions: Mapping[int, Sequence[str]] | None = None, null_expressions: Sequence[str] = (),
                 recipe=None, avss_label: str | None = None) -> tuple[ReleaseClip, ClipNotes]:
    """The ReleaseClip of one clip in format `fmt`, and notes on what it lacks.

    masks: the clip's object masks (one per object and sampled second; `mask` bool [H, W]; those without
    a mask are ignored); frames: one RGB frame per second (their count is the clip's length); category:
    the clip's own category, if known; expressions: Ref-AVS texts per object id; recipe: its categories
    give the AVSS class indices (background first); avss_label: the AVSS subset (v1s/v1m/v2) the clip's source
    is known to belong to (a synthetic world's clip), else it follows from the sounding categories."""
    f = formats.get(fmt) if isinstance(fmt, str) else fmt
    objs = [o for o in masks if o.mask is not None]
    seconds = len(frames)
    rc = ReleaseClip(name=name, video_id=video_id, start=float(start), seconds=seconds, split=split,
                     frames=list(frames), pcm=pcm, logmel=logmel)
    notes = ClipNotes()
    shape = frames[0].shape[:2]
    if f.binary:
        _binary(rc, objs, shape, category, notes)
    elif f.semantic:
        _semantic(rc, objs, shape, category, class_list(recipe), notes, avss_label)
    else:
        _per_object(rc, objs, shape, category, expressions or {}, notes)
        rc.null_expressions = list(null_expressions)
    return rc, notes


def _binary(rc: ReleaseClip, objs: list[ObjectMask], shape, category: str | None, notes: ClipNotes) -> None:
    rc.masks = {s: np.zeros(shape, bool) for s in range(rc.seconds)}
    sounding = [o for o in objs if is_sounding(o)]
    for o in sounding:
        rc.masks[o.second] |= o.mask
    cats = [o.category for o in sounding if o.category]
    rc.category = category or (max(sorted(set(cats)), key=cats.count) if cats else None)
    if rc.category is None:
        rc.category = "unknown"
        notes.uncategorised = True


def _semantic(rc: ReleaseClip, objs: list[ObjectMask], shape, category: str | None, classes: list[str],
              notes: ClipNotes, label: str | None = None) -> None:
    index = {c: i for i, c in enumerate(classes)}
    rc.masks = {s: np.zeros(shape, np.uint8) for s in range(rc.seconds)}
    sounding = [o for o in objs if is_sounding(o)]
    lost = False
    for o in sounding:
        cat = o.category or category
        if cat in index:
            rc.masks[o.second][o.mask] = index[cat]
        else:
            lost = True  # no category (or one the recipe lacks): the object stays background
    if lost or not (category or any(o.category for o in sounding)):
        notes.uncategorised = True
    rc.sounding = [o.category or category for o in sounding if (o.category or category)]
    rc.avss_label = label or avss_label(rc.seconds, len(set(rc.sounding)))
    if rc.avss_label == "v1m":
        rc.video_id = rc.name  # v1m: uid == vid == the given name, <ytid>_<n> (export and gold name it so)
    rc.name = avss_uid(rc.avss_label, rc.video_id, rc.start, rc.seconds)


def _per_object(rc: ReleaseClip, objs: list[ObjectMask], shape, category: str | None,
                expressions: Mapping[int, Sequence[str]], notes: ClipNotes) -> None:
    for fid in sorted({o.fid for o in objs}):
        track = np.zeros((rc.seconds, *shape), bool)
        cat = None
        for o in objs:
            if o.fid == fid:
                track[o.second] = o.mask
                cat = cat or o.category
        cat = cat or category
        if not cat:
            cat, notes.uncategorised = "object", True
        texts = list(expressions.get(fid, ()))
        if not texts:
            texts = [f"the {cat.replace('_', ' ')}"]  # template: export warns, the card says so
            notes.template_expressions += 1
        notes.objects += 1
        rc.objects.append(RefObject(fid=fid, category=cat, masks=track, expressions=texts))
