"""Ref-AVS: metadata.csv (vid,uid,split,fid,exp), media/<vid>/, gt_mask/<vid>/fid_<fid>/0000<i>.png.

Null expressions get their own media and (empty) mask folders under `null_c-<vid>`, because the
official loader takes the media folder from `uid.rsplit('_', 2)[0]` for those rows.
"""

from __future__ import annotations

import numpy as np

from avsbench_tools.writers.release_writer import ReleaseClip, ReleaseWriter, binary_mask


def null_split(split: str) -> str:
    return "test_n" if split.startswith("test") else split


class RefAVSWriter(ReleaseWriter):
    fmt = "ref-avs"

    def _media(self, folder: str, c: ReleaseClip) -> None:
        for i, frame in enumerate(c.frames):
            self.image(self.root / "media" / folder / "frames" / f"{i}.jpg", frame)
        self.wav(self.root / "media" / folder / "audio.wav", c.pcm)

    def add(self, c: ReleaseClip) -> None:
        self._media(c.name, c)
        counters: dict[str, int] = {}
        for obj in c.objects:
            for t in range(c.seconds):
                self.image(self.root / "gt_mask" / c.name / f"fid_{obj.fid}" / f"0000{t}.png", binary_mask(obj.masks[t]))
            for exp in obj.expressions:
                counters[obj.category] = counters.get(obj.category, 0) + 1
                uid = f"{c.name}_{obj.category}_{counters[obj.category]}"
                self.rows.append([c.name, uid, c.split, obj.fid, exp])
        if c.null_expressions:
            folder = f"null_c-{c.name}"
            self._media(folder, c)
            h, w = c.frames[0].shape[:2]
            empty = np.zeros((h, w), dtype=np.uint8)
            for t in range(c.seconds):
                self.image(self.root / "gt_mask" / folder / "fid_0" / f"0000{t}.png", empty)
            for n, exp in enumerate(c.null_expressions, start=1):
                self.rows.append([c.name, f"{folder}_null_{n}", null_split(c.split), 0, exp])

    def close(self) -> None:
        self.csv(self.root / "metadata.csv", ["vid", "uid", "split", "fid", "exp"], self.rows)
