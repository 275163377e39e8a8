"""export throughput and memory: 200 and 2,000 synthetic clips (MS3 layout), each export in a fresh process.

The workspaces are built directly (sampled frames, WAV, log-mel, one proposal mask per frame, and
their catalog records through the catalog's methods, from 8 rendered synthetic clips reused), so the
benchmark times export alone. `bench_export.py N1 N2` runs other sizes (e.g. 20 200 for a quick run).
Reported: frames/s for both sizes, time ratio (linear growth means ~10x), peak RSS of each export
process and their ratio (target <= 1.2: memory stays flat however many clips).
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SIZES = (200, 2000)


def build(ws_dir: Path, n: int) -> None:
    from avsbench_tools.audio.logmel import int16_to_examples, pad_examples
    from avsbench_tools.audio.wav import float_to_int16, wav_bytes
    from avsbench_tools.catalog import AudioRecord, Clip, Frame, MaskVersion, Source, now
    from avsbench_tools.fsutil import atomic_write_bytes
    from avsbench_tools.mask_store import mask_png
    from avsbench_tools.pngfast import encode_png
    from avsbench_tools.recipe import parse_recipe
    from avsbench_tools.synth import SynthParams, recipe_text, render_clip
    from avsbench_tools.workspace import init_workspace

    p = SynthParams(clips=8, seconds=5, width=320, height=240, seed=1, gold="avsbench-ms3")
    (ws_dir.parent / "recipe.toml").write_text(recipe_text(p))
    parse_recipe(recipe_text(p), "bench")
    ws, _ = init_workspace(ws_dir, str(ws_dir.parent / "recipe.toml"))
    from scipy.signal import resample_poly

    protos = []
    for i in range(8):
        c = render_clip(p, i)
        idx = [int(s * 25 + 15 / 16 * 25) for s in range(5)]
        pcm = float_to_int16(resample_poly(c.audio.astype(np.float64), 160, 441, axis=0))
        protos.append(([encode_png(c.frames[k]) for k in idx], [mask_png(c.instances[k] > 0) for k in idx],
                       wav_bytes(pcm, 16000), pad_examples(int16_to_examples(pcm, 16000), 5)))
    t = now()
    cat = ws.catalog
    for i in range(n):
        fr, mk, wav, lm = protos[i % 8]
        cid = f"bench{i:05d}_0"
        cat.add_source_if_new(Source(f"src{i}", "url", url=f"http://127.0.0.1/{i}.mp4", video_id=f"bench{i:05d}",
                                 status="done"))
        cat.add_clip(Clip(cid, f"src{i}", 0.0, 5, f"clips/{cid}.mp4", "guitar", 25.0, 320, 240, 125, 1, created_at=t))
        frames, masks = [], []
        for s in range(5):
            atomic_write_bytes(ws_dir / "frames" / cid / f"{s}.png", fr[s])
            frames.append(Frame(cid, s, int(s * 25 + 23), s + 0.92, f"frames/{cid}/{s}.png", 320, 240))
            atomic_write_bytes(ws_dir / "masks" / cid / f"{s}_0.png", mk[s])
            masks.append(MaskVersion(None, cid, s, 0, "proposal", "guitar", 0.9, True, {}, "motion", "h", {},
                                     f"masks/{cid}/{s}_0.png", t))
        atomic_write_bytes(ws_dir / "audio" / f"{cid}.wav", wav)
        np.save(ws_dir / "audio" / f"{cid}.logmel.npy", lm)
        cat.save_sample(cid, frames, AudioRecord(cid, f"audio/{cid}.wav", f"audio/{cid}.logmel.npy", 16000, 2, 5,
                                                 {"active": [True] * 5}), settings={})
        cat.save_mask_set(cid, "proposal", "h", masks, range(5))
        cat.finish("preannotate", cid)
    ws.close()


def child(ws_dir: str, out: str) -> None:
    """Runs in its own process: export, then print seconds and peak RSS."""
    from avsbench_tools.export import ExportOptions, export
    from avsbench_tools.workspace import open_workspace

    ws = open_workspace(Path(ws_dir))
    t0 = time.perf_counter()
    res = export(ws, Path(out), ExportOptions(fmt="avsbench-ms3", include_unreviewed=True))
    dt = time.perf_counter() - t0
    print(json.dumps({"seconds": dt, "clips": res.clips, "files": res.files,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3])
        return
    sizes = tuple(int(x) for x in sys.argv[1:3]) if len(sys.argv) == 3 else SIZES  # e.g. 20 200 for a quick run
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            d = Path(tmp) / f"n{n}"
            d.mkdir()
            build(d / "ws", n)
            r = subprocess.run([sys.executable, __file__, "--child", str(d / "ws"), str(d / "release")],
                               capture_output=True, text=True, check=True)
            results[n] = json.loads(r.stdout.strip().splitlines()[-1])
            frames = 5 * results[n]["clips"]
            print(f"{n} clips: {results[n]['seconds']:.1f} s, {frames / results[n]['seconds']:.0f} frames/s, "
                  f"{results[n]['files']} files, peak RSS {results[n]['peak_rss_mb']:.0f} MB", flush=True)
    a, b = (results[n] for n in sizes)
    print(f"time ratio {sizes[1]}/{sizes[0]} clips = {b['seconds'] / a['seconds']:.2f}x (linear: "
          f"{sizes[1] / sizes[0]:.0f}x); peak RSS ratio = {b['peak_rss_mb'] / a['peak_rss_mb']:.2f} (target <= 1.2)")


if __name__ == "__main__":
    main()
