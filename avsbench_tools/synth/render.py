"""The synthetic scene: categories (shape, colour, sound), motion, sound schedule, expressions, rendering.

Each clip has 1-3 objects of distinct categories. A category has its own shape, colour and sound
(harmonic tones, plucks, noise bursts, beats...). Objects move and may occlude each other; a
per-second schedule says which objects sound, with silent seconds, seconds where several sound,
and distractors that move but never sound. Everything is deterministic in (seed, clip index):
`render_clip(params, index)` always returns the same frames, instance maps, audio and truth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

AUDIO_RATE = 44100


@dataclass(frozen=True)
class SynthCategory:
    name: str
    shape: str
    colour: str
    rgb: tuple[int, int, int]
    sound: str
    freq: float


CATEGORIES = (
    SynthCategory("guitar", "circle", "red", (215, 45, 40), "harmonic", 196.0),
    SynthCategory("piano", "square", "blue", (45, 75, 215), "plucked", 261.6),
    SynthCategory("dog", "triangle", "orange", (240, 140, 30), "bark", 900.0),
    SynthCategory("violin", "diamond", "yellow", (230, 210, 40), "vibrato", 440.0),
    SynthCategory("car", "rectangle", "gray", (150, 150, 155), "rumble", 90.0),
    SynthCategory("drum", "hexagon", "green", (40, 165, 60), "beats", 120.0),
    SynthCategory("helicopter", "cross", "cyan", (40, 195, 210), "chop", 12.0),
    SynthCategory("cat", "ellipse", "magenta", (205, 50, 195), "meow", 700.0),
)
BY_NAME = {c.name: c for c in CATEGORIES}

# The "tones" scene (synth.tones): objects of ONE shape told apart only by colour, each colour with its own
# steady tone; which object sounds changes every second, so only the audio says which one to segment.
TONE_CATEGORIES = (
    SynthCategory("flute", "circle", "red", (215, 45, 40), "tone", 523.25),
    SynthCategory("horn", "circle", "blue", (45, 75, 215), "tone", 174.61),
    SynthCategory("whistle", "circle", "green", (40, 165, 60), "tone", 1864.66),
)
SCENES = ("shapes", "tones")


def scene_categories(scene: str) -> tuple[SynthCategory, ...]:
    """The categories a scene draws its objects from."""
    return TONE_CATEGORIES if scene == "tones" else CATEGORIES


@dataclass(frozen=True)
class SynthParams:
    clips: int = 20
    seconds: int = 5
    width: int = 320
    height: int = 240
    fps: int = 25
    seed: int = 0
    gold: str | None = None
    scene: str = "shapes"  # "shapes" (this module) or "tones" (synth.tones)

    @property
    def fmt(self) -> str:
        """The world's release format: --gold, else Ref-AVS for 10 s clips and MS3 for 5 s clips."""
        return self.gold or ("ref-avs" if self.seconds == 10 else "avsbench-ms3")

    def to_json(self) -> dict:
        d = {"clips": self.clips, "seconds": self.seconds, "size": [self.width, self.height], "fps": self.fps,
             "seed": self.seed, "gold": self.gold, "format": self.fmt, "version": 1}
        if self.scene != "shapes":  # worlds of the original scene keep their world.json byte for byte
            d["scene"] = self.scene
        return d


def video_id(seed: int, index: int) -> str:
    """11 characters like a YouTube id, without '_' so every official id pattern stays parseable."""
    return f"sy{seed % 1000:03d}{index:06d}"


# -- shapes and rendering --------------------------------------------------------------------
def shape_mask(shape: str, size: int) -> np.ndarray:
    y, x = np.mgrid[-1:1:complex(0, size), -1:1:complex(0, size)]
    ax, ay = np.abs(x), np.abs(y)
    if shape == "circle":
        m = x**2 + y**2 <= 1
    elif shape == "square":
        m = (ax <= 0.85) & (ay <= 0.85)
    elif shape == "triangle":
        m = (y >= -0.9) & (y <= 0.9) & (ax <= (y + 0.9) / 1.8)
    elif shape == "diamond":
        m = ax + ay <= 1
    elif shape == "rectangle":
        m = (ax <= 1) & (ay <= 0.5)
    elif shape == "hexagon":
        m = (ay <= 0.866) & (1.732 * ax + ay <= 1.732)
    elif shape == "cross":
        m = ((ax <= 0.3) & (ay <= 1)) | ((ay <= 0.3) & (ax <= 1))
    elif shape == "ellipse":
        m = x**2 + (y / 0.6) ** 2 <= 1
    else:
        raise ValueError(shape)
    return m


def random_background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    c0, c1 = rng.integers(40, 120, 3), rng.integers(60, 160, 3)
    gy = np.linspace(0, 1, h)[:, None, None]
    gx = np.linspace(0, 1, w)[None, :, None]
    base = c0 * (1 - gy) + c1 * gy
    fx, fy, ph = rng.uniform(2, 6), rng.uniform(2, 6), rng.uniform(0, 6.28)
    pattern = 12 * np.sin(2 * np.pi * (fx * gx + fy * gy) + ph)
    return np.clip(base + pattern, 0, 255).astype(np.uint8)


@dataclass
class SceneObject:
    oid: int
    cat: SynthCategory
    size: int
    sprite: np.ndarray  # bool [s, s]
    texture: np.ndarray  # uint8 [s, s, 3]
    pos: np.ndarray  # [F, 2] top-left x, y (float)
    sounding: list[int]
    distractor: bool


def random_trajectory(rng: np.random.Generator, n: int, w: int, h: int, s: int) -> np.ndarray:
    x, y = rng.uniform(0, w - s), rng.uniform(0, h - s)
    speed = rng.uniform(0.6, 1.8) * min(w, h) / 240.0
    ang = rng.uniform(0, 2 * np.pi)
    vx, vy = speed * math.cos(ang), speed * math.sin(ang)
    out = np.zeros((n, 2))
    for i in range(n):
        out[i] = (x, y)
        x, y = x + vx, y + vy
        if not 0 <= x <= w - s:
            vx, x = -vx, min(max(x, 0), w - s)
        if not 0 <= y <= h - s:
            vy, y = -vy, min(max(y, 0), h - s)
    return out


def _schedule(rng: np.random.Generator, n_obj: int, seconds: int) -> tuple[list[list[int]], list[bool]]:
    distractor = [False] * n_obj
    if n_obj >= 2 and rng.random() < 0.5:
        distractor[-1] = True
    sounders = [i for i in range(n_obj) if not distractor[i]]
    sched = [[0] * seconds for _ in range(n_obj)]
    for i in sounders:
        sched[i] = [int(rng.random() < 0.65) for _ in range(seconds)]
    silent = int(rng.integers(0, seconds))
    for i in sounders:
        sched[i][silent] = 0
    for i in sounders:
        if not any(sched[i]):
            choices = [s for s in range(seconds) if s != silent]
            sched[i][int(rng.choice(choices))] = 1
    if len(sounders) >= 2:
        choices = [s for s in range(seconds) if s != silent]
        both = int(rng.choice(choices))
        for i in sounders:
            sched[i][both] = 1
    return sched, distractor


# -- sounds ----------------------------------------------------------------------------------
def _bandnoise(rng, n, lo, hi, sr=AUDIO_RATE):
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / sr)
    spec[(f < lo) | (f > hi)] = 0
    x = np.fft.irfft(spec, n)
    return x / (np.std(x) + 1e-9)


def _sound(cat: SynthCategory, n: int, rng: np.random.Generator, sr: int = AUDIO_RATE) -> np.ndarray:
    t = np.arange(n) / sr
    f = cat.freq
    if cat.sound == "harmonic":
        x = sum(np.sin(2 * np.pi * k * f * t) / k for k in range(1, 6))
    elif cat.sound == "plucked":
        x = sum(np.sin(2 * np.pi * k * f * t) / k**1.5 for k in range(1, 4)) * np.exp(-6 * (t % 0.5))
    elif cat.sound == "bark":
        env = ((t % (1 / 3)) < 0.12).astype(float)
        x = _bandnoise(rng, n, 500, 1500) * env + 0.5 * np.sin(2 * np.pi * f * t) * env
    elif cat.sound == "vibrato":
        x = sum(np.sin(2 * np.pi * k * f * t + 3 * np.sin(2 * np.pi * 5 * t)) / k for k in range(1, 4))
    elif cat.sound == "rumble":
        x = _bandnoise(rng, n, 40, 250) + 0.7 * np.sin(2 * np.pi * f * t)
    elif cat.sound == "beats":
        ph = t % 0.25
        x = np.sin(2 * np.pi * f * ph) * np.exp(-25 * ph) + 0.3 * _bandnoise(rng, n, 2000, 6000) * np.exp(-60 * ph)
    elif cat.sound == "chop":
        x = _bandnoise(rng, n, 100, 3000) * (0.55 + 0.45 * np.sign(np.sin(2 * np.pi * f * t)))
    elif cat.sound == "tone":  # a steady note with two overtones
        x = sum(np.sin(2 * np.pi * k * f * t) / 2 ** (k - 1) for k in range(1, 4))
    elif cat.sound == "meow":
        ph = (t % 0.6) / 0.6
        inst = f * (1 + 0.4 * np.sin(np.pi * ph))
        x = np.sin(2 * np.pi * np.cumsum(inst) / sr) * np.sin(np.pi * ph)
    else:
        raise ValueError(cat.sound)
    x = np.asarray(x, dtype=np.float64)
    return 0.1 * x / (np.sqrt(np.mean(x**2)) + 1e-9)


def _gate(schedule: list[int], n: int, sr: int = AUDIO_RATE) -> np.ndarray:
    g = np.repeat(np.asarray(schedule, dtype=np.float64), sr)[:n]
    g = np.pad(g, (0, max(0, n - g.size)))
    ramp = int(0.01 * sr)
    kernel = np.ones(ramp) / ramp
    return np.convolve(g, kernel, mode="same")


# -- expressions -----------------------------------------------------------------------------
def _expressions(objs: list[SceneObject], w: int, rng: np.random.Generator) -> tuple[dict[int, list[str]], list[str]]:
    out: dict[int, list[str]] = {o.oid: [] for o in objs}
    onsets = {o.oid: next((s for s, v in enumerate(o.sounding) if v), None) for o in objs}
    offsets = {o.oid: max((s for s, v in enumerate(o.sounding) if v), default=None) for o in objs}
    centre_x = {o.oid: float(np.mean(o.pos[:, 0]) + o.size / 2) for o in objs}
    sounders = [o for o in objs if onsets[o.oid] is not None]
    silent = [o for o in objs if onsets[o.oid] is None]
    for o in objs:
        vis = f"the {o.cat.colour} {o.cat.shape}"
        out[o.oid].append(vis)
        if onsets[o.oid] is not None:
            out[o.oid].append(f"the object making the sound of a {o.cat.name}")
        else:
            out[o.oid].append(f"{vis} that stays silent")
    if len(sounders) >= 2:
        first = min(onsets[o.oid] for o in sounders)
        firsts = [o for o in sounders if onsets[o.oid] == first]
        if len(firsts) == 1:
            o = firsts[0]
            out[o.oid].append(f"the {o.cat.colour} {o.cat.shape} that sounds first")
        last = max(offsets[o.oid] for o in sounders)
        lasts = [o for o in sounders if offsets[o.oid] == last]
        if len(lasts) == 1:
            out[lasts[0].oid].append("the object that is the last to stop sounding")
    if len(silent) == 1 and len(objs) >= 2:
        out[silent[0].oid].append("the object that never makes a sound")
    if len(objs) >= 2:
        order = sorted(objs, key=lambda o: centre_x[o.oid])
        if centre_x[order[1].oid] - centre_x[order[0].oid] > 0.15 * w:
            o = order[0]
            state = "that is silent" if onsets[o.oid] is None else "that makes a sound"
            out[o.oid].append(f"the object on the left {state}")
    present = {o.cat.name for o in objs}
    absent = [c for c in CATEGORIES if c.name not in present]
    c = absent[int(rng.integers(0, len(absent)))]
    nulls = [f"the {c.colour} {c.shape} that is making a sound"]
    return out, nulls


# -- one clip --------------------------------------------------------------------------------
@dataclass
class SynthClip:
    vid: str
    truth: dict
    instances: np.ndarray  # uint8 [F, H, W]
    frames: np.ndarray  # uint8 [F, H, W, 3]
    audio: np.ndarray  # float32 [N, 2] at AUDIO_RATE


def render_shapes_clip(p: SynthParams, index: int) -> SynthClip:
    """Clip `index` of a "shapes" world (scene.render_clip picks the scene): frames, instance maps, audio and truth
    (deterministic in seed and index)."""
    rng = np.random.default_rng([p.seed, index])
    w, h, n_frames = p.width, p.height, p.seconds * p.fps
    n_obj = int(rng.integers(1, 4))
    cats = [CATEGORIES[i] for i in rng.choice(len(CATEGORIES), size=n_obj, replace=False)]
    sched, distractor = _schedule(rng, n_obj, p.seconds)
    objs = []
    for i, cat in enumerate(cats):
        s = int(rng.uniform(0.24, 0.34) * min(w, h))
        sprite, tex = make_sprite(cat, s)
        objs.append(SceneObject(i + 1, cat, s, sprite, tex, random_trajectory(rng, n_frames, w, h, s), sched[i], distractor[i]))
    z_order = [objs[i] for i in rng.permutation(n_obj)]
    bg = random_background(rng, h, w)
    frames, inst = draw_frames(z_order, bg, n_frames)
    audio = mix_audio(objs, p.seconds * AUDIO_RATE, w, rng)
    return assemble_clip(p, index, objs, z_order, frames, inst, audio, rng)


def make_sprite(cat: SynthCategory, s: int) -> tuple[np.ndarray, np.ndarray]:
    """An object's mask and its texture (the category colour with faint diagonal stripes), s x s."""
    sprite = shape_mask(cat.shape, s)
    yy, xx = np.mgrid[0:s, 0:s]
    stripes = 0.82 + 0.18 * np.sin((xx + yy) * 2 * np.pi / max(6, s / 4))
    tex = np.clip(np.asarray(cat.rgb)[None, None, :] * stripes[..., None], 0, 255).astype(np.uint8)
    return sprite, tex


def draw_frames(z_order: list[SceneObject], bg: np.ndarray, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Frames uint8 [F, H, W, 3] and instance maps uint8 [F, H, W]: objects painted back to front."""
    h, w = bg.shape[:2]
    frames = np.empty((n_frames, h, w, 3), dtype=np.uint8)
    inst = np.zeros((n_frames, h, w), dtype=np.uint8)
    for f in range(n_frames):
        fr = bg.copy()
        im = inst[f]
        for o in z_order:
            x0, y0 = (int(round(v)) for v in o.pos[f])
            sl = (slice(y0, y0 + o.size), slice(x0, x0 + o.size))
            m = o.sprite[: fr[sl].shape[0], : fr[sl].shape[1]]
            fr[sl][m] = o.texture[: m.shape[0], : m.shape[1]][m]
            im[sl][m] = o.oid
        frames[f] = fr
    return frames, inst


def mix_audio(objs: list[SceneObject], n_audio: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Stereo audio [N, 2]: each non-distractor object's sound, gated per second, panned by its mean x."""
    audio = np.zeros((n_audio, 2))
    for o in objs:
        if o.distractor:
            continue
        x = _sound(o.cat, n_audio, rng) * _gate(o.sounding, n_audio)
        theta = (np.mean(o.pos[:, 0]) + o.size / 2) / w * (np.pi / 2)
        audio[:, 0] += x * math.cos(theta)
        audio[:, 1] += x * math.sin(theta)
    audio += 0.0005 * rng.standard_normal(audio.shape)
    audio *= 0.9 / max(1.0, float(np.abs(audio).max()) / 0.9) if np.abs(audio).max() > 0.9 else 1.0
    return audio


def assemble_clip(p: SynthParams, index: int, objs: list[SceneObject], z_order: list[SceneObject], frames: np.ndarray, inst: np.ndarray,
          audio: np.ndarray, rng: np.random.Generator) -> SynthClip:
    """The clip with its truth (objects, schedule, expressions)."""
    w, h, n_frames = p.width, p.height, p.seconds * p.fps
    exprs, nulls = _expressions(objs, w, rng)
    vid = video_id(p.seed, index)
    truth = {
        "video_id": vid, "seconds": p.seconds, "fps": p.fps, "size": [w, h], "n_frames": n_frames,
        "objects": [{"id": o.oid, "fid": o.oid - 1, "category": o.cat.name, "shape": o.cat.shape,
                     "colour": o.cat.colour, "distractor": o.distractor, "sounding": o.sounding,
                     "expressions": exprs[o.oid]} for o in objs],
        "z_order": [o.oid for o in z_order],
        "sounding_per_second": [[o.oid for o in objs if o.sounding[s]] for s in range(p.seconds)],
        "null_expressions": nulls,
    }
    return SynthClip(vid, truth, inst, frames, audio.astype(np.float32))

