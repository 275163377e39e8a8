"""preview: a contact sheet PNG of one clip's sampled frames with its audio under them.

Top row: the sampled frames, each titled with its second, decoded frame index and presentation
time (with mask overlays when asked and available). Under them: the 16 kHz waveform, the VGGish
log-mel examples side by side, and the per-second sound activity against the clip's noise floor.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from avsbench_tools.errors import UsageError
from avsbench_tools.fsutil import atomic_write_bytes
from avsbench_tools.workspace import Workspace

# distinct colours for object ids in overlays (tab10)
OVERLAY_COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
                   (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]


def overlay(img: np.ndarray, masks: list[tuple[int, np.ndarray]], alpha: float = 0.5) -> np.ndarray:
    """Paint each (object id, bool mask [H, W]) over an RGB image, with a 1-pixel outline."""
    out = img.astype(np.float32).copy()
    for oid, m in masks:
        if m.shape != img.shape[:2] or not m.any():
            continue
        col = np.asarray(OVERLAY_COLOURS[oid % len(OVERLAY_COLOURS)], np.float32)
        out[m] = (1 - alpha) * out[m] + alpha * col
        edge = m & ~(np.roll(m, 1, 0) & np.roll(m, -1, 0) & np.roll(m, 1, 1) & np.roll(m, -1, 1))
        out[edge] = col
    return out.clip(0, 255).astype(np.uint8)


def _default_clip(ws: Workspace) -> str:
    rows = ws.catalog.query("SELECT clip_id FROM stage_status WHERE stage='sample' AND status='done' "
                            "ORDER BY clip_id LIMIT 1")
    if not rows:
        raise UsageError(f"{ws.root}: no sampled clips yet (run avs-tools sample first)")
    return rows[0][0]


def preview_clip(ws: Workspace, clip_id: str | None, out: Path | None = None, masks: bool = False,
                 mask_loader=None) -> Path:
    """Render the contact sheet of `clip_id` (default: the first sampled clip); returns the PNG path.

    mask_loader(ws, clip_id, second) -> [(object id, bool mask)] supplies overlays when masks=True.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    from avsbench_tools.audio.wav import read_wav
    from avsbench_tools.sample import activity_of, sampled_frames

    clip_id = clip_id or _default_clip(ws)
    if ws.catalog.clip(clip_id) is None:
        raise UsageError(f"no clip {clip_id!r} in {ws.root}")
    frames = sampled_frames(ws, clip_id)
    arow = ws.catalog.query("SELECT * FROM audio WHERE clip_id=?", (clip_id,))
    if not frames or not arow:
        raise UsageError(f"clip {clip_id} is not sampled yet (run avs-tools sample {ws.root})")
    arow = arow[0]
    act = activity_of(ws, clip_id)
    pcm, sr = read_wav(ws.path(arow["wav_path"]))
    logmel = np.load(ws.path(arow["logmel_path"]))
    n = len(frames)
    seconds = n
    fig = plt.figure(figsize=(max(2.2 * n, 8), 6.4), dpi=110)
    gs = fig.add_gridspec(4, n, height_ratios=[2.2, 0.8, 1.0, 0.9], hspace=0.55, wspace=0.05)
    for k, fr in enumerate(frames):
        ax = fig.add_subplot(gs[0, k])
        img = np.asarray(Image.open(ws.path(fr["path"])).convert("RGB"))
        if masks and mask_loader is not None:
            img = overlay(img, mask_loader(ws, clip_id, fr["second"]))
        ax.imshow(img)
        ax.set_title(f"s{fr['second']}  #{fr['frame_index']}\n{fr['pts']:.3f} s", fontsize=8)
        ax.set_axis_off()
    mono = pcm.astype(np.float32).mean(axis=1) / 32768.0 if pcm.size else np.zeros(1)
    t = np.arange(mono.size) / sr
    ax = fig.add_subplot(gs[1, :])
    ax.plot(t, mono, lw=0.4, color="#333")
    ax.set_xlim(0, seconds)
    ax.set_ylim(-1, 1)
    ax.set_ylabel("wave", fontsize=8)
    ax.tick_params(labelsize=7)
    for s in range(1, seconds):
        ax.axvline(s, color="#bbb", lw=0.5)
    ax = fig.add_subplot(gs[2, :])
    spec = np.concatenate(list(logmel[:, 0]), axis=0).T if logmel.size else np.zeros((64, 1))
    ax.imshow(spec, origin="lower", aspect="auto", cmap="magma", extent=(0, logmel.shape[0] * 0.96, 0, 64))
    ax.set_xlim(0, seconds)
    ax.set_ylabel("log-mel", fontsize=8)
    ax.tick_params(labelsize=7)
    ax = fig.add_subplot(gs[3, :])
    rel = np.asarray(act.relative_db)
    colours = ["#2ca02c" if a else "#bbbbbb" for a in act.active]
    ax.bar(np.arange(seconds) + 0.5, rel, width=0.9, color=colours)
    ax.axhline(act.params.get("min_relative_db", 10), color="#d62728", lw=0.7, ls="--")
    for s, (r, a) in enumerate(zip(rel, act.active, strict=True)):
        ax.text(s + 0.5, max(r, 0) + 1, f"{r:.0f} dB{' sound' if a else ' silent'}", ha="center", fontsize=7)
    ax.set_xlim(0, seconds)
    ax.set_ylim(min(0, float(rel.min()) - 2), float(max(rel.max(), 12)) + 8)
    ax.set_ylabel("dB over\nfloor", fontsize=8)
    ax.set_xlabel(f"seconds (floor {act.floor_db:.0f} dBFS; green = sound, grey = silent)", fontsize=8)
    ax.tick_params(labelsize=7)
    fig.suptitle(f"{clip_id}  ({ws.recipe.name}: {ws.recipe.sampling} frames)", fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    out = Path(out) if out is not None else ws.path("previews", f"{clip_id}{'.masks' if masks else ''}.png")
    atomic_write_bytes(out, buf.getvalue())
    return out
