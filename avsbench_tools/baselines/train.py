"""`avs-tools baseline train`: train the TPAVI baseline on an exported release (official defaults).

Adam (lr 1e-4, no weight decay, no schedule), batch 4 videos, seed 123, the official epochs (S4 15,
MS3 30, AVSS 60) and losses (losses.py); data read only from the release (data.py). On CUDA: autocast
(fp16 with a grad scaler) and channels-last inputs. After every epoch: validation mIoU, the checkpoint
`last.pt` (model, optimiser, grad scaler, RNG state, history; written atomically), `best.pt` when the
validation mIoU improved, log.csv and curves.png. The order of the clips in epoch e is a permutation
fixed by (seed, e), so `--resume` (or a run killed at any moment and resumed from last.pt) ends with
the same weights as an uninterrupted run. Ctrl-C stops within a training step; the finished epochs are
kept.
"""

from __future__ import annotations

from pathlib import Path

from avsbench_tools.baselines.train_options import (
    DEFINING,
    OFFICIAL_AVM,
    OFFICIAL_EPOCHS,
    TrainOptions,
    TrainResult,
    check_options,
    interrupted,
    model_config,
    param_groups,
    seed_everything,
    stop_for_budget,
)
from avsbench_tools.errors import Interrupted, UsageError
from avsbench_tools.progress import Progress

__all__ = ["DEFINING", "OFFICIAL_AVM", "OFFICIAL_EPOCHS", "TrainOptions", "TrainResult", "check_options", "interrupted",
           "model_config", "param_groups", "seed_everything", "stop_for_budget", "train"]

def _prepare_out(out: Path, setting: str, release: Path, content: dict, o: TrainOptions):
    """Check RUN before any work; -> (OutputDir, the saved run.json when continuing a run, else None).

    A run belongs to its data: an earlier run in RUN is continued (with or without --resume: re-running a
    command never loses finished epochs) only when its release path, the release's content fingerprint
    (`content`, per split), the setting and every defining option are the same; anything else is refused
    ("pass --force to start over"). --force replaces only a run folder holding nothing but what avs-tools
    wrote, and the new run is swapped in when it ends (Ctrl-C keeps the earlier run whole)."""
    from avsbench_tools.baselines.runlog import KIND, read_run
    from avsbench_tools.fsutil import read_marker
    from avsbench_tools.outdir import prepare_output_dir

    out = Path(out)
    if o.resume and o.force:
        raise UsageError("--resume continues the run in --out, --force starts it over: pass one of them")
    ours = out.is_dir() and (read_marker(out) or {}).get("kind") == KIND and (out / "run.json").is_file()
    if not (o.resume or (ours and not o.force)):
        return prepare_output_dir(out, kind=KIND, force=o.force, protected=[release], what="--out"), None
    info = read_run(out)
    again = "pass --force to start over (the earlier run is kept until the new one is complete) or name another folder"
    if info.get("setting") != setting or Path(info.get("release", "")) != Path(release).resolve():
        raise UsageError(f"RUN {out}: holds a run of {info.get('setting')} on {info.get('release')}, not "
                         f"{setting} on {Path(release).resolve()}; {again}")
    old = info.get("content")
    if not isinstance(old, dict):
        raise UsageError(f"RUN {out}: its run records no fingerprint of the release it read (an older avs-tools), "
                         f"so it cannot be continued safely; {again}")
    changed = [s for s in sorted(set(old) | set(content)) if old.get(s) != content.get(s)]
    if changed:
        raise UsageError(f"RUN {out}: the release's {' and '.join(changed)} split{'s' if len(changed) > 1 else ''} "
                         f"changed since the run started (its files differ from the ones trained on); {again}")
    mine = o.defining(setting)
    diff = [k for k, v in mine.items() if info.get("options", {}).get(k) != v]
    if diff:
        k = diff[0]
        raise UsageError(f"RUN {out}: its run has {k} {info['options'].get(k)!r}, now {mine[k]!r}; repeat the "
                         f"run's options to continue it, or {again}")
    return prepare_output_dir(out, kind=KIND, force=False, keep=True, protected=[release], what="--out"), info


def train(release: Path, setting: str, out: Path, opts: TrainOptions | None = None,
          progress: Progress | None = None, warn=None) -> TrainResult:
    """Train on the release's train split, validate on val every epoch, write the run folder OUT.
    `warn(line)` is called with each warning (missing pretrained weights) as soon as the model is built."""
    o = opts or TrainOptions()
    progress = progress or (lambda *a: None)
    check_options(setting, o)
    from avsbench_tools.baselines.dataset import check_files, content_fingerprint, open_release

    data = open_release(release, setting, ("train", "val"))
    from avsbench_tools.checkpoints import resolve_device

    device = resolve_device(o.device)
    content = content_fingerprint(data, ("train", "val"))
    dest, resume_info = _prepare_out(out, setting, release, content, o)
    try:
        check_files(data, ("train", "val"), progress)  # never trains on a file validate rejects
    except BaseException:
        dest.abort()  # nothing was written: a new --out is removed again, an earlier run stays as it was
        raise
    from avsbench_tools.baselines.loop import Trainer
    from avsbench_tools.outdir import replaced_interrupt

    with dest:
        t = Trainer(data, Path(release).resolve(), setting, dest.work, o, device, progress, warn, content=content)
        try:
            res = t.run(resume_info)
        except (Interrupted, KeyboardInterrupt) as exc:
            if not dest.replacing:
                raise
            raise replaced_interrupt(out, "run", exc) from None
    res.out = Path(out)
    return res
