"""Which decoded frame each second samples: the official rules, in one place."""

from __future__ import annotations

import math


def sampled_frame_indices(rule: str, fps: float, n_frames: int, seconds: int) -> list[int]:
    """Frame indices for seconds 0..seconds-1.

    end-of-second (AVSBench): int(l*fps + 15/16*fps), clamped to the last frame, exactly as the
    official preprocessing computes it in floating point.
    first-of-second (Ref-AVS): ceil(l*fps), the first frame whose time is >= l seconds.
    """
    if n_frames <= 0:
        return []
    out = []
    for sec in range(seconds):
        if rule == "end-of-second":
            idx = int(sec * fps + 15 / 16 * fps)
        elif rule == "first-of-second":
            idx = math.ceil(sec * fps - 1e-9)
        else:
            raise ValueError(f"unknown sampling rule {rule!r}")
        out.append(min(idx, n_frames - 1))
    return out
