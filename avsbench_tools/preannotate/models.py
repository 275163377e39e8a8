"""Grounding DINO (text -> boxes) and SAM (boxes -> masks) from local checkpoints.

Checkpoints come from a local path or a Hugging Face model id found in the local cache; nothing is
downloaded unless the user passes --allow-download. Supported:
  - Grounding DINO: Hugging Face transformers `GroundingDinoForObjectDetection` folders
    (e.g. IDEA-Research/grounding-dino-tiny).
  - SAM: transformers `SamModel` folders (e.g. facebook/sam-vit-base), or the original `.pth`
    checkpoints through the `segment-anything` package (vit_b / vit_l / vit_h).
The SAM image embedding is computed once per frame (`set_image`) and reused for all its boxes.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avsbench_tools.checkpoints import checkpoint_hash, resolve_device
from avsbench_tools.errors import AvsError, UsageError, require
from avsbench_tools.masks import ObjectMask, from_dino


def _resolve(spec: str, allow_download: bool, what: str) -> Path:
    """A local path, or a model id looked up in the local Hugging Face cache."""
    p = Path(os.path.expanduser(spec))
    if p.exists():
        return p
    if "/" in spec and not spec.startswith((".", "/")):
        hub = require("huggingface_hub", "models")
        try:
            return Path(hub.snapshot_download(spec, local_files_only=not allow_download))
        except Exception as exc:  # noqa: BLE001 - any lookup failure is reported in one line
            hint = "" if allow_download else " (not in the local Hugging Face cache; --allow-download fetches it)"
            raise UsageError(f"{what} {spec}: not found{hint}") from exc
    raise UsageError(f"{what} {spec}: no such file or folder")


def _model_type(folder: Path) -> str | None:
    cfg = folder / "config.json"
    if not cfg.is_file():
        return None
    try:
        return json.loads(cfg.read_text()).get("model_type")
    except (OSError, json.JSONDecodeError):
        return "unreadable"


def load_hf(spec: str, flag: str, what: str, model_types: tuple[str, ...], model_cls: str, processor_cls: str,
            device: str, allow_download: bool):
    """-> (model in eval mode on device, processor, sha) of a transformers checkpoint folder or cached id."""
    transformers = require("transformers", "models")
    path = _resolve(spec, allow_download, flag)
    mt = _model_type(path) if path.is_dir() else None
    if mt not in model_types:
        raise AvsError(f"{flag} {spec}: not a {what} checkpoint (model_type {mt!r})")
    try:
        proc = getattr(transformers, processor_cls).from_pretrained(path)
        model = getattr(transformers, model_cls).from_pretrained(path).eval().to(device)
    except Exception as exc:  # noqa: BLE001 - any load failure is reported in one line
        raise AvsError(f"{flag} {spec}: cannot load ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from exc
    return model, proc, checkpoint_hash(path)


# -- Grounding DINO ----------------------------------------------------------------------------
@dataclass
class Dino:
    model: object
    processor: object
    device: str
    name: str
    sha: str

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
    device = resolve_device(device)
    if Path(os.path.expanduser(spec)).is_file():
        raise UsageError(f"--dino {spec}: expected a transformers Grounding DINO folder, got a file "
                         "(the original groundingdino .pth format is not supported, see README)")
    model, proc, sha = load_hf(spec, "--dino", "Grounding DINO", ("grounding-dino",), "GroundingDinoForObjectDetection",
                               "AutoProcessor", device, allow_download)
    return Dino(model, proc, device, spec, sha)


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


class HFSam(Sam):
    def __init__(self, model, processor, device: str, name: str, sha: str):
        self.model, self.processor, self.device, self.name, self.sha = model, processor, device, name, sha
        self._img = None
        self._emb = None
        self._sizes = None

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
    device = resolve_device(device)
    path = _resolve(spec, allow_download, "--sam")
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
    model, proc, sha = load_hf(spec, "--sam", "SAM", ("sam",), "SamModel", "SamProcessor", device, allow_download)
    return HFSam(model, proc, device, spec, sha)


def best_masks(sam: Sam, dets: list[ObjectMask]) -> list[ObjectMask]:
    """SAM masks for box detections on the image last given to sam.set_image (best of K per box)."""
    from avsbench_tools.masks import from_sam

    if not dets:
        return []
    masks, scores = sam.predict([d.box for d in dets])
    return [from_sam(d, masks[i], scores[i]) for i, d in enumerate(dets)]


# -- SAM 2 video -------------------------------------------------------------------------------
@dataclass
class Sam2Video:
    model: object
    processor: object
    device: str
    name: str
    sha: str


def load_sam2(spec: str, device: str = "cpu", allow_download: bool = False) -> Sam2Video:
    """transformers Sam2VideoModel + Sam2VideoProcessor (e.g. facebook/sam2.1-hiera-tiny). A GPU is
    strongly recommended: on a CPU it runs, at several seconds per frame for the real sizes."""
    device = resolve_device(device)
    model, proc, sha = load_hf(spec, "--sam2", "SAM 2 video", ("sam2_video", "sam2"), "Sam2VideoModel",
                               "Sam2VideoProcessor", device, allow_download)
    return Sam2Video(model, proc, device, spec, sha)
