"""avs-tools unpublish."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from avsbench_tools.cli import app
from avsbench_tools.cli.common import Quiet, q, say_next


@app.command(short_help="The official tree back from a published folder.  e.g. avs-tools unpublish hf --out rel")
def unpublish(
    folder: Annotated[Path, typer.Argument(metavar="DIR", help="A folder avs-tools publish wrote.", show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Release root to create.", show_default=False)],
    force: Annotated[bool, typer.Option("--force", help="Replace OUT when it is a release avs-tools wrote.")] = False,
    quiet: Quiet = False,
) -> None:
    """Write the release tree the Parquet shards hold, byte for byte, checked against the release's SHA256SUMS."""
    from avsbench_tools.cli.bars import bars
    from avsbench_tools.publish import published_format
    from avsbench_tools.publish import unpublish as run

    fmt = published_format(folder)
    with bars(quiet) as progress:
        res = run(folder, out, force=force, progress=progress)
    checked = f", {res.checked} checked against its SHA256SUMS" if res.checked else ""
    typer.echo(f"unpublish: {res.files} files -> {res.out} [{fmt}]{checked}")
    say_next(f"avs-tools validate {q(res.out)} --format {fmt}", quiet)
