"""avs-tools clips."""

from __future__ import annotations

import typer

from avsbench_tools.cli import app
from avsbench_tools.cli.common import (
    WorkspaceArg,
    collect_hint,
    json_flag,
    print_json,
    stages_with_a_command,
)

ClipsJson = json_flag("a list of {clip, category, source, start, seconds, split, "
                      "stages: {stage: done|failed|pending}}")


@app.command(short_help="List the clips with their source and stage states.  e.g. avs-tools clips ws --json")
def clips(workspace: WorkspaceArg, as_json: ClipsJson = False) -> None:
    """One row per clip: category, source (URL, or the file name of a local file), length, split, stage states."""
    from avsbench_tools.ws_status import list_clips

    rows = list_clips(workspace, stages_with_a_command())
    if print_json(rows, as_json):
        return
    if not rows:
        typer.echo(f"no clips in {workspace} yet: run {collect_hint(workspace)}", err=True)
        return
    stages = list(rows[0]["stages"])
    table = [["clip", "category", "source", "seconds", "split", *stages]]
    for r in rows:
        table.append([r["clip"], r["category"] or "-", r["source"] or "-", str(r["seconds"]), r["split"] or "-",
                      *(r["stages"][s] for s in stages)])
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:  # plain aligned columns: nothing cut, easy to grep
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    typer.echo(f"{len(rows)} clips", err=True)
