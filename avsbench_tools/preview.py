"""preview: a contact sheet PNG of one clip, laid out on the clip's time axis.

Each sampled frame sits above the second it was sampled from (aspect ratio kept), titled with its
second, decoded frame index and presentation time. Silent seconds are greyed with a 'silent'
label. With masks, each object is filled and outlined in one colour per object id for the whole
clip (dashed outline: believed not to sound in that second), tagged with its id on the frame and
listed under it with its category and score. Under the frames, on the same time axis: the
waveform scaled to the clip's peak (dBFS axis), the log-mel spectrogram (Hz, seconds; the same
64 bands VGGish sees) and the per-second sound level against the clip's noise floor, with the
sampled frame times marked on each.

The PNG carries a text chunk `Software: avs-tools preview`, by which `--out` recognises a preview
it wrote earlier (and never overwrites any other file).
"""

from __future__ import annotations

import io
import math
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from avsbench_tools.errors import AvsError, UsageError
from avsbench_tools.fsutil import atomic_write_bytes, check_output_file
from avsbench_tools.workspace import Workspace

SOFTWARE = "avs-tools preview"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# one colour per object id: tab10 then tab20's light shades, greys left out (grey means silent)
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22",
           "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2",
           "#dbdb8d", "#9edae5"]
MARK_COLOUR = "#00a2ff"  # sampled frame times on the audio panels
SILENT_FILL = "#d9d9d9"
MAX_LISTED = 5  # objects listed under a frame; more are summarised
MAX_FRAME_H = 2.4  # inches


# -- what the picture says (pure functions, tested directly) -----------------------------------------
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
    colours: dict[int, str] = field(default_factory=dict)
    by_second: dict[int, list[DrawnObject]] = field(default_factory=dict)
    kinds: list[str] = field(default_factory=list)
    backends: list[str] = field(default_factory=list)


def plan_objects(rows) -> ObjectPlan:
    """Mask rows (`masks.latest_masks`) -> what each second draws, one colour per object id."""
    rows = [dict(r) for r in rows]
    plan = ObjectPlan(colours=object_colours(r["fid"] for r in rows))
    for r in sorted(rows, key=lambda r: (r["second"], r["fid"])):
        snd = r.get("sounding")
        plan.by_second.setdefault(int(r["second"]), []).append(DrawnObject(
            fid=int(r["fid"]), colour=plan.colours[int(r["fid"])], category=r.get("category"),
            score=float(r.get("score") or 0.0), sounding=None if snd is None else bool(snd),
            path=r["path"], kind=r.get("kind") or "proposal"))
        for key, acc in (("kind", plan.kinds), ("backend", plan.backends)):
            if r.get(key) and r[key] not in acc:
                acc.append(r[key])
    return plan


# -- ownership of an existing PNG ------------------------------------------------------------------
def png_text(path: Path, limit: int = 64 << 20) -> dict[str, str] | None:
    """The tEXt chunks of a PNG file, or None when it is not a readable PNG."""
    out: dict[str, str] = {}
    try:
        with open(path, "rb") as fh:
            if fh.read(8) != PNG_SIGNATURE:
                return None
            read = 8
            while read < limit:
                head = fh.read(8)
                if len(head) < 8:
                    return out
                n, kind = struct.unpack(">I4s", head)
                if kind == b"tEXt":
                    key, _, value = fh.read(n).partition(b"\0")
                    out[key.decode("latin-1")] = value.decode("latin-1")
                    fh.seek(4, io.SEEK_CUR)
                else:
                    fh.seek(n + 4, io.SEEK_CUR)
                read += n + 12
                if kind == b"IEND":
                    return out
    except OSError:
        return None
    return out


def is_our_png(path: Path) -> bool:
    """True when `path` is a preview avs-tools wrote (its `Software` text chunk says so)."""
    text = png_text(path)
    return bool(text) and text.get("Software", "").startswith(SOFTWARE)


def check_preview_out(path: Path) -> Path:
    """Refuse (one line) an --out the preview must not write: not .png, a folder, '.', a missing or
    unwritable folder, or an existing file that is not an earlier avs-tools preview."""
    path = Path(path)
    if path.name not in ("", ".", "..") and not path.is_dir() and path.suffix.lower() != ".png":
        raise UsageError(f"--out {path}: the preview is a PNG; name a .png file")
    return check_output_file(path, is_ours=path.is_file() and is_our_png(path))


# -- the stage ----------------------------------------------------------------------------------------
@dataclass
class PreviewResult:
    path: Path
    clip_id: str
    masks_requested: bool = False
    objects: int = 0  # object masks drawn
    silent: list[int] = field(default_factory=list)  # seconds marked silent


def _sampled_clips(ws: Workspace) -> list[str]:
    return [r[0] for r in ws.catalog.query(
        "SELECT clip_id FROM stage_status WHERE stage='sample' AND status='done' ORDER BY clip_id")]


def _choose_clip(ws: Workspace, clip_id: str | None) -> str:
    sampled = _sampled_clips(ws)
    if clip_id is not None:
        clip_id = ws.resolve_clip(clip_id)
    if not sampled:
        what = f"clip {clip_id} is not sampled: " if clip_id else ""
        raise UsageError(f"{what}nothing in workspace {ws.root} is sampled yet; "
                         f"run avs-tools sample {ws.root} first")
    if clip_id is None:
        return sampled[0]
    if clip_id not in sampled:
        raise UsageError(f"clip {clip_id} is not sampled yet; run avs-tools sample {ws.root} --clip {clip_id} "
                         f"first ({len(sampled)} other clips are sampled)")
    return clip_id


def preview_clip(ws: Workspace, clip_id: str | None = None, out: Path | None = None,
                 masks: bool = False) -> PreviewResult:
    """Render the contact sheet of `clip_id` (default: the first sampled clip) to `out` (default
    WS/previews/<clip>.png), atomically. Only reads the workspace (no lock needed)."""
    clip_id = _choose_clip(ws, clip_id)
    if out is not None:
        out = check_preview_out(out)
    else:
        out = ws.path("previews", f"{clip_id}.png")
        if out.parent.exists() and not out.parent.is_dir():
            raise UsageError(f"{out.parent} is not a folder; move it away or pass --out PATH.png")
        if out.exists():
            check_preview_out(out)
    png, result = render_preview(ws, clip_id, masks=masks)
    if out.parent == ws.path("previews"):
        out.parent.mkdir(exist_ok=True)
    atomic_write_bytes(out, png)
    result.path = out
    return result


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


def _envelope(x: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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


def render_preview(ws: Workspace, clip_id: str, masks: bool = False) -> tuple[bytes, PreviewResult]:
    """The PNG bytes of a sampled clip's contact sheet, and what it shows."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    from avsbench_tools.audio import logmel as lm
    from avsbench_tools.audio.wav import read_wav
    from avsbench_tools.sample import activity_of, sampled_frames

    clip = ws.catalog.clip(clip_id)
    frames = sampled_frames(ws, clip_id)
    arow = ws.catalog.query("SELECT wav_path FROM audio WHERE clip_id=?", (clip_id,))
    if not frames or not arow:
        raise UsageError(f"clip {clip_id} is not sampled yet; run avs-tools sample {ws.root} first")
    wav_path = ws.path(arow[0]["wav_path"])
    try:
        pcm, sr = read_wav(wav_path)
    except (OSError, ValueError, EOFError) as exc:
        raise AvsError(f"clip {clip_id}: cannot read its audio {wav_path}: {exc}; "
                       f"sample it again (avs-tools sample {ws.root} --clip {clip_id})") from None
    act = activity_of(ws, clip_id)
    seconds = max(int(clip.seconds), len(frames))
    silent = silent_seconds(act, seconds)
    plan = None
    if masks:
        from avsbench_tools.masks import latest_masks

        plan = plan_objects(latest_masks(ws, clip_id))

    mono = pcm.astype(np.float32).mean(axis=1) / 32768.0 if pcm.size else np.zeros(0, np.float32)
    audio_s = mono.size / sr if sr else 0.0
    short_audio = audio_s < seconds - 0.02
    n_keys = 1 + any(silent) + 2 * (act is not None) + short_audio + 2 * bool(plan is not None and plan.colours)
    key_cols = 3 if seconds <= 5 else 4

    # -- layout, in inches: frames sit above the second they were sampled from ---------------------
    dpi = 100
    cell = 2.6 if seconds <= 5 else 1.9
    gap = 0.08
    fw = max(1, int(frames[0].get("width") or 16))
    fh_ = max(1, int(frames[0].get("height") or 9))
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
    fig = Figure(figsize=(width, height), dpi=dpi)
    tops, y = {}, height
    for name, h in rows:
        tops[name] = (y - h, h)
        y -= h

    def axes(name: str, x0: float, w: float):
        b, h = tops[name]
        return fig.add_axes((x0 / width, b / height, w / width, h / height))

    def band(name: str):
        return axes(name, left, seconds * cell)

    cat = clip.category or "no category"
    fig.text(0.5 / width, 1 - 0.2 / height, clip_id, fontsize=13, fontweight="bold", va="top")
    sub = (f"{cat} · {seconds} s · recipe {ws.recipe.name} · {ws.recipe.sampling} frames"
           f" · {sum(silent)} of {seconds} seconds silent")
    if plan is not None:
        n_obj = len(plan.colours)
        sub += (f" · masks: {n_obj} object{'s' if n_obj != 1 else ''} ({', '.join(plan.kinds)}"
                f"{'; ' + ', '.join(plan.backends) if plan.backends else ''})" if n_obj else
                f" · masks: none yet (run avs-tools preannotate {ws.root})")
    fig.text(0.5 / width, 1 - 0.45 / height, sub, fontsize=9, va="top", color="#333")

    # -- frames ----------------------------------------------------------------------------------------
    max_w = int(min(2 * cell * dpi, 640))
    drawn = 0
    by_sec = {int(f["second"]): f for f in frames}
    for s in range(seconds):
        fr = by_sec.get(s)
        x0 = left + s * cell + gap / 2
        ax = axes("frames", x0 + (cell - gap - frame_w) / 2, frame_w)
        ax.set_xticks([])
        ax.set_yticks([])
        img = _load_rgb(ws.path(fr["path"]), max_w) if fr else None
        if fr is not None:
            tb, th = tops["ftitle"]
            fig.text((x0 + (cell - gap) / 2) / width, (tb + 0.05) / height,
                     f"s{s} · #{fr['frame_index']} · {fr['pts']:.3f} s", ha="center", va="bottom",
                     fontsize=8 if cell > 2 else 7.5)
        if img is None:
            ax.set_facecolor("#eeeeee")
            ax.text(0.5, 0.5, "no frame" if fr is None else "frame file\nmissing", ha="center", va="center",
                    transform=ax.transAxes, fontsize=8, color="#a00")
            continue
        objs = plan.by_second.get(s, []) if plan is not None else []
        loaded = [(o, _load_mask(ws.path(o.path), img.shape[:2])) for o in objs]
        loaded = [(o, m) for o, m in loaded if m is not None and m.any()]
        base = _greyed(img) if silent[s] else img
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
            drawn += 1
        ax.set_xlim(-0.5, img.shape[1] - 0.5)
        ax.set_ylim(img.shape[0] - 0.5, -0.5)
        if silent[s]:
            ax.text(0.97, 0.96, "silent", transform=ax.transAxes, ha="right", va="top", fontsize=9,
                    color="#444", fontweight="bold",
                    bbox={"boxstyle": "round,pad=0.3", "fc": "white", "ec": "#888", "alpha": 0.8})
            for sp in ax.spines.values():
                sp.set_edgecolor("#aaaaaa")
        if plan is not None:
            lb, lh = tops["legend"]
            lines = [o for o in objs][:MAX_LISTED]
            for i, o in enumerate(lines):
                fig.text(x0 / width, (lb + lh - 0.04 - 0.16 * (i + 1)) / height, "■", color=o.colour,
                         fontsize=8, va="bottom")
                fig.text((x0 + 0.14) / width, (lb + lh - 0.04 - 0.16 * (i + 1)) / height, o.label,
                         fontsize=7.2, va="bottom", color="#555" if o.sounding is False else "#111")
            if len(objs) > MAX_LISTED:
                fig.text((x0 + 0.14) / width, (lb + lh - 0.04 - 0.16 * (MAX_LISTED + 1)) / height,
                         f"and {len(objs) - MAX_LISTED} more", fontsize=7.2, va="bottom", color="#555")
            if not objs:
                fig.text(x0 / width, (lb + lh - 0.2) / height, "no mask", fontsize=7.2, va="bottom",
                         color="#777")

    # -- audio panels on the clip's time axis ---------------------------------------------------------
    marks = [float(f["pts"]) for f in frames]

    def decorate(ax, labels: bool = False, shade: bool = True):
        ax.set_xlim(0, seconds)
        ax.set_xticks(range(seconds + 1))
        ax.tick_params(labelsize=8, labelbottom=labels)
        for s in range(1, seconds):
            ax.axvline(s, color="#888", lw=0.5, alpha=0.5, zorder=1)
        for s in range(seconds):
            if shade and silent[s]:
                ax.axvspan(s, s + 1, color=SILENT_FILL, alpha=0.6, lw=0, zorder=0)
        if short_audio:
            ax.axvspan(audio_s, seconds, fc="none", ec="#999", hatch="//", lw=0, zorder=0)
        for t in marks:
            ax.axvline(t, color=MARK_COLOUR, lw=1.3, zorder=4)

    ax = band("wave")
    peak = float(np.abs(mono).max()) if mono.size else 0.0
    bins = int(seconds * cell * dpi * 2)
    idx, lo, hi = _envelope(mono, bins)
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
    decorate(ax)
    ax.plot(marks, [lim] * len(marks), "v", color=MARK_COLOUR, ms=6, clip_on=False, zorder=6)

    ax = band("mel")
    mel = lm.log_mel(mono.astype(np.float64), sr) if mono.size >= lm.WINDOW else np.zeros((0, lm.N_MELS))
    if mel.shape[0]:
        end = ((mel.shape[0] - 1) * lm.HOP + lm.WINDOW) / lm.SAMPLE_RATE
        vmax = float(mel.max())
        vmin = max(float(mel.min()), vmax - 12.0)  # 12 nats ~ 104 dB of range is plenty
        # the last analysis window ends within 10 ms of the audio's end: stretch over it, no blank strip
        right_edge = seconds if audio_s >= seconds - 0.02 else max(end, audio_s)
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
    decorate(ax, shade=False)  # silent shading would hide the spectrogram

    ax = band("level")
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
    decorate(ax, labels=True)
    ax.set_xlabel("seconds", fontsize=8, labelpad=1)

    handles = [Line2D([], [], color=MARK_COLOUR, lw=1.5, marker="v", ms=5,
                      label=f"sampled frame times ({ws.recipe.sampling})"),
               ]
    if any(silent):
        handles.append(Patch(fc=SILENT_FILL, label="silent second (frame greyed)"))
    if act is not None:
        handles += [Line2D([], [], color="#555", lw=0.9, ls=":", label=f"noise floor {act.floor_db:.0f} dBFS"),
                    Line2D([], [], color="#d62728", lw=0.9, ls="--",
                           label=f"sound threshold {sound_threshold(act):.0f} dBFS (floor "
                                 f"+{act.params.get('min_relative_db', 10):.0f} dB, at most "
                                 f"{act.params.get('abs_loud_db', -30):.0f}, at least "
                                 f"{act.params.get('abs_silence_db', -60):.0f})")]
    if short_audio:
        handles.append(Patch(fc="none", ec="#999", hatch="//", label=f"no audio after {audio_s:.2f} s"))
    if plan is not None and plan.colours:
        handles += [Patch(fc="none", ec="#444", lw=1.4, label="mask outline: sounding"),
                    Patch(fc="none", ec="#444", lw=1.4, ls="--", label="dashed: believed silent")]
    cb, ch = tops["caption"]
    fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(left / width, (cb + ch - 0.3) / height),
               ncol=min(len(handles), key_cols), fontsize=7.5, frameon=False,
               handlelength=2.2, columnspacing=1.5)

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi,
                metadata={"Software": SOFTWARE, "Title": f"{clip_id} preview", "Source": clip_id})
    result = PreviewResult(path=Path(), clip_id=clip_id, masks_requested=masks, objects=drawn,
                           silent=[s for s in range(seconds) if silent[s]])
    return buf.getvalue(), result
