"""Media helpers over PyAV and ffmpeg: encode MP4s, probe files, find an ffmpeg binary, run ffmpeg.

Decoding lives in `avsbench_tools.media.decode` (the one decoder; its public names are re-exported here).
"""

from __future__ import annotations

import functools
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from avsbench_tools.media.decode import (
    Cancel,
    DecodedClip,
    DecodeError,
    DecodeStopped,
    SampledFrame,
    VideoFrame,
    VideoReader,
    choose_frames,
    decode_clip,
    iter_frames,
    open_video,
    read_frames,
)

__all__ = ["Cancel", "DecodeError", "DecodeStopped", "DecodedClip", "Probe", "SampledFrame", "Stopped",
           "VideoFrame", "VideoReader", "choose_frames", "decode_clip", "encode_mp4", "ffmpeg_dir", "ffmpeg_exe",
           "iter_frames", "open_video", "probe", "read_frames", "run_tool"]


@functools.lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    """System ffmpeg if present, else the binary packaged by imageio-ffmpeg (no root needed)."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def ffmpeg_dir(cache_dir: Path) -> str:
    """A folder holding an executable named `ffmpeg` (what yt-dlp's ffmpeg_location expects)."""
    exe = ffmpeg_exe()
    if Path(exe).name == "ffmpeg":
        return str(Path(exe).parent)
    cache_dir.mkdir(parents=True, exist_ok=True)
    link = cache_dir / "ffmpeg"
    if not link.exists():
        link.symlink_to(exe)
    return str(cache_dir)


@dataclass
class Probe:
    path: str
    duration: float | None
    width: int | None
    height: int | None
    fps: float | None
    n_frames: int | None
    rotation: int
    has_video: bool
    has_audio: bool
    audio_rate: int | None
    audio_channels: int | None
    video_codec: str | None


def probe(path: Path) -> Probe:
    """Open a media file with PyAV. Raises av.error.FFmpegError (or OSError) on unreadable files."""
    import av

    with av.open(str(path)) as c:
        v = c.streams.video[0] if c.streams.video else None
        a = c.streams.audio[0] if c.streams.audio else None
        dur = None
        if c.duration is not None:
            dur = c.duration / 1_000_000
        elif v is not None and v.duration is not None and v.time_base is not None:
            dur = float(v.duration * v.time_base)
        rot = 0
        if v is not None:
            try:
                disp = v.side_data.get("DISPLAYMATRIX") if hasattr(v, "side_data") else None
                if disp is not None:
                    rot = int(round(float(disp))) % 360
            except Exception:  # noqa: BLE001 - rotation metadata is best effort
                rot = 0
            if not rot:
                rot = int(v.metadata.get("rotate", 0) or 0) % 360
        fps = float(v.average_rate) if v is not None and v.average_rate else None
        return Probe(
            path=str(path), duration=dur,
            width=v.codec_context.width if v is not None else None,
            height=v.codec_context.height if v is not None else None,
            fps=fps, n_frames=(v.frames or None) if v is not None else None, rotation=rot,
            has_video=v is not None, has_audio=a is not None,
            audio_rate=a.codec_context.sample_rate if a is not None else None,
            audio_channels=a.codec_context.channels if a is not None else None,
            video_codec=v.codec_context.name if v is not None else None,
        )


def encode_mp4(path: Path, frames: Iterable[np.ndarray], fps: int, audio: np.ndarray | None,
               sample_rate: int = 44100, crf: int = 18) -> None:
    """Write H.264 (yuv420p) + AAC MP4 with +faststart, like what YouTube serves.

    frames: RGB uint8 [H, W, 3] (even H and W); audio: float32 [N, C] in [-1, 1] or None.
    """
    import av

    with av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"}) as c:
        vs = None
        it = iter(frames)
        first = next(it)
        h, w = first.shape[:2]
        vs = c.add_stream("libx264", rate=Fraction(fps))
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        vs.options = {"crf": str(crf), "preset": "veryfast", "threads": "1"}
        ast = None
        if audio is not None:
            layout = "stereo" if audio.shape[1] == 2 else "mono"
            ast = c.add_stream("aac", rate=sample_rate, layout=layout)
        for i, arr in enumerate([first] if first is not None else []):
            _put_video(c, vs, arr, i)
        n = 1
        for arr in it:
            _put_video(c, vs, arr, n)
            n += 1
        for pkt in vs.encode():
            c.mux(pkt)
        if ast is not None:
            planar = np.ascontiguousarray(audio.T.astype(np.float32))
            chunk = 1024
            for off in range(0, planar.shape[1], chunk):
                fr = av.AudioFrame.from_ndarray(np.ascontiguousarray(planar[:, off:off + chunk]), format="fltp",
                                                layout=ast.layout.name)
                fr.sample_rate = sample_rate
                fr.pts = off
                for pkt in ast.encode(fr):
                    c.mux(pkt)
            for pkt in ast.encode():
                c.mux(pkt)


def _put_video(container, stream, arr: np.ndarray, index: int) -> None:
    import av

    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(arr), format="rgb24")
    frame.pts = index
    for pkt in stream.encode(frame):
        container.mux(pkt)


class Stopped(BaseException):
    """A stage was asked to stop (Ctrl-C) while a child process ran; the child is killed and reaped.

    A BaseException, like KeyboardInterrupt, so no `except Exception` on the way swallows it.
    """


def run_tool(cmd: list[str], stop=None, poll: float = 0.05) -> tuple[int, str]:
    """Run a command (ffmpeg) to completion and return (exit code, stderr text).

    `stop` (a threading.Event) is checked while it runs: when set, or when this thread is
    interrupted, the child is killed and waited for (no zombie, no orphan) and Stopped (or the
    interruption) is raised.
    """
    import subprocess

    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, errors="replace")
    try:
        while True:
            try:
                _, err = proc.communicate(timeout=poll)
                return proc.returncode, err or ""
            except subprocess.TimeoutExpired:
                if stop is not None and stop.is_set():
                    raise Stopped() from None
    except BaseException:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        raise
