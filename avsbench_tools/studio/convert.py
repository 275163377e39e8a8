"""Label Studio results <-> `masks.ObjectMask`, both directions side by side, pure (no server, no catalog).

- `to_studio(obj, label, shape)`: a brush result of a prediction (push): region id "o<fid>", the mask as
  our brush RLE (alpha 255 inside, 0 outside) at the frame's size, one label (`brush_region`: the same from an
  RLE already made, e.g. from a stored mask's bits);
- `from_studio(result, second, fid, shape)`: a brush result of an annotation (pull) -> a reviewed
  ObjectMask: alpha binarised at >= ALPHA_THRESHOLD (the editor anti-aliases stroke edges), scaled to
  the frame (nearest) when drawn at another size; the first brush label is its category;
- `flags_to_studio(flags)` / `flags_from_studio(results)`: the frame choices ("no sounding object",
  "unusable frame") <-> the frame flags ("silent", "unusable").

A result that is not what it claims (another type, a truncated or garbled RLE, a size that does not match
its RLE) is a ValueError naming the cause.
"""

from __future__ import annotations

import numpy as np

from avsbench_tools.catalog.reviews import SILENT, UNUSABLE  # the frame flags
from avsbench_tools.masks import ObjectMask, box_of
from avsbench_tools.studio import labelling as config
from avsbench_tools.studio.rle import ALPHA_THRESHOLD, decode, encode

FLAG_OF_CHOICE = {config.NO_SOUND: SILENT, config.UNUSABLE: UNUSABLE}
CHOICE_OF_FLAG = {v: k for k, v in FLAG_OF_CHOICE.items()}


def region_id(fid: int) -> str:
    """The region id of a proposed object in a prediction (pull maps it back to the fid)."""
    return f"o{int(fid)}"


def to_studio(obj: ObjectMask, label: str, shape: tuple[int, int]) -> dict:
    """A proposed object -> a prediction's brush result. shape = the frame's (H, W): the mask must have it."""
    if obj.mask is None:
        raise ValueError(f"object {obj.fid}: a box without a mask cannot be a brush region")
    h, w = (int(x) for x in shape)
    if obj.mask.shape != (h, w):
        raise ValueError(f"object {obj.fid}: the mask is {obj.mask.shape[1]}x{obj.mask.shape[0]}, the frame {w}x{h}")
    return brush_region(obj.fid, label, (h, w), encode(obj.mask))


def brush_region(fid: int, label: str, shape: tuple[int, int], rle: list[int]) -> dict:
    """The brush result of object `fid` whose mask (at the frame's shape (H, W)) is `rle` (studio.rle)."""
    h, w = (int(x) for x in shape)
    return {"id": region_id(fid), "from_name": config.MASK, "to_name": config.IMAGE, "type": "brushlabels",
            "original_width": w, "original_height": h, "image_rotation": 0,
            "value": {"format": "rle", "rle": rle, "brushlabels": [label]}}


def from_studio(result: dict, second: int, fid: int, shape: tuple[int, int], category: str | None = None,
                threshold: int = ALPHA_THRESHOLD) -> ObjectMask:
    """An annotation's brush result (`type` "brushlabels", `value.format` "rle") -> a reviewed ObjectMask.

    The RLE covers the RGBA array at the result's `original_height` x `original_width`; its alpha is
    binarised at `alpha >= threshold` and, when that size is not the frame's (`shape` = (H, W)), resized
    to it (nearest). category: the first brush label unless given. The evidence records the region id,
    its origin (prediction / prediction-changed / manual), the threshold and how many pixels had a
    partial alpha."""
    value = result.get("value") or {}
    if result.get("type") != "brushlabels" or value.get("format") != "rle" or not isinstance(value.get("rle"), list):
        raise ValueError(f"region {result.get('id')!r}: not a brush RLE result (type {result.get('type')!r})")
    try:
        h = int(result.get("original_height") or shape[0])
        w = int(result.get("original_width") or shape[1])
    except (TypeError, ValueError):
        raise ValueError(f"region {result.get('id')!r}: its original size is not a number") from None
    if h <= 0 or w <= 0:
        raise ValueError(f"region {result.get('id')!r}: original size {w}x{h}")
    alpha = decode(value["rle"], h, w)
    mask = alpha >= threshold
    if (h, w) != tuple(shape):
        from PIL import Image

        mask = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize((shape[1], shape[0]), Image.NEAREST)) > 0
    labels = value.get("brushlabels") or []
    evidence = {"region_id": result.get("id"), "origin": result.get("origin"), "alpha_threshold": int(threshold),
                "partial_alpha_pixels": int(np.count_nonzero((alpha > 0) & (alpha < 255)))}
    return ObjectMask(int(second), int(fid), category or (labels[0] if labels else None), mask, box_of(mask),
                      score=1.0, sounding=True, evidence=evidence)


def flags_to_studio(flags) -> list[dict]:
    """Frame flags -> the frame's choices result ([] without flags)."""
    choices = [CHOICE_OF_FLAG[f] for f in sorted(set(flags)) if f in CHOICE_OF_FLAG]
    if not choices:
        return []
    return [{"from_name": config.FRAME, "to_name": config.IMAGE, "type": "choices", "value": {"choices": choices}}]


def flags_from_studio(results: list[dict]) -> list[str]:
    """The frame flags an annotation's results set (its frame choices; other controls are ignored), sorted."""
    out = set()
    for r in results:
        if isinstance(r, dict) and r.get("from_name") == config.FRAME and r.get("type") == "choices":
            out |= {FLAG_OF_CHOICE[c] for c in (r.get("value") or {}).get("choices") or [] if c in FLAG_OF_CHOICE}
    return sorted(out)
