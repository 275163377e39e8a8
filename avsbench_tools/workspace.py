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
from dataclasses import dataclass, field
from pathlib import Path

from avsbench_tools.catalog import STAGES, Catalog
from avsbench_tools.errors import UsageError, WorkspaceBusy
from avsbench_tools.fsutil import atomic_write_text, remove_stale_temps
from avsbench_tools.recipe import Recipe, load_recipe, parse_recipe

CATALOG_NAME = "catalog.sqlite"
RECIPE_NAME = "recipe.toml"
LOCK_NAME = ".lock"


@dataclass
class Workspace:
    root: Path
    recipe: Recipe
    catalog: Catalog
    _lock_fd: int | None = field(default=None, repr=False)

    def lock(self, command: str = "") -> None:
        """Take the workspace's writer lock (one stage run at a time), or raise WorkspaceBusy.

        An advisory `flock` on WS/.lock: the kernel releases it when the process dies, even by
        kill -9, so a crashed run never leaves the workspace locked.
        """
        import fcntl

        if self._lock_fd is not None:
            return
        fd = os.open(self.root / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
            finally:
                os.close(fd)
            raise WorkspaceBusy(f"workspace {self.root} is busy: {holder} is running on it; wait for it to "
                                "finish (or stop it with Ctrl-C), then run this command again") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"avs-tools {command or 'a stage'} (pid {os.getpid()})".encode(), 0)
        self._lock_fd = fd

    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    def rel(self, p: Path) -> str:
        return str(Path(p).resolve().relative_to(self.root.resolve()))

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


def init_workspace(root: Path, recipe: str | Path) -> tuple[Workspace, bool]:
    """Create (or repair) a workspace. Returns (workspace, created). Idempotent for the same recipe."""
    root = Path(root)
    rec = load_recipe(recipe)
    if root.exists() and not root.is_dir():
        raise UsageError(f"{root} exists and is not a folder")
    existing = root / CATALOG_NAME
    if existing.exists():
        meta = Catalog(existing).meta()
        if meta.get("initialised"):
            if meta.get("recipe") != rec.name:
                raise UsageError(f"workspace {root} was made for recipe {meta.get('recipe')!r}, not {rec.name!r}")
            return open_workspace(root), False
    root.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(root)
    atomic_write_text(root / RECIPE_NAME, rec.text)
    for sub in ("sources", "clips", "frames", "audio", "masks"):
        (root / sub).mkdir(exist_ok=True)
    cat = Catalog(root / CATALOG_NAME)
    cat.create_schema({"recipe": rec.name, "recipe_digest": rec.digest})
    return Workspace(root=root, recipe=rec, catalog=cat), True


def open_workspace(root: Path, expect_recipe: str | None = None, lock: str | None = None) -> Workspace:
    """Open a workspace; with `lock` (the command's name) also take its writer lock."""
    root = Path(root)
    cat_path = root / CATALOG_NAME
    if not cat_path.is_file():
        raise UsageError(f"workspace {root} not found (no {CATALOG_NAME}): create it with avs-tools init {root} --recipe NAME")
    cat = Catalog(cat_path)
    meta = cat.meta()
    if not meta.get("initialised"):
        cat.close()
        raise UsageError(f"workspace {root} is incomplete (interrupted init): run avs-tools init {root} --recipe NAME again")
    rec_path = root / RECIPE_NAME
    if not rec_path.is_file():
        cat.close()
        raise UsageError(f"workspace {root} has no {RECIPE_NAME}: run avs-tools init {root} --recipe {meta.get('recipe')} again")
    rec = parse_recipe(rec_path.read_text(encoding="utf-8"), source=str(rec_path))
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


def workspace_status(root: Path) -> dict:
    """The machine-readable status: {"recipe", "clips", "stages": {stage: {done, failed, pending}}, "failures"}."""
    ws = open_workspace(root)
    try:
        counts = ws.catalog.stage_counts()
        n = ws.catalog.db.execute("SELECT COUNT(*) FROM clips").fetchone()[0]
        fails = [
            {"stage": f.stage, "item": f.item, "reason": f.reason, "attempts": f.attempts}
            for f in ws.catalog.failures()
        ]
        return {"recipe": ws.recipe.name, "clips": int(n), "stages": {s: counts[s] for s in STAGES}, "failures": fails}
    finally:
        ws.close()
