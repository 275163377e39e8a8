"""Workspaces: a folder with the frozen recipe, the catalog and every stage's media.

    WS/recipe.toml        the recipe the workspace was made with (frozen copy)
    WS/catalog.sqlite     the catalog (WAL mode)
    WS/sources/           downloaded source videos
    WS/clips/             cut clips, <clip_id>.mp4
    WS/frames/, WS/audio/ sampled frames and audio features
    WS/masks/             mask versions (proposals, reviews)
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from avsbench_tools.catalog import Catalog
from avsbench_tools.catalog.schema import relative_to_root
from avsbench_tools.errors import UsageError, WorkspaceBusy
from avsbench_tools.fsutil import TMP_PREFIX, atomic_write_text, remove_stale_temps
from avsbench_tools.outdir import hold_interrupts as deferred_interrupt  # noqa: F401 - the stages' name for it
from avsbench_tools.recipe import Recipe, load_recipe, parse_recipe
from avsbench_tools.ws_damage import check_catalog_file, clip_media, damaged, lost_catalog

CATALOG_NAME = "catalog.sqlite"
RECIPE_NAME = "recipe.toml"
LOCK_NAME = ".lock"


@dataclass
class Workspace:
    root: Path
    recipe: Recipe
    catalog: Catalog
    _lock_fd: int | None = field(default=None, repr=False)
    _dir_fd: int | None = field(default=None, repr=False)

    def lock(self, command: str = "") -> None:
        """Take the workspace's writer lock (one stage run at a time), or raise WorkspaceBusy.

        An advisory `flock` on WS/.lock: the kernel releases it when the process dies, even by
        kill -9, so a crashed run never leaves the workspace locked.
        """
        import fcntl

        if self._lock_fd is not None:
            return
        try:
            fd = os.open(self.root / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise UsageError(f"workspace {self.root} is not writable ({exc.strerror}: {self.root / LOCK_NAME}); "
                             f"{command or 'this command'} needs to write it") from None
        dir_fd = None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # WS/.lock can be deleted while a stage runs (a second writer would then lock a new file): the
            # lock that counts is held on the workspace folder itself, which nobody sweeps away
            dir_fd = _lock_folder(self.root)
        except BlockingIOError:
            try:
                holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or (
                    "another avs-tools run (its WS/.lock file was deleted)")
            finally:
                os.close(fd)
                if dir_fd is not None:
                    os.close(dir_fd)
            raise WorkspaceBusy(f"workspace {self.root} is busy: {holder} is running on it; wait for it to "
                                "finish (or stop it with Ctrl-C), then run this command again") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"avs-tools {command or 'a stage'} (pid {os.getpid()})".encode(), 0)
        self._lock_fd, self._dir_fd = fd, dir_fd
        bad = self.catalog.damage()  # a writer never writes into a damaged catalog
        if bad is not None:
            raise UsageError(f"workspace {self.root}: {self.catalog.path} is damaged ({bad}); restore it from a "
                             f"backup (avs-tools backup makes one; {self.root / 'backups'} holds the copies made "
                             "before schema upgrades). Nothing was changed")

    def path(self, *parts: str) -> Path:
        """A path in the workspace: `ws.path("clips", "a.mp4")`, or a path as the catalog stores it
        (relative to the root; an absolute one, e.g. a local source file, is returned as it is)."""
        return self.root.joinpath(*parts)

    def abs(self, stored: str | Path) -> Path:
        """A stored path as an absolute path (relative ones are taken from the workspace root)."""
        p = Path(stored)
        return p if p.is_absolute() else Path(os.path.abspath(self.root)) / p

    def rel(self, p: str | Path) -> str:
        """A path inside the workspace as the catalog stores it: relative to the root, '/'-separated.

        A ValueError if it lies outside the workspace (use `stored` for paths that may)."""
        rel = relative_to_root(str(Path(p).absolute()), self.root)
        if rel is None or Path(rel).is_absolute():
            raise ValueError(f"{p} is not inside workspace {self.root}")
        return rel

    def stored(self, p: str | Path) -> str:
        """How the catalog stores a path: relative to the root when inside the workspace, else absolute."""
        try:
            return self.rel(p)
        except ValueError:
            return str(Path(p).absolute())

    def resolve_clip(self, clip_id: str) -> str:
        """`clip_id` if the catalog has it, else a UsageError naming the nearest ids."""
        import difflib

        if self.catalog.clip(clip_id) is not None:
            return clip_id
        ids = [c.clip_id for c in self.catalog.clips()]
        if not ids:
            raise UsageError(f"--clip {clip_id}: workspace {self.root} has no clips yet (run avs-tools collect {self.root} ...)")
        near = difflib.get_close_matches(clip_id, ids, n=3, cutoff=0.4)
        hint = f"; did you mean {', '.join(near)}?" if near else f"; avs-tools clips {self.root} lists them"
        raise UsageError(f"--clip {clip_id}: no such clip in {self.root}{hint}")

    def close(self) -> None:
        self.catalog.close()
        if self._lock_fd is not None:
            import fcntl

            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None
            if self._dir_fd is not None:
                os.close(self._dir_fd)
                self._dir_fd = None


def _lock_folder(root: Path) -> int | None:
    """flock the workspace folder itself (BlockingIOError when another process holds it); None where the
    file system cannot lock a folder (WS/.lock alone then)."""
    import fcntl

    try:
        fd = os.open(root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise
    except OSError:
        os.close(fd)
        return None
    return fd


# What a workspace folder holds (a folder with anything else is not made into a workspace).
OWN_NAMES = {CATALOG_NAME, f"{CATALOG_NAME}-wal", f"{CATALOG_NAME}-shm", f"{CATALOG_NAME}-journal", RECIPE_NAME, "backups",
             LOCK_NAME, "sources", "clips", "frames", "audio", "masks", "previews", ".cache", "download-archive.txt"}


def _show(root: Path) -> str:
    """The path as the user typed it, with the absolute path where the text alone says little ('.', '..')."""
    text = str(root)
    return f"{text} ({Path(text).resolve()})" if text in (".", "..") else text


def _stat_folder(root: Path, what: str) -> bool:
    """True if root is an existing, readable folder; False if it does not exist; else a one-line UsageError."""
    try:
        root.stat()
    except FileNotFoundError:
        return False
    except NotADirectoryError:
        raise UsageError(f"{what} {_show(root)}: a part of the path is a file, not a folder") from None
    except PermissionError:
        raise UsageError(f"{what} {_show(root)}: permission denied (a folder on the way cannot be read)") from None
    try:
        if not root.is_dir():
            raise UsageError(f"{what} {_show(root)} is a file, not a workspace folder")
        os.listdir(root)
    except PermissionError:
        raise UsageError(f"{what} {_show(root)}: permission denied (cannot read the folder)") from None
    except OSError as exc:
        raise UsageError(f"{what} {_show(root)}: {exc.strerror or exc}") from None
    return True


def init_workspace(root: Path, recipe: str | Path) -> tuple[Workspace, bool]:
    """Create (or repair) a workspace. Returns (workspace, created). Idempotent for the same recipe.

    Only an empty folder, a new one, or an (interrupted) workspace is made into a workspace: a
    folder holding anything else is refused, so init never writes over a user's files."""
    root = Path(root)
    rec = load_recipe(recipe)
    exists = _stat_folder(root, "workspace")
    existing = root / CATALOG_NAME
    if existing.exists():
        check_catalog_file(root, existing)
        meta = _catalog_meta(existing, root)
        if meta.get("initialised"):
            if meta.get("recipe") != rec.name:
                raise UsageError(f"workspace {root} was made for recipe {meta.get('recipe')!r}, not {rec.name!r}")
            return open_workspace(root), False
        if clip_media(root):  # an uninitialised catalog beside media: the catalog was lost, not an interrupted init
            raise lost_catalog(root, "empty (no workspace records)")
        if _recipe_differs(root, rec):
            raise UsageError(f"{_show(root)}: its {RECIPE_NAME} differs from recipe {rec.name} and init never rewrites "
                             f"it; name a new folder (or, if this is an interrupted init you want redone with another "
                             f"recipe, move {root / RECIPE_NAME} away first)")
    elif exists:
        others = sorted(n for n in os.listdir(root) if n not in OWN_NAMES and not n.startswith(TMP_PREFIX))
        if clip_media(root):
            raise lost_catalog(root, "missing")
        if _recipe_differs(root, rec):
            others.insert(0, RECIPE_NAME)
        if others:
            shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
            raise UsageError(f"{_show(root)} is not empty ({shown}) and is not a workspace: init makes a workspace in "
                             "a new or empty folder, e.g. avs-tools init ws --recipe NAME")
    if not exists and not root.absolute().parent.is_dir():
        raise UsageError(f"cannot create workspace {_show(root)}: folder {_show(root.parent)} does not exist "
                         "(create it first, or name a workspace in an existing folder)")
    try:
        root.mkdir(exist_ok=True)
        remove_stale_temps(root)
        atomic_write_text(root / RECIPE_NAME, rec.text)
        for sub in ("sources", "clips", "frames", "audio", "masks"):
            (root / sub).mkdir(exist_ok=True)
        cat = Catalog(root / CATALOG_NAME)
        cat.create_schema({"recipe": rec.name, "recipe_digest": rec.digest})
    except (OSError, sqlite3.Error) as exc:
        where = getattr(exc, "filename", None) or root
        raise UsageError(f"cannot create workspace {_show(root)}: {getattr(exc, 'strerror', None) or exc} "
                         f"({where})") from None
    return Workspace(root=root, recipe=rec, catalog=cat), True


def _recipe_differs(root: Path, rec: Recipe) -> bool:
    """WS/recipe.toml exists and is not the text of `rec` (init never rewrites it then)."""
    path = root / RECIPE_NAME
    try:
        return path.is_file() and path.read_bytes() != rec.text.encode("utf-8")
    except OSError:
        return True


def _catalog_meta(cat_path: Path, root: Path) -> dict[str, str]:
    try:
        cat = Catalog(cat_path)
    except sqlite3.Error as exc:
        raise damaged(root, exc, "open") from None
    try:
        return cat.meta()
    except sqlite3.Error as exc:
        raise damaged(root, exc, "read") from None
    finally:
        cat.close()


def open_workspace(root: Path, expect_recipe: str | None = None, lock: str | None = None) -> Workspace:
    """Open a workspace; with `lock` (the command's name) also take its writer lock.

    Every problem with the path (missing, a file, unreadable, not a workspace) is a one-line UsageError."""
    root = Path(root)
    cat_path = root / CATALOG_NAME
    if not _stat_folder(root, "workspace"):
        raise UsageError(f"workspace {_show(root)} not found: create it with avs-tools init {root} --recipe NAME")
    try:
        has_catalog = cat_path.is_file()
        if has_catalog:
            with open(cat_path, "rb"):
                pass
    except OSError as exc:
        raise UsageError(f"workspace {_show(root)}: cannot read {CATALOG_NAME} ({exc.strerror})") from None
    if not has_catalog:
        if (root / RECIPE_NAME).is_file() and clip_media(root):
            raise lost_catalog(root, "missing")
        raise UsageError(f"{_show(root)} is not a workspace (no {CATALOG_NAME}): create one with "
                         f"avs-tools init {root} --recipe NAME")
    check_catalog_file(root, cat_path)
    try:
        cat = Catalog(cat_path)
        meta = cat.meta()
    except sqlite3.Error as exc:
        raise damaged(root, exc, "open") from None
    if not meta.get("initialised"):
        cat.close()
        if clip_media(root):
            raise lost_catalog(root, "empty (no workspace records)")
        raise UsageError(f"workspace {root} is incomplete (interrupted init): run avs-tools init {root} --recipe NAME again")
    rec_path = root / RECIPE_NAME
    try:
        rec_text = rec_path.read_text(encoding="utf-8") if rec_path.is_file() else None
    except OSError as exc:
        cat.close()
        raise UsageError(f"workspace {_show(root)}: cannot read {RECIPE_NAME} ({exc.strerror})") from None
    except UnicodeDecodeError:
        cat.close()
        raise UsageError(f"workspace {_show(root)}: {rec_path} is not UTF-8 text (damaged); restore it from "
                         "the recipe it was made with") from None
    if rec_text is None:
        cat.close()
        raise UsageError(f"workspace {root} has no {RECIPE_NAME}: run avs-tools init {root} --recipe {meta.get('recipe')} again")
    rec = parse_recipe(rec_text, source=str(rec_path))
    if expect_recipe and expect_recipe != rec.name:
        cat.close()
        raise UsageError(f"workspace {root} was made for recipe {rec.name!r}, not {expect_recipe!r}")
    ws = Workspace(root=root, recipe=rec, catalog=cat)
    if lock:
        try:
            ws.lock(lock)
        except BaseException:
            ws.close()
            raise
    return ws
