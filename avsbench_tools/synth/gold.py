"""The recipe of a synthetic world and its gold release: the world's exact ground truth in an official layout.

The gold release goes through the same `masks_to_clip` as `export`, from `ObjectMask`s made of the
world's instance maps (one per object and sampled second, `sounding` from the schedule), so a gold
release and an export of the same masks cannot differ in what their mask files hold.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from avsbench_tools import formats
from avsbench_tools.fsutil import atomic_dir
from avsbench_tools.synth.render import SynthParams, scene_categories, video_id
from avsbench_tools.synth.scene import render_clip


def recipe_text(p: SynthParams) -> str:
    """The recipe.toml of a world: its format's sampling, frame type and size, train annotation; shapes as categories."""
    f = formats.get(p.fmt)
    lines = [
        "# The synthetic audio-visual world written by `avs-tools synth` (categories = shapes).",
        f'name = "synthetic-{f.name}"',
        ('description = "avs-tools synthetic world: coloured shapes with their own sounds"' if p.scene == "shapes" else
         'description = "avs-tools synthetic world (tones scene): same-shape objects, each colour with its own tone"'),
        f'format = "{f.name}"', f"clip_seconds = [{p.seconds}]", f"fps = {p.fps}",
        f'sampling = "{f.sampling}"',
        f'frame_format = "{f.frame_format}"',
        f"multi_source = {'true' if f.multi_source else 'false'}",
    ]
    if f.frame_size:
        lines.append(f"export_size = [{f.frame_size[0]}, {f.frame_size[1]}]")
    lines += ["", "[splits]", "train = 0.70", "val = 0.15", "test = 0.15", "", "[annotate]",
              f'train = "{f.train_annotation}"', 'val = "all"', 'test = "all"', "",
              "[categories]"]
    lines += [f'{c.name} = "{c.colour} {c.shape}"' for c in scene_categories(p.scene)]
    return "\n".join(lines) + "\n"


def gold_name(f: formats.ReleaseFormat, vid: str, seconds: int) -> str:
    """The release name of a world clip (clip 0 of video `vid`, starting at 0 s)."""
    if f.per_object:
        return f"{vid}_0_{seconds * 1000}"  # Ref-AVS vid: <ytid>_<start_ms>_<end_ms>
    return f"{vid}_0" if f.multi_source else vid  # MS3 and AVSS v1m: <ytid>_<n>; S4: <ytid>


def avss_subset(truth: dict, seconds: int) -> str:
    """The AVSS subset a world clip belongs to, as its gold release labels it: v2 for 10 s clips, else v1m when
    objects of more than one category sound in it (in any second), else v1s. `collect --world` records it, so an
    export of the clip names it as the gold release does whatever its masks hold."""
    from avsbench_tools.writers.avss import avss_label

    return avss_label(seconds, len({o["category"] for o in truth["objects"] if any(o["sounding"])}))


def main_category(truth: dict) -> str:
    """A world clip's category: its object that sounds in the most seconds (ties: the lowest id)."""
    totals = {o["id"]: sum(o["sounding"]) for o in truth["objects"]}
    main = max(totals, key=lambda k: (totals[k], -k))
    return next(o["category"] for o in truth["objects"] if o["id"] == main)


def world_splits(params: SynthParams, recipe) -> dict[str, str]:
    """{video id: split} of a world's clips as its gold release has them (the format's split names)."""
    from avsbench_tools.splits import ratio_split

    f = formats.get(params.fmt)
    vids = [video_id(params.seed, i) for i in range(params.clips)]
    return {v: f.split_name(s) for v, s in ratio_split(vids, recipe.splits, params.seed).items()}


def truth_masks(truth: dict, instances: np.ndarray) -> list:
    """The world's exact ground truth as ObjectMasks: every object in every sampled second (`instances`: the
    instance maps of the sampled frames), sounding as its schedule says; object by object."""
    from avsbench_tools.masks import ObjectMask

    sounding = truth["sounding_per_second"]
    return [ObjectMask(second=s, fid=o["fid"], category=o["category"], mask=instances[s] == o["id"],
                       sounding=o["id"] in sounding[s]) for o in truth["objects"] for s in range(len(instances))]


def gold_clips(out: Path, params: SynthParams, recipe) -> Iterator:
    """ReleaseClips of the world's exact ground truth, frames sampled by the recipe's rule."""
    from scipy.signal import resample_poly

    from avsbench_tools.audio.logmel import int16_to_examples, pad_examples
    from avsbench_tools.audio.wav import float_to_int16
    from avsbench_tools.masks_to_clip import masks_to_clip
    from avsbench_tools.timing import sampled_frame_indices

    f = formats.get(params.fmt)
    splits = world_splits(params, recipe)
    for i in range(params.clips):
        c = render_clip(params, i)
        t = c.truth
        idx = sampled_frame_indices(recipe.sampling, params.fps, t["n_frames"], params.seconds)
        pcm = float_to_int16(resample_poly(c.audio.astype(np.float64), 160, 441, axis=0))
        logmel = pad_examples(int16_to_examples(pcm, 16000), params.seconds)
        rc, _ = masks_to_clip(f, truth_masks(t, c.instances[idx]), name=gold_name(f, c.vid, params.seconds),
                             video_id=c.vid, start=0.0, split=splits[c.vid], frames=[c.frames[k] for k in idx],
                             pcm=pcm, logmel=logmel, category=main_category(t),
                             expressions={o["fid"]: o["expressions"] for o in t["objects"]},
                             null_expressions=t["null_expressions"], recipe=recipe)
        yield rc


def write_gold(out: Path, params: SynthParams) -> str:
    """OUT/gold: the release of the world in its format (kept when the same parameters wrote it already)."""
    from avsbench_tools.recipe import parse_recipe
    from avsbench_tools.writers import open_writer

    recipe = parse_recipe(recipe_text(params), source=str(Path(out) / "recipe.toml"))
    gold = Path(out) / "gold"
    stamp = json.dumps(params.to_json(), sort_keys=True)
    if (gold / ".avs-gold.json").exists() and (gold / ".avs-gold.json").read_text() == stamp:
        return str(gold)
    with atomic_dir(gold) as tmp:
        w = open_writer(params.fmt, tmp, recipe)
        for rc in gold_clips(out, params, recipe):
            w.add(rc)
        w.close()
        (tmp / ".avs-gold.json").write_text(stamp)
    return str(gold)
