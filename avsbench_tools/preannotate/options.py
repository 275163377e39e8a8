"""The preannotate stage's options (a leaf: the backends registry, backends.py, checks that they can take effect
together)."""

from __future__ import annotations

from dataclasses import dataclass

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

    backend: str | None = None  # a backends.REGISTRY name; None: chosen by the checkpoints given (backends.backend_of)
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

