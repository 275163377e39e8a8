"""Split assignment and the clip fingerprints that keep near-duplicates in one split: the catalog's table access
for `splits.py` (which draws the splits)."""

from __future__ import annotations

from collections.abc import Iterable

from avsbench_tools.catalog.connection import CatalogBase
from avsbench_tools.catalog.records import Fingerprint


class SplitMethods(CatalogBase):
    """Splits and fingerprints."""

    def set_splits(self, assign: dict[str, str], seed: int | None = None) -> int:
        """Give each clip in `assign` its split, only where it has none yet (a split, once drawn, is kept);
        with `seed`, record it as meta split_seed in the same transaction. Returns the clips changed."""
        with self.tx() as db:
            n = 0
            for cid, split in assign.items():
                n += db.execute("UPDATE clips SET split=? WHERE clip_id=? AND split IS NULL", (split, cid)).rowcount
            if seed is not None:
                db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES('split_seed', ?)", (str(seed),))
        return n

    def split_counts(self) -> dict[str, int]:
        """{split: number of clips}, by split name; clips without a split are counted under "none"."""
        counts: dict[str, int] = {}
        for split, n in self.query("SELECT split, COUNT(*) FROM clips GROUP BY split ORDER BY split"):
            counts[split or "none"] = counts.get(split or "none", 0) + int(n)
        return counts

    def fingerprints(self) -> dict[str, Fingerprint]:
        """Every stored fingerprint, by clip id."""
        return {r["clip_id"]: Fingerprint.from_row(r) for r in self.query("SELECT * FROM fingerprints")}

    def save_fingerprints(self, prints: Iterable[Fingerprint]) -> None:
        """Store (or replace) fingerprints, in one transaction."""
        rows = [(p.clip_id, ",".join(str(int(x)) for x in p.frames), bytes(p.audio), int(p.n_audio)) for p in prints]
        if not rows:
            return
        with self.tx() as db:
            db.executemany("INSERT OR REPLACE INTO fingerprints(clip_id, frames, audio, n_audio) VALUES(?, ?, ?, ?)",
                           rows)
