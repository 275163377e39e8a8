"""avs-tools publish."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from avsbench_tools.cli import app
from avsbench_tools.cli.common import (
    FormatOrMarker,
    Quiet,
    ReleaseArg,
    q,
    release_format,
    say_next,
    stage_run,
)


@app.command(short_help="A release as Hugging Face Parquet + Croissant.  e.g. avs-tools publish rel -f avss --out hf")
def publish(
    release: ReleaseArg,
    fmt: FormatOrMarker = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Folder to write (new, empty, or with --force an "
                                             "earlier publish).", show_default=False)] = None,
    workspace: Annotated[Path | None, typer.Option("--workspace", "-w", help="The workspace the release was exported "
                                                   "from: adds per-frame provenance (review or proposal, annotators, "
                                                   "QA IoU, backend, checkpoint), licences and sources.")] = None,
    shard_mb: Annotated[int, typer.Option("--shard-mb", min=1, help="Largest Parquet shard, MB.")] = 256,
    force: Annotated[bool, typer.Option("--force", help="Replace OUT when avs-tools published it before.")] = False,
    quiet: Quiet = False,
) -> None:
    """Parquet shards (frames table: frame + mask images and provenance; clips table: 16 kHz audio, log-mel,
    licence, source), README.md with the Hub's YAML header, croissant.json (Croissant 1.1 + RAI), SHA256SUMS."""
    import contextlib

    from avsbench_tools.cli.bars import bars
    from avsbench_tools.publish import publish as run
    from avsbench_tools.release_reader import check_release

    if out is None:
        from avsbench_tools.errors import UsageError

        raise UsageError("--out DIR: name the folder to write the published release to")
    fmt = release_format(release, fmt)
    check_release(release, fmt)
    with contextlib.ExitStack() as stack:
        ws = None
        if workspace is None:
            progress = stack.enter_context(bars(quiet))
        else:  # read only: the workspace's provenance; no writer lock taken
            ws, progress = stack.enter_context(stage_run(workspace, quiet=quiet))
        res = run(release, fmt, out, force=force, ws=ws, shard_bytes=shard_mb * 1024 * 1024, progress=progress)
    splits = ", ".join(f"{k} {v}" for k, v in sorted(res.splits.items()))
    typer.echo(f"publish: {res.clips} clips ({splits}), {res.frames} frame rows, {res.other_files} other files -> "
               f"{res.out}: {len(res.shards)} Parquet shards, {res.bytes / 1e6:.1f} MB, README.md, croissant.json")
    say_next(f"avs-tools unpublish {q(res.out)} --out RELEASE  (the official tree back, byte for byte)", quiet)
