"""One release-check run (audio or no audio): train it within its budget, predict the scored split, keep the result.

What a re-run keeps (OUT/runs/<name>/):
    done.json     the finished run, scored: kept as is, nothing is trained or predicted again
    trained.json  training finished (budget spent or epochs done): only the prediction is redone
    last.pt       epochs an interrupted try kept: training continues from them with what is left of the budget
                  (the seconds of the kept epochs, from log.csv, are taken off it), never with a fresh one

A Ctrl-C raises `Interrupted` counting runs, and says per run what is kept in epochs (not the epoch cap).
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from avsbench_tools.errors import Interrupted
from avsbench_tools.fsutil import atomic_write_text
from avsbench_tools.outdir import claim
from avsbench_tools.progress import Progress
from avsbench_tools.release_check.plan import Plan, ReleaseCheckOptions, train_options

NAMES = ("audio", "no-audio")


@dataclass
class RunSummary:
    name: str
    no_audio: bool
    epochs: int
    best_epoch: int | None
    best_val_miou: float | None
    test: dict  # miou, fscore, fscore_batch_free
    per_clip: list[dict]
    seconds: float
    stopped: str | None = None
    per_class_iou: list | None = None
    per_class_count: list | None = None
    clip_stats: list | None = None  # per scored clip, what the mIoU sums (infer.Scorer.clip_stats)


def _read(path: Path) -> dict | None:
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return d if isinstance(d, dict) else None


def _log(run: Path) -> list[dict]:
    """The epochs the run's log.csv records (what last.pt holds)."""
    try:
        with open(run / "log.csv", newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))
    except OSError:
        return []


def _from_log(run: Path, why: str) -> dict:
    rows = _log(run)
    vals = [(float(r["val_miou"]), int(r["epoch"])) for r in rows if r.get("val_miou")]
    best = max(vals) if vals else (None, None)
    return {"epochs": len(rows), "best_epoch": best[1], "best_val_miou": best[0], "stopped": why}


def _train(root: Path, setting: str, run: Path, name: str, o: ReleaseCheckOptions, plan: Plan,
           epochs: int | None, progress: Progress) -> dict:
    """Train (or continue) the run; -> trained.json's content."""
    from avsbench_tools.baselines import train_baseline as train

    topts = train_options(plan, o, no_audio=name == "no-audio")
    if epochs is not None:  # the no-audio run trains as many epochs as the audio run did, budget or not
        topts.epochs, topts.max_seconds = max(1, epochs), None
    kept = _log(run) if (run / "last.pt").is_file() else []
    if topts.max_seconds is not None and kept:
        spent = sum(float(r.get("seconds") or 0) for r in kept)
        left = plan.budget - spent
        if left <= 0:  # the kept epochs used the whole budget: training is over
            info = _from_log(run, f"time budget of {plan.budget:.0f} s (after {len(kept)} epochs)")
            claim(run, "trained.json")
            atomic_write_text(run / "trained.json", json.dumps(info, indent=1))
            return info
        topts.max_seconds = left
    res = train(root, setting, run, topts, progress)
    info = {"epochs": res.epochs_done, "best_epoch": res.best_epoch, "best_val_miou": res.best_miou,
            "stopped": res.stopped}
    if res.stopped and kept:
        info["stopped"] = f"time budget of {plan.budget:.0f} s (after {res.epochs_done} epochs, resumed)"
    claim(run, "trained.json")
    atomic_write_text(run / "trained.json", json.dumps(info, indent=1))
    return info


def run_one(root: Path, setting: str, out: Path, name: str, o: ReleaseCheckOptions, plan: Plan, split: str,
            epochs: int | None, progress: Progress) -> RunSummary:
    """Train one run within its budget (or reuse what a former try kept, see the module), predict `split`."""
    from avsbench_tools.baselines import PredictOptions
    from avsbench_tools.baselines import predict_baseline as predict

    run = out / "runs" / name
    run.parent.mkdir(exist_ok=True)
    done = _read(run / "done.json")
    if done is not None:
        try:
            return RunSummary(**{f.name: done[f.name] for f in fields(RunSummary) if f.name in done})
        except TypeError:
            pass
    t0 = time.monotonic()
    info = _read(run / "trained.json") or _train(root, setting, run, name, o, plan, epochs, progress)
    ck = run / ("best.pt" if (run / "best.pt").is_file() else "last.pt")
    (run / "predictions").mkdir(exist_ok=True)
    try:
        pres = predict(root, setting, run / "predictions" / split,
                       PredictOptions(checkpoint=ck, split=split, vggish_weights=o.vggish_weights,
                                      device=plan.device, no_audio=name == "no-audio", force=True,
                                      annotated_only=True), progress)
    except (Interrupted, KeyboardInterrupt):
        raise _Predicting(info["epochs"]) from None
    scores = pres.scores or {}
    summary = RunSummary(name, name == "no-audio", info["epochs"], info["best_epoch"], info["best_val_miou"],
                         {k: scores.get(k, 0.0) for k in ("miou", "fscore", "fscore_batch_free")}, pres.per_clip,
                         time.monotonic() - t0, info.get("stopped"), scores.get("per_class_iou"),
                         scores.get("per_class_count"), scores.get("clip_stats"))
    claim(run, "done.json")
    atomic_write_text(run / "done.json", json.dumps(asdict(summary), indent=1, default=float))
    return summary


class _Predicting(Exception):
    """A Ctrl-C while a trained run predicted the scored split."""

    def __init__(self, epochs: int):
        self.epochs = epochs


def run_both(root: Path, setting: str, out: Path, o: ReleaseCheckOptions, plan: Plan, split: str,
             progress: Progress) -> dict[str, RunSummary]:
    """The audio run (the budget decides its epochs), then the no-audio run (as many epochs). A Ctrl-C says, in
    runs and epochs, what is kept: `interrupted: 1 done, 1 left; ... (runs: audio finished, 12 epochs; no-audio
    5 of 12 epochs kept)`."""
    runs: dict[str, RunSummary] = {}
    name = NAMES[0]
    try:
        for name in NAMES:
            runs[name] = run_one(root, setting, out, name, o, plan, split,
                                 runs["audio"].epochs if name == "no-audio" else None, progress)
    except (Interrupted, KeyboardInterrupt, _Predicting) as exc:
        parts = [f"{n} finished ({r.epochs} epochs)" for n, r in runs.items()]
        cap = f" of {runs['audio'].epochs}" if name == "no-audio" else ""
        if isinstance(exc, _Predicting):
            parts.append(f"{name} trained ({exc.epochs} epochs), its {split} predictions not finished")
        else:
            kept = len(_log(out / "runs" / name)) if (out / "runs" / name / "last.pt").is_file() else 0
            left = ""
            if name == "audio":
                spent = sum(float(r.get("seconds") or 0) for r in _log(out / "runs" / name)) if kept else 0.0
                left = f", {max(plan.budget - spent, 0):.0f} s of its {plan.budget:.0f} s budget left"
            parts.append(f"{name}: {kept}{cap} epochs kept{left}")
        parts += [f"{n} not started" for n in NAMES[NAMES.index(name) + 1:]]
        raise Interrupted(len(runs), len(NAMES) - len(runs), what="runs; " + "; ".join(parts)) from None
    return runs
