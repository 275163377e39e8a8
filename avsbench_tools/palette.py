"""The one colour per label of a project, the same everywhere (Label Studio's brush labels, preview, qa HTML,
release-check overlays).

`label_colours(categories)` gives the i-th category (recipe order) the colour of AVSS class i + 1 in the
official PASCAL-VOC palette that the AVSS export writes (`writers.avss.voc_palette`), where that colour is at
least `MIN_DELTA_E` (CIE76, CIELAB under D65) from every colour given before it; otherwise the nearest
(CIE76) colour of a fixed sRGB grid that is. So any two labels of a project are told apart, AVSS labels keep
their official colours where those are distinct, and the result depends only on the category order.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

#: the least CIE76 distance between any two labels' colours of one project
MIN_DELTA_E = 20.0
_GRID = np.arange(0, 256, 17)  # 16 levels per channel: 4,096 candidates
#: colours a label never takes: black (AVSS background, and the frames' shadows) and white (their highlights)
_RESERVED = ((0, 0, 0), (255, 255, 255))


def srgb_to_lab(rgb) -> np.ndarray:
    """CIELAB (D65) of sRGB colours given as 0-255 values, shape [..., 3]."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    m = np.array([[0.4124564, 0.3575761, 0.1804375],
                  [0.2126729, 0.7151522, 0.0721750],
                  [0.0193339, 0.1191920, 0.9503041]])
    xyz = lin @ m.T / np.array([0.95047, 1.0, 1.08883])
    eps, kappa = 216 / 24389, 24389 / 27
    f = np.where(xyz > eps, np.cbrt(xyz), (kappa * xyz + 16) / 116)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


def hex_to_rgb(colour: str) -> tuple[int, int, int]:
    h = colour.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


@lru_cache(maxsize=8)
def distinct_palette(n: int) -> tuple[str, ...]:
    """n colours ("#rrggbb"): VOC palette entries 1..n where each is MIN_DELTA_E from those before it and
    from the reserved black and white, else the nearest such grid colour. Raises ValueError when the grid has
    no room left (far above any recipe's category count)."""
    from avsbench_tools.writers.avss import voc_palette

    voc = voc_palette(max(256, n + 1)).astype(np.int64)
    grid = np.stack(np.meshgrid(_GRID, _GRID, _GRID, indexing="ij"), -1).reshape(-1, 3)
    grid_lab = srgb_to_lab(grid)
    taken = list(srgb_to_lab(np.array(_RESERVED)))
    free = np.ones(len(grid), bool)
    for lab in taken:
        free &= np.sqrt(((grid_lab - lab) ** 2).sum(-1)) >= MIN_DELTA_E
    out: list[str] = []
    for i in range(1, n + 1):
        want = voc[i]
        lab = srgb_to_lab(want)
        if min(float(np.sqrt(((lab - t) ** 2).sum())) for t in taken) >= MIN_DELTA_E:
            rgb = want
        else:
            if not free.any():
                raise ValueError(f"no {n} colours are {MIN_DELTA_E:g} CIE76 apart on the palette grid")
            d = np.sqrt(((grid_lab - lab) ** 2).sum(-1))
            d[~free] = np.inf
            rgb = grid[int(np.argmin(d))]
            lab = grid_lab[int(np.argmin(d))]
        taken.append(lab)
        free &= np.sqrt(((grid_lab - lab) ** 2).sum(-1)) >= MIN_DELTA_E
        out.append("#{:02x}{:02x}{:02x}".format(*tuple(int(v) for v in rgb)))
    return tuple(out)


def label_colours(categories) -> dict[str, str]:
    """{category: "#rrggbb"} for a project's categories in recipe order (see the module doc)."""
    cats = list(categories)
    return dict(zip(cats, distinct_palette(len(cats)), strict=True))


def colour_of(categories, category: str | None, default: str = "#7f7f7f") -> str:
    """The colour of `category` among a project's `categories`; `default` for one outside them."""
    return label_colours(categories).get(category or "", default)
