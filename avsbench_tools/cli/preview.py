"""avs-tools preview."""

from __future__ import annotations

from pathlib import Path

import typer

from avsbench_tools.cli import app


@app.command(short_help="Contact sheet PNG of a clip's frames and audio.  e.g. avs-tools preview ws --clip ID")
def preview(
    workspace: Path = typer.Argument(..., help="Workspace folder."),
    clip: str = typer.Option(None, "--clip", help="Clip id (default: the first sampled clip)."),
    out: Path = typer.Option(None, "--out", "-o", help="PNG path (default: WS/previews/<clip>.png)."),
    masks: bool = typer.Option(False, "--masks", help="Overlay the latest mask version of each object."),
) -> None:
    """Render the sampled frames with timestamps, the waveform, log-mel and per-second activity."""
    from avsbench_tools.preview import preview_clip
    from avsbench_tools.workspace import open_workspace

    ws = open_workspace(workspace)
    try:
        loader = None
        if masks:
            from avsbench_tools.masks import latest_masks_for_preview as loader
        path = preview_clip(ws, clip, out, masks=masks, mask_loader=loader)
    finally:
        ws.close()
    typer.echo(f"preview: {path}")
