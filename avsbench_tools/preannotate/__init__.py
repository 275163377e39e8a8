"""preannotate: mask proposals for every sampled frame, so annotators correct instead of drawing.

Backends:
  grounded-sam  Grounding DINO boxes from the clip's text prompts -> SAM masks (one image
                embedding per frame, reused for all its boxes) -> tracking from a key frame.
  motion        weight-free: moving regions from dense optical flow, refined with GrabCut, linked
                across seconds by the flow tracker (one id per object).
  sam3          one model (transformers Sam3VideoModel): text prompts -> masks with object ids
                across the clip.
All are audio-aware: each object and second records whether it is believed to sound, from the
per-second activity that `sample` measured (silent seconds get no sounding-object mask).
Every proposal is a catalog mask version (kind 'proposal') with backend, model ids, checkpoint
hashes, thresholds and tracker. The same settings skip finished clips; new settings add a version.

Modules, by concern:
  stage.py         the stage entry `preannotate(ws, opts, progress)`, the loop, audio gating, settings
  options.py       PreannotateOptions and the check that they can take effect together
  grounded_sam.py  the grounded-sam backend on one clip (detect, segment, track)
  motion.py        the weight-free motion backend
  track.py         key-frame trackers (optical flow, SAM 2) and id matching
  models.py        Grounding DINO, SAM, SAM 2 loaders; `Models` (what a run loads); `check_models`
  tagger.py        CLAP per-second audio tagging
  flow.py          optical flow helpers; `decode_frames` reads a clip through media.decode
  nms.py           bounded proposals: class-aware NMS, --max-objects, --min-area
  batching.py      device-side preprocessing, batched DINO/SAM, bf16 autocast
  prefetch.py      frames read on a background thread while the models work
  sam3.py          the sam3 backend
  gdino_convert.py original Grounding DINO .pth -> transformers (converted once, cached)
"""

from avsbench_tools.preannotate.grounded_sam import SAM2_SIDE, propose_grounded_sam
from avsbench_tools.preannotate.models import Models, check_models
from avsbench_tools.preannotate.motion import propose_motion_clip
from avsbench_tools.preannotate.options import (
           BACKENDS,
           TRACKERS,
           PreannotateOptions,
           backend_of,
           check_options,
)
from avsbench_tools.preannotate.stage import PreannotateResult, Progress, preannotate, settings_for
from avsbench_tools.preannotate.track import ANALYSIS_SIDE

__all__ = ["ANALYSIS_SIDE", "BACKENDS", "SAM2_SIDE", "TRACKERS", "Models", "PreannotateOptions",
           "PreannotateResult", "Progress", "backend_of", "check_models", "check_options", "preannotate", "propose_grounded_sam",
           "propose_motion_clip", "settings_for"]
