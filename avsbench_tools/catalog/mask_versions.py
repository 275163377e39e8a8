"""Mask versions, finished mask sets, objects and referring expressions."""

from __future__ import annotations

import json
from collections.abc import Iterable

from avsbench_tools.catalog.connection import CatalogBase
from avsbench_tools.catalog.records import Expression, MaskVersion, ObjectRecord, from_row, now

_MV_COLUMNS = ("clip_id, second, fid, kind, category, score, sounding, evidence, backend, settings_hash, "
               "settings_json, path, created_at, author")


class MaskMethods(CatalogBase):
    """Mask versions and sets, objects, expressions."""

    # -- mask versions and sets ---------------------------------------------------------------------
    def save_mask_set(self, clip_id: str, kind: str, settings_hash: str, versions: list[MaskVersion],
                      seconds: Iterable[int]) -> int:
        """Record one finished mask set in one transaction: the versions of (clip, kind, settings_hash)
        are replaced by `versions` (other kinds and settings are kept), and the set is recorded as done
        for `seconds` (its seconds with or without objects) in mask_sets. Returns the number of rows."""
        for v in versions:
            if (v.clip_id, v.kind, v.settings_hash) != (clip_id, kind, settings_hash):
                raise ValueError(f"mask version {v.clip_id}/{v.kind}/{v.settings_hash} does not belong to the set "
                                 f"{clip_id}/{kind}/{settings_hash}")
        done = json.dumps(sorted({int(s) for s in seconds}))
        with self.tx() as db:
            db.execute("DELETE FROM mask_versions WHERE clip_id=? AND kind=? AND settings_hash=?",
                       (clip_id, kind, settings_hash))
            db.executemany(f"INSERT INTO mask_versions({_MV_COLUMNS}) VALUES({', '.join('?' * 14)})",
                           [v.to_row() for v in versions])
            db.execute("INSERT OR REPLACE INTO mask_sets(clip_id, kind, settings_hash, seconds_json, created_at) "
                       "VALUES(?, ?, ?, ?, ?)", (clip_id, kind, settings_hash, done, now()))
        return len(versions)

    def mask_set_done(self, clip_id: str, kind: str, settings_hash: str) -> bool:
        """True if the set (clip, kind, settings_hash) was saved whole (even with no object)."""
        return self._one("SELECT 1 FROM mask_sets WHERE clip_id=? AND kind=? AND settings_hash=?",
                         (clip_id, kind, settings_hash)) is not None

    def mask_set_seconds(self, clip_id: str, kind: str, settings_hash: str) -> list[int] | None:
        """The seconds a finished set covers, or None if the set is not done."""
        row = self._one("SELECT seconds_json FROM mask_sets WHERE clip_id=? AND kind=? AND settings_hash=?",
                        (clip_id, kind, settings_hash))
        return None if row is None else [int(s) for s in json.loads(row[0])]

    def mask_versions(self, clip_id: str, kinds: Iterable[str] | None = None) -> list[MaskVersion]:
        """A clip's mask versions (of `kinds`, default all), oldest first (by version_id)."""
        rows = self.query("SELECT * FROM mask_versions WHERE clip_id=? ORDER BY version_id", (clip_id,))
        return [MaskVersion.from_row(r) for r in self._only(rows, kinds, key="kind")]

    def mask_paths(self, clip_id: str, settings_hash: str) -> set[str]:
        """The stored paths of a clip's versions made with `settings_hash` (any kind)."""
        return {r[0] for r in self.query("SELECT path FROM mask_versions WHERE clip_id=? AND settings_hash=?",
                                         (clip_id, settings_hash))}

    def backend_counts(self) -> dict[str | None, int]:
        """{backend: number of mask versions}, by backend name."""
        return {r[0]: int(r[1]) for r in self.query(
            "SELECT backend, COUNT(*) FROM mask_versions GROUP BY backend ORDER BY backend")}

    def clip_ids_with_masks(self, kind: str) -> set[str]:
        """The ids of the clips with at least one mask version of `kind`."""
        return {r[0] for r in self.query("SELECT DISTINCT clip_id FROM mask_versions WHERE kind=?", (kind,))}

    # -- objects and expressions --------------------------------------------------------------------
    def objects(self, clip_id: str) -> list[ObjectRecord]:
        """A clip's objects, by fid."""
        return [from_row(ObjectRecord, r) for r in self.query(
            "SELECT * FROM objects WHERE clip_id=? ORDER BY fid", (clip_id,))]

    def expressions(self, clip_id: str) -> list[Expression]:
        """A clip's referring expressions, by n."""
        return [Expression.from_row(r) for r in self.query(
            "SELECT * FROM expressions WHERE clip_id=? ORDER BY n", (clip_id,))]
