"""grounded-sam throughput: frames/s of the whole `preannotate` stage against the models' forward-only time
on already prepared tensors (the limit), and against the per-frame path of before #16, in one run.

Models: real-size architectures with random weights, built from their configs (nothing is downloaded):
Grounding DINO with its default config (Swin-T + BERT-base, as IDEA-Research/grounding-dino-tiny), SAM
ViT-B (SamConfig defaults, as facebook/sam-vit-base) and, with --sam b,h, SAM ViT-H (as
facebook/sam-vit-huge). Frames: a synthetic world of 1280x720 clips, collected and sampled (5 frames a
clip). The stage runs with --tracker none, so every frame is detected and segmented, and with
--max-objects 3 and a box threshold that random weights pass a few dozen times a frame, so every frame
has 3 boxes after NMS, as a crowded real frame would.

Printed, for each SAM size:
  stage     frames/s of `preannotate` (models loaded once, before the clock starts; frames read on the
            loader thread; catalog rows and mask PNGs included), and seconds per frame
  limit     the same models' forward passes alone on tensors already on the device (Grounding DINO,
            SAM encoder, SAM decoder for 3 boxes), same precision and batch size: stage / limit
  before    (SAM-B) the per-frame path of before #16: processors on the host, one frame per call, the
            SAM processor run again for the boxes, all 3 candidate masks post-processed on the host,
            fp32 (models.py's Dino.detect, HFSam.set_image/predict): before / ours per frame

    python benchmarks/bench_preannotate.py --device cuda            # bf16, batch 4, SAM-B and SAM-H
    python benchmarks/bench_preannotate.py                          # CPU: fp32, batch 1, 1 clip, SAM-B
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BOXES = 3
PROMPTS = {"guitar": "red circle", "piano": "blue square", "dog": "orange triangle"}
WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "red", "circle", "blue", "square", "orange", "triangle"]


def build(d: Path, sizes: list[str], device: str, smoke: bool = False) -> dict[str, Path]:
    """Random-weight checkpoints in transformers folders (initialised on the device: faster for SAM-H).
    smoke: the tests' tiny models instead (a quick check that this script runs, not a measurement)."""
    import torch

    if smoke:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
        from tiny_models import tiny_dino, tiny_hf_sam

        return {"dino": tiny_dino(d / "dino"), **{size: tiny_hf_sam(d / f"sam-{size}") for size in sizes}}
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
    from transformers.models.sam.configuration_sam import SamVisionConfig

    torch.manual_seed(0)
    out = {"dino": d / "dino"}
    with torch.device(device):
        GroundingDinoForObjectDetection(GroundingDinoConfig()).eval().save_pretrained(out["dino"])
    tok = BertTokenizerFast(vocab={w: i for i, w in enumerate(WORDS)})
    GroundingDinoProcessor(image_processor=GroundingDinoImageProcessor(), tokenizer=tok).save_pretrained(out["dino"])
    vision = {"b": SamVisionConfig(),
              "h": SamVisionConfig(hidden_size=1280, num_hidden_layers=32, num_attention_heads=16,
                                   global_attn_indexes=[7, 15, 23, 31])}
    for size in sizes:
        out[size] = d / f"sam-vit-{size}"
        with torch.device(device):
            SamModel(SamConfig(vision_config=vision[size].to_dict())).eval().save_pretrained(out[size])
        SamProcessor(image_processor=SamImageProcessor()).save_pretrained(out[size])
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return out


def make_workspace(d: Path, clips: int):
    """A workspace with `clips` sampled 5 s 1280x720 clips (synth world -> collect -> sample)."""
    from avsbench_tools.collect import CollectOptions, collect
    from avsbench_tools.sample import SampleOptions, sample
    from avsbench_tools.synth import SynthParams, synthesize
    from avsbench_tools.workspace import init_workspace

    synthesize(d / "world", SynthParams(clips=clips, seconds=5, width=1280, height=720, seed=16))
    ws, _ = init_workspace(d / "ws", str(d / "world" / "recipe.toml"))
    collect(ws, CollectOptions(local=d / "world" / "videos", any_license=True))
    sample(ws, SampleOptions(jobs=4))
    return ws


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def stage_prompts(ws) -> dict[str, str]:
    """{category: prompt} as the stage builds it from --prompt (the same text, so the same scores)."""
    from avsbench_tools.preannotate.grounded_sam import prompts_for

    clip = ws.catalog.clip(ws.catalog.clip_ids_done("sample")[0])
    return prompts_for(ws, clip, list(PROMPTS.values()))


def box_threshold(dino, frame: np.ndarray, prompts: dict[str, str], keep: int = 30) -> float:
    """A threshold that `keep` boxes of this frame pass (random weights score every query alike)."""
    from avsbench_tools.preannotate.batching import detect_frames

    scores = sorted((d.score for d in detect_frames(dino, [frame], [prompts], [0], 0.0, 0.0)[0]), reverse=True)
    return float(math.floor(scores[min(keep, len(scores)) - 1] * 1e4) / 1e4)


def run_stage(ws, dino_path: Path, sam_path: Path, args, threshold: float) -> tuple[float, int, float]:
    """(seconds of the stage after its models loaded, frames, mean boxes per frame)."""
    from avsbench_tools.preannotate import PreannotateOptions, preannotate

    opts = PreannotateOptions(dino=str(dino_path), sam=str(sam_path), prompt=list(PROMPTS.values()),
                              box_threshold=threshold, text_threshold=0.0,
                              tracker="none", device=args.device, batch_size=args.batch_size,
                              precision=args.precision, max_objects=BOXES, min_area=0.0)
    start: list[float] = []

    def progress(stage, done, total, info):
        if not start:  # the first report comes after the models are loaded
            sync(args.device)
            start.append(time.perf_counter())

    res = preannotate(ws, opts, progress=progress)
    sync(args.device)
    took = time.perf_counter() - start[0]
    frames = sum(len(ws.catalog.frames(c)) for c in ws.catalog.clip_ids_done("sample"))
    assert res.done == res.total and res.failed == 0, res.failures
    return took, frames, res.masks / max(1, frames)


def forward_only(dino, sam, frames: list[np.ndarray], args, boxes: list[list[tuple]], prompts: dict[str, str]) -> float:
    """Seconds per frame of the forward passes alone, on inputs prepared on the device beforehand."""
    import torch

    from avsbench_tools.preannotate.batching import autocast, chunks

    text = " . ".join(v.lower().strip(" .") for _, v in sorted(prompts.items())) + " ."  # as detect_frames
    dev, bs = args.device, args.batch_size
    prepared = []
    for idx in chunks(range(len(frames)), bs):
        d_in = dino.processor(images=[frames[i] for i in idx], text=[text] * len(idx), return_tensors="pt",
                              device=dev).to(dev)
        s_in = sam.processor.image_processor(images=[frames[i] for i in idx], return_tensors="pt", device=dev)
        scale = sam.processor.image_processor.size["longest_edge"] / max(frames[0].shape[:2])
        b = torch.tensor([boxes[i] for i in idx], dtype=torch.float32, device=dev) * scale
        prepared.append((d_in, s_in["pixel_values"].to(dev), b))

    def once(d_in, pix, b):
        with torch.inference_mode(), autocast(dev, args.precision):
            dino.model(**d_in)
            emb = sam.model.get_image_embeddings(pix)
            sam.model(image_embeddings=emb, input_boxes=b, multimask_output=True)

    if dev.startswith("cuda"):
        once(*prepared[0])  # warm-up (kernels, cuDNN autotuning)
        sync(dev)
    t0 = time.perf_counter()
    for p in prepared:
        once(*p)
    sync(dev)
    return (time.perf_counter() - t0) / len(frames)


def store_time(ws, frames: int, tmp: Path) -> float:
    """Seconds per frame to PNG-encode and atomically write (fsync) the masks the stage stored: the
    host-side storage cost inside the stage time."""
    from avsbench_tools.fsutil import atomic_write_bytes
    from avsbench_tools.mask_store import load_mask, mask_png

    masks = [load_mask(ws, p.relative_to(ws.root).as_posix()) for p in sorted(ws.path("masks").rglob("*.png"))]
    t0 = time.perf_counter()
    for i, m in enumerate(masks):
        atomic_write_bytes(tmp / f"{i}.png", mask_png(m))
    return (time.perf_counter() - t0) / frames


def per_frame(fn, frames: list[np.ndarray], device: str) -> float:
    if device.startswith("cuda"):
        fn(0, frames[0])  # warm-up
        sync(device)
    t0 = time.perf_counter()
    for s, f in enumerate(frames):
        fn(s, f)
    sync(device)
    return (time.perf_counter() - t0) / len(frames)


def before_and_ours(dino, sam, frames: list[np.ndarray], args, threshold: float,
                    prompts: dict[str, str]) -> tuple[float, float]:
    """Seconds per frame, 3 boxes each: the pre-#16 per-frame handle path, and ours at batch 1."""
    from avsbench_tools.preannotate.batching import Segmenter, detect_frames
    from avsbench_tools.preannotate.models import best_masks
    from avsbench_tools.preannotate.nms import bound_detections

    def old(s, f):
        dets = bound_detections(dino.detect(f, prompts, s, threshold, 0.0), max_objects=BOXES)
        sam.set_image(f)
        best_masks(sam, dets)

    def new(s, f):
        dets = bound_detections(detect_frames(dino, [f], [prompts], [s], threshold, 0.0, 1, args.precision)[0],
                                max_objects=BOXES)
        Segmenter(sam, 1, args.precision).masks({s: f}, {s: [d.box for d in dets]})

    return per_frame(old, frames, args.device), per_frame(new, frames, args.device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--precision", default=None, help="fp32 or bf16 (default: bf16 on CUDA, fp32 on the CPU)")
    ap.add_argument("--batch-size", type=int, default=None, help="frames per pass (default: 4 on CUDA, 1 on the CPU)")
    ap.add_argument("--clips", type=int, default=None, help="5 s clips (5 frames each; default: 8 on CUDA, 1 on the CPU)")
    ap.add_argument("--sam", default=None, help="SAM sizes, b and/or h (default: b,h on CUDA, b on the CPU)")
    ap.add_argument("--compare-frames", type=int, default=None,
                    help="frames for the before/ours per-frame comparison (default: 10 on CUDA, 2 on the CPU)")
    ap.add_argument("--limit-frames", type=int, default=None,
                    help="frames for the forward-only limit (default: all on CUDA, 2 on the CPU)")
    ap.add_argument("--smoke", action="store_true", help="tiny models: check that the script runs (no figures)")
    args = ap.parse_args()
    cuda = args.device.startswith("cuda")
    args.precision = args.precision or ("bf16" if cuda else "fp32")
    args.batch_size = args.batch_size or (4 if cuda else 1)
    args.clips = args.clips or (8 if cuda else 1)
    sizes = (args.sam or ("b,h" if cuda else "b")).split(",")
    n_compare = args.compare_frames or (10 if cuda else 2)
    n_limit = args.limit_frames or (10 ** 6 if cuda else 2)
    import torch
    import transformers

    from avsbench_tools.preannotate.models import load_dino, load_sam

    transformers.utils.logging.disable_progress_bar()

    name = torch.cuda.get_device_name() if cuda else f"CPU, {torch.get_num_threads()} threads"
    print(f"device {args.device} ({name}), {args.precision}, batch {args.batch_size}, 1280x720 frames, "
          f"{args.clips} clips x 5 frames, {BOXES} boxes per frame; " + (
              "SMOKE RUN: the tests' tiny models, no figures to quote" if args.smoke else
              f"grounding-dino-tiny + SAM ViT-{'/'.join(sizes).upper()} architectures (random weights)"), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        paths = build(Path(tmp) / "models", sizes, args.device, args.smoke)
        ws = make_workspace(Path(tmp), args.clips)
        frame_paths = [ws.path(f.path) for c in ws.catalog.clip_ids_done("sample") for f in ws.catalog.frames(c)]
        from PIL import Image

        frames = [np.array(Image.open(p).convert("RGB")) for p in frame_paths]
        print(f"  (models built, world sampled: {time.perf_counter() - t0:.0f} s)", flush=True)
        dino = load_dino(str(paths["dino"]), args.device)
        prompts = stage_prompts(ws)
        threshold = box_threshold(dino, frames[0], prompts)
        for size in sizes:
            sam = load_sam(str(paths[size]), args.device)
            boxes = [[(100.0 + 300 * k, 100.0, 380.0 + 300 * k, 600.0) for k in range(BOXES)] for _ in frames]
            limit = forward_only(dino, sam, frames[:n_limit], args, boxes, prompts)
            took, n, per = run_stage(ws, paths["dino"], paths[size], args, threshold)  # another SAM: another set
            stage = took / n
            print(f"SAM ViT-{size.upper()}:")
            print(f"  stage   {n / took:6.2f} frames/s ({stage * 1000:7.1f} ms/frame; {per:.2f} masks/frame)")
            if per < BOXES - 0.5:
                print(f"  WARNING: {per:.2f} masks per frame, not {BOXES}: random weights gave fewer boxes over the "
                      "threshold or empty masks; the figures are not comparable")
            print(f"  limit   {1 / limit:6.2f} frames/s ({limit * 1000:7.1f} ms/frame forward-only); "
                  f"stage / limit = {stage / limit:.2f}x")
            if size == sizes[0]:
                (Path(tmp) / "store").mkdir()
                print(f"  store   {store_time(ws, n, Path(tmp) / 'store') * 1000:7.1f} ms/frame to PNG-encode and write "
                      "(fsync) the masks, done in the stage on its storing thread")
            if size == "b":
                old, new = before_and_ours(dino, sam, frames[:n_compare], args, threshold, prompts)
                print(f"  per frame, batch 1, {args.precision}: before #16 {old * 1000:.1f} ms (fp32 processors on "
                      f"the host), ours {new * 1000:.1f} ms; before / ours = {old / new:.2f}x")
            del sam
            if cuda:
                torch.cuda.empty_cache()
            sys.stdout.flush()


if __name__ == "__main__":
    main()
