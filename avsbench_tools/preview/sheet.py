"""What one contact sheet is made of: the clip as read from the catalog (`read_clip`: frames, audio,
activity, latest masks) and the sheet's rows, in inches (`layout`): the title, the frames (one cell
per second, each frame above the second it was sampled from) with their object lists, then the
waveform, the log-mel and the per-second level on the same time axis, and the key."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from avsbench_tools.catalog import Frame
from avsbench_tools.errors import AvsError, UsageError
from avsbench_tools.preview.marks import MAX_FRAME_H, MAX_LISTED, ObjectPlan, plan_objects, silent_seconds
from avsbench_tools.workspace import Workspace

DPI = 100


@dataclass
class ClipView:
    """What a sampled clip has for the sheet, read from the catalog and its audio file."""

    clip_id: str
    category: str | None
    seconds: int
    frames: list[Frame]  # by second
    mono: np.ndarray  # float32 in [-1, 1]
    sr: int
    activity: object | None  # audio.activity.Activity
    silent: list[bool]
    plan: ObjectPlan | None  # with --masks

    @property
    def audio_s(self) -> float:
        return self.mono.size / self.sr if self.sr else 0.0

    @property
    def short_audio(self) -> bool:
        return self.audio_s < self.seconds - 0.02


def read_clip(ws: Workspace, clip_id: str, masks: bool) -> ClipView:
    """The frames, audio, activity and (with `masks`) the latest masks of a sampled clip."""
    from avsbench_tools.audio.activity import Activity
    from avsbench_tools.audio.wav import read_wav

    clip = ws.catalog.clip(clip_id)
    frames = ws.catalog.frames(clip_id)
    audio = ws.catalog.audio(clip_id)
    if not frames or audio is None:
        raise UsageError(f"clip {clip_id} is not sampled yet; run avs-tools sample {ws.root} first")
    wav_path = ws.path(audio.wav_path)
    try:
        pcm, sr = read_wav(wav_path)
    except (OSError, ValueError, EOFError) as exc:
        raise AvsError(f"clip {clip_id}: cannot read its audio {wav_path}: {exc}; "
                       f"sample it again (avs-tools sample {ws.root} --clip {clip_id})") from None
    act = Activity.from_dict(audio.activity) if audio.activity else None
    seconds = max(int(clip.seconds), len(frames))
    plan = None
    if masks:
        from avsbench_tools.mask_store import shown_masks

        plan = plan_objects(shown_masks(ws, clip_id, include_unreviewed=True), ws.recipe.categories)
    mono = pcm.astype(np.float32).mean(axis=1) / 32768.0 if pcm.size else np.zeros(0, np.float32)
    return ClipView(clip_id, clip.category, seconds, frames, mono, sr, act, silent_seconds(act, seconds), plan)


@dataclass
class Sheet:
    """The figure and where each row sits (bottom, height in inches)."""

    fig: object
    width: float
    height: float
    left: float
    cell: float
    seconds: int
    key_cols: int
    frame_w: float
    tops: dict[str, tuple[float, float]] = field(default_factory=dict)

    def axes(self, name: str, x0: float, w: float):
        b, h = self.tops[name]
        return self.fig.add_axes((x0 / self.width, b / self.height, w / self.width, h / self.height))

    def band(self, name: str):
        """An axes across the whole time axis, in row `name`."""
        return self.axes(name, self.left, self.seconds * self.cell)


def layout(view: ClipView) -> Sheet:
    """Size the sheet: frames sit above the second they were sampled from, aspect ratio kept."""
    from matplotlib.figure import Figure

    seconds, plan, act = view.seconds, view.plan, view.activity
    n_keys = 1 + any(view.silent) + 2 * (act is not None) + view.short_audio + 2 * bool(plan is not None
                                                                                         and plan.colours)
    key_cols = 3 if seconds <= 5 else 4
    cell = 2.6 if seconds <= 5 else 1.9
    gap = 0.08
    fw = max(1, int(view.frames[0].width or 16))
    fh_ = max(1, int(view.frames[0].height or 9))
    frame_h = min((cell - gap) * fh_ / fw, MAX_FRAME_H)
    frame_w = frame_h * fw / fh_  # portrait frames are narrower than their cell, never taller than MAX_FRAME_H
    listed = 0
    if plan is not None:
        listed = min(MAX_LISTED + 1, max([len(v) for v in plan.by_second.values()] + [1]))
    left, right = 0.95, 0.3
    rows = [("title", 0.62), ("ftitle", 0.22), ("frames", frame_h), ("legend", 0.06 + 0.16 * listed),
            ("gap", 0.2), ("wave", 1.05), ("gap", 0.1), ("mel", 1.35), ("gap", 0.1), ("level", 1.1),
            ("caption", 0.5 + 0.19 * math.ceil(n_keys / key_cols))]
    width = left + seconds * cell + right
    height = sum(h for _, h in rows)
    sheet = Sheet(Figure(figsize=(width, height), dpi=DPI), width, height, left, cell, seconds, key_cols, frame_w)
    y = height
    for name, h in rows:
        sheet.tops[name] = (y - h, h)
        y -= h
    return sheet
