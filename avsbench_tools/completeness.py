"""When a clip counts as reviewed: every frame its exported form supervises is reviewed.

The exported form decides which frames carry a mask: S4/MS3/Ref-AVS by the recipe's `[annotate]`
rule per split; AVSS by the subset the clip lands in (v1s train: frame 0 only; v1m, v2 and the other
splits: every frame), and the subset follows from the sounding categories of the masks exported
(masks_to_clip's rule: two or more make a 5 s clip v1m). So reviews of seconds 0, 2, 4 of an AVSS
train clip that show two classes make it v1m, which needs all five frames: the clip is not reviewed
until seconds 1 and 3 are. A clip without a split yet (splits are drawn by the first export) needs
every frame. `pull` (stage "pull" done/partial), `status`, `qa`, `push` and `export` all count with this rule.

Unverified classes never decide a clip's form (`clip_form`). A backend that cannot name classes (the registry's
`names_classes` is False: motion) labels every object with the clip's category, so its proposals say nothing of
how many classes sound. An AVSS clip's form comes, in order, from the subset its source states (`source_subset`),
its length (10 s: v2), then the sounding classes of its reviews and of class-naming proposals (two or more: v1m);
when fewer than two verified classes are known and some sounding mask is an unverified proposal, the form is
unknown: it needs every frame (push sends them all), and export leaves the clip out (counted, with a note and a
line in the card; `validate` and `stats` warn from the release's marker) rather than file it under v1s or v1m on a
guess, unless its reviews alone complete it (then the unverified proposals, all outside the frames it
supervises, are dropped). A release's v1s/v1m folders are what evaluations split by: a multi-source clip filed as
v1s (train: one supervised frame) would mislabel both subsets.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from avsbench_tools import formats


def source_subset(src) -> str | None:
    """The AVSS subset a source is known to belong to (a synthetic world's clip records it), else None."""
    try:
        label = json.loads(src.info_json).get("avss_label") if src is not None and src.info_json else None
    except (ValueError, AttributeError):
        return None
    return label if label in ("v1s", "v1m", "v2") else None


def class_verified(m) -> bool:
    """A mask whose class someone named: a review, or a proposal of a backend that names classes
    (preannotate's registry; motion does not: its objects carry the clip's category)."""
    if getattr(m, "kind", "review") == "review":
        return True
    from avsbench_tools.preannotate import REGISTRY

    backend = getattr(m, "backend", None)
    return backend in REGISTRY and REGISTRY[backend].names_classes


@dataclass
class ClipForm:
    """The exported form of a clip: its AVSS subset (None for the other formats, or unknown), the seconds it
    supervises, the masks it is built from, and whether the form is unknown (unverified classes could change it)."""

    label: str | None
    needed: set[int]
    masks: list
    unknown: bool = False


def _sounding_cats(masks, category) -> set[str]:
    return {m.category or category for m in masks if (m.sounding is None or bool(m.sounding))
            and (m.category or category)}


def _avss_label(seconds: int, masks, src, category) -> str | None:
    """The AVSS subset the masks decide (see the module docstring), None when unverified classes leave it open."""
    from avsbench_tools.writers.avss import avss_label

    stated = source_subset(src)
    if stated or avss_label(seconds, 0) == "v2":
        return stated or "v2"
    verified = _sounding_cats([m for m in masks if class_verified(m)], category)
    if len(verified) >= 2:
        return "v1m"
    if any(not class_verified(m) for m in masks if (m.sounding is None or bool(m.sounding))):
        return None
    return avss_label(seconds, len(verified))


def clip_form(recipe, clip, seconds: int, masks: Iterable, src=None, reviewed: Iterable[int] = ()) -> ClipForm:
    """The exported form of `clip` with the masks it would be exported with (objects with .category, .sounding,
    and for mask versions .kind, .backend): S4/MS3/Ref-AVS by the recipe's split rule, AVSS by `_avss_label`.
    reviewed: the clip's reviewed seconds (an unknown form falls back to what its verified masks decide when its
    reviews cover every frame that form supervises)."""
    masks = list(masks)
    f = formats.get(recipe.format)
    if not f.semantic:
        return ClipForm(None, {s for s in recipe.annotated_seconds(clip.split, seconds) if s < seconds}, masks)
    from avsbench_tools.writers.avss import supervised_seconds

    label = _avss_label(seconds, masks, src, clip.category)
    if label is None:
        kept = [m for m in masks if class_verified(m)]
        alt = _avss_label(seconds, kept, src, clip.category)
        need = set(supervised_seconds(alt, clip.split, seconds))
        reviewed = set(reviewed)
        if reviewed and need <= reviewed:
            return ClipForm(alt, need, kept)
        return ClipForm(None, set(range(seconds)), masks, unknown=True)
    return ClipForm(label, set(supervised_seconds(label, clip.split, seconds)), masks)


def needed_seconds(recipe, clip, seconds: int, masks: Iterable, src=None, reviewed: Iterable[int] = ()) -> set[int]:
    """The seconds (0..seconds-1) that the exported form of `clip` supervises, given the masks it would be
    exported with (`clip_form`; an unknown form: every second)."""
    return clip_form(recipe, clip, seconds, masks, src, reviewed).needed


def form_unknown_warning(n: int) -> str:
    """The warning on AVSS clips an export left out because unverified classes leave v1s/v1m open (export's card
    and stderr; validate and stats say it from the release's marker)."""
    return (f"{n} clip{'s' if n != 1 else ''} left out because {'their' if n != 1 else 'its'} single/multi-source form "
            "(v1s or v1m) would rest on classes no model named (proposals of a backend that labels every object "
            "with the clip's category)")


def unverified_warning(n: int, of: int) -> str:
    """The warning on exported clips that hold proposals of a backend that does not name classes."""
    return (f"{n} of {of} clips hold unreviewed proposals whose classes no model named (every object labelled "
            "with the clip's category)")


@dataclass
class ClipReview:
    """A clip's review state: the seconds its exported form needs, those reviewed, and whether it is complete."""

    clip_id: str
    needed: set[int]
    reviewed: set[int]

    @property
    def missing(self) -> set[int]:
        return self.needed - self.reviewed

    @property
    def complete(self) -> bool:
        return bool(self.reviewed) and not self.missing


def clip_review(ws, clip_id: str, clip=None, src=None) -> ClipReview | None:
    """The review state of a sampled clip from the catalog (its current review set), or None when the clip has
    no sampled frame."""
    cat = ws.catalog
    clip = clip or cat.clip(clip_id)
    frames = cat.frames(clip_id)
    if clip is None or not frames:
        return None
    from avsbench_tools.mask_store import reviewed_seconds, shown_masks

    reviews = shown_masks(ws, clip_id, include_unreviewed=False)
    reviewed = reviewed_seconds(ws, clip_id)
    if src is None:
        src = next((s for s in cat.sources() if s.source_id == clip.source_id), None)
    sampled = {f.second for f in frames}
    return ClipReview(clip_id, needed_seconds(ws.recipe, clip, len(frames), reviews, src) & sampled,
                      set(reviewed) & sampled)


def review_counts(ws) -> dict:
    """{"reviewed": clips complete, "partial": clips with some review but not complete, "complete": [ids],
    "partial_ids": [ids]} over the workspace's clips that have a review set."""
    cat = ws.catalog
    sources = {s.source_id: s for s in cat.sources()}
    clips = {c.clip_id: c for c in cat.clips()}
    done, partial = [], []
    for cid in sorted(cat.clip_ids_reviewed() & set(clips)):
        st = clip_review(ws, cid, clips[cid], sources.get(clips[cid].source_id))
        if st is None or not st.reviewed:
            continue
        (done if st.complete else partial).append(cid)
    return {"reviewed": len(done), "partial": len(partial), "complete": done, "partial_ids": partial}


def pull_states(ws) -> dict[str, str]:
    """{clip: "done" | "partial" | ...} of stage "pull": for a clip with a review set, the completeness rule
    (every frame its exported form supervises is reviewed; the count pull, qa and export give, and it follows
    the split export draws), else what the catalog records."""
    state = {st.clip_id: st.status for st in ws.catalog.stage_states() if st.stage == "pull"}
    rc = review_counts(ws)
    state.update({c: "done" for c in rc["complete"]})
    state.update({c: "partial" for c in rc["partial_ids"]})
    return state


def pull_counts(ws, n_clips: int) -> dict[str, int]:
    """The "pull" line of status: clips fully reviewed (`pull_states`), clips failed plus annotations a
    pull skipped (listed with the failures), the rest pending."""
    states = list(pull_states(ws).values())
    done = states.count("done")
    failed = states.count("failed") + len(ws.catalog.failures("pull"))
    return {"done": done, "failed": failed, "pending": max(n_clips - done - states.count("failed"), 0)}
