"""The preannotate stage's options, and the check that they can take effect together."""

from __future__ import annotations

from dataclasses import dataclass

from avsbench_tools.errors import UsageError

BACKENDS = ("grounded-sam", "motion", "sam3")
TRACKERS = ("flow", "sam2", "none")
PRECISIONS = ("fp32", "bf16")

# -- bounded proposals (preannotate/nms.py) --
# IoU above which the less confident of two same-category boxes is dropped. 0.8 is NMS_THRESHOLD in the
# Grounded-SAM demo that prompts with category names as we do (IDEA-Research/Grounded-Segment-Anything,
# EfficientSAM/grounded_mobile_sam.py: torchvision.ops.nms(xyxy, confidence, 0.8) between Grounding DINO's
# predict_with_classes and SAM); its caption-tag demo (automatic_label_demo.py) uses --iou_threshold 0.5.
# Theirs is class-agnostic; ours is per category (torchvision's batched_nms), so a guitar box over the
# box of the person playing it survives.
NMS_IOU = 0.8
# AVSBench clips rarely have more than a few sounding objects: of the 11,356 clips in the AVSBench
# metadata (avss_metadata.csv, `a_obj`), 9,091 name one sounding category, 1,811 two, 384 three, 60 four,
# 10 five and none more. 5 keeps every plausible source (plus a distractor in most frames) while bounding
# the SAM passes and stored mask versions per frame.
MAX_OBJECTS = 5
# A mask smaller than this fraction of the frame (0.1%: 922 px at 1280x720, 19 px at 160x120) is SAM
# noise around a tiny or degenerate box, not an object an annotator would keep.
MIN_AREA = 0.001


@dataclass
class PreannotateOptions:
    """`avs-tools preannotate` options (checkpoints are local paths or ids in the local HF cache)."""

    backend: str | None = None  # None: grounded-sam when --dino and --sam are given, else motion
    dino: str | None = None
    sam: str | None = None
    sam_type: str | None = None
    prompt: list[str] | None = None
    box_threshold: float = 0.35
    text_threshold: float = 0.25
    tracker: str = "flow"
    redetect_every: int = 3
    key_second: int | None = None  # an annotator's key frame; default: highest detection confidence
    device: str = "cpu"
    batch_size: int = 1  # frames per Grounding DINO / SAM encoder / SAM decoder pass
    precision: str = "fp32"  # bf16: autocast on CUDA (refused on the CPU)
    nms_iou: float = NMS_IOU  # class-aware box NMS before SAM
    max_objects: int = MAX_OBJECTS  # boxes kept per frame after NMS, most confident first
    min_area: float = MIN_AREA  # masks below this fraction of the frame are dropped
    allow_download: bool = False
    clips: list[str] | None = None
    audio_tagger: str | None = None  # "clap"
    clap: str | None = None
    tagger_threshold: float = 0.3
    sam2: str | None = None  # SAM 2 video checkpoint for --tracker sam2
    sam3: str | None = None  # SAM 3 video checkpoint for --backend sam3 (one model: detection and tracking)
    engine: object = None  # engine.EngineOptions; None: the local engine (--engine ray: avsbench_tools.engine)


def backend_of(opts: PreannotateOptions) -> str:
    """--backend, else grounded-sam when both --dino and --sam are given, else sam3 when --sam3 is, else the
    weight-free motion backend."""
    return opts.backend or ("grounded-sam" if (opts.dino and opts.sam) else "sam3" if opts.sam3 else "motion")


def check_options(opts: PreannotateOptions) -> str:
    """The backend these options select, or a one-line UsageError for options that cannot work together."""
    backend = backend_of(opts)
    if backend not in BACKENDS:
        raise UsageError(f"--backend {backend}: expected one of {', '.join(BACKENDS)}")
    if opts.backend is None and bool(opts.dino) != bool(opts.sam):
        given, other = ("--dino (or AVS_TOOLS_DINO)", "--sam") if opts.dino else ("--sam (or AVS_TOOLS_SAM)", "--dino")
        raise UsageError(f"{given} alone cannot take effect: grounded-sam needs {other} too "
                         "(or --backend motion for the weight-free backend)")
    if opts.tracker not in TRACKERS:
        raise UsageError(f"--tracker {opts.tracker}: expected one of {', '.join(TRACKERS)}")
    if backend == "grounded-sam" and not (opts.dino and opts.sam):
        raise UsageError("--backend grounded-sam needs --dino and --sam (local checkpoints)")
    if opts.tracker == "sam2" and backend == "grounded-sam" and not opts.sam2:
        raise UsageError("--tracker sam2 needs --sam2 (a transformers Sam2VideoModel checkpoint)")
    if backend == "sam3" and not opts.sam3:
        raise UsageError("--backend sam3 needs --sam3 (a transformers Sam3VideoModel checkpoint, e.g. facebook/sam3)")
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
    if opts.precision == "bf16" and backend == "grounded-sam":
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
