"""The sam3 backend: one model (transformers `Sam3VideoModel`, e.g. facebook/sam3) detects every instance of
the clip's category prompts (text) and tracks them with object ids across the clip, detection and tracking
together; no Grounding DINO, SAM or separate tracker.

The model is given the clip's frames between the first and the last sampled frame at about SAM3_FPS frames a
second, the sampled frames always among them (decoded through media.decode, so frame k is the frame
`sample` stored as frame_index k), fitted to SAM3_SIDE pixels (the model works at 1008). Its masks at the
sampled frames become ObjectMasks at the sampled frame's size: the model's object id is mapped onto fids
0, 1, ... in order of first appearance (the same object keeps its fid in every second), the prompt that
found it gives the category, and its detection score the score. --max-objects keeps the most confident
objects per frame and --min-area drops specks, as for grounded-sam. Audio gating happens in the stage.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from avsbench_tools.checkpoints import ModelHandle, load_hf
from avsbench_tools.errors import require
from avsbench_tools.masks import ObjectMask, box_of
from avsbench_tools.preannotate.flow import resize_mask

if TYPE_CHECKING:
    from avsbench_tools.catalog import Clip
    from avsbench_tools.preannotate.options import PreannotateOptions
    from avsbench_tools.workspace import Workspace

SAM3_FPS = 5.0  # frames per second given to the model (tracking through motion needs more than the 1 fps sampled)
SAM3_SIDE = 1008  # frames are decoded to fit this longer side (the model's input size)


class Sam3(ModelHandle):
    """transformers Sam3VideoModel + Sam3VideoProcessor: text prompts -> masks with object ids per frame."""

    precision: str = "fp32"

    def track(self, frames: list[np.ndarray], prompts: list[str]) -> list[dict[int, tuple[np.ndarray, float, str]]]:
        """Per given frame: {object id: (bool mask at the frame's size, detection score, prompt that found it)}."""
        torch = require("torch", "models")
        dtype = torch.bfloat16 if (self.precision == "bf16" and str(self.device).startswith("cuda")) else torch.float32
        if next(self.model.parameters()).dtype != dtype:
            self.model.to(dtype)
        sess = self.processor.init_video_session(video=frames, inference_device=self.device,
                                                 processing_device=self.device, video_storage_device="cpu", dtype=dtype)
        self.processor.add_text_prompt(sess, prompts)
        out: list[dict] = [{} for _ in frames]
        with torch.inference_mode():
            for mo in self.model.propagate_in_video_iterator(inference_session=sess):
                r = self.processor.postprocess_outputs(sess, mo)
                prompt_of = {int(o): p for p, ids in r["prompt_to_obj_ids"].items() for o in ids}
                masks = r["masks"].cpu().numpy()
                for i, oid in enumerate(r["object_ids"].tolist()):
                    out[mo.frame_idx][int(oid)] = (masks[i].astype(bool), float(r["scores"][i]), prompt_of.get(int(oid), ""))
        return out


def load_sam3(spec: str, device: str = "cpu", allow_download: bool = False, precision: str = "fp32") -> Sam3:
    """A transformers SAM 3 video folder or cached id (e.g. facebook/sam3); any other checkpoint type is refused
    in one line (`not a SAM 3 video checkpoint (model_type 'sam')`)."""
    handle = load_hf(spec, "--sam3", "SAM 3 video", ("sam3_video",), "Sam3VideoModel", "Sam3VideoProcessor", device,
                     allow_download, Sam3)
    handle.precision = precision
    return handle


def sam3_settings(opts: PreannotateOptions, sam3: Sam3) -> dict:
    """What identifies this backend's proposals (the mask set's settings)."""
    return {"sam3": {"id": sam3.name, "sha256": sam3.sha}, "sam3_fps": SAM3_FPS, "sam3_side": SAM3_SIDE,
            "max_objects": opts.max_objects, "min_area": opts.min_area, "precision": opts.precision}


def frame_plan(sampled: dict[int, int], fps: float, rate: float | None = None) -> list[int]:
    """The decoded frame indices given to the model: every sampled frame, and between the first and the last
    sampled frame one frame every fps/rate frames (rate: SAM3_FPS)."""
    lo, hi = min(sampled.values()), max(sampled.values())
    step = max(1, int(round(fps / (rate or SAM3_FPS))))
    return sorted(set(range(lo, hi + 1, step)) | set(sampled.values()))


def decode_plan(path, plan: list[int], max_side: int = SAM3_SIDE) -> list[np.ndarray]:
    """The planned frames of a clip as RGB (display orientation, fitted to max_side), in plan order."""
    from avsbench_tools.media.decode import open_video

    keep = set(plan)
    with open_video(path) as v:
        got = {f.index: f.image for f in v.frames(0, max(plan) + 1, max_side=max_side, keep=keep) if f.index in keep}
    missing = [k for k in plan if k not in got]
    if missing:
        raise ValueError(f"frame {missing[0]} is past the end of the clip ({len(got)} of {len(plan)} frames decoded)")
    return [got[k] for k in plan]


def propose_sam3(ws: Workspace, clip: Clip, sam3: Sam3, opts: PreannotateOptions, frames_info: list) -> list[ObjectMask]:
    """Object masks with stable fids for every sampled frame of a clip (frames_info: its catalog Frame records)."""
    from avsbench_tools.media.decode import open_video
    from avsbench_tools.preannotate.prompts import prompts_for

    prompts = prompts_for(ws, clip, opts.prompt)  # {category: text}
    category_of = {p: c for c, p in prompts.items()}
    sampled = {f.second: f.frame_index for f in frames_info}
    path = ws.path(clip.path)
    with open_video(path) as v:
        fps = v.fps
    plan = frame_plan(sampled, fps)
    tracked = sam3.track(decode_plan(path, plan), list(dict.fromkeys(prompts.values())))
    at = {k: i for i, k in enumerate(plan)}
    full = (frames_info[0].height, frames_info[0].width)
    min_px = opts.min_area * full[0] * full[1]
    fid_of: dict[int, int] = {}
    out: list[ObjectMask] = []
    for sec in sorted(sampled):
        found = sorted(tracked[at[sampled[sec]]].items(), key=lambda t: (-t[1][1], t[0]))
        kept = 0
        for oid, (m, score, prompt) in found:
            mask = resize_mask(m, full)
            if mask.sum() < max(1.0, min_px) or kept >= opts.max_objects:
                continue
            kept += 1
            seen = oid in fid_of
            fid = fid_of.setdefault(oid, len(fid_of))
            out.append(ObjectMask(sec, fid, category_of.get(prompt), mask, box_of(mask), score, tracked=seen,
                                  evidence={"backend": "sam3", "sam3_object_id": oid, "phrase": prompt,
                                            "frames_given": len(plan)}))
    return sorted(out, key=lambda o: (o.second, o.fid))
