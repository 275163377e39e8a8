"""avs-tools init / status / clips."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from avsbench_tools.cli import app
from avsbench_tools.cli.common import (
    NewWorkspaceArg,
    WorkspaceArg,
    collect_hint,
    json_flag,
    print_json,
    q,
    say_next,
)

FAILURES_SHOWN = 5
StatusJson = json_flag("{recipe, clips, stages: {stage: {done, failed, pending}}, failures: [...]}")
ClipsJson = json_flag("a list of {clip, category, source, start, seconds, split, "
                      "stages: {stage: done|failed|pending}}")


def _stages_with_a_command() -> list[str]:
    """The catalog's stages that this build has a command for (status never shows a stage you cannot run)."""
    from avsbench_tools.catalog import STAGES

    names = {(c.name or c.callback.__name__).replace("_", "-") for c in app.registered_commands if c.callback}
    return [s for s in STAGES if s in names]


@app.command(short_help="Create a workspace for a recipe.  e.g. avs-tools init ws --recipe avsbench-s4")
def init(
    workspace: NewWorkspaceArg,
    recipe: Annotated[str, typer.Option("--recipe", "-r", help="A bundled recipe name (avsbench-s4, avsbench-ms3, "
                                        "avss, ref-avs) or a path to a recipe .toml.")],
) -> None:
    """Create a workspace (catalog + frozen recipe). Re-running with the same recipe is a no-op."""
    from avsbench_tools.workspace import init_workspace

    ws, created = init_workspace(workspace, recipe)
    ws.close()
    typer.echo(f"{'created' if created else 'already initialised'}: workspace {workspace} (recipe {ws.recipe.name})")
    say_next(collect_hint(workspace, recipe if recipe.endswith(".toml") else None, ws.recipe.name))


def _next_step(workspace: Path, st: dict) -> str | None:
    """The true next step from the counts (and, once pushed, from which clips a pull has brought reviews for)."""
    stages = st["stages"]
    w = q(workspace)
    if st["clips"] == 0:
        return collect_hint(workspace, None, st["recipe"])
    for stage in ("sample", "preannotate"):
        if stage in stages and stages[stage]["pending"]:
            return f"avs-tools {stage} {w}"
    push, pull = stages.get("push"), stages.get("pull")
    if push and pull and push["done"] and pull["pending"]:  # sent to Label Studio, not all reviewed yet
        from avsbench_tools.workspace import list_clips

        partly = sum(1 for c in list_clips(workspace, ["pull"]) if c["stages"]["pull"] == "partial")
        if partly or pull["done"]:  # a pull has brought reviews: the rest is waiting for annotators
            return (f"finish the review in Label Studio ({pull['done']} clips fully reviewed, {partly} partly, "
                    f"{pull['pending'] - partly} not yet), then avs-tools pull {w}; or now: avs-tools export {w} OUT "
                    "--include-unreviewed  (proposals where no review exists)")
        return f"avs-tools pull {w}  (after annotating in Label Studio)"
    if push and push["pending"] and not push["done"]:
        return (f"avs-tools push {w}  (review in Label Studio), or: avs-tools export {w} OUT "
                "--include-unreviewed")
    if "export" in stages:
        if pull and pull["done"] == st["clips"]:
            return f"avs-tools export {w} OUT"
        return f"avs-tools export {w} OUT --include-unreviewed"
    return None


@app.command(short_help="Counts per stage and failures.  e.g. avs-tools status ws --failures")
def status(
    workspace: WorkspaceArg,
    as_json: StatusJson = False,
    failures: Annotated[bool, typer.Option("--failures", help="List every open failure (stage, item, source, reason, "
                                           f"attempts, retryable); by default the first {FAILURES_SHOWN} are shown.")]
    = False,
) -> None:
    """Show per-stage progress and the failure ledger of a workspace (read-only: never waits for a running stage)."""
    from avsbench_tools.workspace import workspace_status

    st = workspace_status(workspace, _stages_with_a_command())
    if print_json(st, as_json):
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    t = Table(title=f"{workspace}  recipe={st['recipe']}  clips={st['clips']}")
    for col in ("stage", "done", "failed", "pending"):
        t.add_column(col, justify="left" if col == "stage" else "right")
    for stage, c in st["stages"].items():
        t.add_row(stage, str(c["done"]), str(c["failed"]), str(c["pending"]))
    console.print(t, soft_wrap=True)
    rows = st["failures"]
    if rows:
        shown = rows if failures else rows[:FAILURES_SHOWN]
        n_retry = sum(1 for r in rows if r["retryable"])
        f = Table(title=f"failure ledger: {len(rows)} open, {n_retry} retryable"
                  + ("" if failures else f" (first {len(shown)})"))
        for col in ("stage", "item", "source", "reason", "attempts", "retryable"):
            f.add_column(col, justify="right" if col == "attempts" else "left")
        for r in shown:
            f.add_row(r["stage"], r["item"], r["source"] if r["source"] != r["item"] else "", r["reason"],
                      str(r["attempts"]), "yes" if r["retryable"] else "no (permanent)")
        console.print(f, soft_wrap=True)
        if len(shown) < len(rows):
            typer.echo(f"and {len(rows) - len(shown)} more: avs-tools status {q(workspace)} --failures", err=True)
        stages = sorted({r["stage"] for r in rows if r["retryable"]} & {"collect", "sample"})
        if stages:
            typer.echo("retry the retryable ones: " + "; ".join(f"avs-tools {s} {q(workspace)} --retry-failed"
                                                                for s in stages), err=True)
    step = _next_step(workspace, st)
    if step:
        typer.echo(f"next: {step}")


@app.command(short_help="List the clips with their source and stage states.  e.g. avs-tools clips ws --json")
def clips(workspace: WorkspaceArg, as_json: ClipsJson = False) -> None:
    """One row per clip: category, source (URL, or the file name of a local file), length, split, stage states."""
    from avsbench_tools.workspace import list_clips

    rows = list_clips(workspace, _stages_with_a_command())
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
