"""The "tones" scene (`avs-tools synth OUT --scene tones`): only the audio says which object to segment.

Each clip holds 2 or 3 objects of the same shape (circles of similar size) told apart only by colour,
drawn from `render.TONE_CATEGORIES`; each colour has its own steady tone. Every second a different
object sounds (now and then a second one joins it), and only the sounding objects' tones play. So a
silent object looks exactly like a sounding one (the same object sounds a second later): a model that
ignores the audio can at best segment every object, one that listens segments the right one. This is
the paper's multi-source lesson made strict, for the baseline's audio-impact check (`--no-audio`).

The truth, instance maps and files are laid out exactly as the "shapes" scene's (synth.render), so
gold releases, export and collect --world treat both scenes alike.
"""

from __future__ import annotations

import numpy as np

from avsbench_tools.synth.render import (
    AUDIO_RATE,
    TONE_CATEGORIES,
    SynthClip,
    SynthParams,
    _background,
    _clip,
    _draw,
    _mix,
    _Obj,
    _sprite,
    _trajectory,
)

SECOND_SOUNDER = 0.2  # chance that a second object sounds along with the chosen one in a second


def tones_schedule(rng: np.random.Generator, n_obj: int, seconds: int) -> list[list[int]]:
    """sched[object][second]: one object per second, never the same as the second before; sometimes two."""
    sched = [[0] * seconds for _ in range(n_obj)]
    prev = -1
    for s in range(seconds):
        lead = int(rng.choice([i for i in range(n_obj) if i != prev]))
        sched[lead][s] = 1
        if rng.random() < SECOND_SOUNDER:
            sched[int(rng.choice([i for i in range(n_obj) if i != lead]))][s] = 1
        prev = lead
    return sched


def _apart(rng: np.random.Generator, sizes: list[int], n_frames: int, w: int, h: int,
           tries: int = 30) -> list[np.ndarray]:
    """Trajectories whose objects never overlap much (centres at least 0.9 x the mean size apart), so the
    sounding object is seldom hidden; the last draw is kept if none of `tries` keeps them apart."""
    for _ in range(tries):
        trajs = [_trajectory(rng, n_frames, w, h, s) for s in sizes]
        centres = [t + s / 2 for t, s in zip(trajs, sizes, strict=True)]
        ok = all(np.linalg.norm(centres[i] - centres[j], axis=1).min() >= 0.9 * (sizes[i] + sizes[j]) / 2
                 for i in range(len(sizes)) for j in range(i + 1, len(sizes)))
        if ok:
            break
    return trajs


def render_tones_clip(p: SynthParams, index: int) -> SynthClip:
    """Clip `index` of a tones world: 2-3 same-shape objects, the audio alone says which one sounds."""
    rng = np.random.default_rng([p.seed, index, 1])
    w, h, n_frames = p.width, p.height, p.seconds * p.fps
    n_obj = int(rng.integers(2, 4))
    cats = [TONE_CATEGORIES[i] for i in rng.choice(len(TONE_CATEGORIES), size=n_obj, replace=False)]
    sched = tones_schedule(rng, n_obj, p.seconds)
    sizes = [int(rng.uniform(0.26, 0.32) * min(w, h)) for _ in cats]
    trajs = _apart(rng, sizes, n_frames, w, h)
    objs = []
    for i, cat in enumerate(cats):
        sprite, tex = _sprite(cat, sizes[i])
        objs.append(_Obj(i + 1, cat, sizes[i], sprite, tex, trajs[i], sched[i], False))
    z_order = [objs[i] for i in rng.permutation(n_obj)]
    bg = _background(rng, h, w)
    frames, inst = _draw(z_order, bg, n_frames)
    audio = _mix(objs, p.seconds * AUDIO_RATE, w, rng)
    return _clip(p, index, objs, z_order, frames, inst, audio, rng)
