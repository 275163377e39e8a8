"""AVSBench-object single source (S4): Single-source/s4_meta_data.csv + s4_data/..."""

from __future__ import annotations

from avsbench_tools.writers.release_writer import ReleaseClip, ReleaseWriter, binary_mask


class S4Writer(ReleaseWriter):
    fmt = "avsbench-s4"

    def add(self, c: ReleaseClip) -> None:
        d = self.root / "Single-source" / "s4_data"
        size = self.size
        rel = f"{c.split}/{c.category}/{c.name}"
        for k, frame in enumerate(c.frames, start=1):
            self.image(d / "visual_frames" / rel / f"{c.name}_{k}.png", frame, size)
        for sec in self.recipe.annotated_seconds(c.split, c.seconds):
            self.image(d / "gt_masks" / rel / f"{c.name}_{sec + 1}.png", binary_mask(c.masks[sec]), size, nearest=True)
        self.wav(d / "audio_wav" / c.split / c.category / f"{c.name}.wav", c.pcm)
        if c.logmel is not None:
            self.logmel_pkl(d / "audio_log_mel" / c.split / c.category / f"{c.name}.pkl", c.logmel)
        self.rows.append([c.name, int(c.start), c.category, c.split])

    def close(self) -> None:
        self.csv(self.root / "Single-source" / "s4_meta_data.csv", ["name", "start", "category", "split"], self.rows)
