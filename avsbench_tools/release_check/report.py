"""The release-check report: OUT/index.html (self-contained: every picture embedded) and OUT/report.json.

The page says first whether the release is learnable and whether audio helps (with the spread of each
margin), then the runs beside the trivial predictors, their training curves (or why there is none), the
validation problems and warnings, the per-category scores, and the worst clips with overlays at each frame's
own aspect ratio (the audio run's prediction tinted, the ground truth outlined, in the two colours farthest
from the clip's own), with how a clip's mIoU differs from the split's. Overlays are also written to
OUT/overlays/<clip>.png.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import numpy as np

from avsbench_tools.fsutil import atomic_write_bytes, atomic_write_text

GENERATOR = "avs-tools release-check"
MIN_CURVE_EPOCHS = 2  # fewer: the page says so instead of showing a curve of single dots
STYLE = ("body{font-family:sans-serif;margin:2em;max-width:1150px}table{border-collapse:collapse;margin:.6em 0}"
         "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#eee}td:first-child{text-align:left}"
         ".verdict{font-size:120%;padding:.5em 1em;margin:.4em 0;border-radius:4px}.yes{background:#e3f5e3}"
         ".no{background:#fde8e0}.tell{background:#eee}.warn{border:2px solid #d80;background:#fff6e6;padding:0 1em;margin:1em 0}"
         ".note{color:#555;font-size:90%}img{max-width:100%}")


def _esc(v) -> str:
    return html.escape(str(v))


def _num(v) -> str:
    return "-" if v is None else (f"{v:.4f}" if isinstance(v, float) else str(v))


def _table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_esc(_num(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _img(data: bytes, alt: str) -> str:
    return f"<img src='data:image/png;base64,{base64.b64encode(data).decode()}' alt='{_esc(alt)}'>"


def _png_bytes(arr: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _outline(m: np.ndarray, width: int = 2) -> np.ndarray:
    """The mask's boundary, `width` pixels thick (inside the mask)."""
    inner = m.copy()
    for _ in range(width):
        e = inner.copy()
        e[1:-1, 1:-1] = inner[1:-1, 1:-1] & inner[:-2, 1:-1] & inner[2:, 1:-1] & inner[1:-1, :-2] & inner[1:-1, 2:]
        e[0, :] = e[-1, :] = e[:, 0] = e[:, -1] = False
        inner = e
    return m & ~inner


#: candidate colours for the overlay's prediction tint and ground-truth outline (chosen against each clip's frames)
CANDIDATES = {"white": (255, 255, 255), "black": (0, 0, 0), "red": (230, 30, 30), "green": (30, 200, 30),
              "blue": (40, 80, 255), "yellow": (255, 230, 0), "cyan": (0, 230, 230), "magenta": (240, 0, 240)}


def pick_colours(frames: list[np.ndarray]) -> tuple[tuple[str, tuple], tuple[str, tuple]]:
    """(prediction tint, outline) colours for these frames: the two candidates farthest from the colours the frames
    hold (the 5th percentile of the distance from a candidate to the frames' pixels: a colour that some object or
    the background has is near 0), the outline the farthest, the tint the farthest from the frames and the outline."""
    px = np.concatenate([f.reshape(-1, 3)[:: max(1, f.shape[0] * f.shape[1] // 4000)] for f in frames]).astype(float)
    def far(c):
        return float(np.percentile(np.linalg.norm(px - np.asarray(c, float), axis=1), 5))
    score = {n: far(c) for n, c in CANDIDATES.items()}
    outline = max(score, key=score.get)
    rest = {n: min(score[n], float(np.linalg.norm(np.subtract(CANDIDATES[n], CANDIDATES[outline])))) for n in score
            if n != outline}
    tint = max(rest, key=rest.get)
    return (tint, CANDIDATES[tint]), (outline, CANDIDATES[outline])


def overlay_strip(data, split: str, run_dir: Path, name: str, height: int = 160) -> tuple[np.ndarray, str] | None:
    """The clip's annotated frames side by side at `height` pixels, each keeping its frame's aspect ratio: the
    prediction tinted, the ground truth outlined, in colours chosen against the frames (pick_colours); -> (the
    strip, a sentence naming the colours), or None without frames."""
    from PIL import Image

    from avsbench_tools.baselines import frame_paths

    it = next((i for i in data.items(split) if i.name == name), None)
    if it is None:
        return None
    root = data.release.root
    inner = root.name if root.name in ("Single-source", "Multi-sources") else ""
    pred_base = run_dir / "predictions" / split / inner if inner else run_dir / "predictions" / split
    paths = frame_paths(it, data.setting, root, len(it.frames))
    gt_paths = it.masks
    cut = 0 if data.setting == "avss" else 127
    shown = []
    for k, (mask_rel, _) in enumerate(paths):
        if k not in gt_paths:
            continue
        with Image.open(it.frames[k]) as im:
            w, h = im.size
            size = (max(1, round(height * w / h)), height)
            frame = np.asarray(im.convert("RGB").resize(size, Image.BILINEAR)).astype(np.float32)
        with Image.open(gt_paths[k]) as im:
            gt = np.asarray(im.resize(size, Image.NEAREST)) > cut
        pp = pred_base / mask_rel
        pred = np.zeros((height, size[0]), bool)
        if pp.is_file():
            with Image.open(pp) as im:
                pred = np.asarray(im.resize(size, Image.NEAREST)) > cut
        shown.append((frame, gt, pred))
    if not shown:
        return None
    (tint_name, tint), (line_name, line) = pick_colours([f.astype(np.uint8) for f, _, _ in shown])
    tiles = []
    for frame, gt, pred in shown:
        frame[pred] = 0.45 * frame[pred] + 0.55 * np.asarray(tint, np.float32)
        frame[_outline(gt)] = line
        tiles += [frame.astype(np.uint8), np.full((height, 4, 3), 255, np.uint8)]
    return np.concatenate(tiles[:-1], 1), f"the audio run's prediction tinted {tint_name}, the ground truth's " \
        f"outline in {line_name} (colours chosen as the two farthest from the clip's own)"


def write_report(out: Path, summary: dict, ctx: dict) -> None:
    """index.html and report.json in OUT (see the module)."""
    from avsbench_tools import __version__

    out = Path(out)
    parts = [f"<h1>Release check: {_esc(summary['format'])}</h1>",
             f"<p>{_esc(summary['release'])}<br><span class='note'>Run size: {_esc(summary['plan'])}. "
             f"Audio encoder: {_esc(summary.get('audio_encoder', '-'))}. "
             f"<a href='stats.html'>Statistics of the release</a> (stats.html).</span></p>"]
    val = summary["validation"]
    if val["problem_count"]:
        parts.append(f"<div class='verdict no'>validate found {val['problem_count']} problems: no training was run."
                     "</div>" + _table(["path", "problem"], [[p["path"], p["problem"]] for p in val["problems"]]))
    for key, title in (("learnable", "Learnable"), ("audio_helps", "Audio helps")):
        if key in summary:
            v = summary[key]
            cls = "yes" if v["verdict"] == "yes" else ("tell" if v["verdict"].startswith("cannot tell") else "no")
            parts.append(f"<div class='verdict {cls}'><b>{title}: {_esc(v['verdict'])}</b> "
                         f"<span class='note'>{_esc(v['why'])}</span></div>")
    warnings = list(summary.get("warnings", [])) + list(val.get("warnings", []))
    if warnings:
        parts.append("<div class='warn'><h2>Warnings</h2><ul>" + "".join(f"<li>{_esc(w)}</li>" for w in warnings)
                     + "</ul></div>")
    if "runs" in summary:
        split = summary["eval_split"]
        rows = [[f"baseline, {n}", r["test"]["miou"], r["test"]["fscore"], r["test"]["fscore_batch_free"],
                 r["epochs"], r["best_val_miou"]] for n, r in summary["runs"].items()]
        rows += [[f"trivial: {n} ({t['description']})", t["miou"], t["fscore"], t["fscore_batch_free"], None, None]
                 for n, t in summary["trivial"].items()]
        parts.append(f"<h2>Scores on the {_esc(split)} split</h2>"
                     + _table(["predictor", "mIoU", "F (official)", "F (batch-free)", "epochs", "best val mIoU"], rows))
        from avsbench_tools.negative_audio import html_section

        parts += html_section(summary.get("negative_audio"))  # negative-audio sets, when the release has them
        parts.append("<h2>Training curves</h2>")
        for n, r in summary["runs"].items():
            png = out / "runs" / n / "curves.png"
            if r["epochs"] < MIN_CURVE_EPOCHS:
                parts.append(f"<p class='note'>{_esc(n)}: {r['epochs']} epoch{'s' if r['epochs'] != 1 else ''}, too "
                             f"few for a training curve (a curve needs at least {MIN_CURVE_EPOCHS} epochs: give "
                             "release-check a larger --budget).</p>")
            elif png.is_file():
                parts.append(f"<h3>{_esc(n)}</h3>" + _img(png.read_bytes(), f"training curves, {n}"))
        parts += _categories(summary)
        parts += _worst(out, summary, ctx)
    page = (f'<!doctype html><html><head><meta charset="utf-8"><meta name="generator" '
            f'content="{GENERATOR} {_esc(__version__)}"><title>release-check {_esc(summary["format"])}</title>'
            f"<style>{STYLE}</style></head><body>{''.join(parts)}</body></html>")
    atomic_write_text(out / "index.html", page)
    atomic_write_text(out / "report.json", json.dumps(summary, indent=1, default=float) + "\n")


def _categories(summary: dict) -> list[str]:
    pc = summary.get("per_category") or {}
    if not pc.get("available"):
        return [f"<h2>Per category</h2><p class='note'>Not available: {_esc(pc.get('why', ''))}.</p>"]
    rows = [[r["category"], r.get("clips", r.get("frames")), r["miou_audio"], r["miou_no_audio"]] for r in pc["rows"]]
    return ["<h2>Per category (worst first)</h2>",
            _table(["category", pc["unit"], "mIoU (audio)", "mIoU (no audio)"], rows),
            f"<p class='note'>Worst categories: {_esc(', '.join(pc.get('worst', [])) or '-')}.</p>"]


def clip_vs_split(setting: str, split: str) -> str:
    """Why a clip's mIoU and the split's mIoU differ, even for a split of one clip."""
    if setting == "avss":
        return (f"A clip's mIoU is the mean IoU over the classes present in that clip (in its labels or its "
                f"prediction). The {split} mIoU above is the official AVSS figure: per class, the IoU averaged over "
                "the frames where the class is present, then the mean over all classes of the release, a class "
                "present nowhere counting 0; so it is lower than a clip's, even when the split holds one clip.")
    return (f"A clip's mIoU is the mean IoU of its annotated frames. The {split} mIoU above is the mean over all "
            "annotated frames of the split (the official S4/MS3 figure), so clips with more annotated frames weigh "
            "more; an empty ground-truth frame scores the share of pixels left empty.")


def _worst(out: Path, summary: dict, ctx: dict) -> list[str]:
    parts = ["<h2>Worst clips (likely annotation problems, or hard clips)</h2>",
             f"<p class='note'>{_esc(clip_vs_split(summary.get('setting', ''), summary.get('eval_split', 'test')))}</p>"]
    for c in summary.get("worst_clips", []):
        cat = f", {c['category']}" if c.get("category") else ""
        parts.append(f"<h3>{_esc(c['name'])}{_esc(cat)}: clip mIoU {_num(c['miou_audio'])} "
                     f"(no audio {_num(c['miou_no_audio'])})</h3>")
        got = overlay_strip(ctx["data"], ctx["split"], out / "runs" / "audio", c["name"]) if ctx else None
        if got is None:
            parts.append("<p class='note'>no overlay (frames or predictions missing)</p>")
            continue
        strip, colours = got
        parts.append(f"<p class='note'>Each annotated frame: {_esc(colours)}.</p>")
        data = _png_bytes(strip)
        atomic_write_bytes(out / "overlays" / f"{c['name']}.png", data)
        parts.append(_img(data, f"overlay {c['name']}"))
    return parts
