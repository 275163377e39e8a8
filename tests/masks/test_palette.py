"""One colour per label, the same in Label Studio's config and in the preview (avsbench_tools/palette.py)."""

from __future__ import annotations

import re

import pytest

from avsbench_tools.catalog.records import MaskVersion
from avsbench_tools.palette import MIN_DELTA_E, distinct_palette, label_colours
from avsbench_tools.preview.marks import plan_objects
from avsbench_tools.recipe import load_recipe
from avsbench_tools.studio import labelling as cfg
from tests.helpers.colours import min_delta_e


def _version(fid: int, second: int, category: str | None) -> MaskVersion:
    return MaskVersion(None, "c0", second, fid, "proposal", category, 0.5, True, {}, "motion", "h", {},
                       f"masks/c0/{second}_{fid}.png", "2026-01-01")


def test_preview_draws_each_object_in_its_label_colour():
    recipe = load_recipe("avss")
    cats = list(recipe.categories)
    rows = [_version(0, 0, cats[3]), _version(1, 0, cats[40]), _version(2, 1, cats[3]), _version(3, 1, "not a class")]
    plan = plan_objects(rows, recipe.categories)
    xml = cfg.label_config(recipe)
    in_studio = dict(re.findall(r'<Label value="([^"]+)" background="(#[0-9a-f]{6})"', xml))
    drawn = {o.fid: o.colour for objs in plan.by_second.values() for o in objs}
    assert drawn[0] == drawn[2] == in_studio[cats[3]] and drawn[1] == in_studio[cats[40]]
    assert drawn[3] not in in_studio.values()  # a category outside the recipe keeps its per-object colour
    assert plan_objects(rows).colours != plan.colours  # without the recipe: one colour per object id, as before


def test_the_palette_is_fixed_and_distinct_far_past_any_recipe():
    assert distinct_palette(23) == distinct_palette(70)[:23]
    assert min_delta_e(distinct_palette(100)) >= MIN_DELTA_E
    assert list(label_colours(["a", "b"]).values()) == list(distinct_palette(2))
    assert min_delta_e(["#000000", "#000000"]) == 0
    with pytest.raises(ValueError, match="no 10000 colours"):
        distinct_palette(10_000)  # the grid runs out long before: said, never a palette with close colours
