"""The registry of pre-annotation backends: name -> what selects it, the options it needs, the models it loads,
what identifies its proposals (settings), its proposer, what the loader thread reads ahead, and its CLI help.

The stage, the Ray engine, the option check and the CLI read a backend only through its `Backend` entry, so a
new backend is one module (its proposer, settings and model loaders) plus one entry in REGISTRY. Entries
are tried in REGISTRY order when --backend is not given: the first whose `selects(opts)` holds is chosen
(the last entry, motion, needs no weights and always holds). The backend modules are imported inside the
entries' functions, so reading the registry (the CLI's help, the option check) loads no model code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from avsbench_tools.errors import UsageError
from avsbench_tools.preannotate.options import PRECISIONS, TRACKERS, PreannotateOptions

if TYPE_CHECKING:
    from avsbench_tools.catalog import Clip
    from avsbench_tools.masks import ObjectMask
    from avsbench_tools.preannotate.nms import CapStats
    from avsbench_tools.workspace import Workspace

# propose(ws, clip, frames, models, opts, heard, media, cap) -> the clip's ObjectMasks
Proposer = Callable[["Workspace", "Clip", list, "Models | None", PreannotateOptions, "list[set[str]] | None", object,
                     "CapStats | None"], "list[ObjectMask]"]


@dataclass(frozen=True)
class Backend:
    """One pre-annotation backend (see the module docstring)."""

    name: str
    summary: str  # one line for --help and the docs
    default_when: str  # how it is chosen without --backend, for --backend's help ("" for the fallback)
    selects: Callable[[PreannotateOptions], bool]  # chosen without --backend when this holds
    requires: Callable[[PreannotateOptions], None]  # one-line UsageError for a missing checkpoint
    settings: Callable[[PreannotateOptions, Models | None], dict]  # what identifies its proposals
    propose: Proposer
    load: Callable[[PreannotateOptions], dict] | None = None  # {Models attribute: model}; None: weight-free
    reads_video: Callable[[str], bool] = lambda tracker: True  # (tracker) -> whether it reads the clip file
    prefetch: Callable | None = None  # (ws, clip, frames, opts) -> media read ahead on the loader thread
    bf16_needs_cuda: bool = False  # --precision bf16 is autocast, refused on a CPU
    names_classes: bool = True  # False: its objects carry the clip's category, not a class it recognised
    notes: Callable[[PreannotateOptions, Callable[[str], bool]], list[str]] = lambda opts, given: []  # CLI notes


class Models:
    """The checkpoints one preannotate run needs, loaded once: those of its backend (Grounding DINO, SAM and
    SAM 2 for grounded-sam; SAM 3 for sam3) and CLAP for --audio-tagger clap. Unused roles are None."""

    dino = sam = sam2 = sam3 = clap = None

    def __init__(self, opts: PreannotateOptions):
        entry = backend_named(backend_of(opts))
        for role, model in (entry.load(opts) if entry.load is not None else {}).items():
            setattr(self, role, model)
        if opts.audio_tagger == "clap":
            from avsbench_tools.preannotate.tagger import load_clap

            self.clap = load_clap(opts.clap, opts.device, opts.allow_download)


def load_models(opts: PreannotateOptions) -> Models | None:
    """The run's models, or None for a weight-free backend without an audio tagger."""
    return Models(opts) if (backend_named(backend_of(opts)).load is not None or opts.audio_tagger) else None


# -- grounded-sam ------------------------------------------------------------------------------
def _gs_requires(opts: PreannotateOptions) -> None:
    if not (opts.dino and opts.sam):
        raise UsageError("--backend grounded-sam needs --dino and --sam (local checkpoints)")
    if opts.tracker == "sam2" and not opts.sam2:
        raise UsageError("--tracker sam2 needs --sam2 (a transformers Sam2VideoModel checkpoint)")


def _gs_load(opts: PreannotateOptions) -> dict:
    from avsbench_tools.preannotate.models import load_dino, load_sam, load_sam2

    return {"dino": load_dino(opts.dino, opts.device, opts.allow_download) if opts.dino else None,
            "sam": load_sam(opts.sam, opts.device, opts.allow_download, opts.sam_type) if opts.sam else None,
            "sam2": load_sam2(opts.sam2, opts.device, opts.allow_download) if (
                opts.tracker == "sam2" and opts.dino) else None}


def _gs_settings(opts: PreannotateOptions, models: Models) -> dict:
    s = {"box_threshold": opts.box_threshold, "text_threshold": opts.text_threshold,
         "nms_iou": opts.nms_iou, "max_objects": opts.max_objects, "min_area": opts.min_area,
         "precision": opts.precision,
         "dino": {"id": models.dino.name, "sha256": models.dino.sha},
         "sam": {"id": models.sam.name, "sha256": models.sam.sha}, "tracker": opts.tracker,
         "redetect_every": opts.redetect_every, "key_second": opts.key_second}
    if models.sam2 is not None:
        s["sam2"] = {"id": models.sam2.name, "sha256": models.sam2.sha}
    return s


def _gs_propose(ws, clip, frames, models, opts, heard, media, cap):
    from avsbench_tools.preannotate.grounded_sam import propose_grounded_sam

    return propose_grounded_sam(ws, clip, models, opts, frames, heard, media, cap)


def _gs_prefetch(ws, clip, frames, opts):
    from avsbench_tools.preannotate.grounded_sam import load_media

    return load_media(ws, clip, frames, opts.tracker)


def _gs_notes(opts: PreannotateOptions, given: Callable[[str], bool]) -> list[str]:
    return ["--sam2 has no effect without --tracker sam2"] if (opts.tracker != "sam2" and given("sam2")) else []


# -- sam3 --------------------------------------------------------------------------------------
SAM3_IGNORES = ("dino", "sam", "sam_type", "box_threshold", "text_threshold", "tracker", "sam2", "redetect_every",
                "key_second", "batch_size", "nms_iou")


def _sam3_requires(opts: PreannotateOptions) -> None:
    if not opts.sam3:
        raise UsageError("--backend sam3 needs --sam3 (a transformers Sam3VideoModel checkpoint, e.g. facebook/sam3)")


def _sam3_load(opts: PreannotateOptions) -> dict:
    from avsbench_tools.preannotate.sam3 import load_sam3

    return {"sam3": load_sam3(opts.sam3, opts.device, opts.allow_download, opts.precision)}


def _sam3_settings(opts: PreannotateOptions, models: Models) -> dict:
    from avsbench_tools.preannotate.sam3 import sam3_settings

    return sam3_settings(opts, models.sam3)


def _sam3_propose(ws, clip, frames, models, opts, heard, media, cap):
    from avsbench_tools.preannotate.sam3 import propose_sam3

    return propose_sam3(ws, clip, models.sam3, opts, frames)


def _sam3_notes(opts: PreannotateOptions, given: Callable[[str], bool]) -> list[str]:
    return _no_effect([n for n in SAM3_IGNORES if given(n)], "the sam3 backend (they configure grounded-sam)")


# -- motion ------------------------------------------------------------------------------------
GROUNDED_ONLY = ("dino", "sam", "sam_type", "prompt", "box_threshold", "text_threshold", "tracker", "sam2",
                 "redetect_every", "key_second", "batch_size", "precision", "nms_iou", "max_objects", "min_area",
                 "allow_download")


def _motion_settings(opts: PreannotateOptions, models: Models | None) -> dict:
    from avsbench_tools.preannotate.motion import motion_settings

    return motion_settings()


def _motion_propose(ws, clip, frames, models, opts, heard, media, cap):
    from avsbench_tools.preannotate.motion import propose_motion_clip

    return propose_motion_clip(ws, clip, frames)


def _motion_notes(opts: PreannotateOptions, given: Callable[[str], bool]) -> list[str]:
    out = []
    if opts.backend == "motion" or not (opts.dino or opts.sam):  # else the --dino/--sam-alone error says it
        out += _no_effect([n for n in GROUNDED_ONLY if given(n)], "the motion backend (they configure grounded-sam)")
    if given("device") and not opts.audio_tagger:
        out.append(f"--device {opts.device} has no effect with the motion backend (it runs on the CPU)")
    return out


def _no_effect(names: list[str], what: str) -> list[str]:
    if not names:
        return []
    flags = ", ".join("--" + n.replace("_", "-") for n in names)
    return [f"{flags} {'has' if len(names) == 1 else 'have'} no effect with {what}"]


REGISTRY: dict[str, Backend] = {b.name: b for b in (
    Backend("grounded-sam", "Grounding DINO boxes from text prompts -> SAM masks -> tracking from a key frame",
            "--dino and --sam are configured", lambda o: bool(o.dino and o.sam), _gs_requires, _gs_settings,
            _gs_propose, load=_gs_load, reads_video=lambda tracker: tracker in ("flow", "sam2"),
            prefetch=_gs_prefetch, bf16_needs_cuda=True, notes=_gs_notes),
    Backend("sam3", "one SAM 3 video model: text prompts -> masks with object ids across the clip",
            "--sam3 is", lambda o: bool(o.sam3), _sam3_requires, _sam3_settings, _sam3_propose, load=_sam3_load,
            notes=_sam3_notes),
    Backend("motion", "weight-free: moving regions from optical flow, GrabCut, linked by the flow tracker",
            "", lambda o: True, lambda o: None, _motion_settings, _motion_propose, notes=_motion_notes,
            names_classes=False),
)}
BACKENDS = tuple(sorted(REGISTRY))


def backend_help() -> str:
    """--backend's help: the names, and which one is chosen without it."""
    names = list(REGISTRY)
    rule = ", else ".join(f"{n} when {REGISTRY[n].default_when}" if REGISTRY[n].default_when else n for n in names)
    return f"{', '.join(names[:-1])} or {names[-1]} (default: {rule})."


def backend_of(opts: PreannotateOptions) -> str:
    """--backend, else the first registry entry that the given checkpoints select (grounded-sam when both
    --dino and --sam are given, else sam3 when --sam3 is, else the weight-free motion backend)."""
    return opts.backend or next(b.name for b in REGISTRY.values() if b.selects(opts))


def backend_named(name: str) -> Backend:
    """The registry entry of a backend name (a one-line UsageError for an unknown one)."""
    if name not in REGISTRY:
        raise UsageError(f"--backend {name}: expected one of {', '.join(BACKENDS)}")
    return REGISTRY[name]


def names_classes(name: str | None) -> bool:
    """Whether proposals of this backend name their objects' classes (False for motion and for a backend this
    version does not know: its classes are not verified)."""
    return name in REGISTRY and REGISTRY[name].names_classes


def check_options(opts: PreannotateOptions) -> str:
    """The backend these options select, or a one-line UsageError for options that cannot work together."""
    backend = backend_of(opts)
    entry = backend_named(backend)
    if opts.backend is None and bool(opts.dino) != bool(opts.sam):
        given, other = ("--dino (or AVS_TOOLS_DINO)", "--sam") if opts.dino else ("--sam (or AVS_TOOLS_SAM)", "--dino")
        raise UsageError(f"{given} alone cannot take effect: grounded-sam needs {other} too "
                         "(or --backend motion for the weight-free backend)")
    if opts.tracker not in TRACKERS:
        raise UsageError(f"--tracker {opts.tracker}: expected one of {', '.join(TRACKERS)}")
    entry.requires(opts)
    if not 0 <= opts.box_threshold <= 1 or not 0 <= opts.text_threshold <= 1:
        raise UsageError("--box-threshold and --text-threshold must be in [0, 1]")
    if opts.batch_size < 1:
        raise UsageError(f"--batch-size {opts.batch_size}: must be at least 1")
    if not 0 < opts.nms_iou <= 1:
        raise UsageError(f"--nms-iou {opts.nms_iou}: must be in (0, 1] (1 keeps every box but exact duplicates)")
    if opts.max_objects < 1:
        raise UsageError(f"--max-objects {opts.max_objects}: must be at least 1")
    if not 0 <= opts.min_area < 1:
        raise UsageError(f"--min-area {opts.min_area}: a fraction of the frame, in [0, 1)")
    if opts.precision not in PRECISIONS:
        raise UsageError(f"--precision {opts.precision}: expected one of {', '.join(PRECISIONS)}")
    if opts.precision == "bf16" and entry.bf16_needs_cuda:
        _check_bf16_device(opts.device)
    if opts.audio_tagger not in (None, "clap"):
        raise UsageError(f"--audio-tagger {opts.audio_tagger}: expected clap")
    if opts.audio_tagger == "clap" and not opts.clap:
        raise UsageError("--audio-tagger clap needs --clap (a local CLAP checkpoint)")
    return backend


def _check_bf16_device(device: str) -> None:
    """bf16 autocast is for CUDA: on a CPU it is slower than fp32 (no bf16 matrix units on most), so refuse."""
    from avsbench_tools.checkpoints import resolve_device

    if not resolve_device(device).startswith("cuda"):
        raise UsageError(f"--precision bf16 needs a CUDA device (--device {device} runs on the CPU, where bf16 "
                         "autocast is slower than fp32); use --precision fp32")
