"""preannotate: mask proposals for every sampled frame, so annotators correct instead of drawing.

Backends (the registry, backends.py: a new backend is one module plus one entry there):
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
  backends.py      the backend registry (name -> selection, checks, models, settings, proposer, CLI notes);
                   `Models` (what a run loads); `check_options`
  options.py       PreannotateOptions (a leaf)
  prompts.py       a clip's text prompts (`prompts_for`)
  grounded_sam.py  the grounded-sam backend on one clip (detect, segment, track)
  motion.py        the weight-free motion backend
  track.py         key-frame trackers (optical flow, SAM 2) and id matching
  models.py        Grounding DINO, SAM, SAM 2 loaders; `check_models`
  tagger.py        CLAP per-second audio tagging
  flow.py          optical flow helpers; `decode_frames` reads a clip through media.decode
  nms.py           bounded proposals: class-aware NMS, --max-objects, --min-area
  batching.py      device-side preprocessing, batched DINO/SAM, bf16 autocast
  prefetch.py      frames read on a background thread while the models work
  sam3.py          the sam3 backend
  gdino_convert.py original Grounding DINO .pth -> transformers (converted once, cached)
"""

# The public names, imported on first use (PEP 562), so that reading the backend registry (the CLI's --help) does
# not import the backends' model code.
_HOME = {"BACKENDS": "backends", "REGISTRY": "backends", "Backend": "backends", "Models": "backends",
         "backend_named": "backends", "backend_of": "backends", "check_options": "backends",
         "SAM2_SIDE": "grounded_sam", "propose_grounded_sam": "grounded_sam", "check_models": "models",
         "propose_motion_clip": "motion", "TRACKERS": "options", "PreannotateOptions": "options",
         "PreannotateResult": "stage", "Progress": "stage", "preannotate": "stage", "settings_for": "stage",
         "ANALYSIS_SIDE": "track"}
__all__ = sorted(_HOME)


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
