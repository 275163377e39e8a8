"""The "tones" scene (`avs-tools synth OUT --scene tones`): only the audio says which object to segment.

Each clip holds 3 objects of the same shape (circles of similar size) told apart only by colour, one of
each colour of `render.TONE_CATEGORIES`; each colour has its own steady tone. One object, drawn per
clip, sounds through the whole clip and only its tone plays; the other two are silent. So a silent
object looks exactly like a sounding one (the same colour sounds in other clips). Without the audio a
circle sounds in a third of the clips: the best a segmenter can do is to segment nothing (a per-pixel
probability of 1/3 is under the 0.5 threshold) or every circle (IoU about 1/3); one that listens
segments the right one. This is the paper's multi-source lesson made strict, for the baseline's
audio-impact check (`--no-audio`).

Why the sounder does not change from second to second: TPAVI (the AVSBench fusion) attends from every
pixel to the audio of all T frames of its group at once (the audio is constant over H x W, so each
pixel receives the clip's audio mixed over its seconds), so no TPAVI model can tell which second a tone
belongs to. A world whose sounder changes every second would make audio useless to the baseline.

The truth, instance maps and files are laid out exactly as the "shapes" scene's (synth.render), so
gold releases, export and collect --world treat both scenes alike.
"""

from __future__ import annotations

import numpy as np

from avsbench_tools.synth.render import (
    AUDIO_RATE,
    TONE_CATEGORIES,
    SceneObject,
    SynthClip,
    SynthParams,
    assemble_clip,
    draw_frames,
    make_sprite,
    mix_audio,
    random_background,
    random_trajectory,
)

OBJECTS = 3  # one of each tone colour
SLOW = 4.0  # / fps: the fraction of the shapes scene's per-frame speed (slow, the same in every fps)


def tones_schedule(rng: np.random.Generator, n_obj: int, seconds: int) -> list[list[int]]:
    """sched[object][second]: one object, drawn, sounds in every second of the clip; the others never."""
    lead = int(rng.integers(0, n_obj))
    return [[int(i == lead)] * seconds for i in range(n_obj)]


def _apart(rng: np.random.Generator, sizes: list[int], n_frames: int, w: int, h: int, fps: int,
           tries: int = 30) -> list[np.ndarray]:
    """Slow trajectories whose objects never overlap much (centres at least 0.9 x the mean size apart), so
    the sounding object is seldom hidden; the last draw is kept if none of `tries` keeps them apart."""
    for _ in range(tries):
        trajs = [random_trajectory(rng, n_frames, w, h, s) for s in sizes]
        slow = min(1.0, SLOW / fps)
        trajs = [t[0] + slow * (t - t[0]) for t in trajs]  # between the start and a valid position: inside
        centres = [t + s / 2 for t, s in zip(trajs, sizes, strict=True)]
        ok = all(np.linalg.norm(centres[i] - centres[j], axis=1).min() >= 0.9 * (sizes[i] + sizes[j]) / 2
                 for i in range(len(sizes)) for j in range(i + 1, len(sizes)))
        if ok:
            break
    return trajs


def render_tones_clip(p: SynthParams, index: int) -> SynthClip:
    """Clip `index` of a tones world: 3 same-shape objects; the audio alone says which one sounds."""
    rng = np.random.default_rng([p.seed, index, 1])
    w, h, n_frames = p.width, p.height, p.seconds * p.fps
    n_obj = OBJECTS
    cats = [TONE_CATEGORIES[i] for i in rng.choice(len(TONE_CATEGORIES), size=n_obj, replace=False)]
    sched = tones_schedule(rng, n_obj, p.seconds)
    sizes = [int(rng.uniform(0.34, 0.40) * min(w, h)) for _ in cats]
    trajs = _apart(rng, sizes, n_frames, w, h, p.fps)
    objs = []
    for i, cat in enumerate(cats):
        sprite, tex = make_sprite(cat, sizes[i])
        objs.append(SceneObject(i + 1, cat, sizes[i], sprite, tex, trajs[i], sched[i], False))
    z_order = [objs[i] for i in rng.permutation(n_obj)]
    bg = random_background(rng, h, w)
    frames, inst = draw_frames(z_order, bg, n_frames)
    audio = mix_audio(objs, p.seconds * AUDIO_RATE, w, rng)
    return assemble_clip(p, index, objs, z_order, frames, inst, audio, rng)
