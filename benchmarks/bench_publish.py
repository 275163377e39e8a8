"""publish against export of the same release, and loading the published folder with `datasets` (offline).

For each size (default 200 and 2,000 clips, MS3 layout) a workspace is built exactly as bench_export.py
builds it (8 rendered synthetic clips reused), then, each in a fresh process:
  1. export      workspace -> release (the official tree)           time, peak RSS
  2. publish     release -> Parquet + README.md + croissant.json     time, peak RSS
  3. load        datasets.load_dataset("parquet", data_files=...) on the frames table, offline:
                 seconds to the first decoded row (image features decoded), and to a full pass
Reported: publish/export time ratio per size (target <= 1.5x), publish peak RSS at the large size over
the small one (target <= 1.2: flat memory), load times. `bench_publish.py N1 N2` runs other sizes.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
SIZES = (200, 2000)
FMT = "avsbench-ms3"


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(what: str, src: str, out: str) -> None:
    """Runs in its own process: one step, then a JSON line with its seconds and peak RSS."""
    t0 = time.perf_counter()
    info: dict = {}
    if what == "export":
        from avsbench_tools.export import ExportOptions, export
        from avsbench_tools.workspace import open_workspace

        ws = open_workspace(Path(src))
        t0 = time.perf_counter()
        res = export(ws, Path(out), ExportOptions(fmt=FMT, include_unreviewed=True))
        info = {"clips": res.clips}
    elif what == "publish":
        from avsbench_tools.publish import publish

        res = publish(Path(src), FMT, Path(out))
        info = {"clips": res.clips, "frames": res.frames, "mb": res.bytes / 1e6, "shards": len(res.shards)}
    else:  # load
        os.environ.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HOME=str(Path(out) / "hf-home"))
        from datasets import load_dataset

        files = sorted(str(p) for p in (Path(src) / "data" / "frames").glob("*.parquet"))
        by_split: dict[str, list[str]] = {}
        for f in files:
            by_split.setdefault(Path(f).name.split("-")[0], []).append(f)
        t0 = time.perf_counter()
        ds = load_dataset("parquet", data_files=by_split, cache_dir=str(Path(out) / "cache"))
        first = next(iter(ds["train"]))
        assert first["frame"].size and first["mask"] is not None  # decoded PIL images
        info["first_row_s"] = time.perf_counter() - t0
        n = 0
        for split in ds:
            for row in ds[split]:
                row["frame"].load()
                if row["mask"] is not None:
                    row["mask"].load()
                n += 1
        info["rows"] = n
    info.update(seconds=time.perf_counter() - t0, peak_rss_mb=_rss_mb())
    print(json.dumps(info))


def _run(*args: str) -> dict:
    r = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{args[0]} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        child(*sys.argv[2:5])
        return
    from bench_export import build

    sizes = tuple(int(x) for x in sys.argv[1:3]) if len(sys.argv) == 3 else SIZES
    res: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            d = Path(tmp) / f"n{n}"
            d.mkdir()
            t0 = time.perf_counter()
            build(d / "ws", n)
            built = time.perf_counter() - t0
            e = _run("export", str(d / "ws"), str(d / "release"))
            p = _run("publish", str(d / "release"), str(d / "hf"))
            ld = _run("load", str(d / "hf"), str(d / "load"))
            res[n] = {"export": e, "publish": p, "load": ld}
            print(f"{n} clips (workspace built in {built:.0f} s): export {e['seconds']:.1f} s (peak RSS "
                  f"{e['peak_rss_mb']:.0f} MB); publish {p['seconds']:.1f} s (peak RSS {p['peak_rss_mb']:.0f} MB, "
                  f"{p['shards']} shards, {p['mb']:.0f} MB) = {p['seconds'] / e['seconds']:.2f}x export "
                  f"(target <= 1.5); load_dataset: first row {ld['first_row_s']:.1f} s, full pass of "
                  f"{ld['rows']} rows {ld['seconds']:.1f} s", flush=True)
            # the big size's temporary folders go as soon as they are measured
    a, b = (res[n]["publish"] for n in sizes)
    print(f"publish peak RSS {sizes[1]} / {sizes[0]} clips = {b['peak_rss_mb'] / a['peak_rss_mb']:.2f} (target <= 1.2); "
          f"time {b['seconds'] / a['seconds']:.2f}x for {sizes[1] / sizes[0]:.0f}x the clips")


if __name__ == "__main__":
    main()
