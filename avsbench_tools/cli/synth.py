"""avs-tools synth."""

from __future__ import annotations

from pathlib import Path

import typer

from avsbench_tools.cli import app
from avsbench_tools.cli.common import say_next
from avsbench_tools.errors import UsageError


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UsageError(f"--size {text!r}: expected WIDTHxHEIGHT, e.g. 320x240") from None
    return w, h


@app.command(short_help="Render a synthetic audio-visual world with exact ground truth.  "
             "e.g. avs-tools synth world --clips 20 --gold avsbench-ms3")
def synth(
    out: Path = typer.Argument(..., help="Output folder (videos/, truth/, recipe.toml, gold/): a new or empty "
                               "folder, or a world synth wrote before (resumed with the same options)."),
    clips: int = typer.Option(20, "--clips", help="Number of clips."),
    seconds: int = typer.Option(5, "--seconds", help="Clip length: 5 or 10."),
    size: str = typer.Option("320x240", "--size", help="WIDTHxHEIGHT (even numbers)."),
    fps: int = typer.Option(25, "--fps", help="Frame rate."),
    seed: int = typer.Option(0, "--seed", help="Random seed: same seed, same world."),
    gold: str = typer.Option(None, "--gold", help="Also write the gold release in this layout: "
                             "avsbench-s4, avsbench-ms3, avss, ref-avs."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Render coloured shapes that move, occlude and make their own sounds, as H.264/AAC MP4s."""
    from avsbench_tools.cli.progress import bars
    from avsbench_tools.synth import SynthParams, synthesize

    w, h = _size(size)
    params = SynthParams(clips=clips, seconds=seconds, width=w, height=h, fps=fps, seed=seed, gold=gold)
    with bars(quiet) as cb:
        res = synthesize(out, params, progress=lambda d, t: cb("rendering", d, t))
    msg = f"{res['clips']} clips in {out} ({res['rendered']} rendered, {res['skipped']} already there)"
    if res["gold"]:
        msg += f"; gold {gold} release at {res['gold']}"
    typer.echo(msg)
    say_next(f"avs-tools init WS --recipe {Path(out) / 'recipe.toml'}", quiet)
