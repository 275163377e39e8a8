"""avs-tools preview."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from avsbench_tools.cli import app
from avsbench_tools.cli.common import WorkspaceArg, stage_run


@app.command(short_help="Contact sheet PNG of a clip's frames and audio.  e.g. avs-tools preview ws --clip ID")
def preview(
    workspace: WorkspaceArg,
    clip: Annotated[str | None, typer.Option("--clip", help="Clip id (default: the first sampled clip).")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="PNG path (default: WS/previews/<clip>.png, with --masks <clip>-masks.png). An "
                                             "existing file is replaced only if it is an earlier avs-tools "
                                             "preview.")] = None,
    masks: Annotated[bool, typer.Option("--masks", help="Outline the latest mask of each object, with a "
                                        "legend.")] = False,
) -> None:
    """Render the sampled frames on the clip's time axis, with the waveform, log-mel and per-second
    sound level under them; silent seconds are greyed. Reads the workspace only."""
    from avsbench_tools.preview import preview_clip

    with stage_run(workspace, quiet=True) as (ws, _):  # read-only: no lock, so it runs beside a stage
        res = preview_clip(ws, clip, out, masks=masks)
    note = ""
    if masks and res.objects == 0:
        note = f" (no masks for this clip yet: avs-tools preannotate {workspace})"
    typer.echo(f"preview: {res.path}{note}")
