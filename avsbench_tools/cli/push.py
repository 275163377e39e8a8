"""avs-tools push: sampled frames and mask proposals into a Label Studio project."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from avsbench_tools.cli import app
from avsbench_tools.cli.common import Clips, Quiet, WorkspaceArg, note, q, say_next, stage_run
from avsbench_tools.cli.studio import StudioApiKey, StudioUrl


@app.command(short_help="Frames and proposals into Label Studio for review.  e.g. avs-tools push ws")
def push(
    workspace: WorkspaceArg,
    url: StudioUrl = None,
    api_key: StudioApiKey = None,
    document_root: Annotated[Path | None, typer.Option(
        "--document-root", envvar="LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT", show_envvar=True,
        help="The server's local-files document root: the workspace or a folder above it (default: known for "
             "the workspace's own server, else found by asking the server for one of the workspace's frames).")] = None,
    clip: Clips = None,
    chunk_size: Annotated[int, typer.Option("--chunk-size", min=1, max=5000,
                                            help="Tasks per import request (the first requests are smaller, so the "
                                                 "server starts while the next ones are built).")] = 100,
    overlap: Annotated[float | None, typer.Option(
        "--overlap", metavar="F",
        help="Give a fraction F (0 to 1, whole percents) of the frames to two annotators, through the project's "
             "overlap settings (Label Studio picks the frames); qa reports their agreement per category. 0: one "
             "annotator per frame. Default: leave the project's setting.")] = None,
    order: Annotated[bool, typer.Option(
        "--order", help="Import the new frames by need of a human, highest first: low proposal score, a mask that "
                        "changed most from the previous second, a second near the silence threshold (task field "
                        "'priority', 0-100). Sequential sampling serves tasks in import order (new ones after those "
                        "already there); the Data Manager tab 'avs-tools: by priority' serves every task by "
                        "priority.")] = False,
    quiet: Quiet = False,
) -> None:
    """Create (or reuse) the workspace's Label Studio project and send one task per sampled frame, with the
    clip's audio and video, and one prediction per proposal mask set. Re-running sends only what is new:
    no task is ever duplicated, and a new mask version becomes a new prediction on the same tasks."""
    from avsbench_tools.studio.connect import connect
    from avsbench_tools.studio.push import PushOptions
    from avsbench_tools.studio.push import push as run

    opts = PushOptions(clips=list(clip or []) or None, chunk_size=chunk_size,
                       document_root=str(document_root) if document_root else None, overlap=overlap, order=order)
    opts.check()  # before the workspace is opened
    with stage_run(workspace, lock="push", quiet=quiet) as (ws, progress):
        conn = connect(ws, url, api_key)
        res = run(ws, conn, opts, progress=progress)
    where = f"project {res.project_id} at {res.url}" + (" (new)" if res.project_created else "")
    if res.predictions_updated:
        note(f"{res.predictions_updated} predictions updated in place (their objects or labels changed, e.g. by "
             "set-category): annotators now see the new labels")
    if not (res.tasks_created or res.predictions_sent or res.predictions_updated or res.audio_updated):
        typer.echo(f"push: nothing to do: {res.tasks_reused} tasks and their {res.predictions_skipped} predictions "
                   f"of {res.clips} clips are already in {where}")
    else:
        typer.echo(f"push: {res.tasks_created} tasks created, {res.tasks_reused} already there; "
                   f"{res.predictions_sent} predictions sent, {res.predictions_skipped} already there; "
                   f"{res.clips} clips, {where}")
    if res.tasks_adopted or res.predictions_adopted:
        note(f"{res.tasks_adopted} tasks and {res.predictions_adopted} predictions made by an interrupted push "
             "were found on the server and recorded (not sent again)")
    if res.audio_updated:
        note(f"{res.audio_updated} tasks pushed before their audio started at their second now have it (their data "
             "updated in place; annotations kept)")
    if res.excerpts_removed:
        note(f"{res.excerpts_removed} audio excerpts no task uses any more were removed (WS/audio/seconds)")
    if res.overlap_percent is not None:
        typer.echo(f"push: {res.overlap_percent}% of the project's tasks go to two annotators (Label Studio's overlap "
                   "cohort)" if res.overlap_percent else "push: one annotator per task (no overlap)")
    if res.ordered:
        typer.echo(f"push: {res.ordered} new tasks imported by priority, highest first (task field 'priority'; "
                   "sequential sampling: the label stream serves them in that order after the tasks already there)")
    if res.order_tab is not None:
        typer.echo("push: the Data Manager tab 'avs-tools: by priority' serves every task by priority, those already "
                   "there included (start the label stream from it)")
    if res.reprioritised:
        typer.echo(f"push: the priority of {res.reprioritised} tasks already on the server set or updated (their "
                   "place stays: sort the Data Manager by 'priority')")
    for text in res.notes:
        note(text)
    say_next(f"avs-tools pull {q(workspace)}  (after annotating in the browser at {res.url}/projects/{res.project_id})",
             quiet)
