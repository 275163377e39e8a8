"""grounded-sam per-frame cost: SAM embedding reuse (ours) vs a naive loop that recomputes the
SAM image embedding for every box. Same models, same frames, same run.

Models: real-size architectures with random weights (no downloads here): Grounding DINO with its
default config (Swin-T backbone + BERT-base text encoder, as grounding-dino-tiny) and SAM ViT-B
(SamConfig defaults, as facebook/sam-vit-base). Frames: 1280x720 synthetic frames, BOXES boxes each.
Prints seconds per frame for both and the ratio, and the device. Use --device cuda on a GPU box.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from avsbench_tools.masks import ObjectMask
from avsbench_tools.preannotate.models import best_masks, load_dino, load_sam
from avsbench_tools.synth import SynthParams, render_clip

BOXES = 3


def build(d: Path) -> tuple[Path, Path]:
    import torch
    from transformers import (
        BertTokenizerFast,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
        SamConfig,
        SamImageProcessor,
        SamModel,
        SamProcessor,
    )

    torch.manual_seed(0)
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "red", "circle", "blue", "square", "orange", "triangle"]
    tok = BertTokenizerFast(vocab={w: i for i, w in enumerate(words)})
    GroundingDinoForObjectDetection(GroundingDinoConfig()).eval().save_pretrained(d / "dino")
    GroundingDinoProcessor(image_processor=GroundingDinoImageProcessor(), tokenizer=tok).save_pretrained(d / "dino")
    SamModel(SamConfig()).eval().save_pretrained(d / "sam")
    SamProcessor(image_processor=SamImageProcessor()).save_pretrained(d / "sam")
    return d / "dino", d / "sam"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--frames", type=int, default=3)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(max(1, torch.get_num_threads()))
    clip = render_clip(SynthParams(clips=1, seconds=args.frames, width=1280, height=720, fps=1, seed=3), 0)
    frames = [np.ascontiguousarray(f) for f in clip.frames[: args.frames]]
    prompts = {"guitar": "red circle", "piano": "blue square", "dog": "orange triangle"}
    with tempfile.TemporaryDirectory() as tmp:
        dpath, spath = build(Path(tmp))
        dino = load_dino(str(dpath), args.device)
        sam = load_sam(str(spath), args.device)

        def detections(img, s):
            dets = dino.detect(img, prompts, s, 0.0, 0.0)[:BOXES]
            while len(dets) < BOXES:  # random weights: make sure every frame has BOXES boxes
                dets.append(ObjectMask(s, -1, "guitar", None, (100.0 * len(dets), 100.0, 300.0 + 100 * len(dets), 400.0),
                                       0.1))
            return dets

        detections(frames[0], 0)  # warm-up
        sam.set_image(frames[0])
        t0 = time.perf_counter()
        for s, img in enumerate(frames):
            dets = detections(img, s)
            sam.set_image(img)  # once per frame
            best_masks(sam, dets)
        ours = (time.perf_counter() - t0) / len(frames)
        t0 = time.perf_counter()
        for s, img in enumerate(frames):
            dets = detections(img, s)
            for d in dets:
                sam.set_image(img)  # naive: the embedding again for every box
                best_masks(sam, [d])
        naive = (time.perf_counter() - t0) / len(frames)
    print(f"device {dino.device} ({torch.cuda.get_device_name() if dino.device.startswith('cuda') else 'CPU'}), "
          f"1280x720 frames, {BOXES} boxes per frame, grounding-dino-tiny + sam-vit-base architectures (random weights)")
    print(f"  ours (one SAM embedding per frame) {ours:.2f} s/frame ({1 / ours:.2f} frames/s)")
    print(f"  naive (embedding per box)          {naive:.2f} s/frame ({1 / naive:.2f} frames/s)")
    print(f"  naive / ours = {naive / ours:.2f}x")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
