"""avs-tools init / status."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from avsbench_tools.cli import app


@app.command(short_help="Create a workspace for a recipe.  e.g. avs-tools init ws --recipe avsbench-s4")
def init(
    workspace: Path = typer.Argument(..., help="Workspace folder to create."),
    recipe: str = typer.Option(..., "--recipe", "-r", help="A bundled recipe name (avsbench-s4, avsbench-ms3, avss, "
                               "ref-avs) or a path to a recipe .toml."),
) -> None:
    """Create a workspace (catalog + frozen recipe). Re-running with the same recipe is a no-op."""
    from avsbench_tools.workspace import init_workspace

    ws, created = init_workspace(workspace, recipe)
    ws.close()
    typer.echo(f"{'created' if created else 'already initialised'}: workspace {workspace} (recipe {ws.recipe.name})")


@app.command(short_help="Counts per stage and failures.  e.g. avs-tools status ws --json")
def status(
    workspace: Path = typer.Argument(..., help="Workspace folder."),
    as_json: bool = typer.Option(False, "--json", help="Print {recipe, clips, stages: {stage: {done, failed, pending}}}."),
    failures: int = typer.Option(20, "--failures", help="How many ledger rows to list (0: none)."),
) -> None:
    """Show per-stage progress and the failure ledger of a workspace."""
    from avsbench_tools.workspace import workspace_status

    st = workspace_status(workspace)
    if as_json:
        typer.echo(json.dumps(st, indent=1))
        return
    from rich.table import Table

    from avsbench_tools.cli.progress import console

    t = Table(title=f"{workspace}  recipe={st['recipe']}  clips={st['clips']}")
    for col in ("stage", "done", "failed", "pending"):
        t.add_column(col, justify="left" if col == "stage" else "right")
    for stage, c in st["stages"].items():
        t.add_row(stage, str(c["done"]), str(c["failed"]), str(c["pending"]))
    console.print(t, soft_wrap=True)
    if st["failures"] and failures:
        f = Table(title=f"failure ledger ({len(st['failures'])} open; retry with --retry-failed)")
        for col in ("stage", "item", "reason", "attempts"):
            f.add_column(col)
        for row in st["failures"][:failures]:
            f.add_row(row["stage"], row["item"], row["reason"], str(row["attempts"]))
        console.print(f, soft_wrap=True)
