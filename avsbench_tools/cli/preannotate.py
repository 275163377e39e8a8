"""avs-tools preannotate."""

from __future__ import annotations

from typing import Annotated

import typer

from avsbench_tools.cli import app
from avsbench_tools.cli.common import (
    AllowDownload,
    Clap,
    Clips,
    Device,
    Dino,
    Engine,
    Quiet,
    RayAddress,
    RayShared,
    Sam,
    Sam2,
    Sam3Ckpt,
    SamType,
    WorkspaceArg,
    explicit,
    fail_when_none_done,
    note,
    review_hint,
    say_next,
    stage_run,
)
from avsbench_tools.preannotate.backends import backend_help


@app.command(short_help="Mask proposals (Grounded-SAM + tracking, SAM 3, or weight-free motion).  "
             "e.g. avs-tools preannotate ws --dino IDEA-Research/grounding-dino-tiny --sam facebook/sam-vit-base")
def preannotate(
    ctx: typer.Context,
    workspace: WorkspaceArg,
    backend: Annotated[str | None, typer.Option("--backend", help=backend_help())] = None,
    dino: Dino = None,
    sam: Sam = None,
    sam_type: SamType = None,
    sam3: Sam3Ckpt = None,
    prompt: Annotated[list[str] | None, typer.Option("--prompt", help="Text prompt (repeatable); default: the "
                                                     "clip's category.")] = None,
    box_threshold: Annotated[float, typer.Option("--box-threshold", help="Grounding DINO box threshold.")] = 0.35,
    text_threshold: Annotated[float, typer.Option("--text-threshold", help="Grounding DINO text threshold.")] = 0.25,
    tracker: Annotated[str, typer.Option("--tracker", help="flow (CPU: optical flow + SAM re-prompts), sam2 (SAM 2 "
                                         "video propagation; a GPU is recommended) or none.")] = "flow",
    sam2: Sam2 = None,
    redetect_every: Annotated[int, typer.Option("--redetect-every", help="Re-detect every K sampled frames while "
                                                "tracking.")] = 3,
    key_second: Annotated[int | None, typer.Option("--key-second", help="Key frame (second) to track from.")] = None,
    device: Device = "auto",
    batch_size: Annotated[int, typer.Option("--batch-size", help="Frames per Grounding DINO / SAM pass (4-8 on a "
                                            "GPU).")] = 1,
    precision: Annotated[str, typer.Option("--precision", help="fp32, or bf16 (autocast; CUDA only).")] = "fp32",
    nms_iou: Annotated[float, typer.Option("--nms-iou", help="Class-aware box NMS IoU before SAM (0.8 as the "
                                           "Grounded-SAM demos; 1 keeps overlapping boxes).")] = 0.8,
    max_objects: Annotated[int, typer.Option("--max-objects", help="Boxes kept per frame after NMS, most confident "
                                             "first.")] = 5,
    min_area: Annotated[float, typer.Option("--min-area", help="Drop masks smaller than this fraction of the "
                                            "frame.")] = 0.001,
    allow_download: AllowDownload = False,
    audio_tagger: Annotated[str | None, typer.Option("--audio-tagger", help="clap: prompt only the categories "
                                                     "heard each second.")] = None,
    clap: Clap = None,
    tagger_threshold: Annotated[float, typer.Option("--tagger-threshold", help="CLAP probability for "
                                                    "'heard'.")] = 0.3,
    clip: Clips = None,
    engine: Engine = "local",
    ray_address: RayAddress = None,
    ray_shared_workspace: RayShared = False,
    gpus_per_worker: Annotated[float | None, typer.Option("--gpus-per-worker", help="--engine ray: GPUs per "
                                                          "model actor (one actor per GPU: 1; default: 1 on CUDA, "
                                                          "else CPU actors).")] = None,
    quiet: Quiet = False,
) -> None:
    """Propose masks for every sampled frame; each run with new settings adds a mask version."""
    from avsbench_tools.engine import nodes_summary
    from avsbench_tools.engine.options import engine_options
    from avsbench_tools.preannotate import PreannotateOptions
    from avsbench_tools.preannotate import preannotate as run

    engine_opts, notes = engine_options(engine, ray_address, ray_shared_workspace, gpus_per_worker)
    for text in notes:
        note(text)

    opts = PreannotateOptions(backend=backend, dino=dino, sam=sam, sam_type=sam_type, prompt=list(prompt or []) or None,
                              box_threshold=box_threshold, text_threshold=text_threshold, tracker=tracker,
                              redetect_every=redetect_every, key_second=key_second, device=device,
                              batch_size=batch_size, precision=precision, nms_iou=nms_iou, max_objects=max_objects,
                              min_area=min_area, allow_download=allow_download, clips=list(clip or []) or None,
                              audio_tagger=audio_tagger, clap=clap, tagger_threshold=tagger_threshold, sam2=sam2, sam3=sam3,
                              engine=engine_opts)
    _note_ignored(ctx, opts)
    with stage_run(workspace, lock="preannotate", quiet=quiet) as (ws, progress):
        res = run(ws, opts, progress=progress)
    if res.todo == 0:
        typer.echo(f"preannotate ({res.backend}): nothing to do: all {res.total} sampled clips already have "
                   "proposals from these settings (other settings add a new version)")
    else:
        typer.echo(f"preannotate ({res.backend}): {res.done} clips proposed ({res.masks} masks), {res.skipped} "
                   f"already done, {res.failed} failed (of {res.total})")
        if engine_opts.ray:
            typer.echo(nodes_summary(res.nodes))
        if res.ids:
            from avsbench_tools.preannotate.track import ids_summary

            typer.echo(ids_summary(res.ids))
    if res.cap.capped:
        typer.echo(f"cap hit: {res.cap.capped} of {res.cap.frames} frames had more than {opts.max_objects} proposals "
                   f"after NMS (up to {res.cap.most}); kept the {opts.max_objects} most confident (--max-objects)")
    fail_when_none_done(res.failures, workspace, none_done=bool(res.todo) and res.done == 0, what="pre-annotated")
    say_next(review_hint(workspace), quiet)


def _note_ignored(ctx: typer.Context, opts) -> None:
    """Say which options given on the command line cannot take effect with the chosen backend (its registry
    entry's notes), and --clap without --audio-tagger."""
    from avsbench_tools.preannotate.backends import REGISTRY, backend_of

    entry = REGISTRY.get(backend_of(opts))  # an unknown --backend: check_options says so
    for line in entry.notes(opts, lambda name: explicit(ctx, name)) if entry is not None else []:
        note(line)
    if not opts.audio_tagger and explicit(ctx, "clap"):
        note("--clap has no effect without --audio-tagger clap")
