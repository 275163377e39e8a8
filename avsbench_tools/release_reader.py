"""Read a release in one of the official layouts (ours or an official download): what the loaders open.

`read_release(root, fmt)` returns one `Item` per metadata row with the paths the official loaders
build from it (their path logic, quirks included); each format's reader (`read_s4`, `read_ms3`,
`read_avss`, `read_refavs`) is named by its entry in `avsbench_tools.formats`. validate, evaluate
and stats all read releases through this, so they agree with each other and with the loaders.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

from avsbench_tools import formats
from avsbench_tools.errors import UsageError


@dataclass
class Item:
    name: str
    split: str
    frames: list[Path]
    masks: dict[int, Path]  # second -> mask path the loaders read for this split
    wav: Path | None
    pkl: Path | None = None
    category: str | None = None
    row: dict = field(default_factory=dict)
    rgb_masks: dict[int, Path] = field(default_factory=dict)  # AVSS labels_rgb
    null: bool = False


@dataclass
class Release:
    fmt: str
    root: Path  # the release root (the folder that holds metadata)
    meta: Path
    items: list[Item]
    classes: list[str] = field(default_factory=list)  # AVSS label2idx order

    def splits(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for it in self.items:
            out[it.split] = out.get(it.split, 0) + 1
        return out


def _rows(path: Path, need: tuple[str, ...]) -> list[dict]:
    """The metadata rows; a file without the columns the loaders use is a one-line usage error."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in need if c not in (reader.fieldnames or [])]
            if missing:
                raise UsageError(f"{path}: no column {', '.join(missing)} (want {','.join(need)})")
            return [{k: (v if v is not None else "") for k, v in r.items() if k is not None} for r in reader]
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not a UTF-8 CSV file") from None


def release_root(root: Path, fmt: str) -> Path:
    """Accept the unpack root (OUT) or the inner folder (OUT/Single-source, OUT/Multi-sources)."""
    root = Path(root)
    if not root.exists():
        raise UsageError(f"{root}: no such folder (give the release root)")
    if not root.is_dir():
        raise UsageError(f"{root}: is not a folder (give the release root)")
    f = formats.get(fmt)
    if f.inner:
        if (root / f.inner / f.metadata).is_file():
            return root / f.inner
        if (root / f.metadata).is_file():
            return root
        raise UsageError(f"{root}: no {f.inner}/{f.metadata} (not a release root in the {fmt} layout)")
    if not (root / f.metadata).is_file():
        raise UsageError(f"{root}: no {f.metadata} (not a release root in the {fmt} layout)")
    return root


def check_release(root: Path, fmt: str) -> Path:
    """The release root's inner folder, or a one-line UsageError (unknown format, no folder, no metadata)."""
    formats.get(fmt)
    return release_root(root, fmt)


def read_release(root: Path, fmt: str) -> Release:
    """The release at `root` (unpack root or inner folder) in layout `fmt`: one Item per metadata row."""
    base = check_release(root, fmt)
    return formats.get(fmt).read(base)


def read_s4(base: Path) -> Release:
    """The S4: Single-source/ (s4_meta_data.csv, s4_data/) release whose metadata is in `base`."""
    meta = base / "s4_meta_data.csv"
    d = base / "s4_data"
    items = []
    for r in _rows(meta, ("name", "category", "split")):
        name, split, cat = r["name"], r["split"], r["category"]
        rel = Path(split) / cat / name
        n_masks = 1 if split == "train" else 5
        items.append(Item(name, split, [d / "visual_frames" / rel / f"{name}_{k}.png" for k in range(1, 6)],
                          {k - 1: d / "gt_masks" / rel / f"{name}_{k}.png" for k in range(1, n_masks + 1)},
                          d / "audio_wav" / split / cat / f"{name}.wav",
                          d / "audio_log_mel" / split / cat / f"{name}.pkl", cat, r))
    return Release("avsbench-s4", base, meta, items)


def read_ms3(base: Path) -> Release:
    """The MS3: Multi-sources/ (ms3_meta_data.csv, ms3_data/) release whose metadata is in `base`."""
    meta = base / "ms3_meta_data.csv"
    d = base / "ms3_data"
    items = []
    try:
        with open(meta, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except UnicodeDecodeError:
        raise UsageError(f"{meta}: not a UTF-8 CSV file") from None
    header = rows[0] if rows else None
    for r in rows[1:]:
        if not r:
            continue
        if len(r) < 2:
            raise UsageError(f"{meta}: row {r!r} has no split column (want name,split)")
        name, split = r[0], r[1]
        items.append(Item(name, split, [d / "visual_frames" / name / f"{name}.mp4_{k}.png" for k in range(1, 6)],
                          {k - 1: d / "gt_masks" / split / name / f"{name}_{k}.png" for k in range(1, 6)},
                          d / "audio_wav" / split / f"{name}.wav", d / "audio_log_mel" / split / f"{name}.pkl",
                          None, dict(zip(header or ["video_id", "split"], r, strict=False))))
    return Release("avsbench-ms3", base, meta, items)


def read_avss(base: Path) -> Release:
    """The AVSS: metadata.csv, label2idx.json, <label>/<uid>/ release whose metadata is in `base`."""
    meta = base / "metadata.csv"
    classes = []
    if (base / "label2idx.json").is_file():
        try:
            classes = list(json.loads((base / "label2idx.json").read_text(encoding="utf-8")))
        except (ValueError, TypeError):
            raise UsageError(f"{base / 'label2idx.json'}: not a JSON object of class names") from None
    items = []
    for r in _rows(meta, ("uid", "split", "label")):
        label, uid, split = r["label"], r["uid"], r["split"]
        n = 10 if label == "v2" else 5
        sup = [0] if (label == "v1s" and split == "train") else list(range(n))
        d = base / label / uid
        items.append(Item(uid, split, [d / "frames" / f"{i}.jpg" for i in range(n)],
                          {i: d / "labels_semantic" / f"{i}.png" for i in sup}, d / "audio.wav", None, label, r,
                          rgb_masks={i: d / "labels_rgb" / f"{i}.png" for i in sup}))
    return Release("avss", base, meta, items, classes)


def read_refavs(base: Path) -> Release:
    """The Ref-AVS: metadata.csv, media/<vid>/, gt_mask/<vid>/fid_<fid>/ release whose metadata is in `base`."""
    meta = base / "metadata.csv"
    items = []
    for r in _rows(meta, ("vid", "uid", "split", "fid")):
        uid, vid, split = r["uid"], r["vid"], r["split"]
        folder = uid.rsplit("_", 2)[0] if uid.startswith("null") else vid  # the official loader's rule
        fid_text = str(r.get("fid", "")).strip()
        try:
            fid = int(float(fid_text)) if fid_text not in ("", "nan") else 0
        except ValueError:
            raise UsageError(f"{meta}: row {uid}: fid {fid_text!r} is not a number") from None
        d = base / "media" / folder
        items.append(Item(uid, split, [d / "frames" / f"{i}.jpg" for i in range(10)],
                          {i: base / "gt_mask" / folder / f"fid_{fid}" / f"0000{i}.png" for i in range(10)},
                          d / "audio.wav", None, None, r, null=uid.startswith("null")))
    return Release("ref-avs", base, meta, items)
