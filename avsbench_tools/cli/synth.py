"""avs-tools synth."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from avsbench_tools.cli import app
from avsbench_tools.cli.common import Quiet, q, say_next


def _size(text: str) -> tuple[int, int]:
    from avsbench_tools.errors import UsageError

    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UsageError(f"--size {text!r}: expected WIDTHxHEIGHT, e.g. 320x240") from None
    return w, h


@app.command(short_help="Render a synthetic audio-visual world with exact ground truth.  "
             "e.g. avs-tools synth world --clips 20 --gold avsbench-ms3")
def synth(
    out: Annotated[Path, typer.Argument(help="Output folder (videos/, truth/, recipe.toml, gold/): a new or empty "
                                        "folder, or a world synth wrote before (resumed with the same options).",
                                        show_default=False)],
    clips: Annotated[int, typer.Option("--clips", help="Number of clips.")] = 20,
    seconds: Annotated[int, typer.Option("--seconds", help="Clip length: 5 or 10.")] = 5,
    size: Annotated[str, typer.Option("--size", help="WIDTHxHEIGHT (even numbers).")] = "320x240",
    fps: Annotated[int, typer.Option("--fps", help="Frame rate.")] = 25,
    seed: Annotated[int, typer.Option("--seed", help="Random seed: same seed, same world.")] = 0,
    gold: Annotated[str | None, typer.Option("--gold", help="Also write the gold release in this layout: "
                                             "avsbench-s4, avsbench-ms3, avss, ref-avs.")] = None,
    scene: Annotated[str, typer.Option("--scene", help="shapes: 1-3 objects of distinct shapes with their own "
                                       "sounds, silences, distractors; tones: 3 circles told apart only by colour, "
                                       "each colour its own tone, one of them sounding through the clip (only the "
                                       "audio says which to segment).")] = "shapes",
    quiet: Quiet = False,
) -> None:
    """Render coloured shapes that move, occlude and make their own sounds, as H.264/AAC MP4s."""
    from avsbench_tools.cli.bars import bars
    from avsbench_tools.synth import SynthParams, synthesize

    w, h = _size(size)
    params = SynthParams(clips=clips, seconds=seconds, width=w, height=h, fps=fps, seed=seed, gold=gold,
                         scene=scene)
    with bars(quiet) as progress:
        res = synthesize(out, params, progress=progress)
    msg = f"{res['clips']} clips in {out} ({res['rendered']} rendered, {res['skipped']} already there)"
    if res["gold"]:
        msg += f"; gold {gold} release at {res['gold']}"
    typer.echo(msg)
    say_next(f"avs-tools init WS --recipe {q(Path(out) / 'recipe.toml')}", quiet)
