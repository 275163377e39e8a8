"""Probing a source, cutting exact clips from it, and checking each clip before it is kept.

A clip starts on a source frame boundary, is re-encoded to a constant frame rate (H.264 + AAC) and
has exactly seconds * fps frames and an audio track; it is checked under a temporary name and only
then renamed into WS/clips/.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path

from avsbench_tools.collect.ledger import SourceError
from avsbench_tools.collect.options import CollectOptions
from avsbench_tools.media import Stopped


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
    """Where a source's clips start: its given start, else up to k non-overlapping clips from 0."""
    if start is not None:
        return [start]
    n = min(k, int(math.floor(duration / seconds + 1e-6)))
    return [i * seconds for i in range(n)]


def clip_id_for(recipe, video_key: str, start: float, seconds: int, n: int) -> str:
    """A clip's id: <video>_<n> for AVSBench MS3, else <video>_<start ms>_<end ms>."""
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

