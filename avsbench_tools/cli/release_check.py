"""avs-tools release-check.

Options only: the work is in avsbench_tools.release_check (validate + stats + a short baseline run with and
without audio). Nothing heavy is imported at module level.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from avsbench_tools.cli import app
from avsbench_tools.cli.common import (
    Backbone,
    Device,
    Format,
    Json,
    Quiet,
    ReleaseArg,
    Vggish,
    Visual,
    note,
    print_json,
    q,
    say_next,
    warn,
)


@app.command(name="release-check", short_help="Is a release learnable, does audio help?  e.g. avs-tools "
             "release-check rel --format avsbench-ms3 --out check")
def release_check(
    release: ReleaseArg,
    fmt: Format,
    out: Annotated[Path, typer.Option("--out", "-o", help="Report folder (index.html, report.json, stats.html, "
                                      "runs/).")],
    budget: Annotated[float | None, typer.Option("--budget", help="Seconds of training in all (both runs; "
                                                 "default: 240 on CPU, 1200 on CUDA).")] = None,
    device: Device = "auto",
    backbone: Backbone = None,
    visual_weights: Visual = None,
    vggish_weights: Vggish = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an earlier release-check in --out (only a folder "
                                        "release-check wrote, holding nothing else; swapped in when complete).")]
    = False,
    as_json: Json = False,
    quiet: Quiet = False,
) -> None:
    """validate + stats + a short baseline run scaled to the hardware, with and without audio: index.html and
    report.json say whether the release is learnable (beats all-empty, all-full and the mean training mask),
    whether audio helps, per-category scores and the worst categories and clips with overlays."""
    from avsbench_tools.cli.bars import bars
    from avsbench_tools.release_check import ReleaseCheckOptions, check_release_learnable

    opts = ReleaseCheckOptions(budget=budget, device=device, backbone=backbone, visual_weights=visual_weights,
                               vggish_weights=vggish_weights, force=force)
    with bars(quiet or as_json) as progress:
        rep = check_release_learnable(release, fmt, out, opts, progress=progress)
    if print_json(rep.summary, as_json):
        return
    warn(rep.warnings)
    for line in rep.lines():
        typer.echo(line)
    if rep.validation_problems:
        note(f"validate found {rep.validation_problems} problems: run avs-tools validate {q(release)} --format {fmt}")
        raise typer.Exit(1)
    say_next(f"open {q(Path(out) / 'index.html')}", quiet)
