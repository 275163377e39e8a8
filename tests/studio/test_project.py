"""studio.project's request bodies: `encode` writes the same bytes as json.dumps, with brush RLEs written by numpy."""

from __future__ import annotations

import json

import numpy as np

from avsbench_tools.studio.convert import to_studio
from avsbench_tools.studio.project import encode


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
                                          {"value": {"rle": [1.5] * 30}}, {"value": {"rle": [1, 2]}}]}]},
             {"data": {"nested": [[{"rle": list(range(200))}]]}, "predictions": []}, {"data": {}}]
    for body in (tasks, tasks[2:], [], {"rle": list(range(20, 60))}):
        assert encode(body) == json.dumps(body, separators=(",", ":")).encode()
    assert tasks[0]["predictions"][0]["result"][0] is region and isinstance(region["value"]["rle"], list)  # untouched
