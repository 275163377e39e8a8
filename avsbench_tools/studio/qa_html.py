"""The QA report as one self-contained HTML page: tables, and for the frames annotators changed most, the
frame three times (proposal, final mask, what changed), every image inline as a base64 PNG."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np

from avsbench_tools.fsutil import atomic_write_bytes, check_output_file
from avsbench_tools.studio.qa import FrameChange, QaReport
from avsbench_tools.workspace import Workspace

PROPOSAL = (236, 64, 178)  # magenta
FINAL = (40, 200, 90)  # green
REMOVED = (230, 50, 40)  # red
PANEL_H = 180  # panels are scaled to this height (nearest for masks)
GENERATOR = '<meta name="generator" content="avs-tools qa">'  # how a report of ours is recognised

CSS = """body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
table{border-collapse:collapse;margin:8px 0 20px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f2f2f2}td:first-child,th:first-child{text-align:left}.frame{margin:14px 0 22px}
.frame img{margin-right:6px;border:1px solid #999;image-rendering:pixelated}.key span{padding:0 6px;margin-right:8px}
h2{margin-top:28px;border-bottom:1px solid #ddd}.note{color:#555}"""


def _png(arr: np.ndarray) -> str:
    from PIL import Image

    img = Image.fromarray(arr)
    if img.height != PANEL_H:
        img = img.resize((max(1, round(img.width * PANEL_H / img.height)), PANEL_H), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _tint(rgb: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int], alpha: float = 0.5) -> np.ndarray:
    out = rgb.astype(np.float32)
    out[mask] = out[mask] * (1 - alpha) + np.asarray(colour, np.float32) * alpha
    edge = mask & ~_erode(mask)
    out[edge] = colour
    return out.astype(np.uint8)


def _erode(m: np.ndarray) -> np.ndarray:
    p = np.pad(m, 1)
    return p[1:-1, 1:-1] & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]


def overlays(ws: Workspace, c: FrameChange) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frame + proposal, frame + final mask, what changed: added green, removed red on the grey frame)."""
    from PIL import Image

    from avsbench_tools.mask_store import load_mask

    with Image.open(ws.path(c.frame)) as im:
        rgb = np.asarray(im.convert("RGB"))
    shape = rgb.shape[:2]

    def union(paths: list[str]) -> np.ndarray:
        out = np.zeros(shape, bool)
        for p in paths:
            m = load_mask(ws, p)
            if m.shape == shape:
                out |= m
        return out

    prop, final = union(c.proposal), union(c.final)
    grey = np.repeat(rgb.mean(axis=2, keepdims=True), 3, axis=2).astype(np.uint8)
    diff = _tint(_tint(grey, final & ~prop, FINAL, 0.8), prop & ~final, REMOVED, 0.8)
    return _tint(rgb, prop, PROPOSAL), _tint(rgb, final, FINAL), diff


def _table(rows: list[dict], cols: list[str]) -> str:
    if not rows:
        return "<p class=note>none</p>"
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape('' if r.get(c) is None else str(r.get(c)))}</td>" for c in cols)
                   + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def render(ws: Workspace, rep: QaReport) -> str:
    """The HTML page of a QA report."""
    e = html.escape
    parts = [f"<!doctype html><html><head><meta charset=utf-8>{GENERATOR}<title>QA: {e(ws.root.name)}</title>"
             f"<style>{CSS}</style></head><body><h1>Review QA: {e(ws.root.name)}</h1>",
             "<h2>Frames</h2>", _table([rep.frames], list(rep.frames)),
             f"<p class=note>Masks binarised at alpha &ge; {rep.alpha_threshold}. Where several annotators "
             f"submitted a frame, the review set takes {e(rep.rule)}.</p>",
             "<h2>Proposal vs final mask, per backend and category</h2>",
             "<p class=note>IoU per object between the proposal shown and the final mask (deleted or hand-drawn "
             "objects count 0); unchanged: final mask identical to the proposal.</p>",
             _table(rep.by_backend, ["backend", "category", "objects", "proposed", "mean_iou", "accepted_unchanged",
                                     "share_unchanged", "deleted", "drawn_by_hand"]),
             "<h2>Region origins (Label Studio)</h2>", _table([rep.origins], list(rep.origins)),
             "<h2>Time</h2>", _table([rep.time], list(rep.time)),
             _table(rep.annotators, ["annotator", "submitted", "cancelled", "lead_time_s"]),
             "<h2>Agreement</h2>",
             f"<p>Frames with several annotations: {rep.agreement['frames']}; pairs of annotations: "
             f"{rep.agreement['pairs']}; mean IoU of a pair (all objects of the frame together): "
             f"{rep.agreement['mean_iou']}.</p>",
             _table([{**r, "annotators": ", ".join(str(a) for a in r["annotators"])} for r in rep.agreement["per_frame"]],
                    ["clip_id", "second", "annotators", "mean_iou", "chosen"]),
             "<h2>Frames changed most</h2>",
             f"<p class=key><span style='background:rgb{PROPOSAL}'>proposal</span><span style='background:rgb"
             f"{FINAL}'>final</span><span style='background:rgb{REMOVED}'>removed</span> (added: green on the grey "
             "frame)</p>"]
    for c in rep.most_changed:
        imgs = "".join(f"<img alt='{e(a)}' title='{e(a)}' src='{_png(x)}'>"
                       for a, x in zip(("proposal", "final", "changed"), overlays(ws, c), strict=True))
        flags = f", flags: {e(', '.join(c.flags))}" if c.flags else ""
        parts.append(f"<div class=frame><div><b>{e(c.clip_id)}</b> second {c.second}: IoU {c.iou:.3f}, "
                     f"{c.changed_pixels} pixels changed ({e(c.backend)}, by {e(str(c.annotator))}{flags})</div>"
                     f"{imgs}</div>")
    if not rep.most_changed:
        parts.append("<p class=note>no reviewed frame with a known proposal yet</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _ours(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return GENERATOR.encode() in fh.read(400)
    except OSError:
        return False


def check_html(path: Path) -> Path:
    """A UsageError unless `path` can take the report: a new file, or a QA report avs-tools wrote there."""
    return check_output_file(Path(path), is_ours=_ours(Path(path)), what="--html")


def write_html(ws: Workspace, rep: QaReport, path: Path) -> Path:
    """Write the report's HTML to `path` (atomically; an existing file only if it is an earlier QA report)."""
    path = check_html(path)
    atomic_write_bytes(path, render(ws, rep).encode("utf-8"))
    return path
