"""When a clip counts as reviewed: every frame its exported form supervises is reviewed.

The exported form decides which frames carry a mask: S4/MS3/Ref-AVS by the recipe's `[annotate]`
rule per split; AVSS by the subset the clip lands in (v1s train: frame 0 only; v1m, v2 and the other
splits: every frame), and the subset follows from the sounding categories of the masks exported
(release_clip's rule: two or more make a 5 s clip v1m). So reviews of seconds 0, 2, 4 of an AVSS
train clip that show two classes make it v1m, which needs all five frames: the clip is not reviewed
until seconds 1 and 3 are. A clip without a split yet (splits are drawn by the first export) needs
every frame. `pull` (stage "pull" done/partial), `status`, `qa` and `export` all count with this rule.
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


def needed_seconds(recipe, clip, seconds: int, masks: Iterable, src=None) -> set[int]:
    """The seconds (0..seconds-1) that the exported form of `clip` supervises, given the masks it would be
    exported with (objects with .category, .sounding; their sounding categories decide an AVSS subset)."""
    f = formats.get(recipe.format)
    if not f.semantic:
        return {s for s in recipe.annotated_seconds(clip.split, seconds) if s < seconds}
    from avsbench_tools.writers.avss import avss_label, supervised_seconds

    cats = {m.category or clip.category for m in masks if (m.sounding is None or bool(m.sounding))
            and (m.category or clip.category)}
    label = source_subset(src) or avss_label(seconds, len(cats))
    return set(supervised_seconds(label, clip.split, seconds))


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
