"""Downloading a source with yt-dlp (or using a local file where it is), resumable.

Each download is named by a key fixed when the source is queued (`download_key`), recorded in the
workspace's yt-dlp download archive, and written by yt-dlp under a temporary name (.part) that it
resumes after kill -9. A source whose download finished is never fetched again: its file is found
by the recorded path (relative to the workspace) or by its key.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

from avsbench_tools.catalog import Source
from avsbench_tools.collect.ledger import SourceError, classify_error, is_cc
from avsbench_tools.collect.options import CollectOptions
from avsbench_tools.collect.sources import YdlLog, safe_id
from avsbench_tools.fsutil import remove_stale_temps
from avsbench_tools.media import Stopped
from avsbench_tools.workspace import Workspace


def _ydl_options(ws: Workspace, opts: CollectOptions, key: str, log: YdlLog, archive: bool = True) -> dict:
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


def is_partial(p: Path) -> bool:
    """A temporary or partial file (ours, or a yt-dlp fragment), never a finished download."""
    n = p.name
    return n.startswith(".tmp-") or n.endswith((".part", ".ytdl", ".temp")) or ".part-Frag" in n or \
        re.search(r"\.f\d+\.", n) is not None or ".temp." in n


def _find_download(ws: Workspace, key: str) -> Path | None:
    for p in sorted(ws.path("sources").glob(f"{key}.*")):
        if not is_partial(p) and p.is_file():
            return p
    return None


def download_key(src: Source) -> str:
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
        p = ws.path(src.path)  # stored relative to the workspace (older catalogs: absolute)
        if p.is_file() and p.parent.resolve() == ws.path("sources").resolve() and not is_partial(p):
            return p
    return _find_download(ws, download_key(src))


def download_source(ws: Workspace, src: Source, opts: CollectOptions, stop: threading.Event | None = None
                    ) -> tuple[Path, dict]:
    """Download one source (or reuse the finished file). Returns (path, metadata)."""
    if src.kind == "local":
        return ws.path(src.path), {}
    key = download_key(src)
    done = _existing_download(ws, src)
    if done is not None and src.status in ("downloaded", "done", "rejected"):
        return done, {}
    import yt_dlp

    log = YdlLog()

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



def remove_partials(ws: Workspace) -> None:
    """Temporary and partial files of unfinished work (after Ctrl-C): .tmp-* clips, yt-dlp's
    .part/.ytdl/format fragments. (After kill -9 the .part files stay: yt-dlp resumes them.)"""
    remove_stale_temps(ws.path("clips"))
    for p in list(ws.path("sources").iterdir()) if ws.path("sources").is_dir() else []:
        if is_partial(p) and p.is_file():
            p.unlink(missing_ok=True)
