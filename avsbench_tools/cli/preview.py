"""avs-tools preview."""

from __future__ import annotations

from pathlib import Path

import typer

from avsbench_tools.cli import app


@app.command(short_help="Contact sheet PNG of a clip's frames and audio.  e.g. avs-tools preview ws --clip ID")
def preview(
    workspace: Path = typer.Argument(..., help="Workspace folder."),
    clip: str = typer.Option(None, "--clip", help="Clip id (default: the first sampled clip)."),
    out: Path = typer.Option(None, "--out", "-o",
                             help="PNG path (default: WS/previews/<clip>.png). An existing file is replaced "
                                  "only if it is an earlier avs-tools preview."),
    masks: bool = typer.Option(False, "--masks", help="Outline the latest mask of each object, with a legend."),
) -> None:
    """Render the sampled frames on the clip's time axis, with the waveform, log-mel and per-second
    sound level under them; silent seconds are greyed. Reads the workspace only."""
    from avsbench_tools.preview import preview_clip
    from avsbench_tools.workspace import open_workspace

    ws = open_workspace(workspace)  # read-only: no lock, so it runs beside a stage
    try:
        res = preview_clip(ws, clip, out, masks=masks)
    finally:
        ws.close()
    note = ""
    if masks and res.objects == 0:
        note = f" (no masks for this clip yet: avs-tools preannotate {workspace})"
    typer.echo(f"preview: {res.path}{note}")
