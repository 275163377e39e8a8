"""Dense optical flow helpers (OpenCV Farneback) shared by the motion backend and the CPU tracker.

Frames come from the one decoder, `avsbench_tools.media.decode` (`decode_frames` here wraps it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def decode_frames(path: Path, max_side: int = 320) -> tuple[list[np.ndarray], float]:
    """Every frame of a clip as RGB, downscaled so the longer side is <= max_side (display orientation).

    The shared decoder (`media.decode`): frame k here is the frame `sample` stored as frame_index k."""
    from avsbench_tools.media.decode import read_frames

    return read_frames(path, max_side)


def grey(img: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)


def flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Farneback flow from grey a to grey b: [H, W, 2] so that a(y, x) ~ b(y + f1, x + f0)."""
    import cv2

    return cv2.calcOpticalFlowFarneback(a, b, None, pyr_scale=0.5, levels=3, winsize=15, iterations=3, poly_n=5,
                                        poly_sigma=1.2, flags=0)


def warp_mask(mask: np.ndarray, back_flow: np.ndarray) -> np.ndarray:
    """Carry a bool mask from frame t to t+1 given the flow from t+1 back to t."""
    import cv2

    h, w = mask.shape
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    mx = xs + back_flow[..., 0]
    my = ys + back_flow[..., 1]
    out = cv2.remap(mask.astype(np.float32), mx, my, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                    borderValue=0)
    return out > 0.5


def resize_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """bool mask -> (H, W) with linear interpolation then 0.5 threshold (smooth edges, no blockiness)."""
    import cv2

    if mask.shape == tuple(shape):
        return mask
    out = cv2.resize(mask.astype(np.float32), (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
    return out > 0.5
