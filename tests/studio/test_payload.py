"""studio.payload: `encode` writes the same bytes as json.dumps (brush RLEs written by numpy); CheckedInterface says what the SDK says."""

from __future__ import annotations

import json

import numpy as np

from avsbench_tools.studio.convert import to_studio
from avsbench_tools.studio.payload import encode


def test_encode_writes_exactly_what_json_writes():
    """Bodies with brush RLEs (ours, from a mask), RLE-like lists that are not byte values, strings that look like
    the encoder's token, nested lists and no RLE at all: byte for byte json.dumps(..., separators=(",", ":"))."""
    from avsbench_tools.masks import ObjectMask

    rng = np.random.default_rng(0)
    mask = np.zeros((48, 64), bool)
    mask[10:30, 5:40] = True
    region = to_studio(ObjectMask(0, 1, "dog", mask, None, 0.7, True), "dog", (48, 64))
    tasks = [{"data": {"clip_id": 'c"1\x00rle0123:0', "note": "é \u2028 \\", "second": 1},
              "predictions": [{"model_version": "m", "score": 0.25,
                               "result": [region, {"value": {"rle": [int(x) for x in rng.integers(0, 256, 999)]}},
                                          {"value": {"rle": [256] + [0] * 40}},  # not bytes: json writes it
                                          {"value": {"rle": [1.5] * 30}}, {"value": {"rle": [True, False] * 20}},
                                          {"value": {"rle": [1, 2]}}]}]},
             {"data": {"nested": [[{"rle": list(range(200))}]]}, "predictions": []}, {"data": {}}]
    for body in (tasks, tasks[2:], [], {"rle": list(range(20, 60))}):
        assert encode(body) == json.dumps(body, separators=(",", ":")).encode()
    assert tasks[0]["predictions"][0]["result"][0] is region and isinstance(region["value"]["rle"], list)  # untouched


def test_checked_interface_says_what_the_sdk_says_and_checks_each_shape_once():
    """CheckedInterface (push's prediction check) gives the SDK's verdict on predictions right and wrong (label,
    control, type, score, missing value, a region that is not a dict, a relation to a missing region), and asks the
    SDK once for predictions that differ only in their RLE bytes, region ids, meta texts or scores."""
    from label_studio_sdk.label_interface import LabelInterface

    from avsbench_tools.recipe import load_recipe
    from avsbench_tools.studio import labelling as cfg
    from avsbench_tools.studio.payload import CheckedInterface
    from avsbench_tools.studio.rle import encode as rle

    recipe = load_recipe("avsbench-ms3")
    sdk = LabelInterface(cfg.label_config(recipe))
    label = sorted(sdk.get_control("mask").labels)[0]

    def pred(score=0.4, rid="o1", meta=None, rows=10, **region):
        mask = np.zeros((48, 64), bool)
        mask[rows:30, 5:40] = True
        r = {"id": rid, "from_name": "mask", "to_name": "image", "type": "brushlabels", "original_width": 64,
             "original_height": 48, "value": {"format": "rle", "rle": rle(mask), "brushlabels": [label]}, **region}
        if meta:
            r["meta"] = {"text": [meta]}
        return {"model_version": "m", "score": score, "result": [r]}

    wrong = [pred(value={"format": "rle", "rle": [1, 2, 3], "brushlabels": ["no such label"]}),
             pred(from_name="brush"), pred(type="rectanglelabels"), pred(score=1.5), pred(score="high"),
             {"model_version": "m", "result": [{"from_name": "mask", "to_name": "image", "type": "brushlabels"}]},
             {"model_version": "m", "result": ["not a region"]}, {"model_version": "m", "result": "nope"},
             {"model_version": "m", "result": [pred()["result"][0], {"type": "relation", "from_id": "o1",
                                                                    "to_id": "gone", "direction": "right"}]}]
    for p in [pred(), *wrong]:
        ours = CheckedInterface(LabelInterface(cfg.label_config(recipe)))
        assert bool(ours.validate_prediction(p, return_errors=True)) == bool(sdk.validate_prediction(
            p, return_errors=True)), p
        assert ours.validate_prediction(p) == sdk.validate_prediction(p)
    calls = []
    ours = CheckedInterface(sdk)
    original = sdk.validate_prediction
    sdk.validate_prediction = lambda p, return_errors=False: calls.append(p) or original(p, return_errors)
    for i in range(20):
        assert ours.validate_prediction(pred(score=i / 20, rid=f"o{i}", meta=f"second {i}", rows=i), True) == []
    assert len(calls) == 1
