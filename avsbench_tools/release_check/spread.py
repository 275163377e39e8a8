"""How far a release-check difference can be trusted: a paired bootstrap over the scored clips, and the verdicts.

A split's mIoU is a sum over its clips (S4/MS3: frame IoUs over frames; AVSS: per-class IoU sums over per-class
counts, then the mean over all classes), so every predictor's mIoU can be recomputed on a resample of the clips.
The same resamples are used for every predictor (paired), B = 2000, seed 0. The spread of a difference is the
half-width of its central 95% bootstrap interval: the difference that another draw of test clips of the same
kind could move it by. It does not include what another training seed would change (the report says so).

Verdicts (each needs MIN_CLIPS scored clips, else "cannot tell"):
- learnable: "yes" when the audio run beats the best trivial predictor by at least LEARNABLE_MARGIN and the
  whole interval is above 0; "no" when even the interval's top stays under LEARNABLE_MARGIN after at least
  MIN_EPOCHS_FOR_NO epochs (fewer: "cannot tell", the budget was too short to say); else "cannot tell".
- audio helps: asked only of a learnable model ("cannot tell" otherwise: a model that learnt nothing says nothing
  about audio). "yes" when audio - no audio is at least AUDIO_MARGIN and the interval is above 0; "no: the no-audio
  run does better" when it is at most -AUDIO_MARGIN and the interval is below 0; "no clear difference" when the
  whole interval lies within +-AUDIO_MARGIN; else "cannot tell".
"""

from __future__ import annotations

import numpy as np

LEARNABLE_MARGIN = 0.05
AUDIO_MARGIN = 0.02
MIN_CLIPS = 5  # clips in the scored split below which no verdict is given
MIN_EPOCHS_FOR_NO = 5  # "learnable: no" needs the audio run to have trained this many epochs (a yes needs none)
RESAMPLES = 2000


def miou_of(stats: list, idx: np.ndarray) -> np.ndarray:
    """mIoU of each resample (rows of `idx`, clip indices) from per-clip stats (Scorer.clip_stats layout)."""
    if isinstance(stats[0][0], list):  # AVSS: [per-class IoU sums, per-class counts]
        iou = np.asarray([s[0] for s in stats], np.float64)
        cnt = np.asarray([s[1] for s in stats], np.float64)
        si, sc = iou[idx].sum(1), cnt[idx].sum(1)  # [B, K]
        per = np.where(sc > 0, si / np.maximum(sc, 1), 0.0)
        return per.mean(1)
    tot = np.asarray([s[0] for s in stats], np.float64)
    n = np.asarray([s[1] for s in stats], np.float64)
    return tot[idx].sum(1) / np.maximum(n[idx].sum(1), 1)


def resamples(n_clips: int, b: int = RESAMPLES, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n_clips, size=(b, n_clips))


def interval(a: list, b: list, idx: np.ndarray) -> tuple[float, float]:
    """Central 95% bootstrap interval of mIoU(a) - mIoU(b) over the same resamples."""
    d = miou_of(a, idx) - miou_of(b, idx)
    lo, hi = np.percentile(d, [2.5, 97.5])
    return float(lo), float(hi)


def _pm(lo: float, hi: float, d: float) -> str:
    return f"95% interval over the clips {lo:+.4f} .. {hi:+.4f} (spread +-{max(d - lo, hi - d):.4f})"


def verdicts(audio: dict, silent: dict, trivial: dict, clips: int, split: str, encoder: str,
             epochs: int | None = None) -> dict:
    """{"learnable", "audio_helps"}: each {verdict, why, margin|difference, interval}. `audio`, `silent`: the runs'
    {"miou", "clip_stats"}; `trivial`: name -> {"miou", "clip_stats"}; `encoder`: what the audio came from;
    `epochs`: what the audio run trained (under MIN_EPOCHS_FOR_NO a "no" is "cannot tell": too short to say)."""
    best_name, best = max(trivial.items(), key=lambda kv: kv[1]["miou"])
    gap, d = audio["miou"] - best["miou"], audio["miou"] - silent["miou"]
    few = clips < MIN_CLIPS
    stats_ok = not few and all(x.get("clip_stats") and len(x["clip_stats"]) == clips
                               for x in (audio, silent, best))
    idx = resamples(clips) if stats_ok else None
    head = f"test mIoU {audio['miou']:.4f} vs the best trivial predictor ({best_name}) {best['miou']:.4f}: {gap:+.4f}"
    rule = f"learnable means at least +{LEARNABLE_MARGIN} with the whole interval above 0"
    if few or idx is None:
        cannot = (f"cannot tell: the {split} split has {clips} clip{'s' if clips != 1 else ''} "
                  f"(a verdict needs {MIN_CLIPS})" if few else "cannot tell: no per-clip scores to measure the spread")
        return {"learnable": {"verdict": cannot, "why": f"{head}; {rule}", "margin": gap, "interval": None},
                "audio_helps": {"verdict": cannot, "why": f"test mIoU with audio {audio['miou']:.4f}, without "
                                f"{silent['miou']:.4f}: {d:+.4f}; {encoder}", "difference": d, "interval": None}}
    lo, hi = interval(audio["clip_stats"], best["clip_stats"], idx)
    if gap >= LEARNABLE_MARGIN and lo > 0:
        v = "yes"
    elif hi < LEARNABLE_MARGIN and epochs is not None and epochs < MIN_EPOCHS_FOR_NO:
        v = (f"cannot tell: {epochs} epoch{'s' if epochs != 1 else ''} of training, too few to say it does not "
             "learn (give release-check a larger --budget)")
    elif hi < LEARNABLE_MARGIN:
        v = "no"
    else:
        v = f"cannot tell: the margin {gap:+.4f} is within its spread"
    learnable = {"verdict": v, "why": f"{head}, {_pm(lo, hi, gap)}; {rule}", "margin": gap, "interval": [lo, hi]}
    a_lo, a_hi = interval(audio["clip_stats"], silent["clip_stats"], idx)
    why = (f"test mIoU with audio {audio['miou']:.4f}, without {silent['miou']:.4f}: {d:+.4f}, "
           f"{_pm(a_lo, a_hi, d)}; threshold {AUDIO_MARGIN}; one training seed each, the interval measures the "
           f"test clips only; {encoder}")
    if v != "yes":
        av = "cannot tell: the model is not shown to learn the release, so with or without audio says nothing"
    elif d >= AUDIO_MARGIN and a_lo > 0:
        av = "yes"
    elif d <= -AUDIO_MARGIN and a_hi < 0:
        av = "no: the no-audio run does better"
    elif -AUDIO_MARGIN < a_lo and a_hi < AUDIO_MARGIN:
        av = "no clear difference"
    else:
        av = f"cannot tell: the difference {d:+.4f} is within its spread"
    return {"learnable": learnable,
            "audio_helps": {"verdict": av, "why": why, "difference": d, "interval": [a_lo, a_hi]}}
