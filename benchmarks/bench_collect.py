"""collect throughput: 20 synthetic 10 s clips from a loopback server, -j 1 and -j 4.

Baseline (same run): the same work done by plain commands in a loop: `yt-dlp -o ... URL` then the
same `ffmpeg` cut, once per video. Reported: clips/minute and avs-tools' wall time / the baseline's.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from serve import start  # noqa: E402

from avsbench_tools.collect import CollectOptions, collect  # noqa: E402
from avsbench_tools.media import ffmpeg_exe  # noqa: E402
from avsbench_tools.synth import SynthParams, synthesize  # noqa: E402
from avsbench_tools.workspace import init_workspace  # noqa: E402

N = 20


def ours(base: str, urls: list[str], d: Path, jobs: int) -> float:
    ws, _ = init_workspace(d / f"ws{jobs}", "ref-avs")
    f = d / "urls.txt"
    f.write_text("\n".join(urls) + "\n")
    t0 = time.perf_counter()
    res = collect(ws, CollectOptions(urls=f, any_license=True, jobs=jobs))
    dt = time.perf_counter() - t0
    assert res.new_clips == N, res
    ws.close()
    return dt


def baseline(urls: list[str], d: Path) -> float:
    out = d / "plain"
    out.mkdir()
    ytdlp = shutil.which("yt-dlp") or str(Path(sys.executable).parent / "yt-dlp")
    t0 = time.perf_counter()
    for u in urls:
        name = u.rsplit("/", 1)[-1]
        subprocess.run([ytdlp, "-q", "--no-progress", "-o", str(out / name), u], check=True)
        subprocess.run([ffmpeg_exe(), "-nostdin", "-v", "error", "-y", "-ss", "0", "-i", str(out / name), "-t", "10.04",
                        "-map", "0:v:0", "-map", "0:a:0", "-vf", "fps=25", "-frames:v", "250", "-c:v", "libx264",
                        "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "192k",
                        "-movflags", "+faststart", str(out / f"clip-{name}")], check=True)
    return time.perf_counter() - t0


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        synthesize(d / "world", SynthParams(clips=N, seconds=10, width=320, height=240, seed=3))
        httpd, base = start(str(d / "world"))
        urls = [base + line for line in (d / "world" / "urls.txt").read_text().split()]
        t_plain = baseline(urls, d)
        t1 = ours(base, urls, d, 1)
        t4 = ours(base, urls, d, 4)
        httpd.shutdown()
    print(f"collect {N} x 10 s clips, loopback: -j 1 {t1:.1f} s ({N / t1 * 60:.0f} clips/min), "
          f"-j 4 {t4:.1f} s ({N / t4 * 60:.0f} clips/min); plain yt-dlp+ffmpeg loop {t_plain:.1f} s "
          f"({N / t_plain * 60:.0f} clips/min)")
    print(f"overhead ratio avs-tools/plain: -j 1 {t1 / t_plain:.2f}x, -j 4 {t4 / t_plain:.2f}x; "
          f"-j 4 speed-up over -j 1: {t1 / t4:.2f}x")


if __name__ == "__main__":
    main()
