"""AVSBench-semantic (AVSS): metadata.csv, label2idx.json, <label>/<uid>/{frames,labels_rgb,labels_semantic}."""

from __future__ import annotations

import json

import numpy as np

from avsbench_tools.fsutil import atomic_write_text
from avsbench_tools.writers.release_writer import ReleaseClip, ReleaseWriter


def voc_palette(n: int = 256) -> np.ndarray:
    """The PASCAL-VOC colour map: index bits interleaved into R, G, B from the high bit down."""
    pal = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal[i] = (r, g, b)
    return pal


def class_list(recipe) -> list[str]:
    return ["background", *recipe.categories]


def avss_label(seconds: int, n_sounding_categories: int) -> str:
    if seconds == 10:
        return "v2"
    return "v1m" if n_sounding_categories > 1 else "v1s"


def avss_uid(label: str, vid: str, start: float, seconds: int) -> str:
    if label == "v1m":
        return vid
    s = int(round(start * 1000))
    return f"{vid}_{s}_{s + seconds * 1000}"


def supervised_seconds(label: str, split: str, seconds: int) -> list[int]:
    return [0] if (label == "v1s" and split == "train") else list(range(seconds))


class AVSSWriter(ReleaseWriter):
    fmt = "avss"

    def __init__(self, root, recipe):
        super().__init__(root, recipe)
        self.palette = voc_palette()

    def add(self, c: ReleaseClip) -> None:
        label = c.avss_label or avss_label(c.seconds, len(set(c.sounding)))
        d = self.root / label / c.name
        for i, frame in enumerate(c.frames):
            self.image(d / "frames" / f"{i}.jpg", frame)
        for sec in supervised_seconds(label, c.split, c.seconds):
            sem = np.asarray(c.masks[sec], dtype=np.uint8)
            self.image(d / "labels_semantic" / f"{sec}.png", sem)
            self.image(d / "labels_rgb" / f"{sec}.png", self.palette[sem])
        self.wav(d / "audio.wav", c.pcm)
        s = int(c.start)
        vid = c.video_id
        a_obj = "_".join(dict.fromkeys(c.sounding)) or "background"
        self.rows.append([vid, c.name, s // 60, s % 60, a_obj, c.split, label])

    def close(self) -> None:
        self.csv(self.root / "metadata.csv", ["vid", "uid", "s_min", "s_sec", "a_obj", "split", "label"], self.rows)
        classes = class_list(self.recipe)
        atomic_write_text(self.root / "label2idx.json", json.dumps({c: i + 1 for i, c in enumerate(classes)}, indent=1))
