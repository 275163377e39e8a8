"""avs-tools backup WS DEST."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from avsbench_tools.cli import app
from avsbench_tools.cli.common import WorkspaceArg, q


@app.command(short_help="Copy a workspace's catalog and recipe.  e.g. avs-tools backup ws ws-backup")
def backup(
    workspace: WorkspaceArg,
    dest: Annotated[Path, typer.Argument(metavar="DEST", show_default=False,
                                         help="A new folder for the copy (catalog-backup.sqlite, recipe.toml).")],
    force: Annotated[bool, typer.Option("--force", help="Replace an earlier backup in DEST (only a folder "
                                        "avs-tools backup wrote, holding nothing else).")] = False,
) -> None:
    """Copy WORKSPACE's catalog (SQLite's online backup: consistent even while a stage runs) and its recipe
    into DEST. The media are not copied (they are large, and they are what the catalog describes): the
    catalog is the one file a workspace cannot do without. A copy is also made automatically before each
    schema upgrade (WORKSPACE/backups/)."""
    from avsbench_tools.backup import backup_workspace

    res = backup_workspace(workspace, dest, force)
    typer.echo(f"backup: {res.clips} clips, catalog schema {res.schema_version}, {res.bytes:,} bytes -> "
               f"{dest} ({res.catalog.name}, recipe.toml)")
    typer.echo(f"restore: cp {q(Path(dest) / res.catalog.name)} {q(Path(workspace) / 'catalog.sqlite')} "
               f"(with no stage running, after removing {q(Path(workspace) / 'catalog.sqlite-wal')} and "
               f"{q(Path(workspace) / 'catalog.sqlite-shm')})")
