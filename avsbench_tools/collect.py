"""collect: find, download and cut clips into a workspace (yt-dlp + ffmpeg), resumable.

Sources (all go into the same catalog): a yt-dlp search per keyword (`ytsearchN:`), a URL list, a
VGGSound/AVSBench-style CSV (`ytid,start[,label[,split]]`, one clip per row), or local video files.
Each source is downloaded once (catalog status + yt-dlp download archive), checked (licence,
duration, height, audio, length), then cut into exact clips re-encoded to a constant frame rate.
Every failure or rejection is a ledger row with a reason and an attempt count; `retry_failed`
tries the failed ones again. Finished files are written under temporary names and renamed, and a
catalog row is committed only after its file is in place, so kill -9 at any point is safe.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import math
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from avsbench_tools.catalog import Clip, Source, now
from avsbench_tools.errors import AvsError, UsageError
from avsbench_tools.fsutil import remove_stale_temps
from avsbench_tools.workspace import Workspace

VIDEO_EXTS = {".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v", ".flv", ".mpg", ".mpeg", ".ts", ".3gp", ".wmv"}
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


@dataclass
class CollectResult:
    clips: int = 0
    new_clips: int = 0
    failed: int = 0
    rejected: int = 0
    skipped: int = 0
    sources: int = 0


class SourceError(Exception):
    """A source could not be used. kind: 'error' (retryable) or 'rejected' (by a filter)."""

    def __init__(self, reason: str, detail: str = "", kind: str = "error", network: bool = False):
        super().__init__(reason)
        self.reason, self.detail, self.kind, self.network = reason, detail, kind, network


# -- ids and classification ----------------------------------------------------------------
def safe_id(text: str, max_len: int = 40) -> str:
    """File-name-safe id: [A-Za-z0-9_-] only, never empty."""
    s = re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-")[:max_len]
    return s or "video"


def classify_error(message: str) -> tuple[str, bool, bool]:
    """yt-dlp / network error text -> (short reason, retryable, network-level)."""
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


def enqueue_sources(ws: Workspace, opts: CollectOptions, progress: Progress | None = None) -> int:
    """Add every requested source to the catalog (existing ones are kept as they are)."""
    cat = ws.catalog
    added = 0
    category = opts.category
    if category and category not in ws.recipe.categories:
        raise UsageError(f"--category {category!r} is not in recipe {ws.recipe.name} (see its [categories])")
    if opts.keywords:
        if opts.check_js_runtime and youtube_js_runtime_missing():
            raise AvsError(YOUTUBE_JS_HELP)
        for i, kw in enumerate(opts.keywords):
            hint = category or ws.recipe.match_category(kw)
            try:
                entries = search_keyword(kw, opts.per_keyword, timeout=opts.timeout)
            except Exception as exc:  # noqa: BLE001 - yt-dlp raises DownloadError and others
                reason, _, _ = classify_error(str(exc))
                cat.record_failure("collect", f"search:{kw}", f"search failed: {reason}", str(exc)[:500],
                                   payload={"kind": "error", "search": kw})
                entries = []
            for e in entries:
                vid = e.get("id") or safe_id(e.get("url", ""))
                src = Source(source_id=f"yt-{safe_id(vid, 64)}", kind="search", url=e.get("url") or _youtube_url(vid),
                             video_id=safe_id(vid, 64), title=e.get("title"), keyword=kw, category=hint)
                added += cat.add_source_if_new(src)
            if progress:
                progress("searching", i + 1, len(opts.keywords), kw)
    if opts.urls:
        if not opts.urls.is_file():
            raise UsageError(f"--urls {opts.urls}: file not found")
        for line in opts.urls.read_text(encoding="utf-8").splitlines():
            url = line.strip()
            if not url or url.startswith("#"):
                continue
            sid = "url-" + hashlib.sha1(url.encode()).hexdigest()[:12]
            added += cat.add_source_if_new(Source(source_id=sid, kind="url", url=url, category=category))
    if opts.csv:
        if not opts.csv.is_file():
            raise UsageError(f"--csv {opts.csv}: file not found")
        for row in read_csv_rows(opts.csv):
            vid = safe_id(row["ytid"], 64)
            hint = category or ws.recipe.match_category(row["label"]) or row["label"]
            sid = f"yt-{vid}@{row['start']:g}"
            added += cat.add_source_if_new(Source(source_id=sid, kind="csv", url=_youtube_url(row["ytid"]),
                                                  video_id=vid, keyword=row["label"], category=hint,
                                                  start=row["start"], split_hint=row["split"]))
    if opts.local:
        if not opts.local.is_dir():
            raise UsageError(f"--local {opts.local}: not a folder")
        for p in sorted(opts.local.rglob("*")):
            if p.is_file() and p.suffix.lower() in VIDEO_EXTS and not p.name.startswith("."):
                rel = str(p.relative_to(opts.local))
                digest = hashlib.sha1(str(p.resolve()).encode()).hexdigest()[:8]
                vid = f"{safe_id(p.stem, 32)}-{digest}"
                added += cat.add_source_if_new(Source(source_id=f"local-{vid}", kind="local", url=p.resolve().as_uri(),
                                                      video_id=vid, title=rel, path=str(p.resolve()),
                                                      license="own footage (local file)", category=category))
    return added


# -- download ------------------------------------------------------------------------------
def _ydl_options(ws: Workspace, opts: CollectOptions, key: str, log: _Log) -> dict:
    from avsbench_tools.media import ffmpeg_dir

    h = int(opts.max_height)
    return {
        "format": f"bv*[height<={h}]+ba/b[height<={h}]/bv*+ba/b",
        "outtmpl": {"default": str(ws.path("sources", f"{key}.%(ext)s"))},
        "download_archive": str(ws.path("download-archive.txt")),
        "retries": 2, "fragment_retries": 2, "extractor_retries": 1, "socket_timeout": opts.timeout,
        "continuedl": True, "noplaylist": True, "quiet": True, "no_warnings": True, "noprogress": True,
        "logger": log, "ffmpeg_location": ffmpeg_dir(ws.path(".cache", "bin")), "merge_output_format": "mp4",
        "overwrites": False, "restrictfilenames": True, "windowsfilenames": True,
    }


def _find_download(ws: Workspace, key: str) -> Path | None:
    for p in sorted(ws.path("sources").glob(f"{key}.*")):
        partial = p.name.endswith((".part", ".ytdl", ".temp")) or re.search(r"\.f\d+\.", p.name)
        if not partial and not p.name.startswith(".tmp-"):
            return p
    return None


def download_source(ws: Workspace, src: Source, opts: CollectOptions) -> tuple[Path, dict]:
    """Download one source (or reuse the finished file). Returns (path, metadata)."""
    if src.kind == "local":
        return Path(src.path), {}
    key = _download_key(src)
    done = _find_download(ws, key)
    if done is not None and src.status in ("downloaded", "done", "rejected"):
        return done, {}
    import yt_dlp

    log = _Log()
    ydl_opts = _ydl_options(ws, opts, key, log)
    try:
        with yt_dlp.YoutubeDL(ydl_opts) as ydl:
            info = ydl.extract_info(src.url, download=False)
            if info is None:
                raise SourceError("no media found", "; ".join(log.errors))
            lic = info.get("license")
            if not opts.any_license and not is_cc(lic):
                raise SourceError("rejected: licence is not Creative Commons", f"licence: {lic or 'unknown'}; "
                                  "pass --any-license to keep it", kind="rejected")
            dur = info.get("duration")
            if opts.max_duration and dur and dur > opts.max_duration:
                raise SourceError(f"rejected: longer than --max-duration ({dur:.0f} s)", kind="rejected")
            meta = {k: info.get(k) for k in ("id", "title", "uploader", "license", "duration", "webpage_url")}
            done = _find_download(ws, key)
            if done is None or not ydl.in_download_archive(info):
                ydl.process_ie_result(info, download=True)
                done = _find_download(ws, key)
    except SourceError:
        raise
    except Exception as exc:  # noqa: BLE001 - yt_dlp.utils.DownloadError and friends
        text = "; ".join(log.errors) or str(exc)
        reason, retry, network = classify_error(text)
        raise SourceError(reason, text[:500], kind="error", network=network) from None
    if done is None:
        raise SourceError("download produced no file", "; ".join(log.errors))
    return done, meta


def _download_key(src: Source) -> str:
    if src.video_id:
        return safe_id(src.video_id, 64)
    return src.source_id


# -- checks and cutting --------------------------------------------------------------------
def check_media(path: Path, seconds: int, opts: CollectOptions):
    import av

    from avsbench_tools.media import probe

    if path.stat().st_size == 0:
        raise SourceError("corrupt file: empty (0 bytes)", kind="rejected")
    try:
        pr = probe(path)
    except (av.error.FFmpegError, OSError, ValueError, IndexError) as exc:
        raise SourceError("corrupt file: cannot be decoded", str(exc)[:300], kind="rejected") from None
    if not pr.has_video:
        raise SourceError("no video stream", kind="rejected")
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


def cut_clip(src_path: Path, dst: Path, start: float, seconds: int, fps: int, src_fps: float | None) -> None:
    """Exact clip: start snapped to a source frame boundary, CFR re-encode, exactly seconds*fps frames."""
    from avsbench_tools.media import ffmpeg_exe

    if src_fps:
        start = round(start * src_fps) / src_fps
    n = seconds * fps
    tmp = dst.with_name(f".tmp-{dst.name}")
    cmd = [ffmpeg_exe(), "-nostdin", "-v", "error", "-y", "-ss", f"{start:.6f}", "-i", str(src_path),
           "-t", f"{seconds + 1.0 / fps:.6f}", "-map", "0:v:0", "-map", "0:a:0", "-vf", f"fps={fps}",
           "-frames:v", str(n), "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p",
           "-c:a", "aac", "-b:a", "192k", "-af", f"atrim=0:{seconds},asetpts=N/SR/TB",
           "-movflags", "+faststart", "-f", "mp4", str(tmp)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise SourceError("ffmpeg error while cutting", (proc.stderr or "").strip()[-300:], kind="error")
    tmp.replace(dst)


def _verify_clip(path: Path, seconds: int, fps: int):
    from avsbench_tools.media import probe

    pr = probe(path)
    if pr.n_frames != seconds * fps or not pr.has_audio:
        path.unlink(missing_ok=True)
        raise SourceError(f"cut clip has {pr.n_frames} frames (want {seconds * fps}) or no audio", kind="error")
    return pr


# -- the stage -----------------------------------------------------------------------------
class _Counter:
    def __init__(self, total: int, progress: Progress | None):
        self.lock = threading.Lock()
        self.total, self.progress = total, progress
        self.done = self.failed = self.skipped = self.cuts = 0

    def cut(self) -> None:
        with self.lock:
            self.cuts += 1
            if self.progress:
                self.progress("cutting", self.cuts, self.cuts, f"{self.cuts} clips cut")

    def tick(self, what: str) -> None:
        with self.lock:
            setattr(self, what, getattr(self, what) + 1)
            if self.progress:
                n = self.done + self.failed + self.skipped
                self.progress("downloading", n, self.total,
                              f"done {self.done} / failed {self.failed} / skipped {self.skipped}")


def process_source(ws: Workspace, src: Source, opts: CollectOptions, on_cut: Callable[[], None] | None = None) -> int:
    """Download, check and cut one source. Returns the number of new clips; raises SourceError."""
    cat = ws.catalog
    seconds = opts.seconds or ws.recipe.default_seconds
    fps = opts.fps or ws.recipe.fps
    path, meta = download_source(ws, src, opts)
    pr = check_media(path, seconds, opts)
    extra = {"path": str(path), "duration": pr.duration, "width": pr.width, "height": pr.height,
             "fetched_at": src.fetched_at or now()}
    for k in ("title", "uploader", "license"):
        if meta.get(k):
            extra[k] = meta[k]
    if meta.get("id") and not src.video_id:
        extra["video_id"] = safe_id(str(meta["id"]), 64)
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
        cut_clip(path, dst, start, seconds, fps, pr.fps)
        out = _verify_clip(dst, seconds, fps)
        cat.add_clip(Clip(clip_id=cid, source_id=src.source_id, start=float(start), seconds=seconds,
                          category=src.category, path=ws.rel(dst), fps=float(fps), width=out.width, height=out.height,
                          n_frames=out.n_frames, has_audio=int(out.has_audio), split=src.split_hint))
        new += 1
        if on_cut:
            on_cut()
    cat.set_source_status(src.source_id, "done", None)
    cat.resolve_failure("collect", src.source_id)
    return new


def collect(ws: Workspace, opts: CollectOptions, progress: Progress | None = None) -> CollectResult:
    """Run the collect stage. Idempotent: finished sources and clips are skipped."""
    if opts.jobs < 1:
        raise UsageError("--jobs must be at least 1")
    seconds = opts.seconds or ws.recipe.default_seconds
    if seconds not in ws.recipe.clip_seconds:
        raise UsageError(f"--seconds {seconds}: recipe {ws.recipe.name} cuts {ws.recipe.clip_seconds} s clips")
    remove_stale_temps(ws.path("clips"))
    cat = ws.catalog
    enqueue_sources(ws, opts, progress)
    if opts.retry_failed:
        for f in cat.failures("collect"):
            if f.item.startswith("search:"):
                continue
            src = cat.source(f.item)
            if src is not None and src.status in ("failed", "rejected") and (f.payload or "").find('"rejected"') < 0:
                cat.set_source_status(src.source_id, "pending", None)
    for src in cat.sources("rejected"):
        # a rejection by a filter is reconsidered when this run's options might let the source through
        reason = src.reason or ""
        if (reason.startswith("rejected: licence") and opts.any_license) or \
                (reason.startswith("rejected: longer") and opts.max_duration is None) or \
                (reason.startswith("rejected: height") and opts.min_height is None):
            cat.set_source_status(src.source_id, "pending", None)
    todo = [s for s in cat.sources() if s.status in ("pending", "downloaded")]
    res = CollectResult(sources=len(todo))
    counter = _Counter(len(todo), progress)
    res.skipped = counter.skipped = len(cat.sources("done"))
    # a per-host circuit breaker: after 3 connection failures to one host, its other sources are
    # recorded as network failures at once (offline, thousands of rows fail in seconds, not hours)
    from urllib.parse import urlparse

    host_failures: dict[str, int] = {}
    lock = threading.Lock()

    def host(src: Source) -> str:
        return urlparse(src.url or "").netloc

    def work(src: Source) -> None:
        if src.kind != "local" and host_failures.get(host(src), 0) >= 3:
            err = SourceError("network error (skipped: network unreachable)", "earlier downloads failed to connect",
                              network=True)
            _fail(src, err)
            return
        attempt = 0
        while True:
            try:
                res_new = process_source(ws, src, opts, on_cut=counter.cut)
                with lock:
                    res.new_clips += res_new
                    host_failures[host(src)] = 0
                counter.tick("done")
                if opts.sleep:
                    time.sleep(opts.sleep)
                return
            except SourceError as err:
                retry = err.kind == "error" and not err.network and attempt < opts.retries and \
                    classify_error(err.reason)[1] and "HTTP 404" not in err.reason
                if err.network:
                    with lock:
                        host_failures[host(src)] = host_failures.get(host(src), 0) + 1
                if retry:
                    attempt += 1
                    time.sleep(min(2 ** attempt, 30) * (0.5 if opts.sleep == 0 else 1))
                    continue
                _fail(src, err)
                return

    def _fail(src: Source, err: SourceError) -> None:
        status = "rejected" if err.kind == "rejected" else "failed"
        cat.set_source_status(src.source_id, status, err.reason)
        cat.record_failure("collect", src.source_id, err.reason, err.detail or None,
                           payload={"kind": err.kind, "url": src.url})
        with lock:
            if err.kind == "rejected":
                res.rejected += 1
            else:
                res.failed += 1
        counter.tick("failed")

    if opts.jobs == 1:
        for s in todo:
            work(s)
    else:
        with ThreadPoolExecutor(max_workers=opts.jobs) as pool:
            for fut in as_completed([pool.submit(work, s) for s in todo]):
                fut.result()
    res.clips = len(cat.clips())
    return res
