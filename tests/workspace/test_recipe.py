import pytest

from avsbench_tools.errors import UsageError
from avsbench_tools.recipe import bundled_recipes, load_recipe, parse_recipe


def test_bundled_recipes_match_the_official_releases():
    assert set(bundled_recipes()) >= {"avsbench-s4", "avsbench-ms3", "avss", "ref-avs"}
    s4, ms3, avss, ref = (load_recipe(n) for n in ("avsbench-s4", "avsbench-ms3", "avss", "ref-avs"))
    assert len(s4.categories) == 23 and s4.clip_seconds == (5,) and s4.sampling == "end-of-second"
    assert s4.categories["playing_acoustic_guitar"] == "acoustic guitar"
    assert s4.annotated_seconds("train", 5) == [0] and s4.annotated_seconds("test", 5) == [0, 1, 2, 3, 4]
    assert ms3.annotated_seconds("train", 5) == [0, 1, 2, 3, 4]
    assert len(avss.categories) == 70 and avss.clip_seconds == (5, 10) and avss.frame_format == "jpg"
    assert ref.sampling == "first-of-second" and ref.clip_seconds == (10,)
    assert set(ref.silent_categories) == {"chair", "couch", "table"}


def test_recipe_categories_cover_the_real_metadata(real_avss_objects, real_refavs_categories):
    avss = load_recipe("avss")
    # the real a_obj column has odd values (background, off-the-screen, a typo 'h orse'): all else is a class
    odd = {"background", "off-the-screen", "h orse"}
    assert real_avss_objects - odd <= set(avss.categories)
    assert real_refavs_categories <= set(load_recipe("ref-avs").categories)


GOOD = """
name = "mine"
format = "avsbench-s4"
clip_seconds = [5]
sampling = "end-of-second"
[splits]
train = 0.8
test = 0.2
[annotate]
train = "first"
[categories]
dog_barking = "dog"
"""


def test_a_copied_recipe_loads(tmp_path):
    p = tmp_path / "mine.toml"
    p.write_text(GOOD)
    r = load_recipe(p)
    assert r.name == "mine" and r.prompt_for("dog_barking") == "dog"
    assert r.match_category("dog barking") == "dog_barking" and r.match_category("Dog") == "dog_barking"


@pytest.mark.parametrize("edit, key", [
    (("sampling = \"end-of-second\"", "sampling = \"middle\""), "sampling"),
    (("clip_seconds = [5]", "clip_seconds = [7]"), "clip_seconds"),
    (("train = 0.8", "train = 0.9"), "splits"),
    (("name = \"mine\"", "name = \"mine\"\ncolour = \"red\""), "colour"),
    (("dog_barking = \"dog\"", "dog_barking = \"\""), "categories.dog_barking"),
    (("train = \"first\"", "train = \"some\""), "annotate.train"),
    (("format = \"avsbench-s4\"", "format = \"coco\""), "format"),
    (("clip_seconds = [5]\n", ""), "clip_seconds"),
    (("clip_seconds = [5]", "clip_seconds = 5"), "clip_seconds"),
])
def test_broken_recipes_name_the_offending_key(edit, key):
    text = GOOD.replace(*edit)
    with pytest.raises(UsageError) as exc:
        parse_recipe(text, source="broken.toml")
    assert f"'{key}'" in str(exc.value) and "broken.toml" in str(exc.value)


def test_not_toml_and_unknown_names():
    with pytest.raises(UsageError, match="not valid TOML"):
        parse_recipe("name = = 3", source="x.toml")
    with pytest.raises(UsageError, match="unknown recipe"):
        load_recipe("no-such-recipe")
