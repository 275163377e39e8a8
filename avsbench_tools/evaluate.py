"""evaluate: score predicted masks, saved in a release's own mask layout, against that release.

The prediction folder mirrors the release tree: for every GT mask `GT/<path>` the prediction is
`PRED/<path>` (binary 0/255 PNGs, or probabilities as 8-bit PNGs, value/255; AVSS: class-index
PNGs under labels_semantic). Metrics are those of `avsbench_tools.metrics`, at the official
resolutions (S4/MS3 224x224, Ref-AVS 256x256, AVSS at the label size).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from avsbench_tools import metrics
from avsbench_tools.errors import UsageError
from avsbench_tools.release import Item, read_release

Progress = Callable[[str, int, int, str], None]
OFFICIAL_BATCH = {"avsbench-s4": 4 * 5, "avsbench-ms3": 4 * 5, "ref-avs": 4 * 10}


def _load(path: Path, size: tuple[int, int] | None, nearest: bool) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("L") if im.mode not in ("L", "P", "I") else im
        if size is not None and im.size != size:
            im = im.resize(size, Image.NEAREST if nearest else Image.BILINEAR)
        return np.asarray(im)


def _pred_index(pred_root: Path) -> dict[tuple[str, str], Path]:
    """(parent folder, file name) -> path of every PNG under the prediction root."""
    idx: dict[tuple[str, str], Path] = {}
    for p in pred_root.rglob("*.png"):
        idx.setdefault((p.parent.name, p.name), p)
    return idx


def _pairs(items: list[Item], roots: list[Path], pred_root: Path):
    """(item, second, gt path, pred path): the same relative path under PRED, else the same
    <folder>/<file> anywhere under PRED (a prediction tree whose split folders differ)."""
    index = None
    missing = []
    out = []
    for it in items:
        for sec, gp in sorted(it.masks.items()):
            pp = None
            for base in roots:
                try:
                    cand = pred_root / gp.relative_to(base)
                except ValueError:
                    continue
                if cand.is_file():
                    pp = cand
                    break
            if pp is None:
                index = index if index is not None else _pred_index(pred_root)
                pp = index.get((gp.parent.name, gp.name))
            if pp is None:
                missing.append(gp.name)
            out.append((it, sec, gp, pp))
    if missing:
        raise UsageError(f"{len(missing)} predicted masks missing under {pred_root} (first: {missing[0]})")
    return out


def evaluate(fmt: str, gt: Path, pred: Path, split: str | None = None, batch_size: int | None = None,
             progress: Progress | None = None) -> dict:
    progress = progress or (lambda *a: None)
    gt, pred = Path(gt), Path(pred)
    if not pred.is_dir():
        raise UsageError(f"--pred {pred}: no such folder")
    gt = gt.resolve()
    rel = read_release(gt, fmt)
    splits = sorted({it.split for it in rel.items})
    if split:
        if split not in splits:
            raise UsageError(f"--split {split}: the release has {', '.join(splits)}")
        chosen = [split]
    else:
        tests = [s for s in splits if s.startswith("test")]
        chosen = tests or splits
    items = [it for it in rel.items if it.split in chosen]
    pairs = _pairs(items, [gt, rel.root], pred.resolve()) if items else []
    if fmt in ("avsbench-s4", "avsbench-ms3"):
        size = (224, 224)
        gts, probs = [], []
        for i, (_, _, gp, pp) in enumerate(pairs):
            gts.append(_load(gp, size, True) > 0)
            probs.append(_load(pp, size, True).astype(np.float32) / 255.0)
            progress("evaluating", i + 1, len(pairs), gp.name)
        g, p = np.stack(gts), np.stack(probs)
        bs = batch_size or OFFICIAL_BATCH[fmt]
        return {"format": fmt, "splits": chosen, "frames": len(pairs), "miou": metrics.mask_iou(p, g),
                "fscore": metrics.fscore_official(p, g, bs), "fscore_batch_size": bs,
                "fscore_batch_free": metrics.fscore_batch_free(p, g)}
    if fmt == "avss":
        n = len(rel.classes) or 71
        gts, preds = [], []
        for i, (_, _, gp, pp) in enumerate(pairs):
            g = _load(gp, None, True)
            gts.append(g)
            preds.append(_load(pp, (g.shape[1], g.shape[0]), True))
            progress("evaluating", i + 1, len(pairs), gp.name)
        # frames differ in size across videos: accumulate per frame
        res = metrics.avss_scores(preds, gts, n)
        present = [i for i, c in enumerate(res["per_class_count"]) if c > 0]
        return {"format": fmt, "splits": chosen, "frames": len(pairs), "classes": n, "miou": res["miou"],
                "fscore": res["fscore"], "fscore_batch_free": res["fscore"],
                "classes_present": len(present),
                "miou_present_classes": float(np.mean([res["per_class_iou"][i] for i in present])) if present else 0.0}
    # ref-avs: per split, J/F for seen/unseen (and train/val if asked), S for null
    out: dict = {"format": fmt, "splits": chosen}
    size = (256, 256)
    bs = batch_size or OFFICIAL_BATCH[fmt]
    for s in chosen:
        sp = [t for t in pairs if t[0].split == s]
        g = np.stack([_load(gp, size, True) > 0 for _, _, gp, _ in sp]) if sp else np.zeros((0, 256, 256), bool)
        p = np.stack([_load(pp, size, True).astype(np.float32) / 255.0 for _, _, _, pp in sp]) if sp else g.astype(float)
        progress("evaluating", chosen.index(s) + 1, len(chosen), s)
        if s == "test_n" or all(t[0].null for t in sp):
            out[s] = {"S": metrics.null_s(p, bs), "frames": len(sp)}
        else:
            jf = metrics.refavs_jf(p, g, bs)
            out[s] = {"J": jf["J"], "F": jf["F"], "F_batch_free": jf["F_batch_free"], "frames": len(sp)}
    if "test_s" in out and "test_u" in out:
        out["mix"] = {k: (out["test_s"][k] + out["test_u"][k]) / 2 for k in ("J", "F")}
    return out
