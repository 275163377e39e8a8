"""The preview's entry: which clip, where its PNG goes, written atomically. Reads the workspace only."""

from __future__ import annotations

from pathlib import Path

from avsbench_tools.errors import UsageError
from avsbench_tools.fsutil import atomic_write_bytes
from avsbench_tools.preview.draw import PreviewResult, render_preview
from avsbench_tools.preview.png import check_preview_out
from avsbench_tools.workspace import Workspace


def _choose_clip(ws: Workspace, clip_id: str | None) -> str:
    """`clip_id` (resolved, with the nearest ids suggested when unknown) or the first sampled clip;
    a clip that is not sampled is a one-line UsageError naming the command to run."""
    sampled = ws.catalog.clip_ids_done("sample")
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
    WS/previews/<clip>.png, with `masks` WS/previews/<clip>-masks.png), atomically; with `masks`, outline the latest mask of each object.
    Only reads the workspace (no lock needed). An existing `out` is replaced only when it is an
    earlier preview (its text chunk says so)."""
    clip_id = _choose_clip(ws, clip_id)
    if out is not None:
        out = check_preview_out(out)
    else:
        out = ws.path("previews", f"{clip_id}{'-masks' if masks else ''}.png")  # --masks: its own file
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
