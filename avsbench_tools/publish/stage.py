"""publish / unpublish: a release tree <-> Parquet shards with the Hub's README and croissant.json.

    DIR/data/frames/<split>-NNNNN.parquet   one row per sampled frame (tables.frame_features)
    DIR/data/clips/<split>-NNNNN.parquet    one row per clip (tables.clip_features)
    DIR/data/files/files-00000.parquet      every other file of the tree, byte for byte
    DIR/README.md                           the Hub's dataset card: YAML header (configs per split) + text
    DIR/croissant.json                      Croissant 1.1 with the responsible-AI fields
    DIR/SHA256SUMS, DIR/.avs-tools-output   checksums; the marker (kind "publish", the format)

Both directions write into a temporary folder beside the output and rename it into place when
complete; Ctrl-C leaves the output as it was.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from avsbench_tools import formats
from avsbench_tools.errors import AvsError, Interrupted, UsageError
from avsbench_tools.fsutil import atomic_dir, check_output_dir, read_marker, write_marker
from avsbench_tools.fsutil import sha256_file as _sha256
from avsbench_tools.progress import Progress
from avsbench_tools.publish import tables
from avsbench_tools.publish.shards import SHARD_BYTES, ShardWriter, arrow_schema, read_rows

KIND = "publish"
MANIFEST = "SHA256SUMS"
TABLES = ("frames", "clips")


@dataclass
class PublishResult:
    out: str
    fmt: str
    clips: int = 0
    frames: int = 0
    other_files: int = 0
    splits: dict[str, int] = field(default_factory=dict)  # clips per split
    shards: list[str] = field(default_factory=list)  # relative to out
    bytes: int = 0
    warnings: list[str] = field(default_factory=list)


@dataclass
class UnpublishResult:
    out: str
    fmt: str
    files: int = 0
    checked: int = 0  # files whose sha256 was checked against the release's own SHA256SUMS


def _within(child: Path, parent: Path) -> bool:
    try:
        child.resolve().relative_to(parent.resolve())
        return True
    except ValueError:
        return False


def publish(release: Path, fmt: str, out: Path, force: bool = False, ws=None, shard_bytes: int = SHARD_BYTES,
            progress: Progress | None = None) -> PublishResult:
    """Write the release at `release` (layout `fmt`) as Parquet shards + README.md + croissant.json in `out`.

    `ws` (an open Workspace, optional) adds what only the catalog knows: per-frame provenance, licences."""
    from avsbench_tools.publish import croissant, hub, provenance
    from avsbench_tools.release_reader import read_release

    progress = progress or (lambda *a: None)
    top = Path(release)
    rel = read_release(top, fmt)
    given = Path(out)
    if _within(given, top):
        raise UsageError(f"--out {given}: is inside the release {top}; name a folder outside it")
    out = check_output_dir(given, kind=KIND, force=force, protected=[top] + ([ws.root] if ws is not None else []))
    info = provenance.clip_info(ws, rel, top) if ws is not None else {}
    res = PublishResult(str(given), fmt)
    n = len(list(tables._groups(rel)))
    try:
        with atomic_dir(out) as tmp:
            writers: dict[tuple[str, str], ShardWriter] = {}
            schemas = {"frames": arrow_schema(tables.frame_features(fmt)), "clips": arrow_schema(tables.clip_features())}
            claimed: set[str] = set()
            annotated: dict[str, set[int]] = {}

            def writer(table: str, split: str) -> ShardWriter:
                if (table, split) not in writers:
                    writers[table, split] = ShardWriter(tmp / "data" / table, split, schemas[table], shard_bytes)
                return writers[table, split]

            for i, (clip, rows) in enumerate(tables.iter_clips(rel, top, info)):
                for r in rows.frames:
                    writer("frames", r["split"]).add(r)
                writer("clips", rows.split).add(rows.clip)
                claimed |= rows.paths
                annotated[clip] = {r["second"] for r in rows.frames if r["annotated"]}
                res.clips += 1
                res.frames += len(rows.frames)
                res.splits[rows.split] = res.splits.get(rows.split, 0) + 1
                progress("publishing", i + 1, n, clip)
            files = ShardWriter(tmp / "data" / "files", "files", arrow_schema(tables.FILE_FEATURES), shard_bytes)
            for p in tables.other_files(top, claimed):
                files.add({"path": p, "bytes": (top / p).read_bytes()})
                res.other_files += 1
            for w in [*writers.values(), files]:
                w.close()
                res.shards += [s.relative_to(tmp).as_posix() for s in w.shards]
            res.bytes = sum((tmp / s).stat().st_size for s in res.shards)
            card = _release_card(top)
            info = {c: tables.ClipInfo(ci.licence, ci.source_url, ci.title, {  # provenance of annotated frames only
                s: p for s, p in ci.frames.items() if s in annotated.get(c, ())}) for c, ci in info.items()}
            (tmp / "README.md").write_text(hub.readme(rel, res, card, info), encoding="utf-8")
            doc = croissant.croissant(rel, res, tmp, provenance.release_facts(ws, info, card))
            (tmp / "croissant.json").write_text(croissant.dumps(doc), encoding="utf-8")
            write_marker(tmp, KIND, format=fmt, release=top.name, clips=res.clips)
            (tmp / MANIFEST).write_text(_manifest(tmp), encoding="utf-8")
    except KeyboardInterrupt:
        raise Interrupted(0, n, what=f"nothing was written, {given} is as it was") from None
    return res


def _release_card(top: Path) -> str:
    for name in ("DATASET_CARD.md",):
        p = top / name
        if p.is_file():
            return p.read_text(encoding="utf-8", errors="replace")
    return ""


def _manifest(root: Path) -> str:
    lines = []
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != MANIFEST:
            lines.append(f"{_sha256(p)}  {p.relative_to(root).as_posix()}")
    return "\n".join(lines) + "\n"


def _safe(rel: str | None, where: Path) -> PurePosixPath:
    """A tree path from a parquet row; one that could leave the output folder is refused."""
    p = PurePosixPath(rel or "")
    if not rel or p.is_absolute() or ".." in p.parts or "\\" in rel:
        raise UsageError(f"{where}: holds the path {rel!r}, which is not a path inside a release tree")
    return p


def published_format(folder: Path) -> str:
    """The format of a folder `publish` wrote; a one-line UsageError for anything else."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UsageError(f"{folder}: no such folder (give a folder avs-tools publish wrote)")
    marker = read_marker(folder)
    if not marker or marker.get("kind") != KIND or not (folder / "data").is_dir():
        raise UsageError(f"{folder}: not a folder avs-tools publish wrote (no {KIND} marker or no data/)")
    fmt = marker.get("format") or ""
    formats.get(fmt)
    return fmt


def unpublish(folder: Path, out: Path, force: bool = False, progress: Progress | None = None) -> UnpublishResult:
    """Write the official tree a published folder holds back into `out`, byte for byte, and check it against
    the release's own SHA256SUMS when it had one."""
    progress = progress or (lambda *a: None)
    folder = Path(folder)
    fmt = published_format(folder)
    given = Path(out)
    out = check_output_dir(given, kind="release", force=force, protected=[folder])
    shards = [p for t in (*TABLES, "files") for p in sorted((folder / "data" / t).glob("*.parquet"))]
    res = UnpublishResult(str(given), fmt)
    try:
        with atomic_dir(out) as tmp:
            written: set[str] = set()

            def put(rel: str | None, data: bytes | None, shard: Path) -> None:
                if data is None or rel in written:
                    return
                p = tmp / _safe(rel, shard)
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(data)
                written.add(rel)

            for i, shard in enumerate(shards):
                for row in read_rows(shard):
                    for key in ("frame", "mask", "mask_rgb", "audio"):
                        if row.get(key):
                            put(row[key]["path"], row[key]["bytes"], shard)
                    if row.get("logmel_pkl") is not None:
                        put(row["logmel_path"], row["logmel_pkl"], shard)
                    if "path" in row and "bytes" in row:
                        put(row["path"], row["bytes"], shard)
                progress("unpublishing", i + 1, len(shards), shard.name)
            res.files = len(written)
            res.checked = _check_sums(tmp, given)
    except KeyboardInterrupt:
        raise Interrupted(0, len(shards), what=f"nothing was written, {given} is as it was") from None
    return res


def _check_sums(tree: Path, given: Path) -> int:
    sums = tree / MANIFEST
    if not sums.is_file():
        return 0
    n = 0
    for line in sums.read_text(encoding="utf-8").splitlines():
        if "  " not in line:
            continue
        digest, rel = line.split("  ", 1)
        p = tree / rel
        if not p.is_file() or _sha256(p) != digest:
            raise AvsError(f"unpublish {given}: {rel} does not match the release's {MANIFEST} (the published "
                           "folder is damaged); nothing was written")
        n += 1
    return n
