"""avs-tools collect."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from avsbench_tools.cli import app
from avsbench_tools.cli.common import (
    Engine,
    Quiet,
    RayAddress,
    RayShared,
    WorkspaceArg,
    q,
    report_failures,
    say_next,
    stage_run,
)


@app.command(short_help="Find, download and cut clips (yt-dlp), resumable.  "
             "e.g. avs-tools collect ws --keywords \"dog barking\" --category dog_barking")
def collect(
    workspace: WorkspaceArg,
    keywords: Annotated[list[str] | None, typer.Option("--keywords", "-k", help="Search text (repeatable): "
                                                       "ytsearchN:<text>.")] = None,
    per_keyword: Annotated[int, typer.Option("--per-keyword", help="Search results per keyword.")] = 10,
    category: Annotated[str | None, typer.Option("--category", help="Recipe category for everything collected by "
                                                 "this call (required for --local/--urls unless "
                                                 "--category-from-folder or --world).")] = None,
    category_from_folder: Annotated[bool, typer.Option("--category-from-folder", help="--local: each file's "
                                                       "category is the name of its sub-folder under DIR (the "
                                                       "official datasets ship per-category folders).")] = False,
    urls: Annotated[Path | None, typer.Option("--urls", help="File with one URL per line (any site yt-dlp "
                                              "supports).")] = None,
    csv_file: Annotated[Path | None, typer.Option("--csv", help="ytid,start[,label[,split]] rows: one clip per "
                                                  "row.")] = None,
    local: Annotated[Path | None, typer.Option("--local", help="Folder of video files on disk (recursive).")] = None,
    world: Annotated[Path | None, typer.Option("--world", help="A synthetic world (avs-tools synth): keep its video "
                                               "ids, splits and categories so its gold release scores the export. "
                                               "Alone it reads WORLD/videos; with --urls, URLs ending in "
                                               "<video id>.mp4.")] = None,
    any_license: Annotated[bool, typer.Option("--any-license", help="Keep videos that are not Creative "
                                              "Commons.")] = False,
    max_duration: Annotated[float | None, typer.Option("--max-duration", help="Skip source videos longer than "
                                                       "this (s).")] = None,
    min_height: Annotated[int | None, typer.Option("--min-height", help="Skip videos shorter than this many "
                                                   "pixels.")] = None,
    max_height: Annotated[int, typer.Option("--max-height", help="Best video+audio up to this height.")] = 720,
    clips_per_video: Annotated[int, typer.Option("--clips-per-video", help="Non-overlapping clips per video "
                                                 "without a start.")] = 1,
    seconds: Annotated[int | None, typer.Option("--seconds", help="Clip length (default: the recipe's "
                                                "first).")] = None,
    fps: Annotated[int | None, typer.Option("--fps", help="Constant frame rate of the clips (default: the "
                                            "recipe's, 25).")] = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", help="Parallel downloads.")] = 1,
    sleep: Annotated[float, typer.Option("--sleep", help="Polite pause after each download (s).")] = 0.0,
    retries: Annotated[int, typer.Option("--retries", help="Retries with backoff for transient errors.")] = 2,
    timeout: Annotated[float, typer.Option("--timeout", help="Network timeout per request (s).")] = 20.0,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Try the failed sources again (transient "
                                               "failures only: rejections such as no audio or too short are "
                                               "final).")] = False,
    engine: Engine = "local",
    ray_address: RayAddress = None,
    ray_shared_workspace: RayShared = False,
    quiet: Quiet = False,
) -> None:
    """Collect clips into the workspace from searches, URL lists, CSV lists, local files or a synthetic world."""
    from avsbench_tools.cli.common import note as say_note
    from avsbench_tools.collect import CollectOptions
    from avsbench_tools.collect import collect as run_collect
    from avsbench_tools.engine import nodes_summary
    from avsbench_tools.engine.options import engine_options
    from avsbench_tools.errors import AvsError

    engine_opts, notes = engine_options(engine, ray_address, ray_shared_workspace)
    for text in notes:
        say_note(text)

    opts = CollectOptions(keywords=list(keywords or []), per_keyword=per_keyword, category=category, urls=urls,
                          csv=csv_file, local=local, any_license=any_license, max_duration=max_duration,
                          min_height=min_height, max_height=max_height, clips_per_video=clips_per_video,
                          seconds=seconds, fps=fps, jobs=jobs, sleep=sleep, retries=retries, timeout=timeout,
                          retry_failed=retry_failed, category_from_folder=category_from_folder, world=world,
                          require_category=True, engine=engine_opts)
    with stage_run(workspace, lock="collect", quiet=quiet) as (ws, progress):
        res = run_collect(ws, opts, progress=progress)
    for note in res.notes:
        typer.echo(f"note: {note}", err=True)
    if res.idle:
        typer.echo(f"collect: nothing to do: {res.idle}")
    else:
        typer.echo(f"collect: {res.new_clips} new clips ({res.clips} in the workspace) from {res.sources} sources; "
                   f"{res.failed} failed (retryable), {res.rejected} rejected (permanent); "
                   f"{res.skipped} already done")
        if engine_opts.ray:
            typer.echo(nodes_summary(res.nodes, "sources"))
    report_failures([(item, reason) for item, reason, _ in res.failures], workspace)
    if res.failed and not res.idle:
        typer.echo(f"  retry the {res.failed} failed with: avs-tools collect {workspace} --retry-failed", err=True)
    if res.all_failed:
        raise AvsError(f"every one of the {res.sources} sources of this run failed or was rejected: no clip collected")
    if res.clips:
        say_next(f"avs-tools sample {q(workspace)}", quiet)
