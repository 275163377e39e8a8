"""What the tests measure of a palette (the package only draws colours, it never needs this distance)."""

from __future__ import annotations

import numpy as np

from avsbench_tools.palette import hex_to_rgb, srgb_to_lab


def min_delta_e(colours) -> float:
    """The least CIE76 distance between two of `colours` ("#rrggbb"); inf for fewer than two."""
    lab = srgb_to_lab([hex_to_rgb(c) for c in colours])
    if len(lab) < 2:
        return float("inf")
    d = np.sqrt(((lab[:, None, :] - lab[None, :, :]) ** 2).sum(-1))
    return float(d[np.triu_indices(len(lab), 1)].min())
