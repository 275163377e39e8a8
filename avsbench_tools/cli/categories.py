"""avs-tools set-category."""

from __future__ import annotations

from pathlib import Path

import typer

from avsbench_tools.cli import app


@app.command("set-category", short_help="Set the category of collected clips; masks and expressions follow.  "
             "e.g. avs-tools set-category ws --clip abc_0 --category dog_barking")
def set_category(
    workspace: Path = typer.Argument(..., help="Workspace folder."),
    clip: list[str] = typer.Option(None, "--clip", help="Clip id (repeatable; pairs with --category in order)."),
    category: list[str] = typer.Option(None, "--category", help="Recipe category (repeatable: one per --clip, "
                                       "or one for every --clip)."),
    csv_file: Path = typer.Option(None, "--csv", help="A file of clip_id,category rows (a header row is allowed)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No next-step line."),
) -> None:
    """Change clips' categories: the clip, its mask versions that took the old category, and Ref-AVS
    objects and template expressions derived from it. Prints what changed."""
    from avsbench_tools.categories import read_pairs_csv, set_categories
    from avsbench_tools.cli.common import say_next
    from avsbench_tools.errors import UsageError
    from avsbench_tools.workspace import open_workspace

    clips, cats = list(clip or []), list(category or [])
    if len(cats) == 1 and len(clips) > 1:
        cats = cats * len(clips)
    if len(clips) != len(cats):
        raise UsageError(f"give one --category per --clip ({len(clips)} --clip, {len(cats)} --category), "
                         "or a single --category for all of them")
    pairs = list(zip(clips, cats, strict=True))
    if csv_file is not None:
        pairs += read_pairs_csv(csv_file)
    if not pairs:
        raise UsageError("nothing to set: give --clip ID --category C (repeatable) or --csv FILE of clip_id,category")
    ws = open_workspace(workspace, lock="set-category")
    try:
        changes = set_categories(ws, pairs)
    finally:
        ws.close()
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
        say_next(f"avs-tools export {workspace} OUT --force  (an earlier release holds the old categories)", quiet)
