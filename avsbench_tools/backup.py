"""`avs-tools backup WS DEST`: a consistent copy of a workspace's catalog and recipe.

The catalog is the single source of truth and the one file that cannot be rebuilt from the media: DEST
gets `catalog-backup.sqlite` (SQLite's online backup: consistent even while a stage writes the workspace)
and `recipe.toml`. Restore by copying it back as WS/catalog.sqlite (the media stay where they are). The same copy is made
automatically, as WS/backups/catalog-v<N>-<time>.sqlite, before a schema upgrade.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

KIND = "workspace-backup"
BACKUP_NAME = "catalog-backup.sqlite"  # not catalog.sqlite: DEST is a copy, never taken for a workspace


@dataclass
class BackupResult:
    dest: Path
    catalog: Path
    bytes: int
    clips: int
    schema_version: int | None


def backup_workspace(root: Path, dest: Path, force: bool = False) -> BackupResult:
    """Copy WS's catalog (online backup) and recipe into DEST (a new folder, or an earlier backup with
    --force, replaced atomically when the new copy is complete)."""
    from avsbench_tools.outdir import prepare_output_dir
    from avsbench_tools.workspace import RECIPE_NAME, open_workspace

    ws = open_workspace(root)
    try:
        out = prepare_output_dir(dest, kind=KIND, force=force, protected=[ws.root], what="DEST",
                                 workspace=str(Path(root).resolve()))
        with out:
            out.claim(BACKUP_NAME, RECIPE_NAME)
            ws.catalog.backup(out.work / BACKUP_NAME)
            with (out.work / f".tmp-{RECIPE_NAME}").open("w", encoding="utf-8") as fh:
                fh.write(ws.recipe.text)
            (out.work / f".tmp-{RECIPE_NAME}").replace(out.work / RECIPE_NAME)
        clips = len(ws.catalog.clips())
        version = ws.catalog.schema_version()
    finally:
        ws.close()
    cat = out.final / BACKUP_NAME
    return BackupResult(out.final, cat, cat.stat().st_size, clips, version)
