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


#: Readable column headings (key -> heading); a key without one shows with its underscores as spaces.
HEADINGS = {
    "sampled": "sampled", "pushed": "pushed", "reviewed": "reviewed", "pending": "pending",
    "skipped_only": "only skipped", "silent": "no sounding object", "unusable": "unusable",
    "annotations": "annotations submitted", "cancelled": "annotations cancelled",
    "without_known_proposal": "reviewed without a known proposal",
    "masks_in_silent_seconds": "reviewed masks in seconds the audio found silent",
    "backend": "backend", "category": "category (proposed)", "proposed": "proposed objects",
    "unchanged": "kept unchanged", "kept": "same mask (any label)", "edited": "edited", "relabelled": "relabelled",
    "deleted_silent": "deleted (silent second)", "deleted": "deleted (otherwise)",
    "added": "added by hand", "mean_iou": "Mean IoU (kept + edited)", "share_unchanged": "share kept unchanged",
    "from": "proposed as", "to": "relabelled to", "objects": "objects",
    "annotations_timed": "annotations timed", "mean_s": "mean (s)", "median_s": "median (s)", "total_s": "total (s)",
    "per_reviewed_frame_s": "per reviewed frame (s)", "annotator": "annotator", "lead_time_s": "lead time (s)",
    "submitted": "submitted", "clip_id": "clip", "second": "second", "annotators": "annotators",
    "chosen": "review set takes", "pair_iou": "mean IoU of the pairs", "pairs": "pairs", "min_iou": "lowest IoU", "painted": "category",
    "flag": "flag", "both": "both set it", "neither": "neither", "disagree": "only one", "agreement": "set alike",
}


def _cell(v, col: str = "") -> str:
    """A table cell: '–' where there is no figure (never 'None'); seconds to 0.1, ratios to 0.001."""
    if v is None:
        return "&ndash;"
    if isinstance(v, float):
        return html.escape(f"{v:.1f}" if col.endswith("_s") else f"{v:.3f}")
    return html.escape(str(v))


def _table(rows: list[dict], cols: list[str]) -> str:
    if not rows:
        return "<p class=note>none</p>"
    head = "".join(f"<th>{html.escape(HEADINGS.get(c, c.replace('_', ' ')))}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{_cell(r.get(c), c)}</td>" for c in cols) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


OBJECT_COLUMNS = ["backend", "category", "proposed", "unchanged", "kept", "edited", "relabelled", "deleted_silent",
                  "deleted", "added", "mean_iou", "share_unchanged"]


def render(ws: Workspace, rep: QaReport) -> str:
    """The HTML page of a QA report."""
    e = html.escape
    ag = rep.agreement
    parts = [f"<!doctype html><html><head><meta charset=utf-8>{GENERATOR}<title>QA: {e(ws.root.name)}</title>"
             f"<style>{CSS}</style></head><body><h1>Review QA: {e(ws.root.name)}</h1>",
             "<h2>Frames</h2>", _table([rep.frames], list(rep.frames)),
             f"<p class=note>Masks binarised at alpha &ge; {rep.alpha_threshold}. Where several annotators "
             f"submitted a frame, the review set takes {e(rep.rule)}.</p>",
             "<h2>What the review did to each proposed object</h2>",
             "<p class=note>Per backend and proposed category. Kept: final mask identical to the proposal; "
             "edited: the mask changed (its IoU with the proposal); relabelled: kept or edited under another "
             "label; deleted: in a silent second (marked 'no sounding object', or no sound in the clip's audio), "
             "or otherwise; added: drawn by hand. The "
             "mean IoU is over kept and edited objects only (a deletion is a decision, not a bad outline).</p>",
             _table(rep.by_backend, OBJECT_COLUMNS),
             "<h2>Relabelled objects, per category</h2>", _table(rep.relabels, ["from", "to", "objects"]),
             "<h2>Region origins (Label Studio)</h2>", _table([rep.origins], list(rep.origins)),
             "<h2>Time</h2>", _table([rep.time], list(rep.time)),
             _table(rep.annotators, ["annotator", "submitted", "cancelled", "lead_time_s"]),
             "<h2>Agreement between annotators</h2>"]
    if ag["frames"]:
        parts += [f"<p>Frames reviewed by several different annotators: {ag['frames']}; pairs: {ag['pairs']}; mean "
                  f"IoU of a pair (all objects of the frame together): {ag['mean_iou']:.3f}.</p>",
                  "<p class=note>Per category: the IoU of the two annotators' masks of that category (0 where only "
                  "one painted it), over the pairs where either painted it.</p>",
                  _table([{"painted": c["category"], "pairs": c["pairs"], "pair_iou": c["mean_iou"],
                           "min_iou": c["min_iou"]} for c in ag.get("by_category", [])],
                         ["painted", "pairs", "pair_iou", "min_iou"]),
                  "<p class=note>Frame flags: pairs that set the flag alike (both, neither) or not.</p>",
                  _table([{"flag": f, **n} for f, n in ag.get("flags", {}).items()],
                         ["flag", "pairs", "both", "neither", "disagree", "agreement"]),
                  _table([{**r, "annotators": ", ".join(map(str, r["annotators"])), "pair_iou": r["mean_iou"]}
                          for r in ag["per_frame"]], ["clip_id", "second", "annotators", "pair_iou", "chosen"])]
    else:
        parts.append("<p class=note>no frame was reviewed by two different annotators</p>")
    parts += ["<h2>Frames changed most</h2>",
              f"<p class=key><span style='background:rgb{PROPOSAL}'>proposal</span><span style='background:rgb"
              f"{FINAL}'>final</span><span style='background:rgb{REMOVED}'>removed</span> (added: green on the grey "
              "frame)</p>"]
    for c in rep.most_changed:
        imgs = "".join(f"<img alt='{e(a)}' title='{e(a)}' src='{_png(x)}'>"
                       for a, x in zip(("proposal", "final", "changed"), overlays(ws, c), strict=True))
        parts.append(f"<div class=frame><div><b>{e(c.clip_id)}</b> second {c.second}: {e(change_text(c))}</div>"
                     f"{imgs}</div>")
    if not rep.most_changed:
        parts.append("<p class=note>no reviewed frame with a known proposal was changed</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def change_text(c: FrameChange) -> str:
    """What changed in one frame, in words (the text report and the HTML page say the same)."""
    what = [f"IoU {c.iou:.3f}", f"{c.changed_pixels} pixels changed"]
    if c.deleted:
        what.append(f"{c.deleted} object{'s' if c.deleted > 1 else ''} deleted")
    if c.added:
        what.append(f"{c.added} added by hand")
    what += [f"relabelled {r}" for r in c.relabels]
    if c.flags:
        what.append("marked " + ", ".join(c.flags))
    return ", ".join(what) + f" ({c.backend}, by {c.annotator or 'an unknown annotator'})"


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
