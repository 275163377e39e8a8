"""sample throughput on 10 s 720p clips, against (a) the decode-only limit and (b) a naive OpenCV loop.

The clip is a synthetic 1280x720, 25 fps, 10 s video run through `collect --local`, i.e. exactly
what sample reads in a workspace (libx264 CFR from ffmpeg; its GOP is whatever x264 chose, printed).
Two versions of the clip: the clean synthetic render, and the same with sensor grain (YouTube-like
bitrate), since decode cost grows with bitrate.
  ours         sample_clip: decode once, 10 frames written, 16 kHz WAV, log-mel, activity
  decode-only  PyAV decoding every video and audio frame to nothing (same threading as ours): the
               issue's limit
  skip-decode  the same with the video decoder skipping every non-reference frame
               (skip_frame=NONREF): about the least decoding any exact sampler can do, since ours
               now skips the frames no sampled frame depends on; ours / skip-decode is our overhead
  naive        cv2.VideoCapture: seek to each sampled frame (CAP_PROP_POS_FRAMES), read, imwrite
Two recipes are timed: ref-avs (first frame of each second, JPEG) and avsbench-s4 changed to 10 s
clips (end of each second, PNG). Each number is the fastest of REPEAT runs
(the least disturbed by other load on the machine), for all three alike.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import av

from avsbench_tools.collect import CollectOptions, collect
from avsbench_tools.recipe import bundled_recipe_dir
from avsbench_tools.sample import sample_clip
from avsbench_tools.synth import SynthParams, synthesize
from avsbench_tools.workspace import init_workspace

REPEAT = 9


def decode_only(path: Path, skip: str | None = None) -> None:
    """Decode every video and audio packet to nothing; `skip="NONREF"` is the skip-decode line."""
    with av.open(str(path)) as c:
        c.streams.video[0].thread_type = "AUTO"
        if skip:
            c.streams.video[0].codec_context.skip_frame = skip
        for _ in c.decode(*c.streams.video, *c.streams.audio):
            pass


def naive(path: Path, indices: list[int], out: Path, ext: str) -> None:
    import cv2

    cap = cv2.VideoCapture(str(path))
    for s, k in enumerate(indices):
        cap.set(cv2.CAP_PROP_POS_FRAMES, k)
        ok, img = cap.read()
        assert ok
        cv2.imwrite(str(out / f"{s}.{ext}"), img)
    cap.release()


def grainy(out: Path, p: SynthParams, sigma: float) -> None:
    """The same synthetic clip with per-frame sensor grain: a YouTube-like bitrate (~2-3 Mbit/s at 720p).

    The clean synthetic world compresses to ~0.5 Mbit/s, which makes decoding unrealistically cheap."""
    import numpy as np

    from avsbench_tools.media import encode_mp4
    from avsbench_tools.synth import AUDIO_RATE, render_clip

    c = render_clip(p, 0)
    rng = np.random.default_rng(0)
    frames = (np.clip(f.astype(np.int16) + np.rint(rng.normal(0, sigma, f.shape)).astype(np.int16), 0, 255).astype(np.uint8)
              for f in c.frames)
    encode_mp4(out / f"grain{int(sigma * 10):02d}.mp4", frames, p.fps, c.audio, AUDIO_RATE, crf=18)


def med(fn) -> float:
    ts = []
    for _ in range(REPEAT):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return min(ts)


def keyframes(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for p in c.demux(c.streams.video[0]) if p.is_keyframe)


def main() -> None:
    global REPEAT
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=REPEAT, help=f"runs per number, the fastest kept (default {REPEAT})")
    REPEAT = max(1, ap.parse_args().repeat)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        synthesize(d / "world", SynthParams(clips=1, seconds=10, width=1280, height=720, seed=5))
        for sigma in (2.5, 4.0):
            grainy(d / "world" / "videos", SynthParams(clips=1, seconds=10, width=1280, height=720, seed=5), sigma)
        s4_10 = d / "s4-10s.toml"  # the S4 recipe (end of second, PNG) with 10 s clips
        s4_10.write_text((bundled_recipe_dir() / "avsbench-s4.toml").read_text()
                         .replace("clip_seconds = [5]", "clip_seconds = [10]"))
        for recipe in ("ref-avs", str(s4_10)):
            ws, _ = init_workspace(d / f"ws-{Path(recipe).stem}", recipe)
            collect(ws, CollectOptions(local=d / "world" / "videos", any_license=True, seconds=10))
            for clip in ws.catalog.clips():
                path = ws.path(clip.path)
                t_ours = med(lambda: sample_clip(ws, clip))  # noqa: B023
                idx = [f.frame_index for f in ws.catalog.frames(clip.clip_id)]
                t_dec = med(lambda: decode_only(path))  # noqa: B023
                t_skip = med(lambda: decode_only(path, "NONREF"))  # noqa: B023
                nv = d / f"naive-{ws.recipe.name}-{clip.clip_id}"
                nv.mkdir()
                t_naive = med(lambda: naive(path, idx, nv, ws.recipe.frame_format))  # noqa: B023
                with av.open(str(path)) as c:
                    mbps = c.bit_rate / 1e6
                kind = f"grain sigma {int(clip.clip_id[5:7]) / 10}" if clip.clip_id.startswith("grain") else "clean"
                print(f"{ws.recipe.name}, {kind} clip: 10 s 1280x720, {mbps:.2f} Mbit/s, {clip.n_frames} frames, "
                      f"{keyframes(path)} keyframes; {ws.recipe.sampling}, {ws.recipe.frame_format}")
                print(f"  ours {t_ours:.3f} s | decode-only {t_dec:.3f} s | skip-decode {t_skip:.3f} s | "
                      f"naive OpenCV seek loop {t_naive:.3f} s")
                print(f"  ours / decode-only = {t_ours / t_dec:.2f}x (target <= 1.3); "
                      f"naive / ours = {t_naive / t_ours:.2f}x faster (target >= 3); "
                      f"ours / skip-decode = {t_ours / t_skip:.2f}x", flush=True)
            ws.close()
    sys.stdout.flush()


if __name__ == "__main__":
    main()
