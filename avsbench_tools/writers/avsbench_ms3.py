"""AVSBench-object multiple sources (MS3): frames without a split level and the literal `.mp4_` infix."""

from __future__ import annotations

from avsbench_tools.writers.release_writer import ReleaseClip, ReleaseWriter, binary_mask


class MS3Writer(ReleaseWriter):
    fmt = "avsbench-ms3"

    def add(self, c: ReleaseClip) -> None:
        d = self.root / "Multi-sources" / "ms3_data"
        size = self.size
        for k, frame in enumerate(c.frames, start=1):
            self.image(d / "visual_frames" / c.name / f"{c.name}.mp4_{k}.png", frame, size)
        for sec in range(c.seconds):  # MS3 annotates all 5 frames in every split
            self.image(d / "gt_masks" / c.split / c.name / f"{c.name}_{sec + 1}.png", binary_mask(c.masks[sec]), size,
                       nearest=True)
        self.wav(d / "audio_wav" / c.split / f"{c.name}.wav", c.pcm)
        if c.logmel is not None:
            self.logmel_pkl(d / "audio_log_mel" / c.split / f"{c.name}.pkl", c.logmel)
        self.rows.append([c.name, c.split])

    def close(self) -> None:
        self.csv(self.root / "Multi-sources" / "ms3_meta_data.csv", ["video_id", "split"], self.rows)
