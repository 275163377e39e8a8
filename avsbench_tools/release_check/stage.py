"""`avs-tools release-check RELEASE --format F --out DIR`: is a release learnable, and does audio matter?

1. validate (every file the loaders open; problems stop the check: no training on a broken release);
2. stats (the papers' tables, OUT/stats.html);
3. the trivial predictors on the test split (val when there is no test split): all-empty, all-full,
   the mean training mask (AVSS: all-background, the most frequent class, the per-pixel majority);
4. two short baseline runs scaled to the hardware (plan.py): with audio (the time budget decides the
   epochs) and with `--no-audio` (the same epochs, seed and data order), each scored on the test split
   through `baseline predict`;
5. OUT/index.html (self-contained) and OUT/report.json: learnable (the audio run's mIoU beats the best
   trivial predictor by LEARNABLE_MARGIN), audio helps (audio minus no-audio mIoU >= AUDIO_MARGIN),
   per-category scores, the worst categories and clips with overlays of their predictions. With fewer
   than MIN_CLIPS clips in the scored split both verdicts are "cannot tell" (the numbers are still given).

OUT is a new folder or one release-check wrote (marker kind release-check): a re-run with the same
release and options keeps the runs that finished (runs/<name>/done.json) and redoes the rest; other
options need --force.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from avsbench_tools.errors import UsageError
from avsbench_tools.fsutil import atomic_write_text, check_output_dir, read_marker, write_marker
from avsbench_tools.progress import Progress
from avsbench_tools.release_check.plan import Plan, ReleaseCheckOptions, make_plan, train_options

KIND = "release-check"
LEARNABLE_MARGIN = 0.05
MIN_CLIPS = 5  # clips in the scored split below which no verdict is given
AUDIO_MARGIN = 0.02
SETTINGS = {"avsbench-s4": "s4", "avsbench-ms3": "ms3", "avss": "avss"}


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


@dataclass
class CheckReport:
    out: Path
    summary: dict
    warnings: list[str] = field(default_factory=list)
    validation_problems: int = 0

    def lines(self) -> list[str]:
        s = self.summary
        if self.validation_problems:
            return [f"release-check: {self.validation_problems} validation problems; no training (report: "
                    f"{self.out / 'index.html'})"]
        out = [f"release-check: {s['format']} {s['release']} ({s['plan']})"]
        for name, r in s["runs"].items():
            out.append(f"  {name:<9} test mIoU {r['test']['miou']:.4f}  F {r['test']['fscore']:.4f}  "
                       f"({r['epochs']} epochs, best val mIoU {_f(r['best_val_miou'])})")
        for name, r in s["trivial"].items():
            out.append(f"  {name:<18} mIoU {r['miou']:.4f}  F {r['fscore']:.4f}")
        out.append(f"learnable: {s['learnable']['verdict']} ({s['learnable']['why']})")
        out.append(f"audio helps: {s['audio_helps']['verdict']} ({s['audio_helps']['why']})")
        from avsbench_tools.publish.metrics_negative import lines as negative_lines

        out += negative_lines(s.get("negative_audio"))
        out.append(f"report: {self.out / 'index.html'}, {self.out / 'report.json'}")
        return out


def _f(v) -> str:
    return "-" if v is None else f"{v:.4f}"


def _prepare(out: Path, stamp: dict, force: bool) -> Path:
    out = Path(out)
    marker = read_marker(out) if out.is_dir() else None
    if marker is not None and marker.get("kind") == KIND and not force:
        try:
            old = json.loads((out / "check.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = None
        if old != stamp:
            raise UsageError(f"--out {out}: holds a release-check of another release or other options; pass --force "
                             "to replace it or name another folder")
        return out
    check_output_dir(out, kind=KIND, force=force, what="--out")
    if marker is not None and force:
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    write_marker(out, KIND)
    atomic_write_text(out / "check.json", json.dumps(stamp, indent=1, sort_keys=True))
    return out


def check_release_learnable(release: Path, fmt: str, out: Path, opts: ReleaseCheckOptions | None = None,
                            progress: Progress | None = None) -> CheckReport:
    """Run the whole check (see the module); -> the report (also written to OUT)."""
    from avsbench_tools import formats
    from avsbench_tools.checkpoints import resolve_device
    from avsbench_tools.release import check_release

    o = opts or ReleaseCheckOptions()
    progress = progress or (lambda *a: None)
    formats.get(fmt)
    if fmt not in SETTINGS:
        raise UsageError(f"--format {fmt}: release-check trains the TPAVI baseline, which reads avsbench-s4, "
                         "avsbench-ms3 or avss releases (Ref-AVS's own baseline, EEMC, is not bundled)")
    for opt, p in (("--visual-weights", o.visual_weights), ("--vggish-weights", o.vggish_weights)):
        if p is not None and not Path(p).is_file():
            raise UsageError(f"{opt} {p}: no such file")
    root = check_release(release, fmt).resolve()
    device = resolve_device(o.device)
    plan = make_plan(o, device)
    stamp = {"release": str(root), "content": _fingerprint(root), "format": fmt, "plan": asdict(plan), "seed": o.seed,
             "visual_weights": str(o.visual_weights or ""), "vggish_weights": str(o.vggish_weights or "")}
    out = _prepare(out, stamp, o.force)
    from avsbench_tools.release_check.report import write_report
    from avsbench_tools.stats import compute_stats
    from avsbench_tools.stats import write_report as write_stats
    from avsbench_tools.validate import validate_release

    rep = validate_release(root, fmt, progress=progress)
    summary = {"release": str(root), "format": fmt, "setting": SETTINGS[fmt], "plan": plan.describe(),
               "validation": {"problems": [{"path": p, "problem": q} for p, q in rep.problems[:50]],
                              "problem_count": len(rep.problems), "warnings": rep.warnings, "rows": rep.items,
                              "splits": rep.splits}}
    st = compute_stats(root, fmt, progress=progress)
    write_stats(st, out / "stats.html")
    summary["stats"] = {k: v for k, v in st.items() if not k.startswith("_") and not isinstance(v, dict)}
    if rep.problems:
        write_report(out, summary, {})
        return CheckReport(out, summary, [], len(rep.problems))
    return _train_and_score(root, fmt, out, o, plan, summary, progress)


def _train_and_score(root: Path, fmt: str, out: Path, o: ReleaseCheckOptions, plan: Plan, summary: dict,
                     progress: Progress) -> CheckReport:
    from avsbench_tools.baselines.data import ClipDataset, open_release
    from avsbench_tools.release_check.report import write_report
    from avsbench_tools.release_check.trivial import trivial_scores

    setting = SETTINGS[fmt]
    data = open_release(root, setting, ("train", "val"))
    split = "test" if data.items("test") else "val"
    open_release(root, setting, (split,))
    summary["eval_split"] = split
    summary["trivial"] = trivial_scores(ClipDataset(data, "train"), ClipDataset(data, split), progress)
    audio = _run(root, setting, out, "audio", o, plan, split, None, progress)
    silent = _run(root, setting, out, "no-audio", o, plan, split, audio.epochs, progress)
    runs = {"audio": audio, "no-audio": silent}
    summary["runs"] = {k: {kk: v for kk, v in asdict(r).items() if kk not in ("per_clip",)} for k, r in runs.items()}
    warnings = _warnings(out)
    summary["warnings"] = warnings
    summary.update(verdicts(audio.test["miou"], silent.test["miou"], summary["trivial"],
                            len(data.items(split)), split, bool(o.vggish_weights)))
    from avsbench_tools.publish.metrics_negative import release_check_negatives

    run_dir = out / "runs" / "audio"  # the audio run predicts the negative-audio sets (avsbench_tools.publish)
    neg = release_check_negatives(root, fmt, setting, run_dir / "predictions", run_dir / (
        "best.pt" if (run_dir / "best.pt").is_file() else "last.pt"), audio.test, o.vggish_weights, plan.device, progress)
    if neg is not None:
        summary["negative_audio"] = neg
    from avsbench_tools.release_check.scores import per_category, worst

    summary["per_category"] = per_category(data, split, audio, silent)
    summary["worst_clips"] = worst(audio.per_clip, silent.per_clip)
    write_report(out, summary, {"data": data, "split": split, "runs": runs})
    return CheckReport(out, summary, warnings, 0)


def verdicts(audio: float, silent: float, trivial: dict, clips: int, split: str, vggish: bool) -> dict:
    """{"learnable": ..., "audio_helps": ...}, each {verdict, why, margin|difference}, from the test mIoU of the
    audio and no-audio runs and the trivial predictors' scores. Under MIN_CLIPS clips in the scored split
    both verdicts are "cannot tell" (the numbers are still given): one or two clips say nothing."""
    best_name, best = max(trivial.items(), key=lambda kv: kv[1]["miou"])
    gap = audio - best["miou"]
    few = clips < MIN_CLIPS
    cannot = f"cannot tell: the {split} split has {clips} clip{'s' if clips != 1 else ''} (a verdict needs {MIN_CLIPS})"
    learnable = {
        "verdict": cannot if few else ("yes" if gap >= LEARNABLE_MARGIN else "no"),
        "why": f"test mIoU {audio:.4f} vs the best trivial predictor ({best_name}) {best['miou']:.4f}: {gap:+.4f}; "
               f"learnable means at least +{LEARNABLE_MARGIN}",
        "margin": gap}
    d = audio - silent
    verdict = cannot if few else ("yes" if d >= AUDIO_MARGIN else (
        "no: the no-audio run does better" if d <= -AUDIO_MARGIN else "no clear difference"))
    why = (f"test mIoU with audio {audio:.4f}, without {silent:.4f}: {d:+.4f} "
           f"(threshold {AUDIO_MARGIN}; one seed each, so small differences are noise)")
    if not vggish:
        why += "; no VGGish weights were given, so the audio features come from a random VGGish"
    return {"learnable": learnable, "audio_helps": {"verdict": verdict, "why": why, "difference": d}}


def _run(root: Path, setting: str, out: Path, name: str, o: ReleaseCheckOptions, plan: Plan, split: str,
         epochs: int | None, progress: Progress) -> RunSummary:
    """Train one run (or reuse it when runs/<name>/done.json says it finished) and score it on `split`."""
    from avsbench_tools.baselines.predict import PredictOptions, predict
    from avsbench_tools.baselines.train import train

    run = out / "runs" / name
    run.parent.mkdir(exist_ok=True)
    done = run / "done.json"
    if done.is_file():
        try:
            d = json.loads(done.read_text(encoding="utf-8"))
            return RunSummary(**d)
        except (ValueError, TypeError):
            pass
    t0 = time.monotonic()
    topts = train_options(plan, o, no_audio=name == "no-audio")
    if epochs is not None:  # the no-audio run trains as many epochs as the audio run did, budget or not
        topts.epochs, topts.max_seconds = max(1, epochs), None
    res = train(root, setting, run, topts, progress)
    ck = run / ("best.pt" if (run / "best.pt").is_file() else "last.pt")
    (run / "predictions").mkdir(exist_ok=True)
    pres = predict(root, setting, run / "predictions" / split,
                   PredictOptions(checkpoint=ck, split=split, vggish_weights=o.vggish_weights, device=plan.device,
                                  no_audio=name == "no-audio", force=True, annotated_only=True), progress)
    scores = pres.scores or {}
    summary = RunSummary(name, name == "no-audio", res.epochs_done, res.best_epoch, res.best_miou,
                         {k: scores.get(k, 0.0) for k in ("miou", "fscore", "fscore_batch_free")}, pres.per_clip,
                         time.monotonic() - t0, res.stopped, scores.get("per_class_iou"), scores.get("per_class_count"))
    atomic_write_text(done, json.dumps(asdict(summary), indent=1, default=float))
    return summary


def _fingerprint(root: Path) -> str:
    """What the release holds (every file's path, size and mtime): a changed release is not the one checked."""
    import hashlib

    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            st = p.stat()
            h.update(f"{p.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def _warnings(out: Path) -> list[str]:
    seen: list[str] = []
    for name in ("audio", "no-audio"):
        try:
            info = json.loads((out / "runs" / name / "run.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        for w in info.get("warnings", []):
            if w not in seen:
                seen.append(w)
    return seen
