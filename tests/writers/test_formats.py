"""The format registry: every format is one entry; everything that knows formats reads it from there."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from avsbench_tools import formats
from avsbench_tools.errors import UsageError
from avsbench_tools.evaluate import evaluate
from avsbench_tools.recipe import FRAME_FORMATS, SAMPLING_RULES, load_recipe, parse_recipe
from avsbench_tools.release_reader import Item, Release, check_release, read_release
from avsbench_tools.stats import PUBLISHED
from avsbench_tools.synth import SynthParams, recipe_text, synthesize
from avsbench_tools.validate import EXPECTED_SPLITS, validate_release
from avsbench_tools.writers import open_writer
from avsbench_tools.writers.release_writer import ReleaseClip, ReleaseWriter, binary_mask


def test_every_entry_names_a_writer_and_reader_of_its_own_layout():
    assert formats.names() == ("avsbench-s4", "avsbench-ms3", "avss", "ref-avs")
    for f in formats.FORMATS.values():
        w = f.writer_class()
        assert issubclass(w, ReleaseWriter) and w.fmt == f.name
        assert callable(formats._load(f.reader))
        assert f.masks in formats.MASK_KINDS and f.sampling in SAMPLING_RULES and f.frame_format in FRAME_FORMATS
        assert set(f.clip_seconds) <= {5, 10} and f.train_annotation in ("first", "all")
        assert set(f.splits) - {"test_n"} <= set(f.export_splits) | {"test_n"}
        assert EXPECTED_SPLITS[f.name] == f.splits
        assert PUBLISHED[f.name]["source"] == f.title and PUBLISHED[f.name]["videos"] == f.published["videos"]


@pytest.mark.parametrize("name", ["avsbench-s4", "avsbench-ms3", "avss", "ref-avs"])
def test_bundled_recipe_and_synthetic_recipe_agree_with_the_registry(name):
    f = formats.get(name)
    for r in (load_recipe(name), parse_recipe(recipe_text(SynthParams(seconds=f.clip_seconds[-1], gold=name)))):
        assert r.release_format is f
        assert r.sampling == f.sampling and r.frame_format == f.frame_format and r.multi_source == f.multi_source
        assert r.export_size == f.frame_size and set(r.clip_seconds) <= set(f.clip_seconds)
        assert r.annotate["train"] == f.train_annotation


def test_what_the_entries_say():
    s4, ms3, avss, ref = (formats.get(n) for n in formats.names())
    assert ms3.exports_from("avsbench-s4") and s4.exports_from("avsbench-ms3") and s4.exports_from("avsbench-s4")
    assert not avss.exports_from("avsbench-s4") and not ref.exports_from("avss") and not s4.exports_from("coco")
    assert ref.split_name("test") == "test_s" and ref.split_name("val") == "val" and s4.split_name("test") == "test"
    assert (s4.binary, avss.semantic, ref.per_object) == (True, True, True)
    assert (s4.official_batch, ms3.official_batch, ref.official_batch, avss.official_batch) == (20, 20, 40, None)


def test_unknown_formats_are_refused_naming_the_registered_ones(tmp_path):
    known = "avsbench-s4, avsbench-ms3, avss, ref-avs"
    text = 'name = "x"\nformat = "coco"\nclip_seconds = [5]\nsampling = "end-of-second"\n' \
           '[categories]\na = "a"\n[splits]\ntrain = 1.0\n[annotate]\ntrain = "all"\n'
    with pytest.raises(UsageError, match=f"key 'format' must be one of {known}"):
        parse_recipe(text)
    with pytest.raises(UsageError, match=f"--format coco: expected one of {known}"):
        check_release(tmp_path, "coco")
    with pytest.raises(UsageError, match=f"--gold coco: must be one of {known}"):
        synthesize(tmp_path / "w", SynthParams(clips=1, gold="coco"))
    with pytest.raises(UsageError, match="--gold ref-avs needs 10 s clips"):
        synthesize(tmp_path / "w", SynthParams(clips=1, seconds=5, gold="ref-avs"))
    with pytest.raises(ValueError, match="already registered"):
        formats.register(formats.get("avss"))


# -- a format added as one entry + its writer and reader ------------------------------------------------
class ToyWriter(ReleaseWriter):
    """toy/<split>/<name>/{frames/<k>.png, masks/<k>.png, audio.wav}, toy.csv (name,split)."""

    fmt = "toy-binary"

    def add(self, c: ReleaseClip) -> None:
        d = self.root / "toy" / c.split / c.name
        for k, frame in enumerate(c.frames):
            self.image(d / "frames" / f"{k}.png", frame, self.size)
            self.image(d / "masks" / f"{k}.png", binary_mask(c.masks[k]), self.size, nearest=True)
        self.wav(d / "audio.wav", c.pcm)
        self.rows.append([c.name, c.split])

    def close(self) -> None:
        self.csv(self.root / "toy.csv", ["name", "split"], self.rows)


def read_toy(base: Path) -> Release:
    meta = base / "toy.csv"
    items = []
    with open(meta, newline="") as fh:
        for r in csv.DictReader(fh):
            d = base / "toy" / r["split"] / r["name"]
            items.append(Item(r["name"], r["split"], [d / "frames" / f"{k}.png" for k in range(5)],
                              {k: d / "masks" / f"{k}.png" for k in range(5)}, d / "audio.wav", None, None, r))
    return Release("toy-binary", base, meta, items)


TOY = formats.ReleaseFormat(
    name="toy-binary", title="a toy layout", clip_seconds=(5,), sampling="end-of-second", masks="binary",
    frame_format="png", frame_size=(64, 48), train_annotation="all", multi_source=False, logmel=False,
    splits=("train", "val", "test"), export_splits=("train", "val", "test"), writer=f"{__name__}:ToyWriter",
    reader=f"{__name__}:read_toy", metadata="toy.csv", media_dirs=(("toy/*/*", "frames"),), official_batch=5,
    published={"videos": 1})


@pytest.fixture
def toy():
    formats.register(TOY)
    try:
        yield TOY
    finally:
        formats.FORMATS.pop(TOY.name)


def test_a_new_format_is_one_entry_plus_its_writer_and_reader(toy, tmp_path):
    """Registered at run time, it reaches recipes, synth's gold release (through masks_to_clip), the reader,
    validate and evaluate; nothing else was told about it."""
    world = tmp_path / "world"
    synthesize(world, SynthParams(clips=4, seconds=5, width=96, height=64, seed=2, gold="toy-binary"))
    recipe = parse_recipe((world / "recipe.toml").read_text())
    assert recipe.format == "toy-binary" and recipe.export_size == (64, 48)
    assert json.loads((world / "world.json").read_text())["format"] == "toy-binary"
    rel = read_release(world / "gold", "toy-binary")
    assert len(rel.items) == 4 and {it.split for it in rel.items} <= {"train", "val", "test"}
    from avsbench_tools.synth import load_instances, load_truth
    from avsbench_tools.timing import sampled_frame_indices

    for it in rel.items:  # the masks are the world's sounding objects, at the format's size
        t, inst = load_truth(world, it.name), load_instances(world, it.name)
        idx = sampled_frame_indices("end-of-second", 25, t["n_frames"], 5)
        for s, p in it.masks.items():
            m = np.asarray(Image.open(p))
            want = np.asarray(Image.fromarray(np.isin(inst[idx[s]], t["sounding_per_second"][s]).astype(np.uint8) * 255)
                              .resize((64, 48), Image.NEAREST))
            assert m.shape == (48, 64) and np.array_equal(m, want)
    rep = validate_release(world / "gold", "toy-binary")
    assert rep.ok, rep.problems[:3]
    (world / "gold" / "toy" / "train" / "stray" / "frames").mkdir(parents=True)  # media_dirs: a folder without a row
    rep = validate_release(world / "gold", "toy-binary")
    assert [p for p, why in rep.problems] == [str(world / "gold" / "toy" / "train" / "stray" / "frames")]
    res = evaluate("toy-binary", world / "gold", world / "gold", split="train" if any(
        it.split == "train" for it in rel.items) else None)
    assert res["miou"] == pytest.approx(1.0) and res["fscore_batch_size"] == 5
    w = open_writer("toy-binary", tmp_path / "direct", recipe)
    assert isinstance(w, ToyWriter) and w.size == (64, 48)
