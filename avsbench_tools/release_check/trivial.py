"""The trivial predictors a learnable release must beat, scored with the official metrics.

S4/MS3 (binary): all-empty (every pixel background), all-full (every pixel sounding), and the mean
training mask (the per-pixel fraction of annotated training frames where the pixel is foreground, used
as a probability map). AVSS: all-background, every pixel the most frequent foreground class of the
training labels, and the per-pixel most frequent training class. All at 224x224, as the loaders give them.
"""

from __future__ import annotations

import numpy as np

from avsbench_tools import metrics
from avsbench_tools.baselines import SIZE, ClipDataset
from avsbench_tools.progress import Progress


def _labels(ds: ClipDataset, progress: Progress, what: str) -> list[np.ndarray]:
    """The annotated frames' masks of a split ([n, 224, 224] per clip), read as the loader reads them."""
    from avsbench_tools.baselines import palette_lookup, read_binary_mask

    out = []
    if ds.setting == "avss":
        from avsbench_tools.baselines import avss_image, read_rgb

        lookup = palette_lookup(ds.data.num_classes)
        for i, it in enumerate(ds.items):
            out.append(np.stack([lookup(np.asarray(avss_image(read_rgb(p), ds.split, True)))
                                 for _, p in sorted(it.rgb_masks.items())]))
            progress(what, i + 1, len(ds.items), it.name)
        return out
    for i, it in enumerate(ds.items):
        out.append(np.stack([read_binary_mask(p, ds.setting) > 0.5 for _, p in sorted(it.masks.items())]))
        progress(what, i + 1, len(ds.items), it.name)
    return out


def trivial_scores(train: ClipDataset, test: ClipDataset, progress: Progress | None = None) -> dict[str, dict]:
    """{predictor: {"miou", "fscore", "fscore_batch_free", "description", "clip_stats"}} on `test`'s annotated
    frames; clip_stats per test clip in order, as infer.Scorer keeps them (for release_check.spread)."""
    progress = progress or (lambda *a: None)
    gt = _labels(test, progress, f"masks ({test.split})")
    tr = _labels(train, progress, "masks (train)")
    if test.setting == "avss":
        return _semantic(train.data.num_classes, tr, gt, train.data.release.classes)
    g = np.concatenate(gt) if gt else np.zeros((0, SIZE, SIZE), bool)
    mean = np.concatenate(tr).mean(0) if tr else np.zeros((SIZE, SIZE))
    preds = {"all-empty": (np.zeros(g.shape[1:]), "every pixel background"),
             "all-full": (np.ones(g.shape[1:]), "every pixel sounding"),
             "mean-mask": (mean, "the per-pixel mean of the training masks, as a probability map")}
    out = {}
    for name, (p, desc) in preds.items():
        prob = np.broadcast_to(p, g.shape)
        out[name] = {"miou": metrics.mask_iou(prob, g), "fscore": metrics.fscore_official(prob, g, 4 * test.t),
                     "fscore_batch_free": metrics.fscore_batch_free(prob, g), "description": desc,
                     "clip_stats": [[float(metrics.frame_iou(np.broadcast_to(p, c.shape) > 0.5, c).sum()), len(c)]
                                    for c in gt]}
    return out


def _semantic(k: int, tr: list[np.ndarray], gt: list[np.ndarray], classes: list[str] | None = None) -> dict[str, dict]:
    t = np.concatenate(tr) if tr else np.zeros((0, SIZE, SIZE), np.int64)
    counts = np.bincount(t.ravel(), minlength=k)[:k]
    fg = int(np.argmax(counts[1:]) + 1) if k > 1 and counts[1:].any() else 0
    per_pixel = np.zeros((SIZE, SIZE), np.int64)
    if len(t):
        hist = np.stack([(t == c).sum(0) for c in range(k)])
        per_pixel = hist.argmax(0)
    g = np.concatenate(gt) if gt else np.zeros((0, SIZE, SIZE), np.int64)
    name = classes[fg] if classes and fg < len(classes) else f"class {fg}"
    preds = {"all-background": (np.zeros((SIZE, SIZE), np.int64), "every pixel background"),
             "all-frequent-class": (np.full((SIZE, SIZE), fg), f"every pixel {name} (class {fg}, the most frequent "
                                    "foreground class in train)"),
             "mean-mask": (per_pixel, "the per-pixel most frequent training class")}
    out = {}
    for name, (p, desc) in preds.items():
        res = metrics.avss_scores(np.broadcast_to(p, g.shape), g, k)
        stats = []
        for c in gt:
            r = metrics.avss_scores(np.broadcast_to(p, c.shape), c, k)
            cnt = np.asarray(r["per_class_count"])
            stats.append([(np.asarray(r["per_class_iou"]) * cnt).tolist(), cnt.tolist()])
        out[name] = {"miou": res["miou"], "fscore": res["fscore"], "fscore_batch_free": res["fscore"],
                     "description": desc, "clip_stats": stats}
    return out
