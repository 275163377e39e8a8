"""avs-tools collect."""

from __future__ import annotations

from pathlib import Path

import typer

from avsbench_tools.cli import app


@app.command(short_help="Find, download and cut clips (yt-dlp), resumable.  "
             "e.g. avs-tools collect ws --keywords \"dog barking\" --category dog_barking")
def collect(
    workspace: Path = typer.Argument(..., help="Workspace folder (avs-tools init)."),
    keywords: list[str] = typer.Option(None, "--keywords", "-k", help="Search text (repeatable): ytsearchN:<text>."),
    per_keyword: int = typer.Option(10, "--per-keyword", help="Search results per keyword."),
    category: str = typer.Option(None, "--category", help="Recipe category for everything collected by this call "
                                 "(required for --local/--urls unless --category-from-folder or --world)."),
    category_from_folder: bool = typer.Option(False, "--category-from-folder",
                                              help="--local: each file's category is the name of its sub-folder "
                                              "under DIR (the official datasets ship per-category folders)."),
    urls: Path = typer.Option(None, "--urls", help="File with one URL per line (any site yt-dlp supports)."),
    csv_file: Path = typer.Option(None, "--csv", help="ytid,start[,label[,split]] rows: one clip per row."),
    local: Path = typer.Option(None, "--local", help="Folder of video files on disk (recursive)."),
    world: Path = typer.Option(None, "--world", help="A synthetic world (avs-tools synth): keep its video ids, "
                               "splits and categories so its gold release scores the export. Alone it reads "
                               "WORLD/videos; with --urls, URLs ending in <video id>.mp4."),
    any_license: bool = typer.Option(False, "--any-license", help="Keep videos that are not Creative Commons."),
    max_duration: float = typer.Option(None, "--max-duration", help="Skip source videos longer than this (s)."),
    min_height: int = typer.Option(None, "--min-height", help="Skip videos shorter than this many pixels."),
    max_height: int = typer.Option(720, "--max-height", help="Best video+audio up to this height."),
    clips_per_video: int = typer.Option(1, "--clips-per-video", help="Non-overlapping clips per video without a start."),
    seconds: int = typer.Option(None, "--seconds", help="Clip length (default: the recipe's first)."),
    fps: int = typer.Option(None, "--fps", help="Constant frame rate of the clips (default: the recipe's, 25)."),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Parallel downloads."),
    sleep: float = typer.Option(0.0, "--sleep", help="Polite pause after each download (s)."),
    retries: int = typer.Option(2, "--retries", help="Retries with backoff for transient errors."),
    timeout: float = typer.Option(20.0, "--timeout", help="Network timeout per request (s)."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Try the failed sources again (transient "
                                      "failures only: rejections such as no audio or too short are final)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars and no next-step line (for scripts)."),
) -> None:
    """Collect clips into the workspace from searches, URL lists, CSV lists, local files or a synthetic world."""
    from avsbench_tools.cli.common import report_failures, say_next
    from avsbench_tools.cli.progress import bars
    from avsbench_tools.collect import CollectOptions
    from avsbench_tools.collect import collect as run_collect
    from avsbench_tools.errors import AvsError
    from avsbench_tools.workspace import open_workspace

    opts = CollectOptions(keywords=list(keywords or []), per_keyword=per_keyword, category=category, urls=urls,
                          csv=csv_file, local=local, any_license=any_license, max_duration=max_duration,
                          min_height=min_height, max_height=max_height, clips_per_video=clips_per_video,
                          seconds=seconds, fps=fps, jobs=jobs, sleep=sleep, retries=retries, timeout=timeout,
                          retry_failed=retry_failed, category_from_folder=category_from_folder, world=world,
                          require_category=True)
    ws = open_workspace(workspace, lock="collect")
    try:
        with bars(quiet) as cb:
            res = run_collect(ws, opts, progress=cb)
    finally:
        ws.close()
    for note in res.notes:
        typer.echo(f"note: {note}", err=True)
    if res.idle:
        typer.echo(f"collect: nothing to do: {res.idle}")
    else:
        typer.echo(f"collect: {res.new_clips} new clips ({res.clips} in the workspace) from {res.sources} sources; "
                   f"{res.failed} failed (retryable), {res.rejected} rejected (permanent); "
                   f"{res.skipped} already done")
    report_failures([(item, reason) for item, reason, _ in res.failures], workspace)
    if res.failed and not res.idle:
        typer.echo(f"  retry the {res.failed} failed with: avs-tools collect {workspace} --retry-failed", err=True)
    if res.all_failed:
        raise AvsError(f"every one of the {res.sources} sources of this run failed or was rejected: no clip collected")
    if res.clips:
        say_next(f"avs-tools sample {workspace}", quiet)
