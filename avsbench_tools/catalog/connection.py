"""The catalog's plumbing: the connection, transactions, meta, schema creation and migration."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from avsbench_tools.catalog import schema
from avsbench_tools.catalog.records import dumps, now
from avsbench_tools.errors import UsageError


def write_stage(db: sqlite3.Connection, clip_id: str, stage: str, status: str, reason: str | None = None,
                settings: dict | None = None) -> None:
    """Set a clip's stage status inside an open transaction (so a stage can commit it with its rows)."""
    db.execute(
        "INSERT INTO stage_status(clip_id, stage, status, attempts, reason, settings, updated_at) "
        "VALUES(?, ?, ?, 1, ?, ?, ?) ON CONFLICT(clip_id, stage) DO UPDATE SET status=excluded.status, "
        "attempts=stage_status.attempts+1, reason=excluded.reason, settings=excluded.settings, "
        "updated_at=excluded.updated_at",
        (clip_id, stage, status, reason, dumps(settings) if settings else None, now()))


def write_resolved(db: sqlite3.Connection, stage: str, item: str) -> None:
    """Close the ledger row of (stage, item) inside an open transaction."""
    db.execute("UPDATE failures SET resolved=1, last_at=? WHERE stage=? AND item=?", (now(), stage, item))


SQLITE_HEADER = b"SQLite format 3\x00"
last_opened: list[Path] = []  # the catalog this process opened last: named when SQLite finds it damaged


def catalog_damage(path: Path) -> str | None:
    """Why the file at `path` cannot be a catalog (without opening it: SQLite would write to an empty
    file), or None when it looks like an SQLite database."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(SQLITE_HEADER))
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if not head:
        return "empty (0 bytes)"
    if head != SQLITE_HEADER:
        return "not an SQLite database (its first bytes are not SQLite's header)"
    return None


def is_damage(exc: BaseException) -> bool:
    """Whether an sqlite3 error says the database file itself is damaged (not locked, not a bug)."""
    text = str(exc).lower()
    return isinstance(exc, sqlite3.DatabaseError) and (
        "malformed" in text or "not a database" in text or "disk image" in text or type(exc) is sqlite3.DatabaseError)


def backup_to(db: sqlite3.Connection, dest: Path) -> Path:
    """A consistent copy of the open catalog at `dest` (SQLite's online backup: safe while a stage writes),
    written to a temporary name beside it and renamed."""
    import os

    from avsbench_tools.fsutil import TMP_PREFIX, file_mode

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f"{TMP_PREFIX}{os.getpid()}-{dest.name}")
    try:
        out = sqlite3.connect(tmp)
        try:
            db.backup(out)
        finally:
            out.close()
        os.chmod(tmp, file_mode())
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()
    return dest


class CatalogBase:
    """One SQLite connection (WAL mode) per process, shared by threads under one lock.

    `root` is the folder that stored paths are relative to (the workspace root: the catalog file's
    folder unless given). Opening a catalog written by an older avs-tools upgrades it in place (one
    transaction); one written by a newer avs-tools is refused with a UsageError."""

    def __init__(self, path: Path, root: Path | None = None):
        self.path = Path(path)
        self.root = Path(root) if root is not None else self.path.parent
        self._lock = threading.RLock()
        self.db = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
        last_opened[:] = [self.path]
        try:
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA busy_timeout=60000")
            version = schema.stored_version(self.db)
            if version is not None and version > schema.SCHEMA_VERSION:
                raise UsageError(self._newer(version))
            if version is not None and version < schema.SCHEMA_VERSION:
                self.backup_before_upgrade(version)
                self.migrate()
        except BaseException:
            self.db.close()
            raise

    # -- plumbing (internal: other modules call the typed methods) ----------------------------------
    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; safe to use from several threads (one connection, one lock).

        Internal to the catalog package: code outside it calls typed methods."""
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            else:
                self.db.execute("COMMIT")

    def query(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        """Rows of one SELECT. Internal to the catalog package (and tests); other code calls typed methods."""
        with self._lock:
            return self.db.execute(sql, args).fetchall()

    def _one(self, sql: str, args: tuple = ()) -> sqlite3.Row | None:
        with self._lock:
            return self.db.execute(sql, args).fetchone()

    @staticmethod
    def _only(rows: list[sqlite3.Row], values: Iterable[str] | None, key: str = "clip_id") -> list[sqlite3.Row]:
        """The rows whose `key` is one of `values` (all of them when values is None; a str is one value)."""
        if values is None:
            return rows
        wanted = {values} if isinstance(values, str) else set(values)
        return [r for r in rows if r[key] in wanted]

    def close(self) -> None:
        """Close the connection (the WAL is checkpointed by SQLite when the last connection closes)."""
        self.db.close()

    # -- schema and meta ----------------------------------------------------------------------------
    def create_schema(self, meta: dict[str, str]) -> None:
        """Create every table and write `meta` (plus schema_version) in one transaction; 'initialised' last."""
        with self.tx() as db:
            schema.create(db, meta)

    def schema_version(self) -> int | None:
        """The stored schema version (None: the catalog was never initialised)."""
        with self._lock:
            return schema.stored_version(self.db)

    def migrate(self) -> dict[str, int]:
        """Upgrade an older catalog to schema.SCHEMA_VERSION in place, in one transaction (idempotent).

        Returns what changed ({"columns", "mask_sets", "paths"}; empty for a catalog never initialised).
        A catalog from a newer avs-tools, or an older one that cannot be written, is a UsageError."""
        try:
            with self.tx() as db:
                version = schema.stored_version(db)
                if version is None:
                    return {}
                if version > schema.SCHEMA_VERSION:
                    raise UsageError(self._newer(version))
                return schema.upgrade(db, self.root)
        except sqlite3.OperationalError as exc:
            if "readonly" not in str(exc) and "read-only" not in str(exc):
                raise
            raise UsageError(f"catalog {self.path} was written by an older avs-tools and must be upgraded to "
                             f"schema version {schema.SCHEMA_VERSION}, which needs write access ({exc})") from None

    def damage(self) -> str | None:
        """SQLite's quick_check of every page in use: None when the catalog is sound, else its first finding
        (a writer checks before it writes: a damaged catalog is named, never written further)."""
        try:
            rows = self.query("PRAGMA quick_check(1)")
        except sqlite3.DatabaseError as exc:
            return str(exc)
        first = str(rows[0][0]) if rows else "ok"
        return None if first == "ok" else " ".join(first.replace("*** in database main ***", "").split())

    def backup(self, dest: Path) -> Path:
        """A consistent copy of this catalog at `dest` (SQLite's online backup API)."""
        with self._lock:
            return backup_to(self.db, dest)

    def backup_before_upgrade(self, version: int) -> Path | None:
        """Before a schema upgrade: a copy of the catalog as it was, WS/backups/catalog-v<version>-<time>.sqlite
        (None when the folder cannot be written: the upgrade then fails with its own message)."""
        import os
        import time

        if not os.access(self.root, os.W_OK):
            return None
        dest = self.root / "backups" / f"catalog-v{version}-{time.strftime('%Y%m%dT%H%M%S')}.sqlite"
        try:
            return self.backup(dest)
        except (OSError, sqlite3.Error) as exc:
            raise UsageError(f"catalog {self.path}: cannot back it up before upgrading it to schema version "
                             f"{schema.SCHEMA_VERSION} ({dest}: {getattr(exc, 'strerror', None) or exc}); "
                             "nothing was changed") from None

    def _newer(self, version: int) -> str:
        return (f"catalog {self.path} has schema version {version}, newer than this avs-tools knows "
                f"({schema.SCHEMA_VERSION}): open it with a newer avs-tools")

    def meta(self) -> dict[str, str]:
        """Every meta key and value ({} for a catalog without a meta table)."""
        try:
            return {r["key"]: r["value"] for r in self.query("SELECT key, value FROM meta")}
        except sqlite3.OperationalError:
            return {}

    def set_meta(self, key: str, value: Any) -> None:
        """Set one meta key (the value is stored as text)."""
        with self.tx() as db:
            db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)", (key, str(value)))
