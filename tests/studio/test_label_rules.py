"""How a pulled region label becomes its object's category (`review_set.LabelRules`, issue #20 items 3 and 5):
an old category of the clip (set-category, followed through a chain) becomes the clip's category now and is
reported; a label outside the recipe keeps the proposal's category; on a single-source recipe a label other
than the clip's is stored as given and reported as a contradiction."""

from __future__ import annotations

from avsbench_tools.catalog import Clip, Source
from avsbench_tools.studio.review_set import LabelRules
from avsbench_tools.workspace import init_workspace


def test_label_rules_follow_set_category_and_report_problems(tmp_path):
    ws, _ = init_workspace(tmp_path / "ws", "avsbench-s4")
    try:
        ws.catalog.add_source_if_new(Source(source_id="s", kind="url", url="https://example.org/s.mp4", status="done"))
        ws.catalog.add_clip(Clip(clip_id="c1", source_id="s", start=0, seconds=5, path="clips/c1.mp4",
                                 category="dog_barking"))
        ws.catalog.recategorise("c1", "cat_meowing")
        ws.catalog.recategorise("c1", "lions_roaring")
        rules = LabelRules.of(ws, "c1")
        assert rules.single_source and rules.clip_category == "lions_roaring"
        assert rules.old == {"dog_barking": "lions_roaring", "cat_meowing": "lions_roaring"}
        cat, why = rules.category("dog_barking", 0)
        assert cat == "lions_roaring" and "old category 'dog_barking'" in why
        cat, why = rules.category("kazoo", 0)
        assert cat == "lions_roaring" and "not in the recipe" in why
        cat, why = rules.category("cat_meowing", 0)
        assert cat == "lions_roaring" and why  # an old category, never restored
        cat, why = rules.category("baby_laughter", 0)
        assert cat == "baby_laughter" and "contradicts the clip's category 'lions_roaring'" in why
        assert rules.category("lions_roaring", 0) == ("lions_roaring", None)
    finally:
        ws.close()
