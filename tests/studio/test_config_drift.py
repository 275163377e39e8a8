"""`config.unknown_controls` (issue #20 item 5): what a hand-edited labelling config holds that the recipe does not
know, so push can refuse it in one line naming them."""

from __future__ import annotations

from avsbench_tools.recipe import load_recipe
from avsbench_tools.studio import labelling as cfg


def test_unknown_controls_and_labels_are_named():
    recipe = load_recipe("avsbench-s4")
    ours = cfg.label_config(recipe)
    assert cfg.unknown_controls(ours, recipe) == [] and cfg.check_config(ours, recipe) == []
    drifted = ours.replace('<BrushLabels name="mask" toName="image">',
                           '<BrushLabels name="mask" toName="image">\n      <Label value="kazoo"/>')
    drifted = drifted.replace('<Choices name="frame"', '<PolygonLabels name="outline" toName="image">'
                              '<Label value="dog_barking"/></PolygonLabels>\n  <Choices name="frame"')
    assert cfg.unknown_controls(drifted, recipe) == ['the region control <PolygonLabels name="outline">',
                                                     "the label kazoo of mask"]
    assert cfg.check_config(drifted, recipe) == []  # nothing is missing: the extras are what push refuses
