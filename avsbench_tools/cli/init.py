"""avs-tools init."""

from __future__ import annotations

from typing import Annotated

import typer

from avsbench_tools.cli import app
from avsbench_tools.cli.common import (
    NewWorkspaceArg,
    Quiet,
    collect_hint,
    say_next,
)


@app.command(short_help="Create a workspace for a recipe.  e.g. avs-tools init ws --recipe avsbench-s4")
def init(
    workspace: NewWorkspaceArg,
    recipe: Annotated[str, typer.Option("--recipe", "-r", help="A bundled recipe name (avsbench-s4, avsbench-ms3, "
                                        "avss, ref-avs) or a path to a recipe .toml.")],
    quiet: Quiet = False,
) -> None:
    """Create a workspace (catalog + frozen recipe). Re-running with the same recipe is a no-op."""
    from avsbench_tools.workspace import init_workspace

    ws, created = init_workspace(workspace, recipe)
    ws.close()
    typer.echo(f"{'created' if created else 'already initialised'}: workspace {workspace} (recipe {ws.recipe.name})")
    say_next(collect_hint(workspace, recipe if recipe.endswith(".toml") else None, ws.recipe.name), quiet)
