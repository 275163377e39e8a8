"""`render_clip`: clip `index` of a world, drawn by its scene's module ("shapes": render.py, "tones": tones.py, which
draws with render.py's public helpers)."""

from __future__ import annotations

from avsbench_tools.synth.render import SynthClip, SynthParams, render_shapes_clip
from avsbench_tools.synth.tones import render_tones_clip


def render_clip(p: SynthParams, index: int) -> SynthClip:
    """Clip `index` of the world `p`: frames, instance maps, audio and truth (deterministic in seed and index)."""
    if p.scene == "tones":
        return render_tones_clip(p, index)
    return render_shapes_clip(p, index)
