"""A damaged workspace is named, never reset: a catalog file that is empty, not an SQLite database or
damaged, or missing beside the media of earlier work (a lost catalog), is a one-line UsageError that
says to restore it from a backup; nothing is changed (see workspace.open_workspace / init_workspace)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from avsbench_tools.errors import UsageError
from avsbench_tools.fsutil import TMP_PREFIX

CATALOG_NAME = "catalog.sqlite"


def _show(root: Path) -> str:
    text = str(root)
    return f"{text} ({Path(text).resolve()})" if text in (".", "..") else text


MEDIA_DIRS = ("sources", "clips", "frames", "audio", "masks")


def clip_media(root: Path) -> int:
    """How many files the media folders hold (bounded count; 0: a workspace with no work in it yet)."""
    n = 0
    for sub in MEDIA_DIRS:
        for _dirpath, _dirs, files in os.walk(root / sub):
            n += sum(1 for f in files if not f.startswith(TMP_PREFIX))
            if n > 1000:
                return n
    return n


def lost_catalog(root: Path, cause: str) -> UsageError:
    clips = len([p for p in (root / "clips").glob("*.mp4")]) if (root / "clips").is_dir() else 0
    held = f"the media of {clips} clips" if clips else "media files"
    return UsageError(f"workspace {_show(root)}: a lost catalog: {CATALOG_NAME} is {cause} but the workspace holds "
                      f"{held}; restore {CATALOG_NAME} from a backup (avs-tools backup makes one; {root / 'backups'} "
                      "holds the copies made before schema upgrades). Nothing was changed")


def check_catalog_file(root: Path, cat_path: Path) -> None:
    """A catalog file that is not an SQLite database is named before SQLite opens it (SQLite would turn an
    empty file into an empty catalog); an empty one beside media is a lost catalog."""
    from avsbench_tools.catalog.connection import catalog_damage

    cause = catalog_damage(cat_path)
    if cause is None or (cause.startswith("empty") and not clip_media(root)):
        return  # a database, or the empty file of an interrupted init
    if clip_media(root):
        raise lost_catalog(root, cause)
    raise UsageError(f"workspace {_show(root)}: {cat_path} is {cause}; restore it from a backup (or move it "
                     "away to start the workspace again). Nothing was changed")


def damaged(root: Path, exc: sqlite3.Error, doing: str) -> UsageError:
    from avsbench_tools.catalog.connection import is_damage

    if is_damage(exc):
        return UsageError(f"workspace {_show(root)}: {root / CATALOG_NAME} is damaged ({exc}); restore it from a "
                          f"backup (avs-tools backup makes one; {root / 'backups'} holds the copies made before "
                          "schema upgrades)")
    hint = "" if os.access(root, os.W_OK) else " (the folder is not writable: SQLite needs to create its WAL files)"
    return UsageError(f"workspace {_show(root)}: cannot {doing} {CATALOG_NAME}: {exc}{hint}")
