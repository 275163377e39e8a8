"""avs-tools sample."""

from __future__ import annotations

from pathlib import Path

import typer

from avsbench_tools.cli import app


@app.command(short_help="Frames per second, 16 kHz audio, log-mel, sound activity.  e.g. avs-tools sample ws -j 2")
def sample(
    ctx: typer.Context,
    workspace: Path = typer.Argument(..., readable=False, help="Workspace folder."),
    jobs: int = typer.Option(2, "--jobs", "-j", help="Clips decoded in parallel."),
    clip: list[str] = typer.Option(None, "--clip", help="Only this clip id (repeatable)."),
    vggish_weights: Path = typer.Option(None, "--vggish-weights",
                                        help="torchvggish's vggish-10086976.pth: also write 128-d embeddings."),
    device: str = typer.Option("cpu", "--device", help="auto, cpu or cuda (for --vggish-weights)."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Try clips that failed before again."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Sample every collected clip once: frames by the recipe's rule, WAV, VGGish log-mel, activity."""
    from avsbench_tools.cli.common import report_failures, say_next
    from avsbench_tools.cli.progress import bars, explicit, note
    from avsbench_tools.sample import SampleOptions
    from avsbench_tools.sample import sample as run_sample
    from avsbench_tools.workspace import open_workspace

    if vggish_weights is None and explicit(ctx, "device"):
        note(f"--device {device} has no effect without --vggish-weights (sampling decodes on the CPU)")
    ws = open_workspace(workspace, lock="sample")
    try:
        with bars(quiet) as cb:
            res = run_sample(ws, SampleOptions(jobs=jobs, vggish_weights=vggish_weights, device=device,
                                               retry_failed=retry_failed, clips=list(clip or []) or None), progress=cb)
    finally:
        ws.close()
    extra = f"; {res.embedded} embedded with VGGish" if vggish_weights else ""
    if res.todo == 0 and not res.embedded:
        earlier = (f"; {res.failed} failed earlier (avs-tools status {workspace} --failures; "
                   "--retry-failed tries them again)") if res.failed else ""
        typer.echo(f"sample: nothing to do: {res.skipped} of {res.total} clips already sampled{earlier}")
    else:
        typer.echo(f"sample: {res.sampled} sampled, {res.skipped} already done, {res.failed} failed "
                   f"(of {res.total} clips){extra}")
    report_failures(res.failures, workspace)
    if res.todo and res.sampled == 0 and res.failures:
        typer.echo(f"avs-tools: error: every clip sampled in this run failed ({len(res.failures)})", err=True)
        raise typer.Exit(1)
    if res.skipped + res.sampled:
        say_next(f"avs-tools preannotate {workspace}  (or look first: avs-tools preview {workspace})", quiet)
