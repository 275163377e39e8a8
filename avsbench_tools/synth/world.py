"""A synthetic audio-visual world with exact ground truth on disk (`avs-tools synth OUT`).

The scene itself (objects, motion, sounds, expressions) is `synth.render`; this module writes it:

    OUT/videos/<vid>.mp4          H.264 + AAC, +faststart (what YouTube serves)
    OUT/truth/<vid>.json          objects, schedule, expressions (sorted keys)
    OUT/truth/<vid>.masks.npz     per-frame instance map uint8 [F, H, W] (0 = background)
    OUT/recipe.toml               the recipe of this world (categories, prompts, sampling)
    OUT/world.json, OUT/urls.txt  parameters; one video file name per line
    OUT/gold/                     with --gold FORMAT: the release root in that official layout (synth.gold)
    OUT/.avs-tools-output         the marker: OUT is a world avs-tools wrote (a re-run resumes it)

Everything is deterministic in (seed, clip index), so a re-run after a kill writes byte-identical
ground truth and skips finished clips. OUT must be a new folder, an empty one, or a world synth wrote
before with the same parameters (recognised by its marker); anything else is refused in one line
before any work.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np

from avsbench_tools import formats
from avsbench_tools.errors import Interrupted, UsageError
from avsbench_tools.fsutil import (
    MARKER,
    TMP_PREFIX,
    atomic_path,
    atomic_write_bytes,
    atomic_write_text,
    check_output_dir,
    read_marker,
    remove_stale_temps,
    write_marker,
)
from avsbench_tools.progress import Progress
from avsbench_tools.synth.gold import recipe_text, write_gold
from avsbench_tools.synth.render import AUDIO_RATE, SCENES, SynthParams, video_id
from avsbench_tools.synth.scene import render_clip

KIND = "synth-world"  # the kind in the marker of a folder synth wrote
WORLD_NAMES = {"videos", "truth", "gold", "recipe.toml", "world.json", "urls.txt", MARKER}


def _npz_bytes(**arrays: np.ndarray) -> bytes:
    """A deterministic .npz (fixed zip timestamps), loadable with np.load."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, arr in arrays.items():
            npy = io.BytesIO()
            np.save(npy, arr, allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, npy.getvalue())
    return buf.getvalue()


def load_instances(out: Path, vid: str) -> np.ndarray:
    with np.load(Path(out) / "truth" / f"{vid}.masks.npz") as z:
        return z["instances"]


def load_truth(out: Path, vid: str) -> dict:
    return json.loads((Path(out) / "truth" / f"{vid}.json").read_text())


def _write_clip(out: Path, p: SynthParams, index: int) -> str:
    from avsbench_tools.media import encode_mp4

    c = render_clip(p, index)
    video = out / "videos" / f"{c.vid}.mp4"
    with atomic_path(video) as tmp:
        encode_mp4(tmp, c.frames, p.fps, c.audio, AUDIO_RATE)
    atomic_write_bytes(out / "truth" / f"{c.vid}.masks.npz", _npz_bytes(instances=c.instances))
    # the JSON is written last: its presence marks the clip complete
    atomic_write_text(out / "truth" / f"{c.vid}.json", json.dumps(c.truth, sort_keys=True, indent=1))
    return c.vid


def is_legacy_world(folder: Path) -> bool:
    """A world synth wrote before worlds carried the marker: a world.json of ours and nothing but world files."""
    folder = Path(folder)
    try:
        old = json.loads((folder / "world.json").read_text(encoding="utf-8"))
        names = {p.name for p in folder.iterdir()}
    except (OSError, ValueError):
        return False
    if not isinstance(old, dict) or not {"clips", "seconds", "size", "fps", "seed", "version"} <= set(old):
        return False
    return all(n in WORLD_NAMES or n.startswith(TMP_PREFIX) for n in names)


def check_world_dir(out: Path) -> Path:
    """OUT for synth: new, empty, or a world synth wrote (resumed); a one-line UsageError otherwise."""
    out = Path(out)
    ours = False
    if out.is_dir() and not out.is_symlink():
        marker = read_marker(out)
        if marker is None and is_legacy_world(out):
            write_marker(out, KIND, legacy=True)  # our own world, from before worlds carried the marker
            marker = read_marker(out)
        ours = marker is not None and marker.get("kind") == KIND
    # an earlier world is resumed, never replaced: `force` only lets check_output_dir accept it
    return check_output_dir(out, kind=KIND, force=ours, protected=())


def synthesize(out: Path, params: SynthParams, progress: Progress | None = None) -> dict:
    """Render the world into OUT (resumable: finished clips are kept), then the gold release."""
    if params.width % 2 or params.height % 2 or params.width < 64 or params.height < 64:
        raise UsageError(f"--size {params.width}x{params.height}: width and height must be even and at least 64")
    if params.scene not in SCENES:
        raise UsageError(f"--scene {params.scene}: must be one of {', '.join(SCENES)}")
    if params.seconds not in (5, 10):
        raise UsageError(f"--seconds {params.seconds}: must be 5 or 10 s")
    if params.gold and formats.find(params.gold) is None:
        raise UsageError(f"--gold {params.gold}: must be one of {', '.join(formats.names())}")
    lengths = formats.get(params.fmt).clip_seconds
    if params.gold and params.seconds not in lengths:
        raise UsageError(f"--gold {params.gold} needs {' or '.join(map(str, lengths))} s clips "
                         f"(--seconds {lengths[0]})")
    if not 1 <= params.clips <= 100000:
        raise UsageError(f"--clips {params.clips}: must be between 1 and 100000")
    out = Path(out)
    check_world_dir(out)
    world = out / "world.json"
    if world.exists():
        try:
            old = json.loads(world.read_text())
        except ValueError:
            old = {}
        same = {k: v for k, v in old.items() if k != "gold"} == {k: v for k, v in params.to_json().items() if k != "gold"}
        if not same:
            raise UsageError(f"OUT {out}: holds a synthetic world made with other parameters "
                             f"({_describe(old)}); name another folder, or repeat those parameters to resume it")
    out.mkdir(exist_ok=True)
    if read_marker(out) is None:  # first: a world killed at any later moment is recognised and resumed
        write_marker(out, KIND)
    remove_stale_temps(out)
    (out / "videos").mkdir(exist_ok=True)
    (out / "truth").mkdir(exist_ok=True)
    atomic_write_text(world, json.dumps(params.to_json(), sort_keys=True, indent=1))
    made = skipped = 0
    try:
        for i in range(params.clips):
            vid = video_id(params.seed, i)
            if (out / "truth" / f"{vid}.json").exists() and (out / "videos" / f"{vid}.mp4").exists():
                skipped += 1
            else:
                _write_clip(out, params, i)
                made += 1
            if progress:
                progress("rendering", i + 1, params.clips, video_id(params.seed, i))
    except KeyboardInterrupt:
        raise Interrupted(made + skipped, params.clips - made - skipped) from None
    atomic_write_text(out / "recipe.toml", recipe_text(params))
    atomic_write_text(out / "urls.txt", "".join(f"videos/{video_id(params.seed, i)}.mp4\n" for i in range(params.clips)))
    gold = None
    if params.gold:
        try:
            gold = write_gold(out, params)
        except KeyboardInterrupt:
            raise Interrupted(params.clips, 0, what="the gold release was not written yet") from None
    return {"out": str(out), "clips": params.clips, "rendered": made, "skipped": skipped, "gold": gold}


def _describe(old: dict) -> str:
    size = old.get("size") or ["?", "?"]
    gold = f" --gold {old['gold']}" if old.get("gold") else ""
    gold += f" --scene {old['scene']}" if old.get("scene") else ""
    return (f"--clips {old.get('clips')} --seconds {old.get('seconds')} --size {size[0]}x{size[1]} "
            f"--fps {old.get('fps')} --seed {old.get('seed')}{gold}")


