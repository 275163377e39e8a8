"""Source discovery: what `collect` downloads or copies, before anything is fetched.

A yt-dlp search per keyword (`ytsearchN:`), a URL list, a VGGSound/AVSBench-style CSV
(`ytid,start[,label[,split]]`, one clip per row), the video files under a local folder, or the
videos of a synthetic world (`--world`, whose ids, splits and categories are kept). `enqueue.py`
turns what is found here into catalog rows.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from avsbench_tools.errors import UsageError
from avsbench_tools.fsutil import MARKER
from avsbench_tools.workspace import CATALOG_NAME, RECIPE_NAME

VIDEO_EXTS = {".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v", ".flv", ".mpg", ".mpeg", ".ts", ".3gp", ".wmv",
              ".mts", ".m2ts", ".ogv", ".vob", ".dv", ".mxf", ".3g2", ".f4v", ".asf"}
AUDIO_EXTS = {".m4a", ".mp3", ".wav", ".flac", ".aac", ".ogg", ".oga", ".opus", ".wma", ".aiff", ".aif", ".mka"}
YOUTUBE_JS_HELP = ("YouTube needs a JavaScript runtime for yt-dlp: install avs-tools[youtube] "
                   "(pip install 'avs-tools[youtube]', i.e. yt-dlp-ejs and deno)")


def safe_id(text: str, max_len: int = 40) -> str:
    """File-name-safe id: [A-Za-z0-9_-] only, never empty."""
    s = re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-")[:max_len]
    return s or "video"



# -- source discovery ----------------------------------------------------------------------
def build_search(keyword: str, n: int) -> tuple[str, dict]:
    """The yt-dlp search query and options for a keyword. The keyword is only ever search text."""
    query = f"ytsearch{int(n)}:{keyword}"
    opts = {"extract_flat": "in_playlist", "quiet": True, "no_warnings": True, "skip_download": True,
            "noplaylist": False, "playlist_items": f"1:{int(n)}"}
    return query, opts


def youtube_js_runtime_missing() -> bool:
    """Whether yt-dlp lacks the JavaScript runtime YouTube needs (yt-dlp-ejs and deno)."""
    return importlib.util.find_spec("yt_dlp_ejs") is None or (
        shutil.which("deno") is None and importlib.util.find_spec("deno") is None)


class YdlLog:
    """Collects yt-dlp's messages instead of printing them (progress bars belong to the CLI)."""

    def __init__(self):
        self.errors: list[str] = []

    def debug(self, msg):
        pass

    def info(self, msg):
        pass

    def warning(self, msg):
        pass

    def error(self, msg):
        self.errors.append(str(msg))


def search_keyword(keyword: str, n: int, ydl_class=None, timeout: float = 20.0) -> list[dict]:
    """The first `n` results (flat yt-dlp entries) of a YouTube search for `keyword`."""
    import yt_dlp

    query, opts = build_search(keyword, n)
    opts = {**opts, "socket_timeout": timeout, "logger": YdlLog()}
    with (ydl_class or yt_dlp.YoutubeDL)(opts) as ydl:
        info = ydl.extract_info(query, download=False)
    return [e for e in (info or {}).get("entries") or [] if e]


def read_csv_rows(path: Path) -> list[dict]:
    """`ytid,start[,label[,split]]`, header optional. Raises UsageError naming the line."""
    rows = []
    with open(path, newline="", encoding="utf-8-sig") as fh:
        for lineno, rec in enumerate(csv.reader(fh), start=1):
            rec = [c.strip() for c in rec]
            if not rec or not rec[0] or rec[0].startswith("#"):
                continue
            if len(rec) < 2:
                raise UsageError(f"{path}:{lineno}: expected ytid,start[,label[,split]]")
            try:
                start = float(rec[1])
            except ValueError:
                if lineno == 1:
                    continue  # header
                raise UsageError(f"{path}:{lineno}: start {rec[1]!r} is not a number of seconds") from None
            rows.append({"ytid": rec[0], "start": start, "label": rec[2] if len(rec) > 2 and rec[2] else None,
                         "split": rec[3] if len(rec) > 3 and rec[3] else None})
    return rows


def youtube_url(ytid: str) -> str:
    """A YouTube id as a watch URL (a URL is returned as it is)."""
    return ytid if "://" in ytid else f"https://www.youtube.com/watch?v={ytid}"


# -- synthetic worlds ------------------------------------------------------------------------
@dataclass
class WorldVideo:
    video_id: str
    category: str
    split: str
    info_json: str | None = None  # AVSS: {"avss_label": v1s|v1m|v2}, the subset its gold release puts it in


def world_index(world: Path, recipe) -> dict[str, WorldVideo]:
    """{video id: (category, split)} of a synthetic world, derived exactly as its gold release is:
    splits by ratio_split over the video ids with the world's recipe ratios and seed (Ref-AVS:
    test -> test_s), category = the object that sounds in the most seconds (ties: lowest id)."""
    from avsbench_tools.recipe import parse_recipe
    from avsbench_tools.splits import ratio_split
    from avsbench_tools.synth import SynthParams, avss_subset, load_truth, recipe_text, video_id

    world = Path(world)
    wj = world / "world.json"
    if not wj.is_file():
        raise UsageError(f"--world {world}: not a synthetic world (no world.json; make one with avs-tools synth)")
    try:
        d = json.loads(wj.read_text(encoding="utf-8"))
        size = d.get("size") or [320, 240]
        params = SynthParams(clips=int(d["clips"]), seconds=int(d["seconds"]), width=int(size[0]),
                             height=int(size[1]), fps=int(d.get("fps", 25)), seed=int(d["seed"]), gold=d.get("gold"))
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise UsageError(f"--world {world}: unreadable world.json ({exc})") from None
    if recipe.format != params.fmt:
        raise UsageError(f"--world {world}: the world is a {params.fmt} world but the workspace's recipe is "
                         f"{recipe.format}: make the workspace with avs-tools init WS --recipe {world}/recipe.toml")
    wrecipe = parse_recipe(recipe_text(params), source=str(world / "recipe.toml"))
    vids = [video_id(params.seed, i) for i in range(params.clips)]
    splits = ratio_split(vids, wrecipe.splits, params.seed)
    out: dict[str, WorldVideo] = {}
    for vid in vids:
        try:
            t = load_truth(world, vid)
        except (OSError, ValueError) as exc:
            raise UsageError(f"--world {world}: truth/{vid}.json is missing or unreadable ({exc})") from None
        totals = {o["id"]: sum(o["sounding"]) for o in t["objects"]}
        cat = next(o["category"] for o in t["objects"] if o["id"] == max(totals, key=lambda k: (totals[k], -k)))
        if cat not in recipe.categories:
            raise UsageError(f"--world {world}: category {cat!r} of {vid} is not in recipe {recipe.name}: make the "
                             f"workspace with avs-tools init WS --recipe {world}/recipe.toml")
        split = splits[vid]
        if params.fmt == "ref-avs" and split == "test":
            split = "test_s"
        label = avss_subset(t, params.seconds) if params.fmt == "avss" else None
        out[vid] = WorldVideo(vid, cat, split, json.dumps({"avss_label": label}) if label else None)
    return out


# -- local folders -------------------------------------------------------------------------
@dataclass
class LocalScan:
    videos: list[Path] = field(default_factory=list)
    bad: list[tuple[Path, str]] = field(default_factory=list)  # (file, "rejected: ..." reason)
    notes: list[str] = field(default_factory=list)


def is_workspace(d: Path) -> bool:
    return (d / CATALOG_NAME).exists() and (d / RECIPE_NAME).exists()


def scan_local(root: Path, ws_root: Path | None = None) -> LocalScan:
    """Every entry under root, sorted: video candidates, files rejected on sight (not a video, audio
    only, dangling symlink) and notes on what was skipped as a whole (workspaces, avs-tools output
    folders, hidden entries, symlinked folders)."""
    from avsbench_tools.media import probe

    root = Path(root)
    scan = LocalScan()
    hidden = 0
    ws_real = Path(ws_root).resolve() if ws_root else None
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        d = Path(dirpath)
        keep = []
        for name in sorted(dirnames):
            sub = d / name
            rel = sub.relative_to(root).as_posix()
            if name.startswith("."):
                hidden += 1
            elif sub.is_symlink():
                scan.notes.append(f"skipped {rel}/: a symlinked folder is not followed (pass it as --local itself)")
            elif is_workspace(sub) or (ws_real is not None and sub.resolve() == ws_real):
                scan.notes.append(f"skipped {rel}/: an avs-tools workspace inside --local {root}")
            elif (sub / MARKER).exists():
                scan.notes.append(f"skipped {rel}/: a folder written by avs-tools (release or report)")
            else:
                keep.append(name)
        dirnames[:] = keep
        for name in sorted(filenames):
            p = d / name
            if name.startswith("."):
                hidden += 1
                continue
            ext = p.suffix.lower()
            if p.is_symlink() and not p.exists():
                scan.bad.append((p, f"rejected: dangling symlink (its target {os.readlink(p)} does not exist)"))
            elif not p.is_file():
                scan.bad.append((p, "rejected: not a regular file"))
            elif ext in VIDEO_EXTS:
                scan.videos.append(p)
            elif ext in AUDIO_EXTS:
                try:
                    has_video = probe(p).has_video
                except Exception:  # noqa: BLE001 - PyAV raises several error types for unreadable files
                    has_video = False
                if has_video:
                    scan.videos.append(p)
                else:
                    scan.bad.append((p, f"rejected: audio only, no video stream ({ext} file)"))
            else:
                what = f"{ext} file" if ext else "no extension"
                scan.bad.append((p, f"rejected: not a video file ({what}; rename it if it is a video)"))
    if hidden:
        scan.notes.append(f"skipped {hidden} hidden file(s)/folder(s) (names starting with '.') under {root}")
    return scan


def local_ids(p: Path) -> tuple[str, str]:
    """(source id, video id) of a local file: its stem plus a digest of its absolute path."""
    try:
        full = str(p.resolve())
    except OSError:
        full = str(p.absolute())
    digest = hashlib.sha1(full.encode()).hexdigest()[:8]
    vid = f"{safe_id(p.stem, 32)}-{digest}"
    return f"local-{vid}", vid

