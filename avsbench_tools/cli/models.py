"""avs-tools models check."""

from __future__ import annotations

import json

import typer

from avsbench_tools.cli import App, app
from avsbench_tools.cli.common import AllowDownload, Clap, Device, Dino, Sam, Sam3Ckpt, SamType, json_flag

models_app = App(help="Model checkpoints used by preannotate.", no_args_is_help=True)
ModelsJson = json_flag("a JSON list of {role, spec, loads, device, detail}")
app.add_typer(models_app, name="models", short_help="Check configured checkpoints.  e.g. avs-tools models check --sam sam.pth")


@models_app.command("check")
def models_check(
    dino: Dino = None,
    sam: Sam = None,
    sam_type: SamType = None,
    clap: Clap = None,
    sam3: Sam3Ckpt = None,
    device: Device = "auto",
    allow_download: AllowDownload = False,
    as_json: ModelsJson = False,
) -> None:
    """List the configured checkpoints, whether each loads, and on which device. Exit 1 if one fails."""
    from avsbench_tools.preannotate import check_models

    rows = check_models(dino, sam, device, sam_type, allow_download, clap, sam3)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    else:
        for r in rows:
            state = "ok" if r["loads"] else ("-" if r["spec"] is None else "FAILED")
            typer.echo(f"{r['role']:5} {state:6} {r['device'] or '':6} {r['spec'] or '(none)'}  {r['detail']}")
    if any(r["spec"] and not r["loads"] for r in rows):
        raise typer.Exit(1)
