"""Metrics on negative-audio test sets (AVSBench-Robust, Li et al. 2025: "Do Audio-Visual Segmentation Models
Truly Segment Sounding Objects?").

On a negative set nothing sounds, so every pixel a model marks is a false positive:

    FPR    = the share of pixels predicted as sounding (binary: probability > 0.5; AVSS: any class but
             background), averaged over the negative frames (every frame has the same weight)
    G-mIoU = harmonic mean of the positive mIoU and 1 - FPR:  2 * mIoU * (1 - FPR) / (mIoU + 1 - FPR)
    G-F    = the same with the positive F-score

A model that segments the salient object whatever the audio says scores well on mIoU and badly on FPR,
and the G-metrics show it. `evaluate` reads predictions for the negative sets at PRED/negative-audio/<kind>/
(the same relative paths as the ground truth there); `release-check` predicts them with its audio run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from avsbench_tools import formats
from avsbench_tools.errors import UsageError
from avsbench_tools.negative_audio.sets import FOLDER, KINDS, negative_roots

FPR_OK = 0.05  # an FPR at or under this on every negative set: the model does not segment silent objects
VERDICT_MIN_FRAMES = 25  # fewer negative frames than this: no verdict (numbers still given)


def harmonic(a: float | None, b: float | None) -> float | None:
    """2ab / (a + b); 0 when both are 0; None when either is unknown."""
    if a is None or b is None:
        return None
    return 0.0 if a + b <= 0 else 2.0 * a * b / (a + b)


def frame_fpr(pred: np.ndarray, semantic: bool) -> float:
    """Share of a frame's pixels predicted as sounding: a probability map (0..1) above 0.5, or any class > 0."""
    pred = np.asarray(pred)
    fg = pred > 0 if semantic else pred > 0.5
    return float(fg.mean()) if fg.size else 0.0


def _read_pred(path: Path, semantic: bool) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        if im.mode not in ("L", "P", "1", "I;16", "I"):
            raise UsageError(f"{path}: a prediction must be a single-channel PNG (got mode {im.mode})")
        a = np.asarray(im)
    if semantic:
        return a
    return a.astype(np.float32) / (255.0 if a.max(initial=0) > 1 else 1.0)


def set_fpr(neg_root: Path, fmt: str, pred_base: Path, allow_missing: bool = False) -> dict:
    """{fpr, frames, missing} of one negative set whose predictions lie under pred_base at the mask paths
    relative to the set's release root (a missing prediction is an error, or an empty mask when allowed)."""
    from avsbench_tools.release_reader import read_release

    f = formats.get(fmt)
    rel = read_release(neg_root, fmt)
    values, missing = [], 0
    for it in rel.items:
        for _, gp in sorted(it.masks.items()):
            p = pred_base / gp.relative_to(rel.root)
            if not p.is_file():
                if not allow_missing:
                    raise UsageError(f"{p}: no prediction for negative-audio clip {it.name} (predict the set "
                                     f"{neg_root}, or pass --allow-missing to score it as an empty mask)")
                missing += 1
                values.append(0.0)
                continue
            values.append(frame_fpr(_read_pred(p, f.semantic), f.semantic))
    return {"fpr": float(np.mean(values)) if values else None, "frames": len(values), "missing": missing}


def summarise(per_kind: dict[str, dict], miou: float | None, fscore: float | None) -> dict:
    """The figures of every negative set, all of them together, and G-mIoU / G-F."""
    frames = sum(v["frames"] for v in per_kind.values())
    fpr = (sum(v["fpr"] * v["frames"] for v in per_kind.values() if v["fpr"] is not None) / frames) if frames else None
    out = {"sets": per_kind, "frames": frames, "fpr": fpr,
           "g_miou": harmonic(miou, None if fpr is None else 1 - fpr),
           "g_f": harmonic(fscore, None if fpr is None else 1 - fpr),
           "definition": "FPR: share of pixels predicted as sounding on negative-audio frames; G-mIoU / G-F: "
                         "harmonic mean of the positive mIoU / F and 1 - FPR (AVSBench-Robust)"}
    for v in per_kind.values():
        v["g_miou"] = harmonic(miou, None if v["fpr"] is None else 1 - v["fpr"])
        v["g_f"] = harmonic(fscore, None if v["fpr"] is None else 1 - v["fpr"])
    return out


def verdict(summary: dict) -> dict:
    """Does the model segment objects that are not sounding? yes / no / cannot tell, with the numbers."""
    worst_kind, worst = max(((k, v["fpr"]) for k, v in summary["sets"].items() if v["fpr"] is not None),
                            key=lambda kv: kv[1], default=(None, None))
    if worst is None:
        return {"verdict": "cannot tell", "why": "no negative-audio predictions"}
    why = (f"FPR {summary['fpr']:.4f} over {summary['frames']} negative frames (worst: {worst_kind} {worst:.4f}); "
           f"'no' means at most {FPR_OK} on every set")
    if summary["frames"] < VERDICT_MIN_FRAMES:
        return {"verdict": f"cannot tell: {summary['frames']} negative frames (a verdict needs {VERDICT_MIN_FRAMES})",
                "why": why}
    return {"verdict": "yes" if worst > FPR_OK else "no", "why": why}


def evaluate_negatives(fmt: str, gt: Path, pred: Path, positive: dict, allow_missing: bool = False) -> dict | None:
    """For `evaluate`: the negative sets of the --gt release scored from PRED/negative-audio/<kind>/; None when
    the release has no negative sets. `positive` is evaluate's result (its mIoU and F)."""
    roots = negative_roots(gt, fmt)
    if not roots:
        return None
    per_kind = {}
    for kind, root in roots.items():
        base = _pred_root(Path(pred), kind, root, fmt)
        if base is None:
            per_kind[kind] = {"fpr": None, "frames": 0, "missing": None,
                              "note": f"no predictions at {Path(pred) / FOLDER / kind}"}
            continue
        per_kind[kind] = set_fpr(root, fmt, base, allow_missing)
    out = summarise(per_kind, positive.get("miou"), positive.get("fscore"))
    out["verdict"] = verdict(out)
    return out


def _pred_root(pred: Path, kind: str, root: Path, fmt: str) -> Path | None:
    """Where the predictions of the negative set `kind` are: PRED/negative-audio/<kind>[/<inner folder>]."""
    p = pred / FOLDER / kind
    if not p.is_dir():
        return None
    inner = formats.get(fmt).inner
    return p / inner if inner and (p / inner).is_dir() else p


def lines(neg: dict | None) -> list[str]:
    """The text lines of the negative-audio figures (evaluate, release-check)."""
    if not neg:
        return []
    out = ["negative audio (nothing sounds; AVSBench-Robust):"]
    for kind in KINDS:
        v = neg["sets"].get(kind)
        if v is None:
            continue
        if v["fpr"] is None:
            out.append(f"  {kind:<10} {v.get('note', 'no predictions')}")
            continue
        miss = f", {v['missing']} missing scored empty" if v.get("missing") else ""
        out.append(f"  {kind:<10} FPR {v['fpr']:.4f}  G-mIoU {_f(v['g_miou'])}  G-F {_f(v['g_f'])}  "
                   f"({v['frames']} frames{miss})")
    if neg["fpr"] is not None:
        out.append(f"  {'all':<10} FPR {neg['fpr']:.4f}  G-mIoU {_f(neg['g_miou'])}  G-F {_f(neg['g_f'])}")
    if "verdict" in neg:
        out.append(f"segments objects that are not sounding: {neg['verdict']['verdict']} ({neg['verdict']['why']})")
    return out


def _f(v) -> str:
    return "-" if v is None else f"{v:.4f}"


def release_check_negatives(root: Path, fmt: str, setting: str, out: Path, checkpoint: Path, positive: dict,
                            vggish: Path | None, device: str, progress) -> dict | None:
    """For `release-check`: predict every negative set of the release with the audio run's checkpoint and score
    it; None when the release has no negative sets."""
    from avsbench_tools.baselines import PredictOptions
    from avsbench_tools.baselines import predict_baseline as predict

    roots = negative_roots(root, fmt)
    if not roots:
        return None
    per_kind = {}
    for kind, nroot in roots.items():
        dest = Path(out) / f"negative-{kind}"
        pres = predict(nroot, setting, dest, PredictOptions(checkpoint=checkpoint, split="test", vggish_weights=vggish,
                                                            device=device, force=True, annotated_only=True), progress)
        base, inner = Path(pres.out), formats.get(fmt).inner
        per_kind[kind] = set_fpr(nroot, fmt, base / inner if inner and (base / inner).is_dir() else base)
    res = summarise(per_kind, positive.get("miou"), positive.get("fscore"))
    res["verdict"] = verdict(res)
    return res


def html_section(neg: dict | None) -> list[str]:
    """release-check's index.html part: the verdict (red when the model segments silent objects) and a table."""
    if not neg:
        return []
    from html import escape

    v = neg["verdict"]
    cls = "no" if v["verdict"] == "yes" else ("tell" if v["verdict"].startswith("cannot tell") else "yes")
    rows = "".join(f"<tr><td>{escape(k)}</td><td>{_f(s['fpr'])}</td><td>{_f(s.get('g_miou'))}</td>"
                   f"<td>{_f(s.get('g_f'))}</td><td>{s['frames']}</td></tr>" for k, s in neg["sets"].items())
    rows += (f"<tr><td><b>all</b></td><td>{_f(neg['fpr'])}</td><td>{_f(neg['g_miou'])}</td><td>{_f(neg['g_f'])}</td>"
             f"<td>{neg['frames']}</td></tr>")
    return [f"<div class='verdict {cls}'><b>Segments objects that are not sounding: {escape(v['verdict'])}</b> "
            f"<span class='note'>{escape(v['why'])}</span></div>",
            "<h2>Negative audio (the audio run; nothing sounds)</h2><table><tr><th>set</th><th>FPR</th>"
            f"<th>G-mIoU</th><th>G-F</th><th>frames</th></tr>{rows}</table>"
            f"<p class='note'>{escape(neg['definition'])}</p>"]
