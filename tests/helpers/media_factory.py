"""Tiny media files made in the tests (PyAV): normal, silent, short, portrait, VFR, odd audio."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

BITS = 10  # frame indices up to 1023 (10 s at 60 fps)


def counter_frame(i: int, w: int, h: int) -> np.ndarray:
    """A frame that encodes its own index: BITS vertical bands, one bit each (robust to compression)."""
    f = np.zeros((h, w, 3), dtype=np.uint8)
    band = w // BITS
    for b in range(BITS):
        if (i >> b) & 1:
            f[:, b * band:(b + 1) * band] = 255
    f[: h // 8, :, 1] = (i * 37) % 256
    return f


def read_counter(frame: np.ndarray) -> int:
    h, w = frame.shape[:2]
    band = w // BITS
    rows = frame[h // 4:, :, 0].astype(float)
    return sum(1 << b for b in range(BITS) if rows[:, b * band + band // 4:(b + 1) * band - band // 4].mean() > 127)


def make_video(path: Path, seconds: float = 5.0, w: int = 160, h: int = 120, fps: float = 25, audio: bool = True,
               sr: int = 44100, channels: int = 2, vfr: bool = False, rotate: int = 0, noise: bool = False,
               audio_seconds: float | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"}) as c:
        vs = c.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        if vfr:
            vs.time_base = Fraction(1, 1000)
            vs.codec_context.time_base = Fraction(1, 1000)
            vs.codec_context.options = {"x264-params": "force-cfr=0"}
        layout = {1: "mono", 2: "stereo", 6: "5.1"}[channels]
        ast = c.add_stream("aac", rate=sr, layout=layout) if audio else None
        t, i = 0.0, 0
        while t < seconds - 1e-9:
            img = counter_frame(i, w, h)
            if noise:  # incompressible: makes a file big enough to kill a download half-way
                img = (img // 2 + np.random.default_rng(i).integers(0, 128, img.shape, dtype=np.uint8))
            fr = av.VideoFrame.from_ndarray(img, format="rgb24")
            if vfr:
                fr.pts = int(round(t * 1000))
                fr.time_base = Fraction(1, 1000)
                t += (1 / 30) if (i % 3) else (1 / 15)
            else:
                fr.pts = i
                t = (i + 1) / fps
            for pkt in vs.encode(fr):
                c.mux(pkt)
            i += 1
        for pkt in vs.encode():
            c.mux(pkt)
        if ast is not None:
            n = int((seconds if audio_seconds is None else audio_seconds) * sr)
            tt = np.arange(n) / sr
            sig = (0.3 * np.sin(2 * np.pi * 440 * tt)).astype(np.float32)
            planar = np.repeat(sig[None, :], channels, axis=0)
            for off in range(0, n, 1024):
                fr = av.AudioFrame.from_ndarray(np.ascontiguousarray(planar[:, off:off + 1024]), format="fltp",
                                                layout=layout)
                fr.sample_rate, fr.pts = sr, off
                for pkt in ast.encode(fr):
                    c.mux(pkt)
            for pkt in ast.encode():
                c.mux(pkt)
    if rotate:
        set_rotation(path, rotate)
    return path


def set_rotation(path: Path, degrees: int) -> None:
    """Give a file a display matrix (phone portrait videos), by remuxing with the ffmpeg CLI."""
    import subprocess

    from avsbench_tools.media import ffmpeg_exe

    tmp = path.with_name("rot-" + path.name)
    for args in (["-display_rotation", str(-degrees), "-i", str(path)],  # ffmpeg >= 6.1: input option, CCW
                 ["-i", str(path), "-metadata:s:v:0", f"rotate={degrees}"]):  # older ffmpeg: output tag, CW
        r = subprocess.run([ffmpeg_exe(), "-v", "error", "-y", *args, "-c", "copy", str(tmp)], capture_output=True)
        if r.returncode == 0:
            with av.open(str(tmp)) as c:
                f = next(c.decode(video=0))
                if int(getattr(f, "rotation", 0) or 0) % 360:
                    tmp.replace(path)
                    return
    raise RuntimeError(f"could not set a rotation on {path} with {ffmpeg_exe()}")
