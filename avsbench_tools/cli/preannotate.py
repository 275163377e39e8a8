"""avs-tools preannotate / models check."""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer

from avsbench_tools.cli import app

models_app = typer.Typer(help="Model checkpoints used by preannotate.", no_args_is_help=True)
app.add_typer(models_app, name="models", short_help="Check configured checkpoints.  e.g. avs-tools models check --sam sam.pth")

DINO_HELP = "Grounding DINO: a transformers folder or a model id in the local HF cache (env AVS_TOOLS_DINO)."
SAM_HELP = "SAM: a transformers folder, a model id in the local HF cache, or a segment-anything .pth (env AVS_TOOLS_SAM)."


@app.command(short_help="Mask proposals (Grounded-SAM + tracking, or weight-free motion).  "
             "e.g. avs-tools preannotate ws --dino IDEA-Research/grounding-dino-tiny --sam facebook/sam-vit-base")
def preannotate(
    ctx: typer.Context,
    workspace: Path = typer.Argument(..., readable=False, help="Workspace folder."),
    backend: str = typer.Option(None, "--backend", help="grounded-sam or motion (default: grounded-sam when "
                                "--dino and --sam are configured, else motion)."),
    dino: str = typer.Option(None, "--dino", help=DINO_HELP),
    sam: str = typer.Option(None, "--sam", help=SAM_HELP),
    sam_type: str = typer.Option(None, "--sam-type", help="vit_b, vit_l or vit_h for a .pth whose name does not say."),
    prompt: list[str] = typer.Option(None, "--prompt", help="Text prompt (repeatable); default: the clip's category."),
    box_threshold: float = typer.Option(0.35, "--box-threshold", help="Grounding DINO box threshold."),
    text_threshold: float = typer.Option(0.25, "--text-threshold", help="Grounding DINO text threshold."),
    tracker: str = typer.Option("flow", "--tracker", help="flow (CPU: optical flow + SAM re-prompts), sam2 "
                                "(SAM 2 video propagation; a GPU is recommended) or none."),
    sam2: str = typer.Option(None, "--sam2", help="SAM 2 video checkpoint for --tracker sam2, e.g. "
                             "facebook/sam2.1-hiera-tiny (env AVS_TOOLS_SAM2)."),
    redetect_every: int = typer.Option(3, "--redetect-every", help="Re-detect every K sampled frames while tracking."),
    key_second: int = typer.Option(None, "--key-second", help="Key frame (second) to track from."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    batch_size: int = typer.Option(1, "--batch-size", help="Frames per model call."),
    allow_download: bool = typer.Option(False, "--allow-download", help="Let Hugging Face fetch missing checkpoints."),
    audio_tagger: str = typer.Option(None, "--audio-tagger", help="clap: prompt only the categories heard each second."),
    clap: str = typer.Option(None, "--clap", help="CLAP: a transformers folder or a model id in the local HF cache "
                             "(env AVS_TOOLS_CLAP)."),
    tagger_threshold: float = typer.Option(0.3, "--tagger-threshold", help="CLAP probability for 'heard'."),
    clip: list[str] = typer.Option(None, "--clip", help="Only this clip id (repeatable)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Propose masks for every sampled frame; each run with new settings adds a mask version."""
    from avsbench_tools.cli.common import report_failures, say_next
    from avsbench_tools.cli.progress import bars, explicit, note
    from avsbench_tools.preannotate import PreannotateOptions
    from avsbench_tools.preannotate import preannotate as run
    from avsbench_tools.workspace import open_workspace

    opts = PreannotateOptions(backend=backend, dino=dino or os.environ.get("AVS_TOOLS_DINO"),
                              sam=sam or os.environ.get("AVS_TOOLS_SAM"), sam_type=sam_type,
                              prompt=list(prompt or []) or None, box_threshold=box_threshold,
                              text_threshold=text_threshold, tracker=tracker, redetect_every=redetect_every,
                              key_second=key_second, device=device, batch_size=batch_size,
                              allow_download=allow_download, clips=list(clip or []) or None,
                              audio_tagger=audio_tagger, clap=clap or os.environ.get("AVS_TOOLS_CLAP"),
                              tagger_threshold=tagger_threshold, sam2=sam2 or os.environ.get("AVS_TOOLS_SAM2"))
    _note_ignored(ctx, opts, note, explicit)
    ws = open_workspace(workspace, lock="preannotate")
    try:
        with bars(quiet) as cb:
            res = run(ws, opts, progress=cb)
    finally:
        ws.close()
    if res.todo == 0:
        typer.echo(f"preannotate ({res.backend}): nothing to do: all {res.total} sampled clips already have "
                   "proposals from these settings (other settings add a new version)")
    else:
        typer.echo(f"preannotate ({res.backend}): {res.done} clips proposed ({res.masks} masks), {res.skipped} "
                   f"already done, {res.failed} failed (of {res.total})")
    report_failures(res.failures, workspace)
    if res.todo and res.done == 0 and res.failures:
        typer.echo(f"avs-tools: error: every clip pre-annotated in this run failed ({len(res.failures)})", err=True)
        raise typer.Exit(1)
    say_next(f"avs-tools export {workspace} OUT --include-unreviewed  (proposals as masks; a review studio "
             "is not in this build)", quiet)


GROUNDED_ONLY = ("dino", "sam", "sam_type", "prompt", "box_threshold", "text_threshold", "tracker", "sam2",
                 "redetect_every", "key_second", "batch_size", "allow_download")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _note_ignored(ctx: typer.Context, opts, note, explicit) -> None:
    """Say which options given on the command line cannot take effect with the chosen backend."""
    backend = opts.backend or ("grounded-sam" if (opts.dino and opts.sam) else "motion")
    if backend == "motion":
        if opts.backend == "motion" or not (opts.dino or opts.sam):
            ignored = [_flag(n) for n in GROUNDED_ONLY if explicit(ctx, n)]
            if ignored:
                note(f"{', '.join(ignored)} {'has' if len(ignored) == 1 else 'have'} no effect with the motion "
                     "backend (they configure grounded-sam)")
        if explicit(ctx, "device") and not opts.audio_tagger:
            note(f"--device {opts.device} has no effect with the motion backend (it runs on the CPU)")
    elif opts.tracker != "sam2" and explicit(ctx, "sam2"):
        note("--sam2 has no effect without --tracker sam2")
    if not opts.audio_tagger and explicit(ctx, "clap"):
        note("--clap has no effect without --audio-tagger clap")


@models_app.command("check")
def models_check(
    dino: str = typer.Option(None, "--dino", help=DINO_HELP),
    sam: str = typer.Option(None, "--sam", help=SAM_HELP),
    sam_type: str = typer.Option(None, "--sam-type", help="vit_b, vit_l or vit_h."),
    clap: str = typer.Option(None, "--clap", help="CLAP checkpoint (env AVS_TOOLS_CLAP)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    allow_download: bool = typer.Option(False, "--allow-download", help="Let Hugging Face fetch missing checkpoints."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list."),
) -> None:
    """List the configured checkpoints, whether each loads, and on which device. Exit 1 if one fails."""
    from avsbench_tools.preannotate import check_models

    rows = check_models(dino or os.environ.get("AVS_TOOLS_DINO"), sam or os.environ.get("AVS_TOOLS_SAM"), device,
                        sam_type, allow_download, clap or os.environ.get("AVS_TOOLS_CLAP"))
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    else:
        for r in rows:
            state = "ok" if r["loads"] else ("-" if r["spec"] is None else "FAILED")
            typer.echo(f"{r['role']:5} {state:6} {r['device'] or '':6} {r['spec'] or '(none)'}  {r['detail']}")
    if any(r["spec"] and not r["loads"] for r in rows):
        raise typer.Exit(1)
