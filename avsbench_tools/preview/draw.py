"""Drawing the contact sheet (matplotlib, imported only when a preview is drawn): `render_preview`
reads the clip (`sheet.read_clip`), sizes the sheet (`sheet.layout`) and draws each row in turn:
the title, the frames with their masks and object lists, the waveform, the log-mel, the per-second
level, and the key."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from avsbench_tools.preview.marks import (
    MARK_COLOUR,
    MAX_LISTED,
    SILENT_FILL,
    envelope,
    sound_threshold,
    wave_axis,
)
from avsbench_tools.preview.png import SOFTWARE
from avsbench_tools.preview.sheet import DPI, ClipView, Sheet, layout, read_clip
from avsbench_tools.workspace import Workspace


@dataclass
class PreviewResult:
    """Where the PNG went and what it shows."""

    path: Path
    clip_id: str
    masks_requested: bool = False
    objects: int = 0  # object masks drawn
    silent: list[int] = field(default_factory=list)  # seconds marked silent


def render_preview(ws: Workspace, clip_id: str, masks: bool = False) -> tuple[bytes, PreviewResult]:
    """The PNG bytes of a sampled clip's contact sheet, and what it shows."""
    import matplotlib

    matplotlib.use("Agg")

    view = read_clip(ws, clip_id, masks)
    sheet = layout(view)
    draw_title(sheet, view, ws)
    drawn = draw_frames(sheet, view, ws)
    marks = [float(f.pts) for f in view.frames]
    draw_wave(sheet, view, marks)
    draw_mel(sheet, view, marks)
    draw_level(sheet, view, marks)
    draw_key(sheet, view, ws.recipe.sampling)
    buf = io.BytesIO()
    sheet.fig.savefig(buf, format="png", dpi=DPI,
                      metadata={"Software": SOFTWARE, "Title": f"{clip_id} preview", "Source": clip_id})
    result = PreviewResult(path=Path(), clip_id=clip_id, masks_requested=masks, objects=drawn,
                           silent=[s for s in range(view.seconds) if view.silent[s]])
    return buf.getvalue(), result


def draw_title(sheet: Sheet, view: ClipView, ws: Workspace) -> None:
    fig, width, height, seconds, plan = sheet.fig, sheet.width, sheet.height, view.seconds, view.plan
    fig.text(0.5 / width, 1 - 0.2 / height, view.clip_id, fontsize=13, fontweight="bold", va="top")
    sub = (f"{view.category or 'no category'} · {seconds} s · recipe {ws.recipe.name} · {ws.recipe.sampling} "
           f"frames · {sum(view.silent)} of {seconds} seconds silent")
    if plan is not None:
        n_obj = len(plan.colours)
        sub += (f" · masks: {n_obj} object{'s' if n_obj != 1 else ''} ({', '.join(plan.kinds)}"
                f"{'; ' + ', '.join(plan.backends) if plan.backends else ''})" if n_obj else
                f" · masks: none yet (run avs-tools preannotate {ws.root})")
    fig.text(0.5 / width, 1 - 0.45 / height, sub, fontsize=9, va="top", color="#333")


def draw_frames(sheet: Sheet, view: ClipView, ws: Workspace) -> int:
    """Each second's frame (greyed when silent) with its masks and legend; returns the masks drawn."""
    fig, width, height, cell, gap = sheet.fig, sheet.width, sheet.height, sheet.cell, 0.08
    plan = view.plan
    max_w = int(min(2 * cell * DPI, 640))
    drawn = 0
    by_sec = {int(f.second): f for f in view.frames}
    for s in range(view.seconds):
        fr = by_sec.get(s)
        x0 = sheet.left + s * cell + gap / 2
        ax = sheet.axes("frames", x0 + (cell - gap - sheet.frame_w) / 2, sheet.frame_w)
        ax.set_xticks([])
        ax.set_yticks([])
        img = _load_rgb(ws.path(fr.path), max_w) if fr else None
        if fr is not None:
            tb, th = sheet.tops["ftitle"]
            fig.text((x0 + (cell - gap) / 2) / width, (tb + 0.05) / height,
                     f"s{s} · #{fr.frame_index} · {fr.pts:.3f} s", ha="center", va="bottom",
                     fontsize=8 if cell > 2 else 7.5)
        if img is None:
            ax.set_facecolor("#eeeeee")
            ax.text(0.5, 0.5, "no frame" if fr is None else "frame file\nmissing", ha="center", va="center",
                    transform=ax.transAxes, fontsize=8, color="#a00")
            continue
        objs = plan.by_second.get(s, []) if plan is not None else []
        drawn += _draw_frame(ax, img, objs, view.silent[s], ws)
        if plan is not None:
            _draw_object_list(sheet, x0, objs)
    return drawn


def _draw_frame(ax, img: np.ndarray, objs: list, silent: bool, ws: Workspace) -> int:
    """One frame with its objects filled, outlined and tagged; returns the masks drawn."""
    loaded = [(o, _load_mask(ws.path(o.path), img.shape[:2])) for o in objs]
    loaded = [(o, m) for o, m in loaded if m is not None and m.any()]
    base = _greyed(img) if silent else img
    shown = base.astype(np.float32)
    for o, m in loaded:
        a = 0.4 if o.sounding is not False else 0.15
        shown[m] = (1 - a) * shown[m] + a * _rgb(o.colour)
    ax.imshow(shown.clip(0, 255).astype(np.uint8), interpolation="antialiased", aspect="equal")
    for o, m in loaded:
        ax.contour(m.astype(np.float32), levels=[0.5], colors=[o.colour],
                   linewidths=1.6, linestyles="dashed" if o.sounding is False else "solid")
        ys, xs = np.nonzero(m)
        top_edge = ys.min() < 0.08 * m.shape[0]  # no room above the mask: tag inside it
        ax.annotate(str(o.fid), (xs.min(), ys.min()), xytext=(2, -3) if top_edge else (0, 2),
                    textcoords="offset points", fontsize=7, color="white", fontweight="bold",
                    va="top" if top_edge else "bottom", ha="left", annotation_clip=False,
                    bbox={"boxstyle": "square,pad=0.15", "fc": o.colour, "ec": "none"})
    ax.set_xlim(-0.5, img.shape[1] - 0.5)
    ax.set_ylim(img.shape[0] - 0.5, -0.5)
    if silent:
        ax.text(0.97, 0.96, "silent", transform=ax.transAxes, ha="right", va="top", fontsize=9,
                color="#444", fontweight="bold",
                bbox={"boxstyle": "round,pad=0.3", "fc": "white", "ec": "#888", "alpha": 0.8})
        for sp in ax.spines.values():
            sp.set_edgecolor("#aaaaaa")
    return len(loaded)


def _draw_object_list(sheet: Sheet, x0: float, objs: list) -> None:
    """The legend under a frame: a colour square and `#id category score` per object."""
    fig, width, height = sheet.fig, sheet.width, sheet.height
    lb, lh = sheet.tops["legend"]
    for i, o in enumerate(objs[:MAX_LISTED]):
        fig.text(x0 / width, (lb + lh - 0.04 - 0.16 * (i + 1)) / height, "■", color=o.colour,
                 fontsize=8, va="bottom")
        fig.text((x0 + 0.14) / width, (lb + lh - 0.04 - 0.16 * (i + 1)) / height, o.label,
                 fontsize=7.2, va="bottom", color="#555" if o.sounding is False else "#111")
    if len(objs) > MAX_LISTED:
        fig.text((x0 + 0.14) / width, (lb + lh - 0.04 - 0.16 * (MAX_LISTED + 1)) / height,
                 f"and {len(objs) - MAX_LISTED} more", fontsize=7.2, va="bottom", color="#555")
    if not objs:
        fig.text(x0 / width, (lb + lh - 0.2) / height, "no mask", fontsize=7.2, va="bottom", color="#777")


def _decorate(ax, view: ClipView, marks: list[float], labels: bool = False, shade: bool = True) -> None:
    """The shared time axis of the audio panels: second lines, silent shading, sampled frame times."""
    seconds = view.seconds
    ax.set_xlim(0, seconds)
    ax.set_xticks(range(seconds + 1))
    ax.tick_params(labelsize=8, labelbottom=labels)
    for s in range(1, seconds):
        ax.axvline(s, color="#888", lw=0.5, alpha=0.5, zorder=1)
    for s in range(seconds):
        if shade and view.silent[s]:
            ax.axvspan(s, s + 1, color=SILENT_FILL, alpha=0.6, lw=0, zorder=0)
    if view.short_audio:
        ax.axvspan(view.audio_s, seconds, fc="none", ec="#999", hatch="//", lw=0, zorder=0)
    for t in marks:
        ax.axvline(t, color=MARK_COLOUR, lw=1.3, zorder=4)


def draw_wave(sheet: Sheet, view: ClipView, marks: list[float]) -> None:
    """The waveform's envelope, scaled to the clip's peak, with a dBFS axis."""
    mono, sr = view.mono, view.sr
    ax = sheet.band("wave")
    peak = float(np.abs(mono).max()) if mono.size else 0.0
    bins = int(view.seconds * sheet.cell * DPI * 2)
    idx, lo, hi = envelope(mono, bins)
    if mono.size:
        ax.fill_between(idx / sr, lo, hi, color="#333", lw=0.3, step="post", zorder=3)
    lim, ticks, tick_labels = wave_axis(peak)
    ax.set_ylim(-lim, lim)
    ax.set_yticks(ticks)
    ax.set_yticklabels(tick_labels)
    if peak > 0:
        ax.axhline(0, color="#999", lw=0.5, zorder=2)
        title = f"waveform, scaled to its peak ({20 * math.log10(peak):.1f} dBFS)"
    else:
        title = "waveform: digital silence" if mono.size else "waveform: no audio"
    ax.set_ylabel("dBFS", fontsize=8)
    ax.text(0.005, 0.97, title, transform=ax.transAxes, fontsize=8, va="top",
            bbox={"fc": "white", "ec": "none", "alpha": 0.8, "pad": 1.5}, zorder=5)
    _decorate(ax, view, marks)
    ax.plot(marks, [lim] * len(marks), "v", color=MARK_COLOUR, ms=6, clip_on=False, zorder=6)


def draw_mel(sheet: Sheet, view: ClipView, marks: list[float]) -> None:
    """The log-mel spectrogram VGGish sees, in Hz and seconds."""
    from avsbench_tools.audio import logmel as lm

    mono, sr, seconds = view.mono, view.sr, view.seconds
    ax = sheet.band("mel")
    mel = lm.log_mel(mono.astype(np.float64), sr) if mono.size >= lm.WINDOW else np.zeros((0, lm.N_MELS))
    if mel.shape[0]:
        end = ((mel.shape[0] - 1) * lm.HOP + lm.WINDOW) / lm.SAMPLE_RATE
        vmax = float(mel.max())
        vmin = max(float(mel.min()), vmax - 12.0)  # 12 nats ~ 104 dB of range is plenty
        # the last analysis window ends within 10 ms of the audio's end: stretch over it, no blank strip
        right_edge = seconds if view.audio_s >= seconds - 0.02 else max(end, view.audio_s)
        ax.imshow(mel.T, origin="lower", aspect="auto", cmap="magma", interpolation="nearest",
                  extent=(0, right_edge, 0, lm.N_MELS), vmin=vmin, vmax=vmax, zorder=0)
    else:
        ax.set_facecolor("#eeeeee")
    ax.set_ylim(0, lm.N_MELS)
    step = (lm._hz_to_mel(lm.MEL_HI) - lm._hz_to_mel(lm.MEL_LO)) / (lm.N_MELS + 1)
    hz_ticks = [250, 500, 1000, 2000, 4000, 7000]
    ax.set_yticks([float((lm._hz_to_mel(h) - lm._hz_to_mel(lm.MEL_LO)) / step - 0.5) for h in hz_ticks])
    ax.set_yticklabels(["250", "500", "1k", "2k", "4k", "7k"])
    ax.set_ylabel("Hz (mel)", fontsize=8)
    ax.text(0.005, 0.97, f"log-mel, the {lm.N_MELS} bands VGGish hears "
            f"({lm.MEL_LO:.0f}-{lm.MEL_HI:.0f} Hz)", transform=ax.transAxes, fontsize=8, va="top",
            color="white", zorder=5)
    _decorate(ax, view, marks, shade=False)  # silent shading would hide the spectrogram


def draw_level(sheet: Sheet, view: ClipView, marks: list[float]) -> None:
    """Each second's sound level against the noise floor and the threshold sample used."""
    act, seconds, silent = view.activity, view.seconds, view.silent
    ax = sheet.band("level")
    if act is not None:
        floor = float(act.floor_db)
        levels = np.asarray(act.level_db[:seconds] + [-120.0] * (seconds - len(act.level_db)), float)
        thr = sound_threshold(act)
        base = min(floor, float(levels.min()), thr) - 4
        top = max(float(levels.max()), thr)
        top += max(8.0, 0.22 * (top - base))
        xs = np.arange(seconds) + 0.5
        cols = ["#bbbbbb" if silent[s] else "#2ca02c" for s in range(seconds)]
        ax.bar(xs, levels - base, bottom=base, width=0.82, color=cols, zorder=3)
        ax.axhline(floor, color="#555", lw=0.9, ls=":", zorder=4)
        ax.axhline(thr, color="#d62728", lw=0.9, ls="--", zorder=4)
        for s in range(seconds):
            what = (("silent" if silent[s] else "sound") if levels[s] <= -119.9  # under half a second of audio
                    else f"{'silent' if silent[s] else 'sound'} {levels[s] - floor:+.0f} dB")
            ax.text(xs[s], max(levels[s], base) + 1.5, what, ha="center",
                    va="bottom", fontsize=7.5, color="#555" if silent[s] else "#1a661a", zorder=5)
        ax.set_ylim(base, top)
        ax.set_ylabel("level\ndBFS", fontsize=8)
    else:
        ax.set_yticks([])
        ax.text(0.5, 0.5, "no sound activity recorded", transform=ax.transAxes, ha="center", fontsize=8)
    _decorate(ax, view, marks, labels=True)
    ax.set_xlabel("seconds", fontsize=8, labelpad=1)


def draw_key(sheet: Sheet, view: ClipView, sampling: str) -> None:
    """The key under the panels: frame times, silence, floor and threshold, missing audio, outlines."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    act = view.activity
    handles = [Line2D([], [], color=MARK_COLOUR, lw=1.5, marker="v", ms=5,
                      label=f"sampled frame times ({sampling})")]
    if any(view.silent):
        handles.append(Patch(fc=SILENT_FILL, label="silent second (frame greyed)"))
    if act is not None:
        handles += [Line2D([], [], color="#555", lw=0.9, ls=":", label=f"noise floor {act.floor_db:.0f} dBFS"),
                    Line2D([], [], color="#d62728", lw=0.9, ls="--",
                           label=f"sound threshold {sound_threshold(act):.0f} dBFS (floor "
                                 f"+{act.params.get('min_relative_db', 10):.0f} dB, at most "
                                 f"{act.params.get('abs_loud_db', -30):.0f}, at least "
                                 f"{act.params.get('abs_silence_db', -60):.0f})")]
    if view.short_audio:
        handles.append(Patch(fc="none", ec="#999", hatch="//", label=f"no audio after {view.audio_s:.2f} s"))
    if view.plan is not None and view.plan.colours:
        handles += [Patch(fc="none", ec="#444", lw=1.4, label="mask outline: sounding"),
                    Patch(fc="none", ec="#444", lw=1.4, ls="--", label="dashed: believed silent")]
    cb, ch = sheet.tops["caption"]
    sheet.fig.legend(handles=handles, loc="upper left",
                     bbox_to_anchor=(sheet.left / sheet.width, (cb + ch - 0.3) / sheet.height),
                     ncol=min(len(handles), sheet.key_cols), fontsize=7.5, frameon=False,
                     handlelength=2.2, columnspacing=1.5)


# -- pixels ------------------------------------------------------------------------------------------
def _load_rgb(path: Path, max_w: int) -> np.ndarray | None:
    from PIL import Image

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if im.width > max_w:
                im = im.resize((max_w, max(1, round(im.height * max_w / im.width))), Image.BILINEAR)
            return np.asarray(im)
    except (OSError, ValueError):
        return None


def _load_mask(path: Path, shape: tuple[int, int]) -> np.ndarray | None:
    from PIL import Image

    try:
        with Image.open(path) as im:
            im = im.convert("L")
            if (im.height, im.width) != shape:
                im = im.resize((shape[1], shape[0]), Image.NEAREST)
            return np.asarray(im) > 0
    except (OSError, ValueError):
        return None


def _greyed(img: np.ndarray) -> np.ndarray:
    grey = img.astype(np.float32) @ np.asarray([0.299, 0.587, 0.114], np.float32)
    return np.repeat((0.45 * grey + 0.55 * 235)[..., None], 3, axis=2).clip(0, 255).astype(np.uint8)


def _rgb(colour: str) -> np.ndarray:
    return np.asarray([int(colour[i:i + 2], 16) for i in (1, 3, 5)], np.float32)
