"""Grounding DINO and SAM at GPU speed: preprocessing on the model's device, bf16 autocast, several
frames per forward pass, SAM's masks chosen and upscaled on the device.

- `detect_frames`: Grounding DINO boxes for frames, `batch_size` frames (with the same prompts) per
  forward pass. The processor resizes and normalises on the model's device (transformers' torchvision
  processors take `device=`); only the logits and boxes come back to the host for thresholding.
- `Segmenter`: SAM for one clip. Image embeddings for `batch_size` frames per encoder pass, kept for the
  clip (a frame is encoded once however often it is prompted); box prompts of several frames per
  mask-decoder pass; the best of SAM's candidate masks per box is picked, upscaled to the frame
  (the SamProcessor's post_process_masks steps: bilinear to the padded input, crop, bilinear to the
  frame, > 0) and thresholded on the device; only the final bool masks come back to the host.

Same results as the processors' CPU path within float tolerance (tests/preannotate/test_speed_paths.py).
Handles that are not transformers models (the segment-anything predictor, a stand-in detector) go
through their own per-frame `detect_batch` / `set_image` + `predict`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import numpy as np

from avsbench_tools.errors import require
from avsbench_tools.masks import ObjectMask

UPSCALE_CHUNK = 16  # masks upscaled at once (16 x 1024 x 1024 float32 = 64 MiB)


def autocast(device: str, precision: str):
    """bf16 autocast on the device's type for precision "bf16"; nothing for "fp32"."""
    if precision != "bf16":
        return contextlib.nullcontext()
    torch = require("torch", "models")
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)


def chunks(seq: Sequence, n: int) -> Iterator[list]:
    """seq in consecutive pieces of at most n (n < 1 counts as 1)."""
    n = max(1, n)
    for k in range(0, len(seq), n):
        yield list(seq[k:k + n])


def _is_hf(handle) -> bool:
    return hasattr(handle, "model") and hasattr(handle, "processor")


def detect_frames(dino, imgs: list[np.ndarray], prompts: list[dict[str, str]], seconds: list[int],
                  box_threshold: float, text_threshold: float, batch_size: int = 1,
                  precision: str = "fp32") -> list[list[ObjectMask]]:
    """Box-only ObjectMasks per frame for each frame's {category: prompt} (none: no detections)."""
    if not _is_hf(dino):  # a detector with its own batching
        out: list[list[ObjectMask]] = []
        for idx in chunks(range(len(imgs)), batch_size):
            out += dino.detect_batch([imgs[i] for i in idx], [prompts[i] for i in idx], [seconds[i] for i in idx],
                                     box_threshold, text_threshold)
        return out
    torch = require("torch", "models")
    out = [[] for _ in imgs]
    groups: dict[tuple, list[int]] = {}
    for i, p in enumerate(prompts):
        if p:
            groups.setdefault(tuple(sorted(p.items())), []).append(i)
    for key, members in groups.items():
        pr = dict(key)
        text = " . ".join(v.lower().strip(" .") for v in pr.values()) + " ."
        by_prompt = {v.lower().strip(" ."): c for c, v in pr.items()}
        for idx in chunks(members, batch_size):
            inputs = dino.processor(images=[imgs[i] for i in idx], text=[text] * len(idx), return_tensors="pt",
                                    device=dino.device).to(dino.device)
            with torch.inference_mode(), autocast(dino.device, precision):
                res = dino.model(**inputs)
            # thresholds, phrases and boxes on the host: one copy of [B, queries, 256] + [B, queries, 4]
            res.logits, res.pred_boxes = res.logits.float().cpu(), res.pred_boxes.float().cpu()
            results = dino.processor.post_process_grounded_object_detection(
                res, inputs["input_ids"].cpu(), threshold=box_threshold, text_threshold=text_threshold,
                target_sizes=[imgs[i].shape[:2] for i in idx])
            for i, r in zip(idx, results, strict=True):
                out[i] = dino._objects(r, imgs[i].shape[:2], by_prompt, seconds[i])
    return out


class Segmenter:
    """SAM on one clip's frames: `embed` computes image embeddings (batched, once per frame), `masks`
    returns SAM's best mask per box as bool arrays at the frame's size."""

    def __init__(self, sam, batch_size: int = 1, precision: str = "fp32"):
        self.sam, self.batch_size, self.precision = sam, max(1, batch_size), precision
        self.fast = _is_hf(sam)
        self._emb: dict[int, object] = {}  # second -> image embedding [C, h, w] on the device
        self._sizes: dict[int, tuple[tuple[int, int], tuple[int, int]]] = {}  # second -> (frame, resized) H, W
        self._held: int | None = None  # per-frame handles: the second whose embedding the handle holds

    def _count(self, n: int) -> None:
        self.sam.n_embeddings = getattr(self.sam, "n_embeddings", 0) + n

    def embed(self, imgs: dict[int, np.ndarray]) -> None:
        """Image embeddings for the frames not embedded yet, batch_size frames per encoder pass."""
        if not self.fast:
            return  # a per-frame handle embeds when prompted
        torch = require("torch", "models")
        todo = [s for s in sorted(imgs) if s not in self._emb]
        for chunk in chunks(todo, self.batch_size):
            p = self.sam.processor.image_processor(images=[imgs[s] for s in chunk], return_tensors="pt",
                                                   device=self.sam.device)
            with torch.inference_mode(), autocast(self.sam.device, self.precision):
                emb = self.sam.model.get_image_embeddings(p["pixel_values"].to(self.sam.device))
            for s, e, orig, resized in zip(chunk, emb, p["original_sizes"].tolist(),
                                           p["reshaped_input_sizes"].tolist(), strict=True):
                self._emb[s], self._sizes[s] = e, (tuple(orig), tuple(resized))
            self._count(len(chunk))

    def masks(self, imgs: dict[int, np.ndarray], boxes: dict[int, list[tuple]]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """{second: (bool masks [N, H, W], iou scores [N])}: SAM's best candidate for each of the N boxes
        (x0, y0, x1, y1 in frame pixels) given for that second."""
        out = {s: (np.zeros((0, *imgs[s].shape[:2]), bool), np.zeros(0, np.float32)) for s, b in boxes.items() if not b}
        todo = [s for s in sorted(boxes) if boxes[s]]
        if not self.fast:
            for s in todo:
                if self._held != s:
                    self.sam.set_image(imgs[s])
                    self._held = s
                m, sc = self.sam.predict(boxes[s])
                k = np.argmax(sc, axis=1)
                out[s] = (m[np.arange(len(k)), k], np.asarray(sc, np.float32)[np.arange(len(k)), k])
            return out
        torch = require("torch", "models")
        self.embed({s: imgs[s] for s in todo})
        for chunk in chunks(todo, self.batch_size):
            n = max(len(boxes[s]) for s in chunk)
            prompts = np.zeros((len(chunk), n, 4), np.float64)
            for j, s in enumerate(chunk):
                (h, w), (rh, rw) = self._sizes[s]
                b = np.asarray(boxes[s], np.float64).reshape(-1, 4) * [rw / w, rh / h, rw / w, rh / h]
                prompts[j] = np.concatenate([b, np.repeat(b[-1:], n - len(b), 0)])  # padding: ignored rows
            emb = torch.stack([self._emb[s] for s in chunk])
            with torch.inference_mode(), autocast(self.sam.device, self.precision):
                res = self.sam.model(image_embeddings=emb, input_boxes=torch.from_numpy(prompts).float().to(emb.device),
                                     multimask_output=True)
            with torch.inference_mode():
                for j, s in enumerate(chunk):
                    out[s] = self._best_upscaled(res.pred_masks[j, :len(boxes[s])], res.iou_scores[j, :len(boxes[s])], s)
        return out

    def _best_upscaled(self, pred, iou, second: int) -> tuple[np.ndarray, np.ndarray]:
        """pred [N, K, h, w] low-res logits, iou [N, K] -> the best candidate per box as bool [N, H, W]."""
        torch = require("torch", "models")
        F = torch.nn.functional
        scores = iou.float()
        best = scores.argmax(-1)
        rows = torch.arange(len(best), device=best.device)
        logits = pred[rows, best][:, None].float()
        pad = self.sam.processor.image_processor.pad_size
        (h, w), (rh, rw) = self._sizes[second]
        masks = []
        for part in logits.split(UPSCALE_CHUNK):
            up = F.interpolate(part, (pad["height"], pad["width"]), mode="bilinear", align_corners=False)
            up = F.interpolate(up[..., :rh, :rw], (h, w), mode="bilinear", align_corners=False)
            masks.append((up[:, 0] > 0).cpu())
        return torch.cat(masks).numpy(), scores[rows, best].cpu().numpy()
