"""avs-tools status."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from avsbench_tools.cli import app
from avsbench_tools.cli.common import (
    WorkspaceArg,
    collect_hint,
    json_flag,
    print_json,
    q,
    stages_with_a_command,
)

FAILURES_SHOWN = 5
StatusJson = json_flag("{recipe, clips, stages: {stage: {done, failed, pending}}, failures: [...]}")


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
        from avsbench_tools.ws_status import list_clips

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
    from avsbench_tools.ws_status import workspace_status

    st = workspace_status(workspace, stages_with_a_command())
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
