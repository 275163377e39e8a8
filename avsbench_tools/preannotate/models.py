"""Grounding DINO (text -> boxes) and SAM (boxes -> masks) from local checkpoints.

Checkpoints come from a local path or a Hugging Face model id found in the local cache; nothing is
downloaded unless the user passes --allow-download. Supported:
  - Grounding DINO: Hugging Face transformers `GroundingDinoForObjectDetection` folders
    (e.g. IDEA-Research/grounding-dino-tiny), or the original repository's `.pth` files (converted once
    and cached, see gdino_convert.py).
  - SAM: transformers `SamModel` folders (e.g. facebook/sam-vit-base), or the original `.pth`
    checkpoints through the `segment-anything` package (vit_b / vit_l / vit_h).
The SAM image embedding is computed once per frame (`set_image`) and reused for all its boxes.
Every transformers checkpoint is a `ModelHandle` (checkpoints.py); what one run loads is `backends.Models`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from avsbench_tools.checkpoints import ModelHandle, checkpoint_hash, load_hf, resolve_device, resolve_spec
from avsbench_tools.errors import AvsError, UsageError, require
from avsbench_tools.masks import ObjectMask, from_dino
from avsbench_tools.preannotate.tagger import load_clap


# -- Grounding DINO ----------------------------------------------------------------------------
class Dino(ModelHandle):
    """Grounding DINO: {category: prompt} -> box-only ObjectMasks per frame."""

    def detect(self, img: np.ndarray, prompts: dict[str, str], second: int, box_threshold: float,
               text_threshold: float) -> list[ObjectMask]:
        """Boxes for the given {category: prompt} in one RGB frame (one forward pass for all prompts)."""
        return self.detect_batch([img], [prompts], [second], box_threshold, text_threshold)[0]

    def detect_batch(self, imgs: list[np.ndarray], prompts: list[dict[str, str]], seconds: list[int],
                     box_threshold: float, text_threshold: float) -> list[list[ObjectMask]]:
        """Several frames in one forward pass (frames with the same prompt set are batched together)."""
        torch = require("torch", "models")
        out: list[list[ObjectMask]] = [[] for _ in imgs]
        groups: dict[tuple, list[int]] = {}
        for i, p in enumerate(prompts):
            if p:
                groups.setdefault(tuple(sorted(p.items())), []).append(i)
        for key, idx in groups.items():
            pr = dict(key)
            text = " . ".join(v.lower().strip(" .") for v in pr.values()) + " ."
            inputs = self.processor(images=[imgs[i] for i in idx], text=[text] * len(idx),
                                    return_tensors="pt").to(self.device)
            with torch.inference_mode():
                res_all = self.model(**inputs)
            results = self.processor.post_process_grounded_object_detection(
                res_all, inputs["input_ids"], threshold=box_threshold, text_threshold=text_threshold,
                target_sizes=[imgs[i].shape[:2] for i in idx])
            by_prompt = {v.lower().strip(" ."): c for c, v in pr.items()}
            for i, res in zip(idx, results, strict=True):
                out[i] = self._objects(res, imgs[i].shape[:2], by_prompt, seconds[i])
        return out

    @staticmethod
    def _objects(res: dict, shape, by_prompt: dict[str, str], second: int) -> list[ObjectMask]:
        labels = res["text_labels"] if "text_labels" in res else res["labels"]

        def category_of(phrase: str) -> str | None:
            return by_prompt.get(phrase) or next(
                (c for p, c in by_prompt.items() if phrase and (phrase in p or p in phrase)), None)

        return from_dino(second, res["boxes"].cpu().numpy(), res["scores"].cpu().numpy(), labels, shape, category_of)


def load_dino(spec: str, device: str = "cpu", allow_download: bool = False) -> Dino:
    """A transformers Grounding DINO folder or cached model id, or an original Grounding DINO checkpoint file
    (groundingdino_swint_ogc.pth, groundingdino_swinb_cogcoor.pth), converted once and cached
    (gdino_convert.py); the recorded identity is then the file and its hash."""
    device = resolve_device(device)
    file = Path(os.path.expanduser(spec))
    if file.is_file():
        from avsbench_tools.preannotate.gdino_convert import converted_folder

        folder, sha = converted_folder(file, allow_download)
        return load_hf(str(folder), "--dino", "Grounding DINO", ("grounding-dino",), "GroundingDinoForObjectDetection",
                       "AutoProcessor", device, allow_download, Dino, name=spec, sha=sha)
    return load_hf(spec, "--dino", "Grounding DINO", ("grounding-dino",), "GroundingDinoForObjectDetection",
                   "AutoProcessor", device, allow_download, Dino)


# -- SAM ---------------------------------------------------------------------------------------
class Sam:
    """set_image(img) once per frame, then predict(boxes) any number of times."""

    name: str
    sha: str
    device: str
    n_embeddings: int = 0

    def set_image(self, img: np.ndarray) -> None:
        raise NotImplementedError

    def predict(self, boxes: list[tuple]) -> tuple[np.ndarray, np.ndarray]:
        """-> (bool masks [N, K, H, W], iou scores [N, K]) for N boxes (K candidate masks each)."""
        raise NotImplementedError


@dataclass(eq=False)
class HFSam(ModelHandle, Sam):
    """transformers SamModel + SamProcessor."""

    n_embeddings: int = 0
    _img: np.ndarray | None = field(default=None, init=False, repr=False)
    _emb: object = field(default=None, init=False, repr=False)
    _sizes: tuple | None = field(default=None, init=False, repr=False)

    def set_image(self, img: np.ndarray) -> None:
        torch = require("torch", "models")
        inputs = self.processor(images=img, return_tensors="pt")
        with torch.inference_mode():
            self._emb = self.model.get_image_embeddings(inputs["pixel_values"].to(self.device))
        self._img = img
        self._sizes = (inputs["original_sizes"], inputs["reshaped_input_sizes"])
        self.n_embeddings += 1

    def predict(self, boxes):
        torch = require("torch", "models")
        if not boxes:
            h, w = self._img.shape[:2]
            return np.zeros((0, 1, h, w), bool), np.zeros((0, 1))
        bi = self.processor(images=self._img, input_boxes=[[list(map(float, b)) for b in boxes]], return_tensors="pt")
        with torch.inference_mode():
            out = self.model(image_embeddings=self._emb, input_boxes=bi["input_boxes"].to(self._emb.dtype).to(self.device),
                             multimask_output=True)
        masks = self.processor.image_processor.post_process_masks(out.pred_masks.cpu(), *self._sizes)[0]
        return masks.numpy().astype(bool), out.iou_scores[0].float().cpu().numpy()


class OrigSam(Sam):
    """The segment-anything package's SamPredictor (original .pth checkpoints)."""

    def __init__(self, sam_model, device: str, name: str, sha: str):
        from segment_anything import SamPredictor

        self.predictor = SamPredictor(sam_model)
        self.device, self.name, self.sha = device, name, sha

    def set_image(self, img: np.ndarray) -> None:
        self.predictor.set_image(img)
        self._shape = img.shape[:2]
        self.n_embeddings += 1

    def predict(self, boxes):
        torch = require("torch", "models")
        if not boxes:
            return np.zeros((0, 1, *self._shape), bool), np.zeros((0, 1))
        b = torch.as_tensor(np.asarray(boxes, dtype=np.float32), device=self.predictor.device)
        tb = self.predictor.transform.apply_boxes_torch(b, self._shape)
        with torch.inference_mode():
            masks, scores, _ = self.predictor.predict_torch(None, None, boxes=tb, multimask_output=True)
        return masks.cpu().numpy().astype(bool), scores.float().cpu().numpy()


SAM_TYPES = ("vit_b", "vit_l", "vit_h")


def load_sam(spec: str, device: str = "cpu", allow_download: bool = False, sam_type: str | None = None) -> Sam:
    """A transformers SAM folder or cached id, or an original segment-anything .pth (vit_b/l/h)."""
    device = resolve_device(device)
    path = resolve_spec(spec, allow_download, "--sam")
    if path.is_file():
        torch = require("torch", "models")
        sa = require("segment_anything", "models")
        kind = sam_type or next((t for t in SAM_TYPES if t in path.name), None)
        if kind not in SAM_TYPES:
            raise UsageError(f"--sam {spec}: cannot tell vit_b/vit_l/vit_h from the file name (pass --sam-type)")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001
            raise AvsError(f"--sam {spec}: not a readable checkpoint ({type(exc).__name__})") from exc
        model = sa.sam_model_registry[kind]()
        try:
            model.load_state_dict(state, strict=True)
        except (RuntimeError, TypeError, AttributeError) as exc:
            raise AvsError(f"--sam {spec}: not a segment-anything {kind} checkpoint "
                           f"({str(exc).splitlines()[0][:160]})") from exc
        return OrigSam(model.eval().to(device), device, spec, checkpoint_hash(path))
    return load_hf(spec, "--sam", "SAM", ("sam",), "SamModel", "SamProcessor", device, allow_download, HFSam)


def best_masks(sam: Sam, dets: list[ObjectMask]) -> list[ObjectMask]:
    """SAM masks for box detections on the image last given to sam.set_image (best of K per box)."""
    from avsbench_tools.masks import from_sam

    if not dets:
        return []
    masks, scores = sam.predict([d.box for d in dets])
    return [from_sam(d, masks[i], scores[i]) for i, d in enumerate(dets)]


# -- SAM 2 video -------------------------------------------------------------------------------
def load_sam2(spec: str, device: str = "cpu", allow_download: bool = False) -> ModelHandle:
    """transformers Sam2VideoModel + Sam2VideoProcessor (e.g. facebook/sam2.1-hiera-tiny). A GPU is
    strongly recommended: on a CPU it runs, at several seconds per frame for the real sizes."""
    return load_hf(spec, "--sam2", "SAM 2 video", ("sam2_video", "sam2"), "Sam2VideoModel",
                   "Sam2VideoProcessor", device, allow_download)


# -- `models check` --------------------------------------------------------------------------------
def check_models(dino: str | None, sam: str | None, device: str = "cpu", sam_type: str | None = None,
                 allow_download: bool = False, clap: str | None = None, sam3: str | None = None) -> list[dict]:
    """[{role, spec, loads, device, detail}] for each configured checkpoint (never raises for a bad one);
    clap and sam3 are listed only when configured."""
    from avsbench_tools.preannotate.sam3 import load_sam3

    out = []
    for role, spec, loader in (("dino", dino, lambda: load_dino(dino, device, allow_download)),
                               ("sam", sam, lambda: load_sam(sam, device, allow_download, sam_type)),
                               ("sam3", sam3, lambda: load_sam3(sam3, device, allow_download)),
                               ("clap", clap, lambda: load_clap(clap, device, allow_download))):
        if not spec and role in ("clap", "sam3"):
            continue
        if not spec:
            then = "the sam3 backend" if sam3 else "the weight-free motion backend"
            out.append({"role": role, "spec": None, "loads": False, "device": None,
                        "detail": f"not configured ({then} will be used)"})
            continue
        try:
            m = loader()
            out.append({"role": role, "spec": spec, "loads": True, "device": m.device,
                        "detail": f"sha256 {m.sha} ({type(getattr(m, 'model', None) or m).__name__})"})
        except AvsError as exc:
            out.append({"role": role, "spec": spec, "loads": False, "device": None, "detail": str(exc)})
    return out
