"""What the contact sheet says, as pure functions tested directly: which seconds are silent, the sound
threshold line, one colour per object id, what each second draws, and the waveform's axis."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from avsbench_tools.catalog import MaskVersion

# one colour per object id: tab10 then tab20's light shades, greys left out (grey means silent)
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22",
           "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2",
           "#dbdb8d", "#9edae5"]
MARK_COLOUR = "#00a2ff"  # sampled frame times on the audio panels
SILENT_FILL = "#d9d9d9"
MAX_LISTED = 5  # objects listed under a frame; more are summarised
MAX_FRAME_H = 2.4  # inches


def silent_seconds(activity, seconds: int) -> list[bool]:
    """Per second: True when the clip's sound activity says nothing sounds in it.

    Seconds the activity does not cover (audio shorter than the clip) are silent. Without an
    activity record nothing is marked (unknown is not silent)."""
    if activity is None:
        return [False] * seconds
    active = list(activity.active)
    return [not (s < len(active) and bool(active[s])) for s in range(seconds)]


def sound_threshold(activity) -> float:
    """The level (dBFS) a second's level must reach to count as sound: `sample.sound_activity`'s
    rule (>= floor + min_relative_db, or >= abs_loud_db; never at or below abs_silence_db) as one line."""
    p = activity.params
    return max(min(float(activity.floor_db) + float(p.get("min_relative_db", 10.0)),
                   float(p.get("abs_loud_db", -30.0))), float(p.get("abs_silence_db", -60.0)))


def object_colours(fids) -> dict[int, str]:
    """One colour per object id of a clip, the same in every second: ids in increasing order take
    the palette in order, so up to len(PALETTE) objects never share a colour."""
    return {fid: PALETTE[i % len(PALETTE)] for i, fid in enumerate(sorted(set(int(f) for f in fids)))}


@dataclass
class DrawnObject:
    """One object's mask in one second, as drawn."""

    fid: int
    colour: str
    category: str | None
    score: float
    sounding: bool | None  # False: dashed outline, listed as silent
    path: str  # mask PNG, relative to the workspace
    kind: str = "proposal"

    @property
    def label(self) -> str:
        """The legend line: object id, category, score (and 'not sounding' when so believed)."""
        text = f"#{self.fid} {self.category or 'no category'} {self.score:.2f}"
        return text + (" (silent)" if self.sounding is False else "")


@dataclass
class ObjectPlan:
    """What the frames draw: a colour per object id, the objects of each second, the kinds and backends."""

    colours: dict[int, str] = field(default_factory=dict)
    by_second: dict[int, list[DrawnObject]] = field(default_factory=dict)
    kinds: list[str] = field(default_factory=list)
    backends: list[str] = field(default_factory=list)


def plan_objects(versions: Iterable[MaskVersion], categories=None) -> ObjectPlan:
    """Mask versions (`mask_store.shown_masks`) -> what each second draws, one colour per object id. Given the
    recipe's `categories`, an object takes its category's colour (`palette.label_colours`, the colour of its
    label in Label Studio); objects of one category are told apart by their `#id` tag."""
    versions = list(versions)
    plan = ObjectPlan(colours=object_colours(v.fid for v in versions))
    if categories is not None:
        from avsbench_tools.palette import colour_of

        cats = list(categories)
        plan.colours = {int(v.fid): colour_of(cats, v.category, plan.colours[int(v.fid)]) for v in versions}
    for v in sorted(versions, key=lambda v: (v.second, v.fid)):
        plan.by_second.setdefault(int(v.second), []).append(DrawnObject(
            fid=int(v.fid), colour=plan.colours[int(v.fid)], category=v.category, score=float(v.score or 0.0),
            sounding=None if v.sounding is None else bool(v.sounding), path=v.path, kind=v.kind or "proposal"))
        for value, acc in ((v.kind, plan.kinds), (v.backend, plan.backends)):
            if value and value not in acc:
                acc.append(value)
    return plan


def envelope(x: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bin start index, min, max) of x over `bins` equal bins (all samples when fewer)."""
    n = x.size
    if n <= bins:
        idx = np.arange(n)
        return idx, x, x
    edges = np.linspace(0, n, bins + 1).astype(int)
    return edges[:-1], np.minimum.reduceat(x, edges[:-1]), np.maximum.reduceat(x, edges[:-1])


def _dbfs(v: float) -> str:
    return f"{20 * math.log10(v):.0f}" if v > 0 else "-inf"


def wave_axis(peak: float) -> tuple[float, list[float], list[str]]:
    """The waveform's y limit and ticks, scaled to the clip's peak (full scale = 1.0): ticks at the
    peak and half of it (6 dB under), labelled in dBFS. A silent clip keeps full scale, unlabelled."""
    if peak <= 0:
        return 1.0, [], []
    return (peak * 1.12, [-peak, -peak / 2, 0.0, peak / 2, peak],
            [_dbfs(peak), _dbfs(peak / 2), "", _dbfs(peak / 2), _dbfs(peak)])
