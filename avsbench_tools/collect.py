"""collect: find, download and cut clips into a workspace (yt-dlp + ffmpeg), resumable.

Sources (all go into the same catalog): a yt-dlp search per keyword (`ytsearchN:`), a URL list, a
VGGSound/AVSBench-style CSV (`ytid,start[,label[,split]]`, one clip per row), local video files,
or the videos of a synthetic world (`--world`, which keeps the world's ids, splits and categories).
Each source is downloaded once (catalog status + yt-dlp download archive), checked (licence,
duration, height, audio, length), then cut into exact clips re-encoded to a constant frame rate.

Every source ends as clips or as a ledger row with its reason. Two kinds of rows:
- rejections (`payload.permanent = true`, source status 'rejected', reason "rejected: ..."):
  no audio, too short, not a video, licence, private/removed video. Retrying cannot help, so
  `--retry-failed` leaves them (a licence/duration/height rejection is reconsidered only when the
  option that caused it changes);
- failures (`payload.permanent = false`, status 'failed'): network, HTTP 403/429/5xx, timeouts.
  `--retry-failed` tries them again.
Finished files are written under temporary names and renamed, and a catalog row is committed only
after its file is in place, so kill -9 at any point is safe; Ctrl-C stops the workers, kills their
ffmpeg, removes partial files and raises Interrupted.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import importlib.util
import json
import math
import os
import queue
import re
import shutil
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from avsbench_tools.catalog import Clip, Source, now
from avsbench_tools.errors import AvsError, Interrupted, UsageError
from avsbench_tools.fsutil import MARKER, remove_stale_temps
from avsbench_tools.media import Stopped
from avsbench_tools.workspace import CATALOG_NAME, RECIPE_NAME, Workspace

VIDEO_EXTS = {".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v", ".flv", ".mpg", ".mpeg", ".ts", ".3gp", ".wmv",
              ".mts", ".m2ts", ".ogv", ".vob", ".dv", ".mxf", ".3g2", ".f4v", ".asf"}
AUDIO_EXTS = {".m4a", ".mp3", ".wav", ".flac", ".aac", ".ogg", ".oga", ".opus", ".wma", ".aiff", ".aif", ".mka"}
YOUTUBE_JS_HELP = ("YouTube needs a JavaScript runtime for yt-dlp: install avs-tools[youtube] "
                   "(pip install 'avs-tools[youtube]', i.e. yt-dlp-ejs and deno)")
Progress = Callable[[str, int, int, str], None]


@dataclass
class CollectOptions:
    keywords: list[str] = field(default_factory=list)
    per_keyword: int = 10
    category: str | None = None
    urls: Path | None = None
    csv: Path | None = None
    local: Path | None = None
    any_license: bool = False
    max_duration: float | None = None
    min_height: int | None = None
    max_height: int = 720
    jobs: int = 1
    sleep: float = 0.0
    retries: int = 2
    timeout: float = 20.0
    clips_per_video: int = 1
    fps: int | None = None
    seconds: int | None = None
    retry_failed: bool = False
    check_js_runtime: bool = True
    category_from_folder: bool = False  # --local: the first sub-folder name is each file's category
    world: Path | None = None  # a synthetic world: keep its video ids, splits and categories
    # refuse new --local/--urls/--keywords sources that would get no category (the CLI sets it;
    # library callers that set categories otherwise may leave it off)
    require_category: bool = False


@dataclass
class CollectResult:
    clips: int = 0  # clips in the workspace after the run
    new_clips: int = 0
    failed: int = 0  # transient failures recorded by this run (retry with --retry-failed)
    rejected: int = 0  # permanent rejections recorded by this run (never retried)
    skipped: int = 0  # sources already done before this run
    sources: int = 0  # items this run worked on (sources processed + files rejected on sight)
    failures: list[tuple[str, str, bool]] = field(default_factory=list)  # (source shown, reason, permanent)
    notes: list[str] = field(default_factory=list)
    open_failed: int = 0  # transient failures in the ledger after the run
    open_rejected: int = 0  # rejections in the ledger after the run
    idle: str | None = None  # why the run had nothing to do

    @property
    def all_failed(self) -> bool:
        """This run had work and every item of it failed or was rejected."""
        return self.sources > 0 and self.new_clips == 0 and self.failed + self.rejected >= self.sources


class SourceError(Exception):
    """A source could not be used. kind 'error': transient, retried; kind 'rejected': permanent.

    Permanent reasons always read "rejected: ...", so every listing tells them apart.
    """

    def __init__(self, reason: str, detail: str = "", kind: str = "error", network: bool = False,
                 interrupted: bool = False):
        if kind == "rejected" and not reason.startswith("rejected"):
            reason = f"rejected: {reason}"
        super().__init__(reason)
        self.reason, self.detail, self.kind, self.network = reason, detail, kind, network
        self.interrupted = interrupted  # a child process ended by a signal (Ctrl-C reached it too)

    @property
    def permanent(self) -> bool:
        return self.kind == "rejected"


# -- ids and classification ----------------------------------------------------------------
def safe_id(text: str, max_len: int = 40) -> str:
    """File-name-safe id: [A-Za-z0-9_-] only, never empty."""
    s = re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-")[:max_len]
    return s or "video"


def classify_error(message: str) -> tuple[str, bool, bool]:
    """yt-dlp / network error text -> (short reason, retryable, network-level).

    Not retryable (permanent): 404, private, age-restricted, removed, unsupported URL.
    """
    m = message.lower()
    table = [
        (("http error 404", "404: not found"), "not found (HTTP 404)", False, False),
        (("http error 403", "403: forbidden"), "forbidden (HTTP 403)", True, False),
        (("http error 429", "too many requests", "try again later", "rate-limit", "rate limit"),
         "rate limited (try again later)", True, False),
        (("sign in to confirm", "not a bot"), "bot check (sign in to confirm you're not a bot)", True, False),
        (("private video",), "private video", False, False),
        (("age-restricted", "confirm your age", "age restricted"), "age-restricted", False, False),
        (("video unavailable", "has been removed", "no longer available", "account associated"),
         "removed or unavailable", False, False),
        (("timed out", "timeout"), "timeout", True, True),
        (("name or service not known", "temporary failure in name resolution", "nodename nor servname",
          "network is unreachable", "no address associated", "failed to resolve", "getaddrinfo failed",
          "connection refused", "connection reset", "remote end closed", "unable to connect",
          "no route to host", "failed to establish", "unable to download webpage"),
         "network error", True, True),
        (("http error 5",), "server error (HTTP 5xx)", True, False),
        (("unsupported url",), "unsupported URL", False, False),
    ]
    for needles, reason, retry, network in table:
        if any(n in m for n in needles):
            return reason, retry, network
    return "download failed", True, False


def is_cc(license_text: str | None) -> bool:
    return bool(license_text) and ("creative commons" in license_text.lower() or re.search(r"\bcc[- ]by", license_text.lower()) is not None)


def _payload(f) -> dict:
    try:
        return json.loads(f.payload or "{}") or {}
    except ValueError:
        return {}


def is_permanent(failure) -> bool:
    """Whether a collect ledger row is a permanent rejection (never retried by --retry-failed)."""
    if getattr(failure, "permanent", None):
        return True
    p = _payload(failure)
    if "permanent" in p:
        return bool(p["permanent"])
    return p.get("kind") == "rejected" or (failure.reason or "").startswith("rejected")


def record(cat, item: str, reason: str, detail: str | None, payload: dict, permanent: bool) -> None:
    """A collect ledger row; `permanent` goes into the payload and, where the catalog has it, its column."""
    import inspect

    payload = {**payload, "kind": "rejected" if permanent else "error", "permanent": permanent}
    if "permanent" in inspect.signature(cat.record_failure).parameters:
        cat.record_failure("collect", item, reason, detail, payload=payload, permanent=permanent)
    else:
        cat.record_failure("collect", item, reason, detail, payload=payload)


def source_label(src: Source) -> str:
    """How a source is shown to the user: its URL, or its file name under the --local folder."""
    if src.kind == "local":
        return src.title or (Path(src.path).name if src.path else src.source_id)
    return src.url or src.source_id


# -- source discovery ----------------------------------------------------------------------
def build_search(keyword: str, n: int) -> tuple[str, dict]:
    """The yt-dlp search query and options for a keyword. The keyword is only ever search text."""
    query = f"ytsearch{int(n)}:{keyword}"
    opts = {"extract_flat": "in_playlist", "quiet": True, "no_warnings": True, "skip_download": True,
            "noplaylist": False, "playlist_items": f"1:{int(n)}"}
    return query, opts


def youtube_js_runtime_missing() -> bool:
    return importlib.util.find_spec("yt_dlp_ejs") is None or (
        shutil.which("deno") is None and importlib.util.find_spec("deno") is None)


class _Log:
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
    import yt_dlp

    query, opts = build_search(keyword, n)
    opts = {**opts, "socket_timeout": timeout, "logger": _Log()}
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


def _youtube_url(ytid: str) -> str:
    return ytid if "://" in ytid else f"https://www.youtube.com/watch?v={ytid}"


# -- synthetic worlds ------------------------------------------------------------------------
@dataclass
class WorldVideo:
    video_id: str
    category: str
    split: str


def world_index(world: Path, recipe) -> dict[str, WorldVideo]:
    """{video id: (category, split)} of a synthetic world, derived exactly as its gold release is:
    splits by ratio_split over the video ids with the world's recipe ratios and seed (Ref-AVS:
    test -> test_s), category = the object that sounds in the most seconds (ties: lowest id)."""
    from avsbench_tools.recipe import parse_recipe
    from avsbench_tools.splits_simple import ratio_split
    from avsbench_tools.synth import SynthParams, load_truth, recipe_text, video_id

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
        out[vid] = WorldVideo(vid, cat, split)
    return out


# -- local folders -------------------------------------------------------------------------
@dataclass
class _LocalScan:
    videos: list[Path] = field(default_factory=list)
    bad: list[tuple[Path, str]] = field(default_factory=list)  # (file, "rejected: ..." reason)
    notes: list[str] = field(default_factory=list)


def _is_workspace(d: Path) -> bool:
    return (d / CATALOG_NAME).exists() and (d / RECIPE_NAME).exists()


def scan_local(root: Path, ws_root: Path | None = None) -> _LocalScan:
    """Every entry under root, sorted: video candidates, files rejected on sight (not a video, audio
    only, dangling symlink) and notes on what was skipped as a whole (workspaces, avs-tools output
    folders, hidden entries, symlinked folders)."""
    from avsbench_tools.media import probe

    root = Path(root)
    scan = _LocalScan()
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
            elif _is_workspace(sub) or (ws_real is not None and sub.resolve() == ws_real):
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


def _local_ids(p: Path) -> tuple[str, str]:
    """(source id, video id) of a local file: its stem plus a digest of its absolute path."""
    try:
        full = str(p.resolve())
    except OSError:
        full = str(p.absolute())
    digest = hashlib.sha1(full.encode()).hexdigest()[:8]
    vid = f"{safe_id(p.stem, 32)}-{digest}"
    return f"local-{vid}", vid


# -- enqueue ---------------------------------------------------------------------------------
def _categories_line(recipe) -> str:
    return ", ".join(recipe.categories)


def _need_category(recipe, what: str) -> UsageError:
    return UsageError(f"{what}: recipe {recipe.name} has categories and these clips would get none: pass "
                      f"--category C (one of: {_categories_line(recipe)})"
                      + (" or --category-from-folder" if what.startswith("--local") else ""))


def _folder_category(recipe, root: Path, p: Path) -> str | None:
    parts = p.relative_to(root).parts
    if len(parts) < 2:
        return None
    name = parts[0]
    return name if name in recipe.categories else recipe.match_category(name)


class _Enqueue:
    """Adds requested sources to the catalog after validating all of them (a refusal adds nothing)."""

    def __init__(self, ws: Workspace, opts: CollectOptions, res: CollectResult):
        self.ws, self.opts, self.res = ws, opts, res
        self.cat = ws.catalog
        self.not_applied = 0  # existing, already collected sources whose category/ids this run would change
        self.new = 0

    def add(self, src: Source) -> bool:
        """Insert a new source, or bring a not-yet-collected one up to date with this run's category
        and world ids; an already collected one keeps its own (counted for a note)."""
        if self.cat.add_source_if_new(src):
            self.new += 1
            return True
        old = self.cat.source(src.source_id)
        want = {k: getattr(src, k) for k in ("category", "video_id", "split_hint") if getattr(src, k) is not None}
        diff = {k: v for k, v in want.items() if getattr(old, k) != v}
        if not diff:
            return False
        if old.status == "done" or self.cat.clip_ids_for_source(old.source_id):
            self.not_applied += 1
        else:
            with self.cat.tx() as db:
                db.execute(f"UPDATE sources SET {', '.join(f'{k}=?' for k in diff)} WHERE source_id=?",
                           (*diff.values(), src.source_id))
        return False

    def reject_on_sight(self, src: Source, reason: str) -> None:
        """A file that is not usable as a video: a source row plus a permanent ledger row, once."""
        src.status, src.reason = "rejected", reason
        if self.cat.add_source_if_new(src):
            record(self.cat, src.source_id, reason, src.path, {"url": src.url, "source": source_label(src)}, True)
            self.res.rejected += 1
            self.res.sources += 1
            self.res.failures.append((source_label(src), reason, True))


def enqueue_sources(ws: Workspace, opts: CollectOptions, progress: Progress | None = None,
                    res: CollectResult | None = None) -> int:
    """Add every requested source to the catalog. Returns how many were new."""
    res = res if res is not None else CollectResult()
    recipe = ws.recipe
    category = opts.category
    if category and category not in recipe.categories:
        raise UsageError(f"--category {category!r} is not in recipe {recipe.name} (one of: {_categories_line(recipe)})")
    if opts.world is not None and (category or opts.category_from_folder):
        raise UsageError("--world gives every clip its world category: leave out --category/--category-from-folder")
    if opts.category_from_folder and category:
        raise UsageError("--category and --category-from-folder exclude each other: choose one")
    if opts.category_from_folder and not opts.local:
        raise UsageError("--category-from-folder needs --local DIR (its sub-folder names are the categories)")
    world = world_index(opts.world, recipe) if opts.world is not None else None
    enq = _Enqueue(ws, opts, res)
    cat = ws.catalog

    def world_of(name: str, where: str) -> WorldVideo:
        stem = Path(name).stem
        if stem not in world:
            raise UsageError(f"--world {opts.world}: {where} is not one of its videos (their names are "
                             f"<video id>.mp4, e.g. {next(iter(world))}.mp4)")
        return world[stem]

    # validate everything first: a refusal leaves the catalog as it was
    url_lines: list[str] = []
    if opts.urls:
        if not opts.urls.is_file():
            raise UsageError(f"--urls {opts.urls}: file not found")
        url_lines = [u.strip() for u in opts.urls.read_text(encoding="utf-8").splitlines()
                     if u.strip() and not u.strip().startswith("#")]
    csv_rows = []
    if opts.csv:
        if not opts.csv.is_file():
            raise UsageError(f"--csv {opts.csv}: file not found")
        csv_rows = read_csv_rows(opts.csv)
        valid = set(recipe.splits) | ({"test_s", "test_u"} if recipe.format == "ref-avs" else set())
        for r in csv_rows:
            if r["split"] and recipe.format == "ref-avs" and r["split"] == "test":
                r["split"] = "test_s"  # Ref-AVS's seen-category test split
            if r["split"] and r["split"] not in valid:
                raise UsageError(f"--csv {opts.csv}: row {r['ytid']},{r['start']:g} has split {r['split']!r}, which "
                                 f"recipe {recipe.name} does not have (one of: {', '.join(sorted(valid))})")
    scan = None
    if opts.local:
        if not opts.local.is_dir():
            raise UsageError(f"--local {opts.local}: not a folder")
        scan = scan_local(opts.local, ws.root)
        res.notes.extend(scan.notes)
    planned: list[Source] = []
    for url in url_lines:
        sid = "url-" + hashlib.sha1(url.encode()).hexdigest()[:12]
        src = Source(source_id=sid, kind="url", url=url, category=category)
        if world is not None:
            w = world_of(unquote(urlparse(url).path), url)
            src.video_id, src.category, src.split_hint = w.video_id, w.category, w.split
        planned.append(src)
    if scan is not None:
        wrong_folders: dict[str, int] = {}
        at_root: list[str] = []
        for p in scan.videos:
            sid, vid = _local_ids(p)
            rel = p.relative_to(opts.local).as_posix()
            src = Source(source_id=sid, kind="local", url=None, video_id=vid, title=rel, path=str(p.resolve()),
                         license="own footage (local file)", category=category)
            if world is not None:
                w = world_of(p.name, rel)
                src.video_id, src.category, src.split_hint = w.video_id, w.category, w.split
            elif opts.category_from_folder:
                c = _folder_category(recipe, opts.local, p)
                if c is None and len(p.relative_to(opts.local).parts) < 2:
                    at_root.append(rel)
                elif c is None:
                    top = p.relative_to(opts.local).parts[0]
                    wrong_folders[top] = wrong_folders.get(top, 0) + 1
                src.category = c
            planned.append(src)
        if wrong_folders:
            names = ", ".join(sorted(wrong_folders))
            raise UsageError(f"--category-from-folder: folder(s) {names} under {opts.local} are not categories of "
                             f"recipe {recipe.name} (one of: {_categories_line(recipe)})")
        if at_root:
            raise UsageError(f"--category-from-folder: {len(at_root)} video file(s) are not in a category folder "
                             f"under {opts.local} (first: {at_root[0]}); move them into a folder named after their "
                             "category, or collect them with --category")
    if opts.require_category:
        if opts.keywords and not category:
            unmatched = [k for k in opts.keywords if not recipe.match_category(k)]
            if unmatched:
                raise UsageError(f"--keywords {unmatched[0]!r} is not a category of recipe {recipe.name}: pass "
                                 f"--category C (one of: {_categories_line(recipe)})")
        for src in planned:
            if src.category is None and cat.source(src.source_id) is None:
                raise _need_category(recipe, f"--local {opts.local}" if src.kind == "local" else f"--urls {opts.urls}")
        if csv_rows and not category:
            missing = [r for r in csv_rows if not r["label"]]
            if missing:
                raise UsageError(f"--csv {opts.csv}: row {missing[0]['ytid']} has no label, so its clip would get no "
                                 f"category: pass --category C (one of: {_categories_line(recipe)})")

    # then write
    if opts.keywords:
        if opts.check_js_runtime and youtube_js_runtime_missing():
            raise AvsError(YOUTUBE_JS_HELP)
        for i, kw in enumerate(opts.keywords):
            hint = category or recipe.match_category(kw)
            try:
                entries = search_keyword(kw, opts.per_keyword, timeout=opts.timeout)
            except Exception as exc:  # noqa: BLE001 - yt-dlp raises DownloadError and others
                reason, _, _ = classify_error(str(exc))
                record(cat, f"search:{kw}", f"search failed: {reason}", str(exc)[:500],
                       {"search": kw, "source": f"search:{kw}"}, False)
                res.failed += 1
                res.sources += 1
                res.failures.append((f"search {kw!r}", f"search failed: {reason}", False))
                entries = []
            for e in entries:
                vid = e.get("id") or safe_id(e.get("url", ""))
                enq.add(Source(source_id=f"yt-{safe_id(vid, 64)}", kind="search", url=e.get("url") or _youtube_url(vid),
                               video_id=safe_id(vid, 64), title=e.get("title"), keyword=kw, category=hint))
            if progress:
                progress("searching", i + 1, len(opts.keywords), kw)
    for src in planned:
        enq.add(src)
    for row in csv_rows:
        vid = safe_id(row["ytid"], 64)
        hint = category or recipe.match_category(row["label"]) or row["label"]
        enq.add(Source(source_id=f"yt-{vid}@{row['start']:g}", kind="csv", url=_youtube_url(row["ytid"]),
                       video_id=vid, keyword=row["label"], category=hint, start=row["start"], split_hint=row["split"]))
    if scan is not None:
        for p, reason in scan.bad:
            sid, vid = _local_ids(p)
            enq.reject_on_sight(Source(source_id=sid, kind="local", video_id=vid,
                                       title=p.relative_to(opts.local).as_posix(), path=str(p.absolute()),
                                       category=category), reason)
    if enq.not_applied:
        what = "--world" if world is not None else f"--category {category}" if category else "--category-from-folder"
        res.notes.append(f"{what} did not apply to {enq.not_applied} source(s) already collected: their clips keep "
                         f"their category (change it with avs-tools set-category {ws.root} --clip ID --category C)")
    return enq.new


# -- download ------------------------------------------------------------------------------
def _ydl_options(ws: Workspace, opts: CollectOptions, key: str, log: _Log, archive: bool = True) -> dict:
    from avsbench_tools.media import ffmpeg_dir

    h = int(opts.max_height)
    o = {
        "format": f"bv*[height<={h}]+ba/b[height<={h}]/bv*+ba/b",
        "outtmpl": {"default": str(ws.path("sources", f"{key}.%(ext)s"))},
        "retries": 2, "fragment_retries": 2, "extractor_retries": 1, "socket_timeout": opts.timeout,
        "continuedl": True, "noplaylist": True, "quiet": True, "no_warnings": True, "noprogress": True,
        "logger": log, "ffmpeg_location": ffmpeg_dir(ws.path(".cache", "bin")), "merge_output_format": "mp4",
        "overwrites": False, "restrictfilenames": True, "windowsfilenames": True,
    }
    if archive:
        o["download_archive"] = str(ws.path("download-archive.txt"))
    return o


def _is_partial(p: Path) -> bool:
    n = p.name
    return n.startswith(".tmp-") or n.endswith((".part", ".ytdl", ".temp")) or ".part-Frag" in n or \
        re.search(r"\.f\d+\.", n) is not None or ".temp." in n


def _find_download(ws: Workspace, key: str) -> Path | None:
    for p in sorted(ws.path("sources").glob(f"{key}.*")):
        if not _is_partial(p) and p.is_file():
            return p
    return None


def _download_key(src: Source) -> str:
    """The file name stem of a source's download, fixed when the source is queued.

    Search and CSV sources know their video id from the start (several CSV rows of one video share
    one download); URL sources use their source id. The video id a URL source learns from its page
    is stored later and must not move the file it looks for: that was how a finished download,
    killed before its clips were cut, became "download produced no file" on the re-run.
    """
    if src.kind in ("search", "csv") and src.video_id:
        return safe_id(src.video_id, 64)
    return src.source_id


def _existing_download(ws: Workspace, src: Source) -> Path | None:
    """A finished download of this source already on disk (the recorded path, else by its key)."""
    if src.path:
        p = Path(src.path)
        if p.is_file() and p.parent.resolve() == ws.path("sources").resolve() and not _is_partial(p):
            return p
    return _find_download(ws, _download_key(src))


def download_source(ws: Workspace, src: Source, opts: CollectOptions, stop: threading.Event | None = None
                    ) -> tuple[Path, dict]:
    """Download one source (or reuse the finished file). Returns (path, metadata)."""
    if src.kind == "local":
        return Path(src.path), {}
    key = _download_key(src)
    done = _existing_download(ws, src)
    if done is not None and src.status in ("downloaded", "done", "rejected"):
        return done, {}
    import yt_dlp

    log = _Log()

    def hook(_status):  # called for every downloaded block: the way to stop a download in a thread
        if stop is not None and stop.is_set():
            raise Stopped()

    try:
        with yt_dlp.YoutubeDL(_ydl_options(ws, opts, key, log)) as ydl:
            ydl.add_progress_hook(hook)
            info = ydl.extract_info(src.url, download=False)
            if info is None:
                raise SourceError("no media found", "; ".join(log.errors))
            if stop is not None and stop.is_set():
                raise Stopped()
            lic = info.get("license")
            if not opts.any_license and not is_cc(lic):
                raise SourceError("rejected: licence is not Creative Commons", f"licence: {lic or 'unknown'}; "
                                  "pass --any-license to keep it", kind="rejected")
            dur = info.get("duration")
            if opts.max_duration and dur and dur > opts.max_duration:
                raise SourceError(f"rejected: longer than --max-duration ({dur:.0f} s)", kind="rejected")
            meta = {k: info.get(k) for k in ("id", "title", "uploader", "license", "duration", "webpage_url")}
            done = _existing_download(ws, src)
            if done is None:
                if ydl.in_download_archive(info):
                    # recorded as downloaded but the file is gone (deleted by hand): fetch it again
                    with yt_dlp.YoutubeDL(_ydl_options(ws, opts, key, log, archive=False)) as again:
                        again.add_progress_hook(hook)
                        again.process_ie_result(info, download=True)
                else:
                    ydl.process_ie_result(info, download=True)
                done = _find_download(ws, key)
            elif not ydl.in_download_archive(info):
                ydl.record_download_archive(info)
    except (SourceError, Stopped):
        raise
    except Exception as exc:  # noqa: BLE001 - yt_dlp.utils.DownloadError and friends
        text = "; ".join(log.errors) or str(exc)
        reason, retry, network = classify_error(text)
        raise SourceError(reason, text[:500], kind="error" if retry else "rejected", network=network) from None
    if done is None:
        raise SourceError("download produced no file", "; ".join(log.errors))
    return done, meta


# -- checks and cutting --------------------------------------------------------------------
def check_media(path: Path, seconds: int, opts: CollectOptions, local: bool = True):
    """Probe a source file; raises SourceError. A bad local file is a permanent rejection; a bad
    download is deleted and reported as a transient failure (the retry downloads it again)."""
    import av

    from avsbench_tools.media import probe

    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise SourceError("file not found (moved or deleted since it was queued)", str(path)) from None
    except PermissionError as exc:
        raise SourceError(f"cannot read the file: {exc.strerror}", str(path)) from None
    if size == 0:
        if not local:
            path.unlink(missing_ok=True)
            raise SourceError("download is empty (0 bytes)")
        raise SourceError("corrupt file: empty (0 bytes)", kind="rejected")
    try:
        pr = probe(path)
    except PermissionError as exc:
        raise SourceError(f"cannot read the file: {exc.strerror}", str(path)) from None
    except (av.error.FFmpegError, OSError, ValueError, IndexError) as exc:
        if not local:
            path.unlink(missing_ok=True)
            raise SourceError("downloaded file cannot be decoded", str(exc)[:300]) from None
        raise SourceError("corrupt file: cannot be decoded", str(exc)[:300], kind="rejected") from None
    if not pr.has_video:
        raise SourceError("no video stream" + (" (audio only)" if pr.has_audio else ""), kind="rejected")
    if not pr.has_audio:
        raise SourceError("no audio stream", kind="rejected")
    if pr.duration is None or pr.duration + 1e-3 < seconds:
        raise SourceError(f"too short: {pr.duration or 0:.2f} s < one {seconds} s clip", kind="rejected")
    shown_h = pr.width if pr.rotation in (90, 270) else pr.height
    if opts.min_height and shown_h and shown_h < opts.min_height:
        raise SourceError(f"rejected: height {shown_h} < --min-height {opts.min_height}", kind="rejected")
    if opts.max_duration and pr.duration > opts.max_duration:
        raise SourceError(f"rejected: longer than --max-duration ({pr.duration:.0f} s)", kind="rejected")
    return pr


def clip_starts(duration: float, seconds: int, start: float | None, k: int) -> list[float]:
    if start is not None:
        return [start]
    n = min(k, int(math.floor(duration / seconds + 1e-6)))
    return [i * seconds for i in range(n)]


def clip_id_for(recipe, video_key: str, start: float, seconds: int, n: int) -> str:
    if recipe.format == "avsbench-ms3":
        return f"{video_key}_{n}"
    s = int(round(start * 1000))
    return f"{video_key}_{s}_{s + seconds * 1000}"


def cut_clip(src_path: Path, dst: Path, start: float, seconds: int, fps: int, src_fps: float | None,
             stop: threading.Event | None = None):
    """Exact clip: start snapped to a source frame boundary, CFR re-encode, exactly seconds*fps frames.

    The clip is checked under its temporary name and only then renamed to dst; returns its probe.
    """
    from avsbench_tools.media import ffmpeg_exe, probe, run_tool

    if src_fps:
        start = round(start * src_fps) / src_fps
    n = seconds * fps
    tmp = dst.with_name(f".tmp-{dst.name}")
    cmd = [ffmpeg_exe(), "-nostdin", "-v", "error", "-y", "-ss", f"{start:.6f}", "-i", str(src_path),
           "-t", f"{seconds + 1.0 / fps:.6f}", "-map", "0:v:0", "-map", "0:a:0", "-vf", f"fps={fps}",
           "-frames:v", str(n), "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p",
           "-c:a", "aac", "-b:a", "192k", "-af", f"atrim=0:{seconds},asetpts=N/SR/TB",
           "-movflags", "+faststart", "-f", "mp4", str(tmp)]
    try:
        rc, err = run_tool(cmd, stop)
        if rc != 0:
            # 255 or a negative code: ffmpeg was ended by a signal (Ctrl-C reaches the whole group)
            raise SourceError("ffmpeg error while cutting", (err or "").strip()[-300:], kind="error",
                              interrupted=rc == 255 or rc < 0)
        pr = probe(tmp)
        if pr.n_frames != n or not pr.has_audio:
            raise SourceError(f"cut clip has {pr.n_frames} frames (want {n}) or no audio", kind="error")
        if stop is not None and stop.is_set():
            raise Stopped()
        tmp.replace(dst)
        return pr
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# -- the stage -----------------------------------------------------------------------------
class _Counter:
    def __init__(self, total: int, progress: Progress | None, stage: str):
        self.lock = threading.Lock()
        self.total, self.progress, self.stage = total, progress, stage
        self.done = self.failed = self.cuts = 0

    def cut(self) -> None:
        with self.lock:
            self.cuts += 1
            if self.progress:
                self.progress("cutting", self.cuts, self.cuts, f"{self.cuts} clips cut")

    def tick(self, what: str) -> None:
        with self.lock:
            setattr(self, what, getattr(self, what) + 1)
            if self.progress:
                self.progress(self.stage, self.done + self.failed, self.total, f"done {self.done} / failed {self.failed}")

    @property
    def finished(self) -> int:
        with self.lock:
            return self.done + self.failed


def process_source(ws: Workspace, src: Source, opts: CollectOptions, on_cut: Callable[[], None] | None = None,
                   stop: threading.Event | None = None) -> int:
    """Download, check and cut one source. Returns the number of new clips; raises SourceError."""
    cat = ws.catalog
    seconds = opts.seconds or ws.recipe.default_seconds
    fps = opts.fps or ws.recipe.fps
    path, meta = download_source(ws, src, opts, stop)
    pr = check_media(path, seconds, opts, local=src.kind == "local")
    extra = {"path": str(path), "duration": pr.duration, "width": pr.width, "height": pr.height,
             "fetched_at": src.fetched_at or now()}
    for k in ("title", "uploader", "license"):
        if meta.get(k):
            extra[k] = meta[k]
    if meta.get("id") and not src.video_id:
        extra["video_id"] = safe_id(str(meta["id"]), 64)
    if stop is not None and stop.is_set():
        raise Stopped()
    cat.set_source_status(src.source_id, "downloaded", None, **extra)
    video_key = extra.get("video_id") or src.video_id or src.source_id
    if src.start is not None and src.start + seconds > pr.duration + 1e-3:
        raise SourceError(f"too short: start {src.start:g} s + {seconds} s is past the end ({pr.duration:.2f} s)",
                          kind="rejected")
    new = 0
    for n, start in enumerate(clip_starts(pr.duration, seconds, src.start, opts.clips_per_video)):
        cid = clip_id_for(ws.recipe, video_key, start, seconds, n)
        dst = ws.path("clips", f"{cid}.mp4")
        if cat.clip(cid) is not None and dst.exists():
            continue
        if stop is not None and stop.is_set():
            raise Stopped()
        out = cut_clip(path, dst, start, seconds, fps, pr.fps, stop)
        cat.add_clip(Clip(clip_id=cid, source_id=src.source_id, start=float(start), seconds=seconds,
                          category=src.category, path=ws.rel(dst), fps=float(fps), width=out.width, height=out.height,
                          n_frames=out.n_frames, has_audio=int(out.has_audio), split=src.split_hint))
        new += 1
        if on_cut:
            on_cut()
    cat.set_source_status(src.source_id, "done", None)
    cat.resolve_failure("collect", src.source_id)
    return new


def _children() -> list[int]:
    """Process ids of this process's children (Linux /proc; empty elsewhere)."""
    pids: list[int] = []
    try:
        for task in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{task}/children") as fh:
                pids += [int(x) for x in fh.read().split()]
    except OSError:
        pass
    return pids


def _kill_children() -> None:
    """Kill and reap every child process (an ffmpeg a stuck worker still waits on)."""
    kids = _children()
    for pid in kids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    deadline = time.monotonic() + 0.5
    for pid in kids:
        while time.monotonic() < deadline:
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:  # reaped by its owner thread
                break
            if done:
                break
            time.sleep(0.01)


def _remove_partials(ws: Workspace) -> None:
    """Temporary and partial files of unfinished work (after Ctrl-C): .tmp-* clips, yt-dlp's
    .part/.ytdl/format fragments. (After kill -9 the .part files stay: yt-dlp resumes them.)"""
    remove_stale_temps(ws.path("clips"))
    for p in list(ws.path("sources").iterdir()) if ws.path("sources").is_dir() else []:
        if _is_partial(p) and p.is_file():
            p.unlink(missing_ok=True)


def _display_counts(ws: Workspace, res: CollectResult) -> None:
    for f in ws.catalog.failures("collect"):
        if is_permanent(f):
            res.open_rejected += 1
        else:
            res.open_failed += 1


def collect(ws: Workspace, opts: CollectOptions, progress: Progress | None = None) -> CollectResult:
    """Run the collect stage. Idempotent: finished sources and clips are skipped.

    Ctrl-C (KeyboardInterrupt in the calling thread): workers stop, child processes are killed,
    partial files removed, finished clips stay recorded, and Interrupted(done, left) is raised.
    """
    if opts.jobs < 1:
        raise UsageError("--jobs must be at least 1")
    seconds = opts.seconds or ws.recipe.default_seconds
    if seconds not in ws.recipe.clip_seconds:
        raise UsageError(f"--seconds {seconds}: recipe {ws.recipe.name} cuts clips of "
                         f"{' or '.join(f'{s} s' for s in ws.recipe.clip_seconds)}")
    if opts.world is not None and not (opts.local or opts.urls):
        opts = dataclasses.replace(opts, local=Path(opts.world) / "videos")
    cat = ws.catalog
    res = CollectResult()
    try:
        remove_stale_temps(ws.path("clips"))
        enqueue_sources(ws, opts, progress, res)
        retried = 0
        if opts.retry_failed:
            for f in cat.failures("collect"):
                if f.item.startswith("search:") or is_permanent(f):
                    continue
                src = cat.source(f.item)
                if src is not None and src.status == "failed":
                    cat.set_source_status(src.source_id, "pending", None)
                    retried += 1
        for src in cat.sources("rejected"):
            # a rejection by a filter is reconsidered when this run's options might let the source through
            reason = src.reason or ""
            if (reason.startswith("rejected: licence") and opts.any_license) or \
                    (reason.startswith("rejected: longer") and opts.max_duration is None) or \
                    (reason.startswith("rejected: height") and opts.min_height is None):
                cat.set_source_status(src.source_id, "pending", None)
    except KeyboardInterrupt:
        left = len(cat.sources("pending")) + len(cat.sources("downloaded"))
        raise Interrupted(0, left, "while queueing sources") from None
    todo = [s for s in cat.sources() if s.status in ("pending", "downloaded")]
    res.skipped = len(cat.sources("done"))
    res.sources += len(todo)
    if not todo:
        _idle_reason(ws, opts, res, retried)
        res.clips = len(cat.clips())
        _display_counts(ws, res)
        return res
    kinds = {s.kind for s in todo}
    stage = "copying" if kinds == {"local"} else "downloading" if "local" not in kinds else "fetching"
    counter = _Counter(len(todo), progress, stage)
    stop = threading.Event()
    # a per-host circuit breaker: after 3 connection failures to one host, its other sources are
    # recorded as network failures at once (offline, thousands of rows fail in seconds, not hours)
    host_failures: dict[str, int] = {}
    lock = threading.Lock()
    crashed: list[BaseException] = []

    def host(src: Source) -> str:
        return urlparse(src.url or "").netloc

    def fail(src: Source, err: SourceError) -> None:
        if err.interrupted and stop.wait(1.0):
            raise Stopped()  # the child died of the same Ctrl-C: not a failure of the source
        if stop.is_set():
            raise Stopped()
        status = "rejected" if err.permanent else "failed"
        cat.set_source_status(src.source_id, status, err.reason)
        record(cat, src.source_id, err.reason, err.detail or None, {"url": src.url, "source": source_label(src)},
               err.permanent)
        with lock:
            if err.permanent:
                res.rejected += 1
            else:
                res.failed += 1
            res.failures.append((source_label(src), err.reason, err.permanent))
        counter.tick("failed")

    def work(src: Source) -> None:
        if src.kind != "local" and host_failures.get(host(src), 0) >= 3:
            fail(src, SourceError("network error (skipped: network unreachable)",
                                  "earlier downloads failed to connect", network=True))
            return
        attempt = 0
        while True:
            try:
                n_new = process_source(ws, src, opts, on_cut=counter.cut, stop=stop)
                with lock:
                    res.new_clips += n_new
                    host_failures[host(src)] = 0
                counter.tick("done")
                if opts.sleep and stop.wait(opts.sleep):
                    raise Stopped()
                return
            except SourceError as err:
                retry = err.kind == "error" and not err.network and not err.interrupted and \
                    attempt < opts.retries and classify_error(err.reason)[1]
                if err.network:
                    with lock:
                        host_failures[host(src)] = host_failures.get(host(src), 0) + 1
                if retry:
                    attempt += 1
                    if stop.wait(min(2 ** attempt, 30) * (0.5 if opts.sleep == 0 else 1)):
                        raise Stopped() from None
                    src = cat.source(src.source_id) or src
                    continue
                fail(src, err)
                return

    jobs: queue.SimpleQueue[Source] = queue.SimpleQueue()
    for s in todo:
        jobs.put(s)

    def runner() -> None:
        while not stop.is_set():
            try:
                src = jobs.get_nowait()
            except queue.Empty:
                return
            try:
                work(src)
            except Stopped:
                return
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread, raised there
                if not stop.is_set():
                    crashed.append(exc)
                    stop.set()
                return

    # daemon threads: a worker stuck in a network read cannot keep the process alive after Ctrl-C
    threads = [threading.Thread(target=runner, name=f"collect-{i}", daemon=True)
               for i in range(min(opts.jobs, len(todo)))]
    try:
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            for t in threads:
                t.join(0.1)
    except KeyboardInterrupt:
        stop.set()
        deadline = time.monotonic() + 1.5  # items in flight record themselves if they finish by then
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        _kill_children()
        _remove_partials(ws)
        done = counter.finished
        raise Interrupted(done, len(todo) - done) from None
    if crashed:
        _kill_children()
        raise crashed[0]
    res.clips = len(cat.clips())
    _display_counts(ws, res)
    return res


def _idle_reason(ws: Workspace, opts: CollectOptions, res: CollectResult, retried: int) -> None:
    """Why a run found nothing to download or cut (or a UsageError when nothing was asked)."""
    cat = ws.catalog
    asked = bool(opts.keywords or opts.urls or opts.csv or opts.local)
    n_sources = len(cat.sources())
    if not asked and not opts.retry_failed and n_sources == 0:
        raise UsageError(f"nothing to collect into {ws.root}: give --urls FILE, --local DIR, --csv FILE, "
                         "--keywords TEXT or --world WORLD")
    if res.sources:  # this run rejected files on sight: that was its work
        return
    fails = cat.failures("collect")
    n_fail = sum(1 for f in fails if not is_permanent(f))
    n_rej = len(fails) - n_fail
    if n_sources == 0:
        given = [f"--urls {opts.urls}" if opts.urls else "", f"--csv {opts.csv}" if opts.csv else "",
                 f"--local {opts.local}" if opts.local else "", "--keywords" if opts.keywords else ""]
        parts = [f"{' '.join(g for g in given if g)} gave no source (an empty list or folder?)"]
    elif opts.retry_failed and not retried:
        parts = ["no failed source to retry"]
    else:
        parts = [f"all {res.skipped} source(s) are already collected ({len(cat.clips())} clips in the workspace)"]
    if n_fail and not (opts.retry_failed and retried):
        parts.append(f"{n_fail} failed: retry them with avs-tools collect {ws.root} --retry-failed")
    if n_rej:
        parts.append(f"{n_rej} rejected for good, not retried (avs-tools status {ws.root} --failures)")
    res.idle = "; ".join(parts)
