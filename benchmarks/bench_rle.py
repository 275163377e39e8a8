"""Brush RLE encode/decode of 1280x720 masks: ours (avsbench_tools.studio.rle) vs label-studio-sdk.

Baseline, in the same run: label_studio_sdk.converter.brush.mask2rle (encode) and decode_rle
(decode). Two masks:
  smooth  SAM-like: a few filled ellipses and soft blobs (a few thousand runs)
  noisy   every pixel random (p = 0.5): the worst case, ~460,000 runs
Decoding is timed on the SDK's own stream (what the server holds for SDK-made predictions). Each
number is the fastest of --repeat runs (the SDK's noisy case, which takes seconds, of
--sdk-repeat runs). Every result is checked: the SDK decodes our stream to exactly the RGBA array
of its own stream, and our decoder returns exactly the SDK decoder's alpha channel.
Target (issue #14): >= 20x faster than the SDK on both masks, encode and decode.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from label_studio_sdk.converter.brush import decode_rle, mask2rle

from avsbench_tools.studio import rle

H, W = 720, 1280


def smooth_mask(seed: int = 1) -> np.ndarray:
    """A SAM-like mask: three ellipses and two soft blobs, holes and all."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:H, :W].astype(np.float32)
    m = np.zeros((H, W), bool)
    for _ in range(3):
        cy, cx = rng.uniform(100, H - 100), rng.uniform(150, W - 150)
        ay, ax, t = rng.uniform(40, 160), rng.uniform(60, 260), rng.uniform(0, np.pi)
        u = (xx - cx) * np.cos(t) + (yy - cy) * np.sin(t)
        v = -(xx - cx) * np.sin(t) + (yy - cy) * np.cos(t)
        m |= (u / ax) ** 2 + (v / ay) ** 2 < 1
    field = np.zeros((H, W), np.float32)
    for _ in range(6):
        cy, cx, r = rng.uniform(0, H), rng.uniform(0, W), rng.uniform(30, 90)
        field += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
    return m ^ (field > 0.6)


def noisy_mask(seed: int = 2) -> np.ndarray:
    return np.random.default_rng(seed).random((H, W)) < 0.5


def fastest(fn, repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=7, help="runs per number (ours, and the SDK's smooth case)")
    ap.add_argument("--sdk-repeat", type=int, default=2, help="runs of the SDK's noisy case (seconds each)")
    args = ap.parse_args()
    print(f"{W}x{H} masks; fastest of {args.repeat} (SDK noisy: {args.sdk_repeat}); times in ms")
    print(f"{'mask':8} {'runs':>8} {'bytes':>8} | {'encode sdk':>10} {'ours':>7} {'ratio':>7} | "
          f"{'decode sdk':>10} {'ours':>7} {'ratio':>7}")
    worst = float("inf")
    for name, mask in (("smooth", smooth_mask()), ("noisy", noisy_mask())):
        sdk_rep = args.repeat if name == "smooth" else args.sdk_repeat
        m255 = mask.astype(np.uint8) * 255
        runs = int(np.count_nonzero(mask.reshape(-1)[1:] != mask.reshape(-1)[:-1])) + 1
        t_sdk_enc, sdk_rle = fastest(lambda m=m255: mask2rle(m), sdk_rep)
        t_enc, our_rle = fastest(lambda m=mask: rle.encode(m), args.repeat)
        t_sdk_dec, sdk_rgba = fastest(lambda r=sdk_rle: decode_rle(r), sdk_rep)
        t_dec, our_alpha = fastest(lambda r=sdk_rle: rle.decode(r, H, W), args.repeat)
        # Identical decode, both ways.
        assert np.array_equal(our_alpha, sdk_rgba.reshape(H, W, 4)[..., 3]), f"{name}: decode differs"
        assert np.array_equal(decode_rle(our_rle), sdk_rgba), f"{name}: SDK decodes our stream differently"
        assert np.array_equal(rle.decode(our_rle, H, W), m255), f"{name}: our round trip differs"
        r_enc, r_dec = t_sdk_enc / t_enc, t_sdk_dec / t_dec
        worst = min(worst, r_enc, r_dec)
        print(f"{name:8} {runs:8d} {len(sdk_rle):8d} | {t_sdk_enc * 1e3:10.1f} {t_enc * 1e3:7.2f} {r_enc:6.1f}x | "
              f"{t_sdk_dec * 1e3:10.1f} {t_dec * 1e3:7.2f} {r_dec:6.1f}x")
    print(f"decode identical to the SDK on both masks; lowest ratio {worst:.1f}x (target >= 20x)")


if __name__ == "__main__":
    main()
