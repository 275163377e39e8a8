"""avs-tools pull: reviewed masks back from Label Studio."""

from __future__ import annotations

from typing import Annotated

import typer

from avsbench_tools.cli import app
from avsbench_tools.cli.common import Quiet, WorkspaceArg, q, say_next, stage_run
from avsbench_tools.cli.studio import StudioApiKey, StudioUrl
from avsbench_tools.errors import UsageError


def _null_expressions(values: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for v in values:
        clip_id, sep, text = v.partition("=")
        if not sep or not clip_id.strip():
            raise UsageError(f"--null-expression {v!r}: expected CLIP=TEXT (CLIP= clears the clip's null expressions)")
        texts = out.setdefault(clip_id.strip(), [])
        if text.strip():
            texts.append(" ".join(text.split()))
    return out


@app.command(short_help="Reviewed masks back from Label Studio.  e.g. avs-tools pull ws")
def pull(
    workspace: WorkspaceArg,
    url: StudioUrl = None,
    api_key: StudioApiKey = None,
    null_expression: Annotated[list[str] | None, typer.Option(
        "--null-expression", metavar="CLIP=TEXT",
        help="Ref-AVS: an expression that refers to nothing in CLIP (the test_n split; repeatable). The texts "
             "given for a clip replace its null expressions; CLIP= clears them.")] = None,
    quiet: Quiet = False,
) -> None:
    """Store the annotations submitted since the last pull as reviewed masks (binarised at alpha >= 128),
    with annotator, lead time, parent prediction and per-region origin. Cancelled ones are counted only."""
    from avsbench_tools.studio.connect import connect
    from avsbench_tools.studio.pull import PullOptions
    from avsbench_tools.studio.pull import pull as run

    opts = PullOptions(null_expressions=_null_expressions(list(null_expression or [])))
    with stage_run(workspace, lock="pull", quiet=quiet) as (ws, progress):
        conn = connect(ws, url, api_key)
        res = run(ws, conn, opts, progress=progress)
    extra = []
    if res.silent:  # (annotations, not frames: with --overlap two annotations may mark one frame)
        extra.append(f"{res.silent} of the annotations mark their frame 'no sounding object'")
    if res.unusable:
        extra.append(f"{res.unusable} of the annotations mark their frame 'unusable' (export leaves their clips out)")
    if res.dropped_regions:
        extra.append(f"{res.dropped_regions} regions dropped on frames marked 'no sounding object'")
    if res.foreign:
        extra.append(f"{res.foreign} tasks not from this workspace ignored")
    if res.null_expressions:
        extra.append(f"null expressions set for {res.null_expressions} clips")
    if res.retracted:
        extra.append(f"{len(res.retracted)} reviews retracted (gone from the server: kept as history, not counted)")
    if res.excerpts_removed:
        extra.append(f"{res.excerpts_removed} audio excerpts of tasks gone removed (WS/audio/seconds)")
    if res.project_gone is not None:
        typer.echo(f"pull: project {res.project_gone} was deleted at {res.url}: its {len(res.retracted)} reviews "
                   f"are retracted (kept as history, not counted); {res.reviewed_clips} clips fully reviewed")
        say_next(f"avs-tools push {q(workspace)}  (makes a new project)", quiet)
        return
    changed = f" and {res.changed} changed" if res.changed else ""
    typer.echo(f"pull: {res.new} new annotations{changed} ({res.regions} masks), {res.cancelled} cancelled (counted, not "
               f"stored), {res.unchanged} unchanged, from {res.tasks} updated tasks at {res.url}; "
               f"{res.clips} clips updated; {res.reviewed_clips} clips fully reviewed, {res.partial_clips} partly"
               + "".join(f"; {x}" for x in extra))
    for why in _shown(res.retracted):
        typer.echo(f"  retracted: {why}")
    for text in _shown(res.labels):
        typer.echo(f"  label: {text}")
    if res.skipped:
        for s in _shown([s.line() for s in res.skipped]):
            typer.echo(f"  skipped: {s}", err=True)
        typer.echo(f"avs-tools: error: {len(res.skipped)} annotations could not be used and were skipped (the rest "
                   f"is stored; the next pull tries them again; avs-tools status {q(workspace)} --failures)", err=True)
        raise typer.Exit(1)
    say_next(f"avs-tools qa {q(workspace)}  (then: avs-tools export {q(workspace)} OUT)", quiet)


def _shown(lines: list[str], n: int = 10) -> list[str]:
    return lines[:n] + ([f"... and {len(lines) - n} more"] if len(lines) > n else [])
