"""What the sample stage records: sampled frames, audio files and per-second sound activity."""

from __future__ import annotations

import json
from collections.abc import Iterable

from avsbench_tools.catalog.connection import CatalogBase, write_resolved, write_stage
from avsbench_tools.catalog.records import AudioRecord, Frame, from_row


class MediaMethods(CatalogBase):
    """Sampled frames and audio."""

    def save_sample(self, clip_id: str, frames: list[Frame], audio: AudioRecord, settings: dict) -> None:
        """Record a sampled clip in one transaction: its frames replace the old ones, its audio row is
        replaced (an existing embedding is kept unless `audio.embedding_path` is set), and the sample
        stage is finished with `settings` (its open ledger row closed)."""
        with self.tx() as db:
            db.execute("DELETE FROM frames WHERE clip_id=?", (clip_id,))
            db.executemany("INSERT INTO frames(clip_id, second, frame_index, pts, path, width, height) "
                           "VALUES(?, ?, ?, ?, ?, ?, ?)",
                           [(clip_id, int(f.second), int(f.frame_index), float(f.pts), f.path, f.width, f.height)
                            for f in frames])
            db.execute("INSERT INTO audio(clip_id, wav_path, logmel_path, sample_rate, channels, n_examples, "
                       "activity_json, embedding_path) VALUES(?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(clip_id) DO "
                       "UPDATE SET wav_path=excluded.wav_path, logmel_path=excluded.logmel_path, "
                       "sample_rate=excluded.sample_rate, channels=excluded.channels, "
                       "n_examples=excluded.n_examples, activity_json=excluded.activity_json, "
                       "embedding_path=COALESCE(excluded.embedding_path, audio.embedding_path)",
                       (clip_id, audio.wav_path, audio.logmel_path, audio.sample_rate, audio.channels,
                        audio.n_examples, None if audio.activity is None else json.dumps(audio.activity),
                        audio.embedding_path))
            write_stage(db, clip_id, "sample", "done", None, settings)
            write_resolved(db, "sample", clip_id)

    def frames(self, clip_id: str) -> list[Frame]:
        """A clip's sampled frames, by second ([] before sampling)."""
        return [from_row(Frame, r) for r in self.query(
            "SELECT * FROM frames WHERE clip_id=? ORDER BY second", (clip_id,))]

    def audio(self, clip_id: str) -> AudioRecord | None:
        """A clip's audio record, or None before sampling."""
        row = self._one("SELECT * FROM audio WHERE clip_id=?", (clip_id,))
        return AudioRecord.from_row(row) if row else None

    def audios(self, clip_ids: Iterable[str] | None = None) -> list[AudioRecord]:
        """Every audio record (or those of `clip_ids`), by clip id."""
        rows = self._only(self.query("SELECT * FROM audio ORDER BY clip_id"), clip_ids)
        return [AudioRecord.from_row(r) for r in rows]

    def set_embedding(self, clip_id: str, path: str | None) -> None:
        """Record a clip's VGGish embedding ("<rel path>#<weights digest>"), or clear it with None."""
        with self.tx() as db:
            db.execute("UPDATE audio SET embedding_path=? WHERE clip_id=?", (path, clip_id))
