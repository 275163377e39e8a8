"""Label Studio results <-> ObjectMask (studio/convert.py), both directions from ONE table of cases.

Each row: the object as the pipeline holds it (mask, label, frame size) and the result as Label Studio holds it
(the region, drawn at some size, possibly anti-aliased, its labels), plus the frame flags and their choices
result. Rows drawn at the frame's size with a clean alpha go both ways (to_studio gives exactly the result,
from_studio gives back exactly the object); rows the editor makes (another size, soft edges, no label) only
come back (pull)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from avsbench_tools.masks import ObjectMask, box_of
from avsbench_tools.studio.convert import flags_from_studio, flags_to_studio, from_studio, to_studio
from avsbench_tools.studio.rle import decode, encode
from tests.helpers.studio_tasks import rle_of_alpha, soft_alpha


def _rect(shape, x0, y0, x1, y1) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[y0:y1, x0:x1] = True
    return m


@dataclass
class Case:
    name: str
    mask: np.ndarray  # the object's mask at the frame's size (what from_studio must give)
    label: str | None  # the object's category / the region's brush label
    alpha: np.ndarray  # the region's alpha as drawn (its size is original_height x original_width)
    flags: list[str] = field(default_factory=list)
    choices: list[str] = field(default_factory=list)
    both_ways: bool = True  # push writes it exactly so

    @property
    def shape(self):
        return self.mask.shape

    def result(self, rle=None) -> dict:
        h, w = self.alpha.shape
        return {"id": "o3", "from_name": "mask", "to_name": "image", "type": "brushlabels", "original_width": w,
                "original_height": h, "image_rotation": 0,
                "value": {"format": "rle", "rle": rle if rle is not None else encode(self.alpha >= 128),
                          "brushlabels": [self.label] if self.label else []}}


SQUARE = _rect((12, 16), 3, 2, 9, 8)
CASES = [
    Case("rectangle", SQUARE, "guitar", SQUARE.astype(np.uint8) * 255),
    Case("empty mask", np.zeros((12, 16), bool), "guitar", np.zeros((12, 16), np.uint8)),
    Case("whole frame", np.ones((12, 16), bool), "piano", np.full((12, 16), 255, np.uint8)),
    Case("label with a space", SQUARE, "male speech", SQUARE.astype(np.uint8) * 255),
    Case("one pixel, odd size", _rect((7, 5), 4, 6, 5, 7), "dog", _rect((7, 5), 4, 6, 5, 7).astype(np.uint8) * 255),
    Case("silent frame", SQUARE, "guitar", SQUARE.astype(np.uint8) * 255, ["silent"], ["no sounding object"]),
    Case("both flags", SQUARE, "guitar", SQUARE.astype(np.uint8) * 255, ["silent", "unusable"],
         ["no sounding object", "unusable frame"]),
    # what the editor makes: pull reads it, push never writes it
    Case("soft edges at 128", _rect((24, 32), 5, 4, 20, 18), "guitar", soft_alpha(_rect((24, 32), 5, 4, 20, 18), 3),
         both_ways=False),
    Case("drawn at half size", _rect((24, 32), 4, 4, 20, 16), "guitar", _rect((12, 16), 2, 2, 10, 8).astype(np.uint8) * 255,
         both_ways=False),
    Case("no label", SQUARE, None, SQUARE.astype(np.uint8) * 255, both_ways=False),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_case_both_ways(case):
    obj = ObjectMask(second=2, fid=3, category=case.label, mask=case.mask)
    # pull: the result as the editor stores it (the SDK's own encoder, soft alpha kept) -> the object
    got = from_studio(case.result(rle_of_alpha(case.alpha)), 2, 3, case.shape)
    assert np.array_equal(got.mask, case.mask) and got.mask.shape == case.shape
    assert (got.second, got.fid, got.category, got.box) == (2, 3, case.label, box_of(case.mask))
    assert got.evidence["partial_alpha_pixels"] == int(((case.alpha > 0) & (case.alpha < 255)).sum())
    assert flags_from_studio([case.result(), *flags_to_studio(case.flags)]) == sorted(case.flags)
    if case.choices:
        assert flags_to_studio(case.flags)[0]["value"]["choices"] == case.choices
        assert flags_from_studio([{"from_name": "frame", "type": "choices", "value": {"choices": case.choices}}]) \
            == case.flags
    else:
        assert flags_to_studio(case.flags) == []
    if not case.both_ways:
        return
    # push: the object -> exactly the result, whose RLE decodes to the mask (alpha 255 inside, 0 outside)
    res = to_studio(obj, case.label, case.shape)
    assert res == case.result()
    assert np.array_equal(decode(res["value"]["rle"], *case.shape), case.mask.astype(np.uint8) * 255)
    back = from_studio(res, 2, 3, case.shape)  # and round: push -> pull is the identity on the object
    assert np.array_equal(back.mask, obj.mask) and back.category == obj.category


def test_what_is_not_a_mask_is_refused_with_its_cause():
    obj = ObjectMask(0, 1, "guitar", SQUARE)
    with pytest.raises(ValueError, match="the mask is 16x12, the frame 10x10"):
        to_studio(obj, "guitar", (10, 10))
    with pytest.raises(ValueError, match="a box without a mask"):
        to_studio(ObjectMask(0, 1, "guitar", None, (0, 0, 2, 2)), "guitar", (12, 16))
    good = CASES[0].result()
    with pytest.raises(ValueError, match="not a brush RLE"):
        from_studio({**good, "type": "rectanglelabels"}, 0, 1, (12, 16))
    with pytest.raises(ValueError, match="truncated"):
        from_studio({**good, "value": {**good["value"], "rle": good["value"]["rle"][:9]}}, 0, 1, (12, 16))
    with pytest.raises(ValueError, match="a 17x12 RGBA mask needs"):  # original_width that does not match its RLE
        from_studio({**good, "original_width": 17}, 0, 1, (12, 16))
    with pytest.raises(ValueError, match="original size"):
        from_studio({**good, "original_width": "wide"}, 0, 1, (12, 16))
    # other controls' results carry no flags
    assert flags_from_studio([good, {"from_name": "other", "type": "choices", "value": {"choices": ["unusable frame"]}}]) == []
