"""masks_to_clip: one clip's ObjectMasks -> the ReleaseClip of each mask kind; export and gold share it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from avsbench_tools.catalog import Expression, MaskVersion
from avsbench_tools.collect import CollectOptions, collect
from avsbench_tools.export import export
from avsbench_tools.fsutil import atomic_write_bytes
from avsbench_tools.mask_store import mask_png
from avsbench_tools.masks import ObjectMask
from avsbench_tools.masks_to_clip import masks_to_clip
from avsbench_tools.recipe import load_recipe
from avsbench_tools.sample import SampleOptions, sample
from avsbench_tools.synth import SynthParams, load_instances, load_truth, synthesize, truth_masks
from avsbench_tools.workspace import init_workspace
from tests.helpers.catalog_rows import put_expressions

H, W = 6, 8


def _box(y0, y1, x0, x1):
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


def _clip(fmt, masks, seconds=3, **kw):
    frames = [np.zeros((H, W, 3), np.uint8) for _ in range(seconds)]
    args = dict(name="vid_1", video_id="vid", start=2.0, split="train", frames=frames, pcm=np.zeros((10, 1), np.int16))
    args.update(kw)
    return masks_to_clip(fmt, masks, recipe=load_recipe("avss"), **args)


# object 0: a guitar sounding in seconds 0 and 1 (second 1: verdict unknown), silent in 2
# object 1: a piano sounding only in second 1, overlapping the guitar at rows 2-3, columns 3-4
A, B = _box(0, 4, 0, 5), _box(2, 6, 3, 8)
MASKS = [ObjectMask(0, 0, "guitar", A, sounding=True), ObjectMask(1, 0, "guitar", A, sounding=None),
         ObjectMask(2, 0, "guitar", A, sounding=False), ObjectMask(1, 1, "piano", B, sounding=True),
         ObjectMask(0, 2, "cat", None, box=(0, 0, 2, 2))]  # box-only: ignored


def test_binary_masks_are_the_union_of_what_sounds():
    for fmt in ("avsbench-s4", "avsbench-ms3"):
        rc, notes = _clip(fmt, MASKS)
        assert np.array_equal(rc.masks[0], A) and np.array_equal(rc.masks[1], A | B) and not rc.masks[2].any()
        assert rc.category == "guitar" and not notes.uncategorised  # two sounding guitar masks, one piano
        assert (rc.name, rc.video_id, rc.start, rc.seconds, rc.split) == ("vid_1", "vid", 2.0, 3, "train")
    rc, _ = _clip("avsbench-s4", MASKS, category="dog")  # the clip's own category wins
    assert rc.category == "dog"
    tie = [ObjectMask(0, 0, "violin", A, sounding=True), ObjectMask(0, 1, "cello", B, sounding=True)]
    assert _clip("avsbench-s4", tie)[0].category == "cello"  # a tie: the first in alphabetical order
    rc, notes = _clip("avsbench-s4", [ObjectMask(0, 0, None, A, sounding=True)])
    assert rc.category == "unknown" and notes.uncategorised
    rc, notes = _clip("avsbench-s4", [])
    assert rc.category == "unknown" and all(not m.any() for m in rc.masks.values())


def test_semantic_masks_paint_class_indices_later_objects_on_top():
    classes = ["background", *load_recipe("avss").categories]
    rc, notes = _clip("avss", MASKS)
    g, p = classes.index("guitar"), classes.index("piano")
    assert set(np.unique(rc.masks[0])) == {0, g} and np.array_equal(rc.masks[0] == g, A)
    assert np.array_equal(rc.masks[1] == p, B) and np.array_equal(rc.masks[1] == g, A & ~B)
    assert not rc.masks[2].any() and not notes.uncategorised
    assert list(dict.fromkeys(rc.sounding)) == ["guitar", "piano"]  # in the order the masks come
    assert rc.avss_label == "v1m" and rc.video_id == "vid_1" and rc.name == "vid_1"  # v1m: uid == vid == the name
    one = [m for m in MASKS if m.category == "guitar"]
    rc, _ = _clip("avss", one, seconds=5)
    assert rc.avss_label == "v1s" and rc.video_id == "vid" and rc.name == "vid_2000_7000"
    rc, _ = _clip("avss", one, seconds=10)
    assert rc.avss_label == "v2" and rc.name == "vid_2000_12000"
    rc, notes = _clip("avss", [ObjectMask(0, 0, "kazoo", A, sounding=True)])  # not a recipe class: background
    assert notes.uncategorised and not rc.masks[0].any()
    rc, notes = _clip("avss", [ObjectMask(0, 0, None, A, sounding=True)], category="guitar")
    assert not notes.uncategorised and np.array_equal(rc.masks[0] == g, A)


def test_per_object_tracks_every_object_with_its_expressions():
    rc, notes = _clip("ref-avs", MASKS, expressions={1: ["the piano on the right"]},
                      null_expressions=["the dog barking"])
    assert [o.fid for o in rc.objects] == [0, 1] and [o.category for o in rc.objects] == ["guitar", "piano"]
    guitar, piano = rc.objects
    assert guitar.masks.shape == (3, H, W) and all(np.array_equal(guitar.masks[s], A) for s in range(3))  # silent too
    assert not piano.masks[0].any() and np.array_equal(piano.masks[1], B)
    assert guitar.expressions == ["the guitar"] and piano.expressions == ["the piano on the right"]
    assert (notes.objects, notes.template_expressions, notes.uncategorised) == (2, 1, False)
    assert rc.null_expressions == ["the dog barking"]
    rc, notes = _clip("ref-avs", [ObjectMask(0, 3, None, A, sounding=True)])
    assert rc.objects[0].category == "object" and rc.objects[0].expressions == ["the object"] and notes.uncategorised
    rc, notes = _clip("ref-avs", [ObjectMask(0, 3, None, A)], category="hair_dryer")
    assert rc.objects[0].expressions == ["the hair dryer"] and not notes.uncategorised


def _sums(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("fmt,seconds,seed", [("avsbench-ms3", 5, 7), ("avss", 5, 5), ("ref-avs", 10, 3)])
def test_an_export_of_the_worlds_truth_is_its_gold_release(tmp_path, fmt, seconds, seed):
    """A workspace whose reviewed masks and expressions are the world's exact truth exports the gold release's
    masks and metadata byte for byte: export and gold go through the same masks_to_clip. (Frames and audio
    differ: the workspace decodes the world's H.264/AAC videos.)"""
    world = tmp_path / "world"
    synthesize(world, SynthParams(clips=3, seconds=seconds, width=96, height=64, seed=seed, gold=fmt))
    ws, _ = init_workspace(tmp_path / "ws", str(world / "recipe.toml"))
    collect(ws, CollectOptions(local=world / "videos", world=world, any_license=True))
    sample(ws, SampleOptions(jobs=2))
    for c in ws.catalog.clips():
        vid = ws.catalog.source(c.source_id).video_id
        t, inst = load_truth(world, vid), load_instances(world, vid)
        idx = [fr.frame_index for fr in ws.catalog.frames(c.clip_id)]
        versions = []
        for o in truth_masks(t, inst[idx]):
            rel = f"masks/{c.clip_id}/truth/{o.second}_{o.fid}.png"
            atomic_write_bytes(ws.path(rel), mask_png(o.mask))
            versions.append(MaskVersion.from_object_mask(o, c.clip_id, "review", "truth", "t0", {}, rel))
        ws.catalog.save_mask_set(c.clip_id, "review", "t0", versions, range(seconds))
        texts = [(o["fid"], e, False) for o in t["objects"] for e in o["expressions"]]
        texts += [(None, e, True) for e in t["null_expressions"]]
        put_expressions(ws.catalog, c.clip_id, [Expression(c.clip_id, n, fid, e, null)
                                                for n, (fid, e, null) in enumerate(texts, start=1)])
    res = export(ws, tmp_path / "release")
    ws.close()
    assert res.clips == 3 and res.from_reviews > 0 and res.template_expressions == 0
    gold, mine = _sums(world / "gold"), _sums(tmp_path / "release")
    if fmt == "avss":  # v1m clips are <ytid>_<n> with vid = uid in both, as in the official metadata
        assert (world / "gold" / "metadata.csv").read_text() == (tmp_path / "release" / "metadata.csv").read_text()
        assert (world / "gold" / "label2idx.json").read_bytes() == (tmp_path / "release" / "label2idx.json").read_bytes()
    masks = {k: v for k, v in gold.items() if "gt_mask" in k or "labels_" in k}
    assert masks and {k: mine.get(k) for k in masks} == masks
    assert {k for k in mine if "gt_mask" in k or "labels_" in k} == set(masks)
    for meta in ("Multi-sources/ms3_meta_data.csv", "metadata.csv"):
        if meta in gold and fmt != "avss":
            assert mine[meta] == gold[meta]
