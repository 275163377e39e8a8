"""evaluate: score predicted masks, saved in a release's own mask layout, against that release.

Where a prediction is read. For every ground-truth mask the official test reads for the split,
`GT/<path>`, the prediction is `PRED/<path>`: the same path relative to the release root (for
S4/MS3 PRED may be the unpack root that holds `Single-source/` or `Multi-sources/`, or that inner
folder, like --gt). Nothing else is looked at: no search by file name, so a folder of frames or a
tree whose split folders differ scores nothing. A missing prediction is an error naming how many
and the first path; with `allow_missing` it is reported and scored as an empty mask (AVSS: all
background), which the official code would not do.

What a prediction must be (else refused with the first offending path and the cause):
- an image with one channel (PIL modes L, P, 1, I;16, I); RGB, RGBA, LA are refused;
- exactly the size of its ground-truth mask: predictions are never resampled to fit. Ref-AVS also
  accepts 256x256, the official evaluation size (see below);
- S4, MS3, Ref-AVS: values 0..255, read as probabilities value/255, so 0/255 masks and 8-bit
  probability maps both work and are thresholded as the official code does (0.5; Ref-AVS J 0.4;
  F over 255 thresholds). A prediction set whose every file holds only 0 and 1 is read as 0/1
  masks (1 = foreground). Mode 1 images are 0/255. Values above 255 (16-bit) are refused;
- AVSS: class indices 0..n-1, n = the classes in the release's label2idx.json (71 officially).

Resolution. S4/MS3 and AVSS are scored at the ground truth's own size (official S4/MS3 masks are
224x224; AVSS labels keep the source resolution). Ref-AVS is scored at 256x256 like the official
code: the ground-truth mask is resized bilinearly and thresholded > 0 (the official loader's rule).
A prediction at 256x256 is used as is. One at the ground truth's size is resized and the output
says how many were: a set of masks (0/255 or 0/1) by the same rule as the ground truth, so a copy
of the ground truth scores J = 1; probability maps bilinearly, then thresholded as above. Metrics are those of `avsbench_tools.metrics`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from avsbench_tools import formats, metrics
from avsbench_tools.errors import UsageError
from avsbench_tools.progress import Progress
from avsbench_tools.release_reader import Item, Release, check_release, read_release

REFAVS_SIZE = formats.get("ref-avs").eval_size  # Ref-AVS scores everything at its official 256x256
SINGLE_CHANNEL = ("L", "P", "1", "I;16", "I;16L", "I;16B", "I")


@dataclass
class _Preds:
    """What was read: raw prediction arrays and what their values look like."""

    arrays: list[np.ndarray] = field(default_factory=list)
    values_seen: np.ndarray = field(default_factory=lambda: np.zeros(256, bool))  # 8-bit formats
    missing: list[Path] = field(default_factory=list)
    resized: int = 0


def _open_single(path: Path) -> np.ndarray:
    """A prediction file as a 2-D array of its stored values; refuse anything that is not one channel."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            if mode not in SINGLE_CHANNEL:
                bands = len(im.getbands())
                raise UsageError(f"--pred {path}: a {mode} image ({bands} channels), not a mask; "
                                 "predictions must be single-channel PNGs")
            arr = np.asarray(im)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise UsageError(f"--pred {path}: not an image that can be read ({type(exc).__name__})") from None
    if mode == "1":
        arr = arr.astype(np.uint8) * 255
    if arr.ndim != 2:
        raise UsageError(f"--pred {path}: has {arr.shape[-1]} channels, not a mask")
    return arr


def _load_gt(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        im = im if im.mode in SINGLE_CHANNEL else im.convert("L")
        arr = np.asarray(im)
    return arr.astype(np.uint8) * 255 if arr.dtype == bool else arr


def _resize_float(arr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a 2-D array to size (w, h), in float: no rounding of 0/1 or probabilities."""
    from PIL import Image

    return np.asarray(Image.fromarray(arr.astype(np.float32)).resize(size, Image.BILINEAR))


def _official_refavs_gt(gt: np.ndarray) -> np.ndarray:
    """The official Ref-AVS loader's rule: the 0/255 mask resized to 256x256 bilinearly, then > 0."""
    from PIL import Image

    im = Image.fromarray(np.where(gt > 0, 255, 0).astype(np.uint8))
    return np.asarray(im.resize(REFAVS_SIZE, Image.BILINEAR)) > 0


def _pred_base(pred: Path, rel: Release) -> Path:
    """PRED itself, or PRED/Single-source (Multi-sources) when PRED is an S4/MS3 unpack root."""
    inner = formats.get(rel.fmt).inner
    if inner and rel.root.name == inner and (pred / inner).is_dir():
        return pred / inner
    return pred


def _refuse_frames_folder(pred: Path, gt: Path, rel: Release) -> None:
    """--pred inside the ground-truth release, below its root, holding its frames: RGB frames, not predictions."""
    if pred in (gt, rel.root) or not (pred.is_relative_to(gt) or pred.is_relative_to(rel.root)):
        return
    for it in rel.items:
        frames_dir = it.frames[0].parent
        if frames_dir.is_relative_to(pred):
            example = next((p for it2 in rel.items for p in it2.masks.values()), None)
            hint = f" (e.g. PRED/{example.relative_to(rel.root)})" if example is not None else ""
            raise UsageError(f"--pred {pred}: is the ground truth's frames folder ({frames_dir.relative_to(rel.root)}"
                             " holds RGB frames), not predicted masks; give a folder that mirrors the release's "
                             f"mask paths{hint}")


def _split_warnings(pred: Path, rel: Release, fmt: str) -> list[str]:
    """When PRED is itself a release with metadata, say where its splits disagree with the ground truth's."""
    try:
        other = read_release(pred, fmt)
    except UsageError:
        return []
    theirs = {it.name: it.split for it in other.items}
    diff = [(it.name, it.split, theirs[it.name]) for it in rel.items if it.name in theirs and theirs[it.name] != it.split]
    if not diff:
        return []
    name, a, b = diff[0]
    return [f"{len(diff)} of {len(rel.items)} metadata rows are in another split in the --pred release "
            f"(first: {name}: {a} in --gt, {b} in --pred); predictions are read at the --gt mask paths, "
            "so those clips' predictions are looked for under the --gt split"]


def _read_preds(pairs, fmt: str, n_classes: int, allow_missing: bool, pred: Path, progress: Progress,
                gt_sizes: list[tuple[int, int]], warnings: list[str]) -> _Preds:
    f = formats.get(fmt)
    out = _Preds()
    out.missing = [pp for _, _, _, pp in pairs if not pp.is_file()]
    if out.missing and not allow_missing:
        why = f"; {warnings[0].split('; predictions are read')[0]}" if warnings else ""
        raise UsageError(f"{len(out.missing)} of {len(pairs)} predicted masks missing under {pred} "
                         f"(first: {out.missing[0]}){why}; pass --allow-missing to score them as empty masks")
    for i, ((_, _, gp, pp), gsize) in enumerate(zip(pairs, gt_sizes, strict=True)):
        if not pp.is_file():
            out.arrays.append(None)
            continue
        arr = _open_single(pp)
        size = (arr.shape[1], arr.shape[0])
        if size != gsize and not (f.eval_size and size == f.eval_size):
            extra = (f" (or {f.eval_size[0]}x{f.eval_size[1]}, the official evaluation size)" if f.eval_size
                     else "")
            raise UsageError(f"--pred {pp}: size {size[0]}x{size[1]}, but the ground-truth mask is "
                             f"{gsize[0]}x{gsize[1]}{extra}; predictions are not resampled")
        top = int(arr.max(initial=0))
        low = int(arr.min(initial=0))
        if f.semantic:
            if low < 0 or top >= n_classes:
                bad = low if low < 0 else top
                raise UsageError(f"--pred {pp}: class index {bad} out of range (the release has {n_classes} "
                                 f"classes, indices 0..{n_classes - 1})")
        else:
            if top > 255 or low < 0:
                raise UsageError(f"--pred {pp}: values up to {top}; save 0/255 masks or 8-bit probabilities "
                                 "(value/255)")
            arr = arr.astype(np.uint8)
            out.values_seen |= np.bincount(arr.ravel(), minlength=256) > 0
        out.arrays.append(arr)
        if i % 25 == 0 or i == len(pairs) - 1:
            progress("evaluating", i + 1, len(pairs), gp.name)
    return out


def _reading(values_seen: np.ndarray) -> tuple[float, str]:
    """The scale of the whole prediction set: 0/1 masks when every file holds only 0 and 1, else value/255."""
    present = set(np.nonzero(values_seen)[0].tolist())
    if present <= {0, 1} and 1 in present:
        return 1.0, "0/1 masks"
    if present <= {0, 255}:
        return 255.0, "0/255 masks"
    return 255.0, "8-bit probabilities (value/255)"


def check_args(fmt: str, gt: Path, pred: Path) -> None:
    """One-line refusals of --gt/--pred that are not folders, or a --gt that is not a release."""
    gt, pred = Path(gt), Path(pred)
    if not gt.exists() or not gt.is_dir():
        raise UsageError(f"--gt {gt}: {'no such folder' if not gt.exists() else 'is not a folder'} "
                         "(give the ground-truth release root)")
    if not pred.exists():
        raise UsageError(f"--pred {pred}: no such folder")
    if not pred.is_dir():
        raise UsageError(f"--pred {pred}: is not a folder (give the root of the prediction tree)")
    check_release(gt, fmt)


def evaluate(fmt: str, gt: Path, pred: Path, split: str | None = None, batch_size: int | None = None,
             progress: Progress | None = None, allow_missing: bool = False) -> dict:
    """Score the predictions under `pred` (the --gt release's own mask paths) against the release `gt` in layout
    `fmt` with the official metrics of its mask kind; a dict of the scores and what was read (see the module)."""
    progress = progress or (lambda *a: None)
    gt, pred = Path(gt), Path(pred)
    check_args(fmt, gt, pred)
    gt = gt.resolve()
    rel = read_release(gt, fmt)
    f = formats.get(fmt)
    pred = pred.resolve()
    _refuse_frames_folder(pred, gt, rel)
    splits = sorted({it.split for it in rel.items})
    if split:
        if split not in splits:
            raise UsageError(f"--split {split}: the release has {', '.join(splits) or 'no rows'}")
        chosen = [split]
    else:
        tests = [s for s in splits if s.startswith("test")]
        chosen = tests or splits
    items: list[Item] = [it for it in rel.items if it.split in chosen]
    if not items:
        raise UsageError(f"--gt {gt}: no metadata rows to score")
    base = _pred_base(pred, rel)
    pairs = [(it, sec, gp, base / gp.relative_to(rel.root)) for it in items for sec, gp in sorted(it.masks.items())]
    if not pairs:
        raise UsageError(f"--gt {gt}: the {'/'.join(chosen)} rows have no annotated frames to score")
    missing_gt = next((gp for _, _, gp, _ in pairs if not gp.is_file()), None)
    if missing_gt is not None:
        n = sum(1 for _, _, gp, _ in pairs if not gp.is_file())
        raise UsageError(f"--gt {gt}: {n} ground-truth masks missing (first: {missing_gt}); "
                         f"run avs-tools validate {gt} --format {fmt}")
    warnings = _split_warnings(pred, rel, fmt)
    progress("reading ground truth", 0, len(pairs), "")
    gts = [_load_gt(gp) for _, _, gp, _ in pairs]
    gt_sizes = [(g.shape[1], g.shape[0]) for g in gts]
    n_classes = (len(rel.classes) or 71) if f.semantic else 2
    got = _read_preds(pairs, fmt, n_classes, allow_missing, pred, progress, gt_sizes, warnings)
    head = {"format": fmt, "splits": chosen, "frames": len(pairs),
            "clips": len({it.row.get("vid", it.name) if f.per_object else it.name for it in items}),
            "predictions": str(base), "missing": len(got.missing),
            "missing_first": str(got.missing[0]) if got.missing else None, "warnings": warnings}
    if f.semantic:
        preds = [a if a is not None else np.zeros_like(g) for a, g in zip(got.arrays, gts, strict=True)]
        res = metrics.avss_scores(preds, gts, n_classes)
        present = [i for i, c in enumerate(res["per_class_count"]) if c > 0]
        return {**head, "resolution": "the ground truth's size", "classes": n_classes, "miou": res["miou"],
                "fscore": res["fscore"], "fscore_batch_free": res["fscore"], "classes_present": len(present),
                "miou_present_classes": float(np.mean([res["per_class_iou"][i] for i in present])) if present else 0.0}
    scale, reading = _reading(got.values_seen)
    head["pred_values"] = reading
    bs = batch_size or f.official_batch
    if f.binary:
        sizes = sorted({f"{w}x{h}" for w, h in gt_sizes})
        g = [x > 0 for x in gts]
        p = [(a.astype(np.float32) / scale) if a is not None else np.zeros(x.shape, np.float32)
             for a, x in zip(got.arrays, gts, strict=True)]
        if len(sizes) > 1:  # per-frame metrics are size-independent; F's batches are averaged per frame
            raise UsageError(f"--gt {gt}: masks of several sizes ({', '.join(sizes)}); "
                             "run avs-tools validate on it")
        g, p = np.stack(g), np.stack(p)
        return {**head, "resolution": sizes[0], "miou": metrics.mask_iou(p, g),
                "fscore": metrics.fscore_official(p, g, bs), "fscore_batch_size": bs,
                "fscore_batch_free": metrics.fscore_batch_free(p, g)}
    # ref-avs: everything at 256x256 as the official code; J/F for seen/unseen (and train/val if asked), S for null
    resized = 0
    binary = reading != "8-bit probabilities (value/255)"
    g_all, p_all = [], []
    for a, x in zip(got.arrays, gts, strict=True):
        gsize = (x.shape[1], x.shape[0])
        g_all.append(_official_refavs_gt(x) if gsize != REFAVS_SIZE else x > 0)
        if a is None:
            p_all.append(np.zeros((REFAVS_SIZE[1], REFAVS_SIZE[0]), np.float32))
        elif (a.shape[1], a.shape[0]) != REFAVS_SIZE:
            # masks go through the loader's own mask transform, exactly like their ground truth;
            # probability maps are interpolated (bilinear) and thresholded later
            p_all.append(_official_refavs_gt(a).astype(np.float32) if binary else _resize_float(a, REFAVS_SIZE) / scale)
            resized += 1
        else:
            p_all.append(a.astype(np.float32) / scale)
    out: dict = {**head, "resolution": "256x256", "resized_predictions": resized,
                 "resize_rule": ("the official mask rule (bilinear, > 0)" if binary else "bilinear") if resized else None}
    for s in chosen:
        idx = [i for i, t in enumerate(pairs) if t[0].split == s]
        g = np.stack([g_all[i] for i in idx]) if idx else np.zeros((0, 256, 256), bool)
        p = np.stack([p_all[i] for i in idx]) if idx else g.astype(np.float32)
        progress("scoring", chosen.index(s) + 1, len(chosen), s)
        if s == "test_n" or (idx and all(pairs[i][0].null for i in idx)):
            out[s] = {"S": metrics.null_s(p, bs), "frames": len(idx)}
        else:
            jf = metrics.refavs_jf(p, g, bs)
            out[s] = {"J": jf["J"], "F": jf["F"], "F_batch_free": jf["F_batch_free"], "frames": len(idx)}
        out[s]["missing"] = sum(1 for i in idx if got.arrays[i] is None)  # scored as empty masks
    if "test_s" in out and "test_u" in out:
        out["mix"] = {k: (out["test_s"][k] + out["test_u"][k]) / 2 for k in ("J", "F")}
    return out
