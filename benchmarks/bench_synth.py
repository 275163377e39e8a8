"""Synthetic world generation speed: 20 clips of 5 s at 320x240, versus the encode-only limit.

Baseline (same run): encoding the same frames and audio with PyAV alone, i.e. what it costs just to
write the MP4s. The ratio shows how much rendering and ground truth add on top of that.
"""

import tempfile
import time
from pathlib import Path

from avsbench_tools.media import encode_mp4
from avsbench_tools.synth import SynthParams, render_clip, synthesize


def main() -> None:
    p = SynthParams(clips=20, seconds=5, width=320, height=240, seed=1)
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        synthesize(Path(d) / "w", p)
        ours = time.perf_counter() - t0
        clips = [render_clip(p, i) for i in range(p.clips)]
        t0 = time.perf_counter()
        for i, c in enumerate(clips):
            encode_mp4(Path(d) / f"{i}.mp4", c.frames, p.fps, c.audio)
        enc = time.perf_counter() - t0
        t0 = time.perf_counter()
        synthesize(Path(d) / "g", SynthParams(clips=20, seconds=5, width=320, height=240, seed=1, gold="avsbench-ms3"))
        gold = time.perf_counter() - t0
    print(f"synth 20 clips x 5 s 320x240: {ours:.1f} s ({ours / 20:.2f} s/clip); "
          f"encode-only limit {enc:.1f} s; ratio {ours / enc:.2f}x")
    print(f"synth with --gold avsbench-ms3: {gold:.1f} s")


if __name__ == "__main__":
    main()
