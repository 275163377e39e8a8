"""Zero-shot audio tagging per second with CLAP (transformers ClapModel, local weights).

Each second of the clip's 16 kHz audio (resampled to CLAP's 48 kHz) is scored against the text
"the sound of <prompt>" for every candidate category plus one background label ("ambient noise"),
so a single-category clip can still come out as 'not heard'. A category is heard in a second when
its softmax probability reaches the threshold and the second is not silent.
"""

from __future__ import annotations

import numpy as np

from avsbench_tools.checkpoints import ModelHandle, load_hf
from avsbench_tools.errors import require

BACKGROUND = "ambient noise"
TEMPLATE = "the sound of {}"


class Clap(ModelHandle):
    """transformers ClapModel + ClapProcessor: per-second zero-shot scores for the prompts."""

    def scores(self, pcm: np.ndarray, sample_rate: int, seconds: int, prompts: dict[str, str]) -> list[dict[str, float]]:
        """Per second: {category: probability} (the background label's share is left out)."""
        torch = require("torch", "models")
        from scipy.signal import resample_poly

        rate = int(getattr(self.processor.feature_extractor, "sampling_rate", 48000))
        x = np.asarray(pcm, np.float64)
        x = (x.mean(axis=1) if x.ndim > 1 else x) / 32768.0
        x = resample_poly(x, rate, sample_rate).astype(np.float32) if sample_rate != rate else x.astype(np.float32)
        segs = []
        for s in range(seconds):
            seg = x[s * rate:(s + 1) * rate]
            segs.append(np.pad(seg, (0, rate - seg.size)) if seg.size < rate else seg)
        cats = list(prompts)
        texts = [TEMPLATE.format(prompts[c]) for c in cats] + [TEMPLATE.format(BACKGROUND)]
        inputs = self.processor(text=texts, audio=segs, sampling_rate=rate, return_tensors="pt", padding=True)
        with torch.inference_mode():
            out = self.model(**{k: v.to(self.device) for k, v in inputs.items()})
        probs = out.logits_per_audio.softmax(-1).float().cpu().numpy()
        return [{c: round(float(probs[s, i]), 4) for i, c in enumerate(cats)} for s in range(seconds)]


def load_clap(spec: str, device: str = "cpu", allow_download: bool = False) -> Clap:
    """A transformers CLAP folder or cached model id."""
    return load_hf(spec, "--clap", "CLAP", ("clap",), "ClapModel", "ClapProcessor", device, allow_download, Clap)


def heard(scores: list[dict[str, float]], active: list[bool] | None, threshold: float) -> list[set[str]]:
    """Categories heard per second: probability >= threshold, and the second is not silent."""
    out = []
    for s, sc in enumerate(scores):
        if active is not None and s < len(active) and not active[s]:
            out.append(set())
        else:
            out.append({c for c, p in sc.items() if p >= threshold})
    return out
