"""avs-tools sample."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from avsbench_tools.cli import app
from avsbench_tools.cli.common import (
    Clips,
    Device,
    Engine,
    Quiet,
    RayAddress,
    RayShared,
    RetryFailed,
    WorkspaceArg,
    explicit,
    fail_when_none_done,
    note,
    q,
    say_next,
    stage_run,
)


@app.command(short_help="Frames per second, 16 kHz audio, log-mel, sound activity.  e.g. avs-tools sample ws -j 2")
def sample(
    ctx: typer.Context,
    workspace: WorkspaceArg,
    jobs: Annotated[int, typer.Option("--jobs", "-j", help="Clips decoded in parallel.")] = 2,
    clip: Clips = None,
    vggish_weights: Annotated[Path | None, typer.Option("--vggish-weights", help="torchvggish's "
                                                        "vggish-10086976.pth: also write 128-d embeddings.")] = None,
    device: Device = "cpu",
    retry_failed: RetryFailed = False,
    engine: Engine = "local",
    ray_address: RayAddress = None,
    ray_shared_workspace: RayShared = False,
    quiet: Quiet = False,
) -> None:
    """Sample every collected clip once: frames by the recipe's rule, WAV, VGGish log-mel, activity.
    --device says where VGGish runs (with --vggish-weights); decoding is on the CPU."""
    from avsbench_tools.engine import nodes_summary
    from avsbench_tools.engine.options import engine_options
    from avsbench_tools.sample import SampleOptions
    from avsbench_tools.sample import sample as run_sample

    engine_opts, notes = engine_options(engine, ray_address, ray_shared_workspace)
    for text in notes:
        note(text)
    if engine_opts.ray and explicit(ctx, "jobs"):
        note(f"--jobs {jobs} has no effect with --engine ray (one task per clip on every CPU of the cluster)")

    if vggish_weights is None and explicit(ctx, "device"):
        note(f"--device {device} has no effect without --vggish-weights (sampling decodes on the CPU)")
    opts = SampleOptions(jobs=jobs, vggish_weights=vggish_weights, device=device, retry_failed=retry_failed,
                         clips=list(clip or []) or None, engine=engine_opts)
    with stage_run(workspace, lock="sample", quiet=quiet) as (ws, progress):
        res = run_sample(ws, opts, progress=progress)
    extra = f"; {res.embedded} embedded with VGGish" if vggish_weights else ""
    if res.todo == 0 and not res.embedded:
        earlier = (f"; {res.failed} failed earlier (avs-tools status {workspace} --failures; "
                   "--retry-failed tries them again)") if res.failed else ""
        typer.echo(f"sample: nothing to do: {res.skipped} of {res.total} clips already sampled{earlier}")
    else:
        typer.echo(f"sample: {res.sampled} sampled, {res.skipped} already done, {res.failed} failed "
                   f"(of {res.total} clips){extra}")
        if engine_opts.ray:
            typer.echo(nodes_summary(res.nodes))
    fail_when_none_done(res.failures, workspace, none_done=bool(res.todo) and res.sampled == 0, what="sampled")
    if res.skipped + res.sampled:
        say_next(f"avs-tools preannotate {q(workspace)}  (or look first: avs-tools preview {q(workspace)})", quiet)
