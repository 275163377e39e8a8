"""Negative-audio test sets: copies of a release's test clips whose audio says nothing is sounding.

`export --negative-audio silence,noise,offscreen --seed N` writes, beside the release,

    OUT/negative-audio/<kind>/   the same official layout, test clips only, so a loader reads it with
                                 only its data root changed: frames byte-identical to the release's,
                                 ground truth all empty, audio replaced:
                                   silence    all-zero samples
                                   noise      white noise, seeded per clip (seed, kind, clip name)
                                   offscreen  the audio of a release clip of an unrelated category (seeded choice)
                                 and log-mel computed from that audio exactly as the release's own
                                 (audio.logmel: torchvggish's VGGish examples, padded as sample does)
    OUT/negative-audio/manifest.json   the seed, the kinds, and each copy's pairing

The same seed gives the same bytes. AVSBench-Robust (2025) showed that models segment the salient
object whatever the audio says; these sets measure that (avsbench_tools.negative_audio.robustness).
"""

from __future__ import annotations

import json
import shutil
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from avsbench_tools import formats
from avsbench_tools.errors import UsageError

KINDS = ("silence", "noise", "offscreen")
FOLDER = "negative-audio"
MANIFEST = "manifest.json"
NOISE_RMS = 0.05  # white noise at -26 dBFS: clearly audible, never clipping


@dataclass
class NegativeSets:
    kinds: list[str]
    seed: int
    clips: int = 0  # positive test clips each kind copies
    pairs: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def parse_kinds(text: str | None) -> list[str]:
    """`silence,noise,offscreen` -> the kinds; a one-line UsageError for an unknown one."""
    if not text:
        return []
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise UsageError(f"--negative-audio {text}: expected kinds from {', '.join(KINDS)} (comma-separated)")
    return list(dict.fromkeys(kinds))


def check_format(fmt: str) -> None:
    f = formats.get(fmt)
    if f.per_object:
        raise UsageError(f"--negative-audio: not for {fmt} (its test_n split already holds null references); "
                         "use avsbench-s4, avsbench-ms3 or avss")


def _rng(seed: int, kind: str, name: str) -> np.random.Generator:
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, KINDS.index(kind), zlib.crc32(name.encode())])


def _labels(it, fmt: formats.ReleaseFormat) -> set[str]:
    """What sounds in a clip, to tell unrelated clips apart: S4 category, AVSS a_obj, MS3 the clip itself."""
    if fmt.binary and it.category:
        return {it.category}
    if fmt.semantic:
        return set((it.row.get("a_obj") or "").split("_")) - {"", "background"}
    return {it.name}


def _offscreen_partner(it, pool: list, f: formats.ReleaseFormat, rng: np.random.Generator):
    mine = _labels(it, f)
    unrelated = [o for o in pool if o.name != it.name and not (_labels(o, f) & mine)]
    return (unrelated[int(rng.integers(len(unrelated)))] if unrelated else None), len(unrelated)


def _fit(pcm: np.ndarray, n: int, channels: int) -> np.ndarray:
    """`pcm` cut or looped to n samples and matched to `channels` (mono mixed or repeated)."""
    if pcm.shape[0] == 0:
        return np.zeros((n, channels), dtype=np.int16)
    reps = -(-n // pcm.shape[0])
    out = np.tile(pcm, (reps, 1))[:n]
    if out.shape[1] != channels:
        mono = out.mean(axis=1, keepdims=True).round().astype(np.int16)
        out = np.repeat(mono, channels, axis=1)
    return out.astype(np.int16)


def negative_audio(kind: str, it, pcm: np.ndarray, partner_pcm: np.ndarray | None, seed: int) -> np.ndarray:
    n, ch = pcm.shape
    if kind == "silence":
        return np.zeros((n, ch), dtype=np.int16)
    if kind == "noise":
        noise = _rng(seed, kind, it.name).normal(0.0, NOISE_RMS, size=(n, 1))
        return np.repeat(np.clip(noise * 32767.0, -32768, 32767).round().astype(np.int16), ch, axis=1)
    return _fit(partner_pcm, n, ch)


def write_negative_sets(root: Path, fmt: str, kinds: list[str], seed: int, recipe) -> NegativeSets:
    """Write root/negative-audio/<kind>/ for the test clips of the release at `root` (written just now)."""
    from PIL import Image

    from avsbench_tools.audio.logmel import SAMPLE_RATE, int16_to_examples, pad_examples
    from avsbench_tools.audio.wav import read_wav
    from avsbench_tools.release_reader import read_release
    from avsbench_tools.writers import ReleaseClip, open_writer

    check_format(fmt)
    f = formats.get(fmt)
    rel = read_release(root, fmt)
    test = [it for it in rel.items if it.split == f.split_name("test")]
    res = NegativeSets(list(kinds), int(seed), clips=len(test))
    if not test:
        res.notes.append("--negative-audio: the release has no test clip; no negative set written")
        return res
    top = Path(root) / FOLDER
    for kind in kinds:
        dest = top / kind
        w = open_writer(fmt, dest, recipe)
        for it in test:
            pcm, _ = read_wav(it.wav)
            partner = None
            if kind == "offscreen":
                partner, _ = _offscreen_partner(it, rel.items, f, _rng(seed, kind, it.name))
                if partner is None:
                    res.notes.append(f"--negative-audio offscreen: test clip {it.name} has no clip of an unrelated "
                                     "category in the release; left out of the offscreen set")
                    continue
            neg = negative_audio(kind, it, pcm, read_wav(partner.wav)[0] if partner else None, seed)
            frames = [np.asarray(Image.open(p).convert("RGB")) for p in it.frames]
            h, wd = frames[0].shape[:2]
            seconds = len(it.frames)
            logmel = pad_examples(int16_to_examples(neg, SAMPLE_RATE), seconds) if f.logmel else None
            start = float(it.row.get("start") or 0) if f.binary else (
                int(it.row.get("s_min") or 0) * 60 + int(it.row.get("s_sec") or 0))
            w.add(ReleaseClip(
                name=it.name, video_id=it.row.get("vid") or it.name, start=float(start), seconds=seconds,
                split=it.split, frames=frames, pcm=neg, logmel=logmel, category=it.category if f.binary else None,
                masks={s: np.zeros((h, wd), dtype=np.uint8) for s in range(seconds)}, sounding=[],
                avss_label=it.category if f.semantic else None))
            # the frames are the release's own files, byte for byte (a JPEG written again would change)
            for p in it.frames:
                shutil.copyfile(p, dest / p.relative_to(root))
            res.pairs.append({"kind": kind, "clip": it.name, "positive": it.name, "split": it.split,
                              "audio_from": partner.name if partner else None,
                              "path": (dest / it.wav.relative_to(root)).relative_to(root).as_posix()})
        w.close()
    (top / MANIFEST).write_text(json.dumps({"seed": res.seed, "kinds": res.kinds, "format": fmt,
                                            "noise_rms": NOISE_RMS, "pairs": res.pairs}, indent=1) + "\n",
                                encoding="utf-8")
    return res


def negative_roots(release: Path, fmt: str) -> dict[str, Path]:
    """{kind: root of that negative set} of a release exported with --negative-audio (none: {})."""
    top = Path(release) / FOLDER
    if not top.is_dir():
        inner = formats.get(fmt).inner
        if inner and Path(release).name == inner:
            top = Path(release).parent / FOLDER
    return {k: top / k for k in KINDS if (top / k).is_dir()}
