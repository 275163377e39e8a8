"""The labelling config and the guidelines generated from a recipe (no server: label-studio-sdk's
LabelInterface, the same code the server validates configs and predictions with)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from label_studio_sdk.label_interface import LabelInterface

from avsbench_tools.recipe import bundled_recipes, load_recipe, parse_recipe
from avsbench_tools.studio import labelling as cfg
from avsbench_tools.studio.rle import encode


def _tags(li) -> dict[str, tuple[str, list[str]]]:
    out = {c.name: (c.tag.lower(), list(c.to_name)) for c in li.controls}
    out.update({o.name: (o.tag.lower(), []) for o in li.objects})
    return out


@pytest.mark.parametrize("name", bundled_recipes())
def test_every_recipe_gives_a_valid_config_with_the_contract_names(name):
    recipe = load_recipe(name)
    xml = cfg.label_config(recipe)
    li = LabelInterface(xml)
    li.validate()  # schema, unique names, toName targets: raises on a bad config
    tags = _tags(li)
    assert tags["image"] == ("image", []) and tags["audio"] == ("audio", []) and tags["video"] == ("video", [])
    assert tags["mask"] == ("brushlabels", ["image"])
    assert tags["frame"] == ("choices", ["image"])
    assert li.get_control("mask").labels == list(recipe.categories)  # every category, in recipe order
    assert li.get_control("frame").labels == ["no sounding object", "unusable frame"]
    assert 'choice="multiple"' in xml and "$note" in xml
    if recipe.release_format.per_object:  # Ref-AVS: a referring expression per region
        assert tags["expression"] == ("textarea", ["image"]) and 'perRegion="true"' in xml
    else:
        assert "expression" not in tags
    assert cfg.check_config(xml, recipe) == []


def test_avss_labels_are_the_semantic_classes():
    recipe = load_recipe("avss")
    labels = LabelInterface(cfg.label_config(recipe)).get_control("mask").labels
    assert len(labels) == len(recipe.categories) >= 70 and "background" not in labels


def test_odd_category_names_are_escaped():
    text = load_recipe("avsbench-s4").text.replace('dog_barking = "dog"', 'dog_barking = "dog & \\"puppy\\" <3"')
    text = text.replace("[categories]", '[categories]\n"rock&roll" = "a <b> band"')
    recipe = parse_recipe(text)
    li = LabelInterface(cfg.label_config(recipe))
    li.validate()
    assert "rock&roll" in li.get_control("mask").labels


def _prediction(label: str, w: int = 64, h: int = 48, from_name: str = "mask") -> dict:
    mask = np.zeros((h, w), bool)
    mask[10:30, 5:40] = True
    return {"model_version": "motion:abc", "score": 0.4, "result": [{
        "id": "o1", "from_name": from_name, "to_name": "image", "type": "brushlabels",
        "original_width": w, "original_height": h, "image_rotation": 0,
        "value": {"format": "rle", "rle": encode(mask), "brushlabels": [label]}}]}


def test_a_prediction_as_push_builds_it_validates_and_a_wrong_one_does_not():
    recipe = load_recipe("avsbench-ms3")
    li = LabelInterface(cfg.label_config(recipe))
    assert li.validate_prediction(_prediction("dog_barking"), return_errors=True) == []
    assert li.validate_prediction(_prediction("not_a_category"), return_errors=True)
    assert li.validate_prediction(_prediction("dog_barking", from_name="brush"), return_errors=True)


@pytest.mark.parametrize("edit, lacks", [
    (lambda x: x.replace('name="mask"', 'name="brush"'), '<brushlabels name="mask" toName="image">'),
    (lambda x: x.replace('<Label value="dog_barking"', '<Label value="dog"'), "the label dog_barking of mask"),
    (lambda x: re.sub(r'<Choice value="unusable frame"[^>]*/>', "", x), "'unusable frame'"),
    (lambda x: x.replace('<Audio name="audio"', '<Audio name="sound"'), '<Audio name="audio">'),
    (lambda x: x.replace('name="frame"', 'name="flags"'), '<choices name="frame" toName="image">'),
])
def test_check_config_names_what_a_hand_edited_config_lacks(edit, lacks):
    recipe = load_recipe("avsbench-ms3")
    edited = edit(cfg.label_config(recipe))
    missing = cfg.check_config(edited, recipe)
    assert missing and any(lacks in m for m in missing), missing


def test_check_config_of_ref_avs_needs_the_expression_and_of_garbage_says_so():
    recipe = load_recipe("ref-avs")
    xml = cfg.label_config(recipe)
    assert cfg.check_config(xml.replace('name="expression"', 'name="text"'), recipe) == [
        '<textarea name="expression" toName="image">']
    assert cfg.check_config("<View><Image", recipe)[0].startswith("the config does not parse")


def test_instructions_carry_the_guidelines():
    s4 = cfg.instructions(load_recipe("avsbench-s4"))
    assert "sound" in s4 and "in that second" in s4 and "most representative part" in s4 and "<!--" not in s4
    assert "no sounding object" in s4 and "unusable frame" in s4
    assert "avsbench-s4" in s4 and "dog_barking (dog)" in s4 and "{categories}" not in s4
    assert "Referring expressions" not in s4
    ref = cfg.instructions(load_recipe("ref-avs"))
    assert "Referring expressions" in ref and "Unique in the clip" in ref and "Every word narrows" in ref
    assert "Subjective words" in ref


@pytest.mark.parametrize("name", bundled_recipes())
def test_label_colours_are_told_apart_in_every_recipe(name):
    """Any two labels of a project are at least CIE76 20 apart, computed from the config's own colours."""
    from avsbench_tools.palette import MIN_DELTA_E, srgb_to_lab
    from tests.helpers.colours import min_delta_e

    recipe = load_recipe(name)
    xml = cfg.label_config(recipe)
    brush = re.search(r"<BrushLabels .*?</BrushLabels>", xml, re.S).group(0)  # the categories, not the audio's second
    got = dict(re.findall(r'<Label value="([^"]+)" background="(#[0-9a-f]{6})"', brush))
    assert list(got) == cfg.categories(recipe)
    least = min_delta_e(got.values())
    print(f"{name}: {len(got)} labels, least CIE76 {least:.2f}")
    assert least >= MIN_DELTA_E == 20
    # the CIE76 of a known pair: sRGB red vs black is L*a*b* (53.24, 80.09, 67.20) from (0, 0, 0)
    assert np.linalg.norm(srgb_to_lab([255, 0, 0]) - srgb_to_lab([0, 0, 0])) == pytest.approx(117.34, abs=0.05)


def test_avss_keeps_the_official_palette_where_it_is_distinct():
    from avsbench_tools.palette import label_colours
    from avsbench_tools.writers.avss import voc_palette

    recipe = load_recipe("avss")
    cols = label_colours(recipe.categories)
    voc = ["#{:02x}{:02x}{:02x}".format(*tuple(int(v) for v in voc_palette()[i + 1])) for i in range(len(cols))]
    kept = sum(a == b for a, b in zip(cols.values(), voc, strict=True))
    assert list(cols.values())[:7] == voc[:7]  # the first VOC colours are far apart: kept as the export writes them
    assert 30 <= kept < len(cols)  # where VOC's own colours are too close (its min CIE76 is ~2.6) a distinct one
    assert len(set(cols.values())) == len(cols)


def test_hints_show_beside_the_label_and_hotkeys_never_take_the_tools_keys():
    recipe = load_recipe("avsbench-s4")
    xml = cfg.label_config(recipe)
    li = LabelInterface(xml)
    li.validate()
    assert 'value="dog_barking"' in xml and 'html="dog_barking &lt;i&gt;(dog)&lt;/i&gt;"' in xml
    avss = cfg.label_config(load_recipe("avss"))
    keys = re.findall(r'<Label value="[^"]+" background="#[0-9a-f]{6}" hotkey="([^"]+)"', avss)
    flags = re.findall(r'<Choice value="[^"]+" hotkey="([^"]+)"', avss)
    # every category's label, and the audio's second (config.SECOND: never one of theirs)
    assert len(keys) == len(load_recipe("avss").categories) + 1 and len(set(keys + flags)) == len(keys) + len(flags)
    assert not {"b", "e", "h", "shift+1", "alt+f"} & set(keys) and flags == ["shift+n", "shift+u"]


def test_the_video_gets_the_clip_frame_rate_and_the_header_teaches_the_tools():
    xml = cfg.label_config(load_recipe("avsbench-ms3"))
    assert re.search(r'<Video name="video" value="\$video" frameRate="\$fps"', xml)
    assert 'defaultZoom="auto"' in xml
    line = re.search(r'<Header value="(Tools:[^"]+)"', xml).group(1)
    for needle in ("E eraser", "Regions list", "Backspace", "Shift+1", "Shift+N", "Shift+U"):
        assert needle in line


def test_the_guidelines_teach_the_tool():
    text = cfg.instructions(load_recipe("avsbench-ms3"))
    for needle in ("Regions</b> list", "<b>E</b>", "<b>Backspace</b>", "<b>Shift+1</b>", "<b>Shift+N</b>",
                   "<b>Shift+U</b>", "the label's key", "frame's number in the clip"):
        assert needle in text, needle
