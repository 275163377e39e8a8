"""`avs-tools release-check RELEASE --format F --out DIR`: is a release learnable, and does audio matter?

1. validate (every file the loaders open; problems stop the check: no training on a broken release);
2. stats (the papers' tables, OUT/stats.html);
3. the trivial predictors on the test split (val when there is no test split): all-empty, all-full,
   the mean training mask (AVSS: all-background, the most frequent class, the per-pixel majority);
4. two short baseline runs scaled to the hardware (plan.py): with audio (the time budget decides the
   epochs) and with `--no-audio` (the same epochs, seed and data order), each scored on the test split
   through `baseline predict`;
5. OUT/index.html (self-contained) and OUT/report.json: learnable and audio helps, each only from a margin
   larger than its spread (a paired bootstrap over the scored clips, spread.py: the rules), "audio helps"
   asked only of a learnable model, else "cannot tell"; the audio encoder named (the fixed VGGish
   initialisation without weights); per-category scores, the worst categories and clips with overlays.

OUT is a new folder or one release-check wrote (marker kind release-check): a re-run with the same
release and options keeps the runs that finished, re-predicts a trained one and continues an interrupted
one with what is left of its budget (runs.py); other options need --force.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from avsbench_tools.errors import Interrupted, UsageError
from avsbench_tools.fsutil import atomic_write_text, read_marker
from avsbench_tools.outdir import claim, replaced_interrupt
from avsbench_tools.progress import Progress
from avsbench_tools.release_check.plan import Plan, ReleaseCheckOptions, make_plan
from avsbench_tools.release_check.runs import RunSummary, run_both
from avsbench_tools.release_check.spread import AUDIO_MARGIN, LEARNABLE_MARGIN, MIN_CLIPS

KIND = "release-check"
SETTINGS = {"avsbench-s4": "s4", "avsbench-ms3": "ms3", "avss": "avss"}
__all__ = ["AUDIO_MARGIN", "KIND", "LEARNABLE_MARGIN", "MIN_CLIPS", "CheckReport", "RunSummary",
           "check_release_learnable", "verdicts"]


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
        from avsbench_tools.negative_audio import lines as negative_lines

        out += negative_lines(s.get("negative_audio"))
        out.append(f"report: {self.out / 'index.html'}, {self.out / 'report.json'}")
        return out


def _f(v) -> str:
    return "-" if v is None else f"{v:.4f}"


def _prepare(out: Path, stamp: dict, force: bool, protected=()):
    """OUT through the one output-folder helper (outdir.prepare_output_dir): an earlier check with the same
    stamp is continued in place; --force replaces only a check folder holding nothing avs-tools did not
    write, writing the new one beside it and swapping it in when complete (Ctrl-C keeps the earlier one)."""
    from avsbench_tools.outdir import prepare_output_dir

    out = Path(out)
    marker = read_marker(out) if out.is_dir() else None
    keep = False
    if marker is not None and marker.get("kind") == KIND and not force:
        try:
            old = json.loads((out / "check.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = None
        if old != stamp:
            raise UsageError(f"--out {out}: holds a release-check of another release or other options; pass --force "
                             "to replace it or name another folder")
        keep = True
    dest = prepare_output_dir(out, kind=KIND, force=force, keep=keep, protected=protected, what="--out")
    from avsbench_tools.stats import PLOT_NAMES

    dest.claim("check.json", "stats.html", "index.html", "report.json", "runs", "overlays",
               *(f"stats_plots/{n}" for n in PLOT_NAMES))
    if not keep:
        atomic_write_text(dest.work / "check.json", json.dumps(stamp, indent=1, sort_keys=True))
    return dest


def check_release_learnable(release: Path, fmt: str, out: Path, opts: ReleaseCheckOptions | None = None,
                            progress: Progress | None = None) -> CheckReport:
    """Run the whole check (see the module); -> the report (also written to OUT)."""
    from avsbench_tools import formats
    from avsbench_tools.checkpoints import resolve_device
    from avsbench_tools.release_reader import check_release

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
    dest = _prepare(out, stamp, o.force, [root])
    try:
        rep = _check(root, fmt, dest.work, o, plan, progress)
    except (Interrupted, KeyboardInterrupt) as exc:
        if not dest.replacing:
            raise
        dest.abort()  # --force: the earlier report stays whole
        raise replaced_interrupt(out, "release-check", exc) from None
    except BaseException:
        dest.abort()
        raise
    dest.commit()
    rep.out = Path(out)
    return rep


def _check(root: Path, fmt: str, out: Path, o: ReleaseCheckOptions, plan: Plan, progress: Progress) -> CheckReport:
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
    from avsbench_tools.baselines import ClipDataset, open_release
    from avsbench_tools.release_check.report import write_report
    from avsbench_tools.release_check.trivial import trivial_scores

    setting = SETTINGS[fmt]
    data = open_release(root, setting, ("train", "val"))
    split = "test" if data.items("test") else "val"
    open_release(root, setting, (split,))
    summary["eval_split"] = split
    summary["trivial"] = trivial_scores(ClipDataset(data, "train"), ClipDataset(data, split), progress)
    runs = run_both(root, setting, out, o, plan, split, progress)
    audio, silent = runs["audio"], runs["no-audio"]
    summary["runs"] = {k: {kk: v for kk, v in asdict(r).items() if kk not in ("per_clip", "clip_stats")}
                       for k, r in runs.items()}
    warnings = _warnings(out)
    summary["warnings"] = warnings
    summary["audio_encoder"] = _encoder(o.vggish_weights)
    summary.update(verdicts({"miou": audio.test["miou"], "clip_stats": audio.clip_stats},
                            {"miou": silent.test["miou"], "clip_stats": silent.clip_stats}, summary["trivial"],
                            len(data.items(split)), split, summary["audio_encoder"], audio.epochs))
    for t in summary["trivial"].values():
        t.pop("clip_stats", None)  # used for the spread only: not in report.json
    from avsbench_tools.negative_audio import release_check_negatives

    run_dir = out / "runs" / "audio"  # the audio run predicts the negative-audio sets (avsbench_tools.publish)
    neg = release_check_negatives(root, fmt, setting, run_dir / "predictions", run_dir / (
        "best.pt" if (run_dir / "best.pt").is_file() else "last.pt"), audio.test, o.vggish_weights, plan.device, progress)
    if neg is not None:
        summary["negative_audio"] = neg
    from avsbench_tools.release_check.scores import per_category, worst

    summary["per_category"] = per_category(data, split, audio, silent)
    summary["worst_clips"] = worst(audio.per_clip, silent.per_clip)
    claim(out, *(f"overlays/{c['name']}.png" for c in summary["worst_clips"]))  # what write_report draws
    write_report(out, summary, {"data": data, "split": split, "runs": runs})
    return CheckReport(out, summary, warnings, 0)


def verdicts(audio: dict, silent: dict, trivial: dict, clips: int, split: str, encoder: str,
             epochs: int | None = None) -> dict:
    """{"learnable", "audio_helps"} from the runs' and the trivial predictors' test mIoU and the spread of their
    differences over the clips (release_check.spread: the rules and why)."""
    from avsbench_tools.release_check.spread import verdicts as decide

    return decide(audio, silent, trivial, clips, split, encoder, epochs)


def _encoder(vggish: Path | None) -> str:
    """What the audio features came from, as the report names it."""
    from avsbench_tools.baselines import FIXED_VGGISH

    if vggish:
        from avsbench_tools.checkpoints import checkpoint_hash

        return f"audio features from the VGGish weights {vggish} (sha256 {checkpoint_hash(Path(vggish))})"
    return f"no VGGish weights were given: the audio features come from {FIXED_VGGISH}"


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
