"""Per-category scores and the worst clips of a release-check (from the runs' per-clip mIoU)."""

from __future__ import annotations

import numpy as np

WORST_CLIPS = 6
WORST_CATEGORIES = 5


def per_category(data, split: str, audio, silent) -> dict:
    """S4: mean clip mIoU per category (metadata `category`); AVSS: per-class IoU over the split (classes
    present in its labels or predictions); MS3: none (its metadata names no category)."""
    if data.setting == "ms3":
        return {"available": False, "why": "the MS3 metadata names no category", "rows": []}
    if data.setting == "avss":
        names = data.release.classes or [str(i) for i in range(data.num_classes)]
        a_iou, a_n = np.asarray(audio.per_class_iou or []), np.asarray(audio.per_class_count or [])
        s_iou = np.asarray(silent.per_class_iou or [])
        rows = [{"category": names[c] if c < len(names) else str(c), "frames": int(a_n[c]),
                 "miou_audio": float(a_iou[c]), "miou_no_audio": float(s_iou[c]) if len(s_iou) > c else None}
                for c in range(len(a_iou)) if a_n[c] > 0 and c != 0]
        rows.sort(key=lambda r: r["miou_audio"])
        return {"available": True, "unit": "frames in which the class is in the labels or the prediction",
                "rows": rows, "worst": [r["category"] for r in rows[:WORST_CATEGORIES]]}
    cats = {it.name: it.category or "?" for it in data.items(split)}
    silent_by = {c["name"]: c["miou"] for c in silent.per_clip}
    groups: dict[str, list] = {}
    for c in audio.per_clip:
        groups.setdefault(cats.get(c["name"], "?"), []).append((c["miou"], silent_by.get(c["name"])))
    rows = [{"category": k, "clips": len(v), "miou_audio": float(np.mean([a for a, _ in v])),
             "miou_no_audio": float(np.mean([s for _, s in v if s is not None])) if any(s is not None for _, s in v)
             else None} for k, v in groups.items()]
    rows.sort(key=lambda r: r["miou_audio"])
    return {"available": True, "unit": "clips", "rows": rows, "worst": [r["category"] for r in rows[:WORST_CATEGORIES]]}


def worst(audio_clips: list[dict], silent_clips: list[dict], n: int = WORST_CLIPS) -> list[dict]:
    """The n clips the audio run scores lowest (likely annotation problems, or hard clips)."""
    silent_by = {c["name"]: c["miou"] for c in silent_clips}
    rows = sorted(audio_clips, key=lambda c: c["miou"])[:n]
    return [{"name": c["name"], "category": c.get("category"), "miou_audio": c["miou"],
             "miou_no_audio": silent_by.get(c["name"])} for c in rows]
