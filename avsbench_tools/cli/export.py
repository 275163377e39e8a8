"""avs-tools export."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from avsbench_tools.cli import app
from avsbench_tools.cli.common import FormatOrRecipe, Quiet, WorkspaceArg, q, say_next, stage_run


@app.command(short_help="Write a release in an official layout.  e.g. avs-tools export ws out --format avsbench-s4 --split test")
def export(
    workspace: WorkspaceArg,
    out: Annotated[Path, typer.Argument(help="Release root to create (as the official download unpacks).",
                                        show_default=False)],
    fmt: FormatOrRecipe = None,
    split: Annotated[str | None, typer.Option("--split", help="Export only this split (train, val, test; Ref-AVS "
                                              "test = test_s+test_u).")] = None,
    include_unreviewed: Annotated[bool, typer.Option("--include-unreviewed", help="Use the latest pre-annotation "
                                                     "where no review exists (the card says so).")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace OUT when it is a release avs-tools exported before "
                                        "(never the workspace, a source, or a folder holding anything else).")] = False,
    seed: Annotated[int | None, typer.Option("--seed", help="Split seed for clips without a split (default 0; splits "
                                             "are stored in the workspace and never move, so a seed given later is "
                                             "ignored).")] = None,
    unseen: Annotated[list[str] | None, typer.Option("--unseen", help="Ref-AVS: category held out of train for "
                                                     "test_u (repeatable).")] = None,
    negative_audio: Annotated[str | None, typer.Option("--negative-audio", help="Also write negative-audio copies "
                                                       "of the test clips: silence,noise,offscreen (any of them), "
                                                       "in OUT/negative-audio/<kind>/, seeded by --seed.")] = None,
    quiet: Quiet = False,
) -> None:
    """Export frames, masks, audio, log-mel and metadata in the exact official layout, plus a card and checksums."""
    from avsbench_tools.export import ExportOptions
    from avsbench_tools.export import export as run

    if split is not None and not split.strip():
        from avsbench_tools.errors import UsageError

        raise UsageError('--split "": name a split (train, val, test), or leave --split out to export every split')
    from avsbench_tools.negative_audio import check_format, parse_kinds

    kinds = parse_kinds(negative_audio)
    if kinds and fmt:
        check_format(fmt)
    with stage_run(workspace, lock="export", quiet=quiet) as (ws, progress):
        opts = ExportOptions(fmt=fmt, split=split, include_unreviewed=include_unreviewed, force=force, seed=seed,
                             unseen=list(unseen or []) or None, negative_audio=kinds or None, negative_seed=seed)
        res = run(ws, out, opts, progress=progress)
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
    say_next(f"avs-tools validate {q(res.out)} --format {res.fmt}", quiet)
