"""The preannotate stage's options, and the check that they can take effect together."""

from __future__ import annotations

from dataclasses import dataclass

from avsbench_tools.errors import UsageError

BACKENDS = ("grounded-sam", "motion")
TRACKERS = ("flow", "sam2", "none")


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
    batch_size: int = 1
    allow_download: bool = False
    clips: list[str] | None = None
    audio_tagger: str | None = None  # "clap"
    clap: str | None = None
    tagger_threshold: float = 0.3
    sam2: str | None = None  # SAM 2 video checkpoint for --tracker sam2


def backend_of(opts: PreannotateOptions) -> str:
    """--backend, else grounded-sam when both --dino and --sam are given, else the weight-free motion backend."""
    return opts.backend or ("grounded-sam" if (opts.dino and opts.sam) else "motion")


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
    if not 0 <= opts.box_threshold <= 1 or not 0 <= opts.text_threshold <= 1:
        raise UsageError("--box-threshold and --text-threshold must be in [0, 1]")
    if opts.batch_size < 1:
        raise UsageError(f"--batch-size {opts.batch_size}: must be at least 1")
    if opts.audio_tagger not in (None, "clap"):
        raise UsageError(f"--audio-tagger {opts.audio_tagger}: expected clap")
    if opts.audio_tagger == "clap" and not opts.clap:
        raise UsageError("--audio-tagger clap needs --clap (a local CLAP checkpoint)")
    return backend
