"""`avs-tools baseline predict`: run a trained or an officially released TPAVI checkpoint on a release.

Writes, under OUT, the predicted masks in the release's own layout (the paths of its mask files, for
every frame of every clip of the split, so `avs-tools evaluate --gt RELEASE --pred OUT` scores them),
and `logits.npz`:

- S4 / MS3: masks are 8-bit probability maps, round(sigmoid(logit) * 255) (`--binary`: 0/255 at
  sigmoid > 0.5), 224x224; logits.npz holds one float32 [5, 224, 224] array per video name: the logits
  before the sigmoid.
- AVSS: `labels_semantic/<i>.png` holds the argmax class of the 224x224 logits, resized (nearest) to the
  frame's own size as `evaluate` needs, and `labels_rgb/<i>.png` its VOC colours; logits.npz holds per
  video name the winning class's logit, float32 [frames, 224, 224], and `<name>__class` the argmax
  (uint8, or int16 beyond 256 classes); `--all-logits` stores every class's logit instead,
  float32 [frames, K, 224, 224] (large: 71 classes x 10 frames is 142 MB per video). Padded frames are
  left out.

Frames go through the official loaders' preprocessing (data.py) and the model in eval mode, so given
the same weights the logits are those of the official implementation. Clips finished earlier are kept
(OUT/.logits/<name>.npy); a re-run with the same checkpoint and split resumes, Ctrl-C keeps them.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from avsbench_tools.errors import Interrupted, UsageError
from avsbench_tools.fsutil import atomic_path, atomic_write_bytes, atomic_write_text, read_marker
from avsbench_tools.outdir import claim, replaced_interrupt
from avsbench_tools.progress import Progress

KIND = "baseline-predictions"


@dataclass
class PredictOptions:
    checkpoint: Path
    split: str = "test"
    vggish_weights: Path | None = None
    device: str = "auto"
    batch: int = 1
    binary: bool = False
    all_logits: bool = False
    no_audio: bool = False
    force: bool = False
    replace_stale: bool = False  # replace predictions of another checkpoint instead of refusing (baseline eval)
    annotated_only: bool = False  # AVSS scores over the annotated frames only (release-check), not the padded 10


@dataclass
class PredictResult:
    out: Path
    clips: int
    predicted: int
    skipped: int
    frames: int
    scores: dict | None  # official metrics of the split, when it has ground truth (in-memory logits)
    per_clip: list[dict] = field(default_factory=list)  # name, category, miou
    warnings: list[str] = field(default_factory=list)
    logits: Path | None = None


def _png(path: Path, arr: np.ndarray) -> None:
    from avsbench_tools.pngfast import encode_png

    atomic_write_bytes(path, encode_png(np.ascontiguousarray(arr)))


def frame_paths(it, setting: str, root: Path, n: int) -> list[tuple[Path, Path | None]]:
    """(mask path, AVSS rgb path) of each of the clip's n frames, relative to the release root."""
    if setting == "avss":
        d = it.frames[0].parent.parent.relative_to(root)
        return [(d / "labels_semantic" / f"{i}.png", d / "labels_rgb" / f"{i}.png") for i in range(n)]
    folder = min(it.masks.items())[1].parent.relative_to(root)
    return [(folder / f"{it.name}_{k}.png", None) for k in range(1, n + 1)]


def _sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def _prepare_out(out: Path, stamp: dict, force: bool, protected=(), replace_stale: bool = False):
    """OUT through the one output-folder helper: new or empty (written in place), ours with the same stamp
    (resumed in place), or ours with --force / another stamp and `replace_stale` (the new predictions are
    written beside it and swapped in when complete; a folder holding anything avs-tools did not write is
    refused). -> outdir.OutputDir."""
    from avsbench_tools.outdir import prepare_output_dir

    out = Path(out)
    marker = read_marker(out) if out.is_dir() else None
    keep = False
    if marker is not None and marker.get("kind") == KIND and not force:
        try:
            old = json.loads((out / "predict.json").read_text(encoding="utf-8")).get("stamp")
        except (OSError, ValueError):
            old = None
        if old != stamp and replace_stale:
            force = True
        elif old != stamp:
            raise UsageError(f"--out {out}: holds predictions of another checkpoint, split or setting; pass --force "
                             "to replace them or name another folder")
        else:
            keep = True
    dest = prepare_output_dir(out, kind=KIND, force=force, keep=keep, protected=protected, what="--out")
    if not keep:
        dest.claim("predict.json", "logits.npz", ".logits")
        atomic_write_text(dest.work / "predict.json", json.dumps({"stamp": stamp}, indent=1))
    return dest


def load_for_predict(checkpoint: Path, setting: str, num_classes: int, vggish: Path | None, device: str):
    """(model in eval mode on device, checkpoint, input size, warnings) for ours or an official checkpoint."""
    from avsbench_tools.baselines.model import build_model
    from avsbench_tools.baselines.weights import checkpoint_config, load_checkpoint, read_checkpoint

    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise UsageError(f"--checkpoint {checkpoint}: no such file")
    if vggish is not None and not Path(vggish).is_file():
        raise UsageError(f"--vggish-weights {vggish}: no such file")
    ck = read_checkpoint(checkpoint)
    cfg = checkpoint_config(ck, setting)
    if cfg.num_classes != num_classes:
        raise UsageError(f"--checkpoint {checkpoint}: {cfg.num_classes} output classes, the release has {num_classes}")
    model = build_model(cfg, None, vggish)
    load_checkpoint(model, ck)
    warnings = [w for w in model.warnings if "--visual-weights" not in w]  # the checkpoint holds the encoder
    mine = getattr(model, "vggish_sha", None)
    if ck.kind == "ours" and ck.vggish != mine:
        warnings.append(f"WARNING: {checkpoint} was trained with the audio features of VGGish {ck.vggish or 'unrecorded'}"
                        f" (an older fixed initialisation if unrecorded), these come from {mine}: its scores differ")
    return model.to(device).eval(), ck, int(ck.extra.get("input_size", 224)), warnings


def predict(release: Path, setting: str, out: Path, opts: PredictOptions, progress: Progress | None = None,
            model=None) -> PredictResult:
    """Predict every clip of `opts.split`; write masks in the layout + logits.npz under OUT (see the module)."""
    from avsbench_tools.baselines.dataset import open_release
    from avsbench_tools.checkpoints import resolve_device

    progress = progress or (lambda *a: None)
    data = open_release(release, setting, (opts.split,))
    device = resolve_device(opts.device)
    loaded, ck, size, warnings = load_for_predict(opts.checkpoint, setting, data.num_classes, opts.vggish_weights,
                                                  device)
    model = model or loaded
    stamp = {"checkpoint": _sha(Path(opts.checkpoint)), "split": opts.split, "setting": setting,
             "release": str(data.release.root.resolve()), "binary": opts.binary, "all_logits": opts.all_logits,
             "no_audio": opts.no_audio}
    dest = _prepare_out(out, stamp, opts.force, [data.release.root], opts.replace_stale)
    try:
        res = _predict(data, dest.work, opts, setting, stamp, model, device, size, warnings, progress)
    except (Interrupted, KeyboardInterrupt) as exc:
        if not dest.replacing:
            raise
        dest.abort()
        raise replaced_interrupt(out, "predictions", exc) from None
    except BaseException:
        dest.abort()
        raise
    dest.commit()
    res.out, res.logits = Path(out), Path(out) / "logits.npz"
    return res


def _predict(data, out: Path, opts: PredictOptions, setting: str, stamp: dict, model, device: str, size: int,
             warnings: list[str], progress: Progress) -> PredictResult:
    from avsbench_tools.baselines.dataset import ClipDataset
    from avsbench_tools.baselines.infer import Runtime, Scorer, clip_logits, embed_audio

    ds = ClipDataset(data, opts.split, size)
    rt = Runtime(device, amp=False, no_audio=opts.no_audio)
    inner = data.release.root.name if data.release.root.name in ("Single-source", "Multi-sources") else ""
    base = out / inner if inner else out
    cache = out / ".logits"
    if _complete(out):
        return PredictResult(out, len(ds), 0, len(ds), 0, None, warnings=warnings, logits=out / "logits.npz")
    todo = [i for i, it in enumerate(ds.items) if not (cache / f"{it.name}.npy").is_file()]
    res = PredictResult(out, len(ds), 0, len(ds) - len(todo), 0, None, warnings=warnings)
    scorer = Scorer(setting, data.num_classes, batch_frames=4 * ds.t, annotated_only=opts.annotated_only)
    audio = embed_audio(model, ds, rt, progress)
    try:
        for i, sample, lg in clip_logits(model, ds, audio, rt, opts.batch, indices=todo, progress=progress):
            it = ds.items[i]
            n = int(sample["exists"].sum())
            pairs = frame_paths(it, setting, data.release.root, n)
            claim(out, *(Path(inner) / p for pair in pairs for p in pair if p is not None),
                  f".logits/{it.name}.npy", f".logits/{it.name}.class.npy")  # recorded before written
            _write_clip(base, it, setting, data, lg[:n], opts)
            kept, cls = _stored(lg[:n], setting, opts.all_logits)
            if cls is not None:
                _npy(cache / f"{it.name}.class.npy", cls)
            _npy(cache / f"{it.name}.npy", kept)  # last: its presence marks the clip done
            res.predicted += 1
            res.per_clip.append({"name": it.name, "category": it.category, "miou": scorer.add(lg, sample)})
    except KeyboardInterrupt:
        raise Interrupted(res.predicted + res.skipped, len(ds) - res.predicted - res.skipped,
                          what="clips; run the same command to resume") from None
    res.frames = sum(int(min(len(it.frames), ds.t)) for it in ds.items)
    if res.skipped == 0:
        res.scores = scorer.result()
    res.logits = _pack(out, ds, setting, opts.all_logits, progress)
    atomic_write_text(out / "predict.json", json.dumps({"stamp": stamp, "complete": True, "clips": len(ds)}, indent=1))
    return res


def _complete(out: Path) -> bool:
    try:
        return bool(json.loads((out / "predict.json").read_text(encoding="utf-8")).get("complete"))
    except (OSError, ValueError):
        return False


def _npy(path: Path, arr: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, arr)


def _stored(lg: np.ndarray, setting: str, all_logits: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """What logits.npz keeps of a clip's [n, K, 224, 224] logits (see the module)."""
    if setting != "avss":
        return lg[:, 0].astype(np.float32), None
    if all_logits:
        return lg.astype(np.float32), None
    cls = lg.argmax(1)
    top = np.take_along_axis(lg, cls[:, None], 1)[:, 0].astype(np.float32)
    return top, cls.astype(np.uint8 if lg.shape[1] <= 256 else np.int16)


def _write_clip(base: Path, it, setting: str, data, lg: np.ndarray, opts: PredictOptions) -> None:
    from PIL import Image

    paths = frame_paths(it, setting, data.release.root, len(lg))
    if setting == "avss":
        from avsbench_tools.writers.avss import voc_palette

        pal = voc_palette()
        for (sem, rgb), frame, cls in zip(paths, it.frames, lg.argmax(1), strict=False):
            with Image.open(frame) as im:
                size = im.size
            m = np.asarray(Image.fromarray(cls.astype(np.uint8)).resize(size, Image.NEAREST))
            _png(base / sem, m)
            _png(base / rgb, pal[m])
        return
    prob = 1.0 / (1.0 + np.exp(-lg[:, 0].astype(np.float64)))
    for (p, _), pr in zip(paths, prob, strict=True):
        arr = np.where(pr > 0.5, 255, 0) if opts.binary else np.round(pr * 255)
        _png(base / p, arr.astype(np.uint8))


def _pack(out: Path, ds, setting: str, all_logits: bool, progress: Progress) -> Path:
    """logits.npz from the per-clip cache, streamed (never all in memory), then the cache removed."""
    import shutil

    cache = out / ".logits"
    target = out / "logits.npz"
    with atomic_path(target) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as z:
        for k, it in enumerate(ds.items):
            arr = np.load(cache / f"{it.name}.npy")
            if setting == "avss" and not all_logits:
                cls_path = cache / f"{it.name}.class.npy"
                arrays = {it.name: arr, f"{it.name}__class": np.load(cls_path)} if cls_path.is_file() else {it.name: arr}
            else:
                arrays = {it.name: arr}
            for name, a in arrays.items():
                with z.open(f"{name}.npy", "w", force_zip64=True) as fh:
                    np.lib.format.write_array(fh, np.ascontiguousarray(a), allow_pickle=False)
            progress("logits.npz", k + 1, len(ds.items), it.name)
    shutil.rmtree(cache, ignore_errors=True)
    return target
