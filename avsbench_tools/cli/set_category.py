"""avs-tools set-category."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from avsbench_tools.cli import app
from avsbench_tools.cli.common import Quiet, WorkspaceArg, q, say_next, stage_run


@app.command("set-category", short_help="Set the category of collected clips; masks and expressions follow.  "
             "e.g. avs-tools set-category ws --clip abc_0 --category dog_barking")
def set_category(
    workspace: WorkspaceArg,
    clip: Annotated[list[str] | None, typer.Option("--clip", help="Clip id (repeatable; pairs with --category "
                                                   "in order).")] = None,
    category: Annotated[list[str] | None, typer.Option("--category", help="Recipe category (repeatable: one per "
                                                       "--clip, or one for every --clip).")] = None,
    csv_file: Annotated[Path | None, typer.Option("--csv", help="A file of clip_id,category rows (a header row "
                                                  "is allowed).")] = None,
    quiet: Quiet = False,
) -> None:
    """Change clips' categories: the clip, its mask versions that took the old category, and Ref-AVS
    objects and template expressions derived from it. Prints what changed."""
    from avsbench_tools.categories import read_pairs_csv, set_categories

    pairs = _pairs(list(clip or []), list(category or []))
    if csv_file is not None:
        pairs += read_pairs_csv(csv_file)
    if not pairs:
        from avsbench_tools.errors import UsageError

        raise UsageError("nothing to set: give --clip ID --category C (repeatable) or --csv FILE of clip_id,category")
    with stage_run(workspace, lock="set-category", quiet=True) as (ws, _):
        changes = set_categories(ws, pairs)
    for ch in changes:
        if not ch.changed:
            typer.echo(f"{ch.clip_id}: already {ch.new}")
            continue
        follow = [f"{ch.mask_versions} mask versions", f"{ch.objects} objects", f"{ch.expressions} template expressions"]
        typer.echo(f"{ch.clip_id}: {ch.old or '(none)'} -> {ch.new} ({', '.join(follow)})")
        if ch.kept_expressions:
            typer.echo(f"  note: {ch.kept_expressions} written expression(s) of {ch.clip_id} still name "
                       f"{ch.old}: edit them in the studio", err=True)
        if ch.prompted:
            typer.echo(f"  note: {ch.prompted} mask version(s) of {ch.clip_id} were proposed with the prompt of "
                       f"{ch.old}: review them, or propose again with the new prompt", err=True)
    n = sum(ch.changed for ch in changes)
    typer.echo(f"set-category: {n} clip(s) changed, {len(changes) - n} already had their category")
    if any(ch.exported and ch.changed for ch in changes):
        say_next(f"avs-tools export {q(workspace)} OUT --force  (an earlier release holds the old categories)", quiet)


def _pairs(clips: list[str], cats: list[str]) -> list[tuple[str, str]]:
    """--clip and --category paired in order; a single --category goes with every --clip."""
    from avsbench_tools.errors import UsageError

    if len(cats) == 1 and len(clips) > 1:
        cats = cats * len(clips)
    if len(clips) != len(cats):
        raise UsageError(f"give one --category per --clip ({len(clips)} --clip, {len(cats)} --category), "
                         "or a single --category for all of them")
    return list(zip(clips, cats, strict=True))
