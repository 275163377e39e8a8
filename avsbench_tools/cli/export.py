"""avs-tools export."""

from __future__ import annotations

from pathlib import Path

import typer

from avsbench_tools.cli import app
from avsbench_tools.cli.common import FMT_HELP, say_next


@app.command(short_help="Write a release in an official layout.  e.g. avs-tools export ws out --format avsbench-s4 --split test")
def export(
    workspace: Path = typer.Argument(..., help="Workspace folder."),
    out: Path = typer.Argument(..., help="Release root to create (as the official download unpacks)."),
    fmt: str = typer.Option(None, "--format", "-f", help=FMT_HELP + " Default: the recipe's."),
    split: str = typer.Option(None, "--split", help="Export only this split (train, val, test; Ref-AVS test = test_s+test_u)."),
    include_unreviewed: bool = typer.Option(False, "--include-unreviewed",
                                            help="Use the latest pre-annotation where no review exists (the card says so)."),
    force: bool = typer.Option(False, "--force", help="Replace OUT when it is a release avs-tools exported before "
                               "(never the workspace, a source, or a folder holding anything else)."),
    seed: int = typer.Option(None, "--seed", help="Split seed for clips without a split (default 0; splits are "
                             "stored in the workspace and never move, so a seed given later is ignored)."),
    unseen: list[str] = typer.Option(None, "--unseen", help="Ref-AVS: category held out of train for test_u (repeatable)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Export frames, masks, audio, log-mel and metadata in the exact official layout, plus a card and checksums."""
    from avsbench_tools.cli.progress import bars
    from avsbench_tools.export import export as run
    from avsbench_tools.workspace import open_workspace

    ws = open_workspace(workspace, lock="export")
    try:
        with bars(quiet) as cb:
            res = run(ws, out, fmt, split, include_unreviewed, force, seed, list(unseen or []) or None, progress=cb)
    finally:
        ws.close()
    for note in res.notes:
        typer.echo(f"avs-tools: note: {note}", err=True)
    fixes = {"template": "; the dataset card says so (write the expressions in the studio, then export again)",
             "category": f"; set the categories with avs-tools set-category {workspace}, then export again"}
    for key, w in res.warnings.items():
        typer.echo(f"avs-tools: warning: {w}{fixes.get(key, '')}", err=True)
    splits = ", ".join(f"{k} {v}" for k, v in sorted(res.splits.items()))
    typer.echo(f"export: {res.clips} clips ({splits}) -> {res.out} [{res.fmt}], {res.files} files; masks from review "
               f"{res.from_reviews}, from proposals {res.from_proposals}; {res.skipped_unannotated} clips without "
               "reviewed masks left out")
    say_next(f"avs-tools validate {res.out} --format {res.fmt}", quiet)
