"""The rows of a published release: every file of the official tree lands in exactly one table.

    frames   one row per sampled frame of a clip (per referred object for Ref-AVS): the frame and its
             mask as image bytes (the Hub's Image feature: {bytes, path}; `path` is the file's place in
             the official tree), clip id, second, split, category or classes, sounding flag, provenance
    clips    one row per clip: 16 kHz WAV bytes (Audio feature), VGGish log-mel examples, the log-mel
             pickle's own bytes, start, licence, source URL, the clip's metadata rows
    files    everything else (metadata CSV, label2idx.json, the card, SHA256SUMS, the marker): path, bytes

Because each row carries its files' exact bytes and tree paths, `unpublish` writes the same tree back.
Rows are built item by item (`iter_clips`) so memory stays flat however large the release.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from avsbench_tools import formats
from avsbench_tools.errors import UsageError
from avsbench_tools.release_reader import Item, Release

AUDIO_RATE = 16000


def frame_features(fmt: str) -> dict:
    """The Hugging Face `datasets` features of the frames table, as the dict `Features.from_dict` takes."""
    f = formats.get(fmt)
    v = lambda t: {"dtype": t, "_type": "Value"}  # noqa: E731
    out = {
        "clip": v("string"), "second": v("int32"), "split": v("string"), "category": v("string"),
        "classes": {"feature": v("string"), "_type": "List"}, "sounding": v("bool"), "annotated": v("bool"),
        "frame": {"_type": "Image"}, "mask": {"_type": "Image"},
        "mask_source": v("string"), "annotators": {"feature": v("string"), "_type": "List"},
        "qa_iou": v("float32"), "backend": v("string"), "checkpoint": v("string"),
    }
    if f.semantic:
        out["mask_rgb"] = {"_type": "Image"}
    if f.per_object:
        out.update({"fid": v("int32"), "null": v("bool"),
                    "expressions": {"feature": {"uid": v("string"), "split": v("string"), "exp": v("string")},
                                    "_type": "List"}})
    return out


def clip_features() -> dict:
    v = lambda t: {"dtype": t, "_type": "Value"}  # noqa: E731
    lst = lambda x: {"feature": x, "_type": "List"}  # noqa: E731
    return {
        "clip": v("string"), "split": v("string"), "category": v("string"), "video_id": v("string"),
        "start": v("float64"), "seconds": v("int32"),
        "audio": {"sampling_rate": AUDIO_RATE, "_type": "Audio"},
        "logmel": lst(lst(lst(v("float32")))), "logmel_pkl": v("binary"), "logmel_path": v("string"),
        "licence": v("string"), "source_url": v("string"), "title": v("string"), "metadata": v("string"),
    }


FILE_FEATURES = {"path": {"dtype": "string", "_type": "Value"}, "bytes": {"dtype": "binary", "_type": "Value"}}


@dataclass
class Provenance:
    """What is known about how one frame's mask was made (from the workspace catalog; None: not known)."""

    mask_source: str | None = None  # review | proposal | mixed
    annotators: list[str] = field(default_factory=list)
    qa_iou: float | None = None
    backend: str | None = None
    checkpoint: str | None = None


@dataclass
class ClipInfo:
    """What the catalog knows of a clip beyond the tree: licence and source, per-frame provenance."""

    licence: str | None = None
    source_url: str | None = None
    title: str | None = None
    frames: dict[int, Provenance] = field(default_factory=dict)


@dataclass
class ClipRows:
    """One clip's rows: its frame rows, its clip row, and the tree paths they hold."""

    split: str
    frames: list[dict]
    clip: dict
    paths: set[str]


def _rel(release_top: Path, p: Path) -> str:
    return p.relative_to(release_top).as_posix()


def _read(p: Path, who: str) -> bytes:
    try:
        return p.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{p}: missing (clip {who}); run avs-tools validate on the release first") from None


def _mask_facts(data: bytes, classes: list[str], semantic: bool) -> tuple[bool, list[str]]:
    """(anything sounding, class names present) of a mask PNG."""
    import io

    from PIL import Image

    a = np.asarray(Image.open(io.BytesIO(data)))
    if a.ndim == 3:
        a = a[..., 0]
    if not semantic:
        return bool(a.any()), []
    present = [int(i) for i in np.unique(a) if i]
    return bool(present), [classes[i] if i < len(classes) else str(i) for i in present]


def _logmel(data: bytes) -> list:
    """The VGGish examples of a log-mel pickle as nested lists [T][96][64] (a torch tensor unpickled)."""
    import pickle

    from avsbench_tools.errors import require

    require("torch")  # the pickles hold torch tensors
    t = pickle.loads(data)
    arr = np.asarray(t.numpy() if hasattr(t, "numpy") else t, dtype=np.float32)
    return arr.reshape(arr.shape[0], arr.shape[-2], arr.shape[-1]).tolist()


def _image(data: bytes, rel: str) -> dict:
    return {"bytes": data, "path": rel}


def _refavs_category(row: dict) -> str | None:
    uid, vid = row.get("uid", ""), row.get("vid", "")
    if uid.startswith("null") or not uid.startswith(vid + "_"):
        return None
    return uid[len(vid) + 1:].rsplit("_", 1)[0]


def _groups(rel: Release) -> Iterator[tuple[str, list[Item]]]:
    """The release's clips in metadata order: (clip id, its items); Ref-AVS items share a media folder."""
    if not formats.get(rel.fmt).per_object:
        for it in rel.items:
            yield it.name, [it]
        return
    order: dict[str, list[Item]] = {}
    for it in rel.items:
        order.setdefault(it.frames[0].parent.parent.name, []).append(it)
    yield from order.items()


def iter_clips(rel: Release, top: Path, info: dict[str, ClipInfo] | None = None) -> Iterator[tuple[str, ClipRows]]:
    """(clip id, its rows) for every clip of `rel`; `top` is the folder the tree paths are relative to."""
    f = formats.get(rel.fmt)
    info = info or {}
    for clip, items in _groups(rel):
        yield clip, _clip_rows(f, rel, top, clip, items, info.get(clip) or ClipInfo())


def _clip_rows(f: formats.ReleaseFormat, rel: Release, top: Path, clip: str, items: list[Item],
               ci: ClipInfo) -> ClipRows:
    first = items[0]
    paths: set[str] = set()
    frames_bytes = []
    for p in first.frames:
        frames_bytes.append(_read(p, clip))
        paths.add(_rel(top, p))
    rows = []
    objects = _objects(f, items)
    for fid, obj_items in objects:
        it = obj_items[0]
        for sec, fp in enumerate(first.frames):
            mp = it.masks.get(sec)
            row = {"clip": clip, "second": sec, "split": it.split, "category": None, "classes": [],
                   "sounding": False, "annotated": mp is not None,
                   "frame": _image(frames_bytes[sec], _rel(top, fp)), "mask": None}
            if mp is not None:
                data = _read(mp, clip)
                paths.add(_rel(top, mp))
                row["mask"] = _image(data, _rel(top, mp))
                row["sounding"], row["classes"] = _mask_facts(data, rel.classes, f.semantic)
            if f.binary:
                row["category"] = it.category
            elif f.semantic:
                row["category"] = it.category  # the AVSS subset folder: v1s | v1m | v2
                rp = it.rgb_masks.get(sec)
                row["mask_rgb"] = None
                if rp is not None:
                    row["mask_rgb"] = _image(_read(rp, clip), _rel(top, rp))
                    paths.add(_rel(top, rp))
            else:
                row["category"] = _refavs_category(it.row)
                row.update({"fid": fid, "null": it.null, "expressions": [
                    {"uid": o.name, "split": o.split, "exp": o.row.get("exp", "")} for o in obj_items]})
            pv = (ci.frames.get(sec) if mp is not None else None) or Provenance()
            row.update({"mask_source": pv.mask_source, "annotators": list(pv.annotators), "qa_iou": pv.qa_iou,
                        "backend": pv.backend, "checkpoint": pv.checkpoint})
            rows.append(row)
    wav = _read(first.wav, clip)
    paths.add(_rel(top, first.wav))
    pkl = None
    logmel = None
    if first.pkl is not None and first.pkl.exists():
        pkl = first.pkl.read_bytes()
        paths.add(_rel(top, first.pkl))
        try:
            logmel = _logmel(pkl)
        except Exception as exc:  # noqa: BLE001 - a damaged pickle can fail in many ways: one line naming it
            raise UsageError(f"{first.pkl}: not a log-mel pickle ({type(exc).__name__}); run avs-tools validate "
                             "on the release") from None
    r = first.row
    start = r.get("start")
    if start is None and "s_min" in r:
        start = int(r["s_min"] or 0) * 60 + int(r["s_sec"] or 0)
    if start is None and f.per_object:
        parts = clip.rsplit("_", 2)
        start = int(parts[1]) / 1000 if len(parts) == 3 and parts[1].isdigit() else None
    clip_row = {
        "clip": clip, "split": first.split, "category": first.category if f.binary else (
            r.get("a_obj") if f.semantic else None), "video_id": r.get("vid") or (
            clip.rsplit("_", 1)[0] if f.clip_names == "clip" and not f.per_object else clip),
        "start": float(start) if start not in (None, "") else None, "seconds": len(first.frames),
        "audio": {"bytes": wav, "path": _rel(top, first.wav)}, "logmel": logmel, "logmel_pkl": pkl,
        "logmel_path": _rel(top, first.pkl) if pkl is not None else None,
        "licence": ci.licence, "source_url": ci.source_url, "title": ci.title,
        "metadata": json.dumps([it.row for it in items], ensure_ascii=False),
    }
    return ClipRows(first.split, rows, clip_row, paths)


def _objects(f: formats.ReleaseFormat, items: list[Item]) -> list[tuple[int | None, list[Item]]]:
    """(fid, the items about it): one group per referred object (Ref-AVS), else the one item."""
    if not f.per_object:
        return [(None, items)]
    out: dict[int, list[Item]] = {}
    for it in items:
        fid = next(iter(it.masks.values())).parent.name.removeprefix("fid_")
        out.setdefault(int(fid), []).append(it)
    return sorted(out.items())


def other_files(top: Path, claimed: set[str]) -> Iterator[str]:
    """Tree paths under `top` that no frame or clip row holds (sorted walk)."""
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames.sort()
        for name in sorted(filenames):
            rel = (Path(dirpath) / name).relative_to(top).as_posix()
            if rel not in claimed:
                yield rel
