"""One record type per catalog table (dataclasses), and their conversion from and to SQLite rows.

Paths in records are as stored: relative to the workspace root (resolve them with `ws.path(rel)`);
only a local source file outside the workspace keeps an absolute path.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

STAGES = ("collect", "sample", "preannotate", "push", "pull", "export")


def now() -> str:
    """The current UTC time as the catalog stores it (ISO 8601, seconds, 'Z')."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def dumps(value: Any) -> str:
    """JSON text as the catalog stores settings and evidence (sorted keys; numpy scalars and arrays allowed)."""
    return json.dumps(value, sort_keys=True, default=_json_default)


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"{type(o).__name__} is not JSON serializable")


def _loads(text: str | None) -> Any:
    return json.loads(text) if text else None


@dataclass
class Source:
    """A row of `sources`: one video a clip is cut from (downloaded, local, or synthetic)."""

    source_id: str
    kind: str  # search | url | csv | local | synth
    url: str | None = None
    video_id: str | None = None
    title: str | None = None
    uploader: str | None = None
    license: str | None = None
    duration: float | None = None
    width: int | None = None
    height: int | None = None
    keyword: str | None = None
    category: str | None = None
    start: float | None = None
    split_hint: str | None = None
    path: str | None = None  # relative to the workspace (a download), or absolute (a local file outside it)
    status: str = "pending"  # pending | downloaded | done | rejected | failed
    reason: str | None = None
    fetched_at: str | None = None
    info_json: str | None = None


@dataclass
class Clip:
    """A row of `clips`: one cut clip (WS/clips/<clip_id>.mp4)."""

    clip_id: str
    source_id: str
    start: float
    seconds: int
    path: str
    category: str | None = None
    fps: float | None = None
    width: int | None = None
    height: int | None = None
    n_frames: int | None = None
    has_audio: int | None = None
    split: str | None = None
    created_at: str = ""


@dataclass
class Failure:
    """A row of `failures`, the ledger: one open (or resolved) failure of a stage on an item."""

    stage: str
    item: str
    reason: str
    detail: str | None
    attempts: int
    first_at: str
    last_at: str
    resolved: int
    payload: str | None
    permanent: int | None = None  # 1: not worth retrying (no audio, too short, licence); NULL in older catalogs


@dataclass
class StageState:
    """A row of `stage_status`: the one record of a clip's state in a stage (done | failed | ...)."""

    clip_id: str
    stage: str
    status: str
    attempts: int
    reason: str | None
    settings: dict | None
    updated_at: str

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> StageState:
        """A `StageState` from its table row (JSON columns parsed)."""
        return cls(row["clip_id"], row["stage"], row["status"], int(row["attempts"]), row["reason"],
                   _loads(row["settings"]), row["updated_at"])


@dataclass
class Frame:
    """A row of `frames`: one sampled frame of a clip (path relative to the workspace)."""

    clip_id: str
    second: int
    frame_index: int
    pts: float
    path: str
    width: int | None = None
    height: int | None = None


@dataclass
class AudioRecord:
    """A row of `audio`: a sampled clip's audio files and its per-second sound activity."""

    clip_id: str
    wav_path: str
    logmel_path: str
    sample_rate: int | None = None
    channels: int | None = None
    n_examples: int | None = None
    activity: dict | None = None  # the parsed activity_json (sound_activity fields plus "info")
    embedding_path: str | None = None  # "<rel path>#<weights digest>" once VGGish embedded it

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> AudioRecord:
        """A `AudioRecord` from its table row (JSON columns parsed)."""
        return cls(row["clip_id"], row["wav_path"], row["logmel_path"], row["sample_rate"], row["channels"],
                   row["n_examples"], _loads(row["activity_json"]), row["embedding_path"])


# evidence keys that carry ObjectMask fields rather than free-form evidence
_MASK_FIELDS = ("tracked", "lost", "box")


@dataclass
class MaskVersion:
    """A row of `mask_versions`: one object's mask in one second, as proposed or reviewed.

    The mask itself is a 1-bit grey PNG (mask_store.mask_png; 8-bit 0/255 in older workspaces) at `path`, relative to the workspace."""

    version_id: int | None
    clip_id: str
    second: int
    fid: int
    kind: str  # proposal | review
    category: str | None
    score: float | None
    sounding: bool | None
    evidence: dict
    backend: str | None
    settings_hash: str | None
    settings: dict
    path: str
    created_at: str
    author: str | None = None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> MaskVersion:
        """A `MaskVersion` from its table row (JSON columns parsed)."""
        snd = row["sounding"]
        return cls(row["version_id"], row["clip_id"], int(row["second"]), int(row["fid"]), row["kind"],
                   row["category"], row["score"], None if snd is None else bool(snd),
                   _loads(row["evidence"]) or {}, row["backend"], row["settings_hash"],
                   _loads(row["settings_json"]) or {}, row["path"], row["created_at"], row["author"])

    def to_row(self) -> tuple:
        """The values of the columns after version_id, in table order."""
        return (self.clip_id, self.second, self.fid, self.kind, self.category,
                None if self.score is None else float(self.score),
                None if self.sounding is None else int(bool(self.sounding)), dumps(self.evidence), self.backend,
                self.settings_hash, dumps(self.settings), self.path, self.created_at or now(), self.author)

    def load(self, root: Path):
        """The mask as a bool array [H, W], read from `root / path`."""
        from avsbench_tools.pngfast import read_mask

        return read_mask(Path(root) / self.path)

    def to_object_mask(self, root: Path):
        """This version as the pipeline's mask type, `masks.ObjectMask`, with its mask loaded."""
        from avsbench_tools.masks import ObjectMask

        ev = dict(self.evidence)
        box = ev.pop("box", None)
        tracked = bool(ev.pop("tracked", False))
        lost = bool(ev.pop("lost", False))
        return ObjectMask(second=self.second, fid=self.fid, category=self.category, mask=self.load(root),
                          box=None if box is None else tuple(float(v) for v in box),
                          score=float(self.score or 0.0), sounding=self.sounding, evidence=ev,
                          tracked=tracked, lost=lost)

    @classmethod
    def from_object_mask(cls, o, clip_id: str, kind: str, backend: str | None, settings_hash: str,
                         settings: dict, path: str, author: str | None = None) -> MaskVersion:
        """A new version (version_id None, created now) of an `ObjectMask` whose PNG is stored at `path`."""
        box = None if o.box is None else [float(v) for v in o.box]
        evidence = {**o.evidence, "tracked": bool(o.tracked), "lost": bool(o.lost), "box": box}
        return cls(None, clip_id, int(o.second), int(o.fid), kind, o.category, float(o.score),
                   None if o.sounding is None else bool(o.sounding), evidence, backend, settings_hash,
                   dict(settings), path, now(), author)


@dataclass
class Expression:
    """A row of `expressions`: the n-th referring expression of a clip (Ref-AVS), for object `fid`."""

    clip_id: str
    n: int
    fid: int | None
    text: str
    is_null: bool = False

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Expression:
        """A `Expression` from its table row (JSON columns parsed)."""
        return cls(row["clip_id"], int(row["n"]), row["fid"], row["text"], bool(row["is_null"]))


@dataclass
class ObjectRecord:
    """A row of `objects`: an object of a clip, with its category and label."""

    clip_id: str
    fid: int
    category: str | None = None
    label: str | None = None


@dataclass
class Fingerprint:
    """A row of `fingerprints`: a clip's perceptual hashes, used to keep near-duplicates in one split.

    frames: one 64-bit dHash per sampled frame; audio: packed bits (np.packbits) of n_audio bits."""

    clip_id: str
    frames: list[int] = field(default_factory=list)
    audio: bytes = b""
    n_audio: int = 0

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Fingerprint:
        """A `Fingerprint` from its table row (JSON columns parsed)."""
        return cls(row["clip_id"], [int(x) for x in (row["frames"] or "").split(",") if x], bytes(row["audio"]),
                   int(row["n_audio"]))


def from_row(cls, row: sqlite3.Row):
    """A plain record (Source, Clip, Failure, Frame, ObjectRecord) from a row with the same column names."""
    names = {f.name for f in fields(cls)}
    return cls(**{k: row[k] for k in row.keys() if k in names})
