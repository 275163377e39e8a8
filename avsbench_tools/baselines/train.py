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

import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from avsbench_tools.errors import Interrupted, UsageError
from avsbench_tools.progress import Progress

OFFICIAL_EPOCHS = {"s4": 15, "ms3": 30, "avss": 60}
OFFICIAL_AVM = {"s4": False, "ms3": True, "avss": True}
# options that define the run: --resume must repeat them (epochs may grow)
DEFINING = ("backbone", "batch", "lr", "seed", "no_audio", "avm", "lam", "tpavi_stages", "visual_weights",
            "vggish_weights", "input_size", "channels", "tpavi_lr_mult", "max_train_clips", "val_from", "val_every")


@dataclass
class TrainOptions:
    """Options of `baseline train` (None = the official default of the setting)."""

    backbone: str = "resnet50"
    epochs: int | None = None
    batch: int = 4
    lr: float = 1e-4
    seed: int = 123
    device: str = "auto"
    amp: bool = True  # CUDA only
    channels_last: bool = True  # CUDA only
    no_audio: bool = False
    avm: bool | None = None
    lam: float = 0.5
    tpavi_stages: tuple[int, ...] = (0, 1, 2, 3)
    visual_weights: Path | None = None
    vggish_weights: Path | None = None
    input_size: int = 224
    channels: int = 256
    tpavi_lr_mult: float = 1.0  # TPAVI blocks learn at lr x this (official 1; sanity runs open its zero gate faster)
    max_train_clips: int | None = None  # an evenly spread subset of the train split (sanity runs)
    val_from: int = 1  # first validated epoch (1-based); official AVSS: 16 (0-based 15 ... even)
    val_every: int = 1
    max_seconds: float | None = None  # stop before an epoch that would end after this (release-check)
    workers: int = 0
    keep_epochs: bool = False
    save_every: int = 1  # epochs between last.pt writes (the last epoch is always written)
    resume: bool = False
    force: bool = False

    def defining(self, setting: str) -> dict:
        d = asdict(self)
        d["avm"] = OFFICIAL_AVM[setting] if self.avm is None else self.avm
        d["tpavi_stages"] = list(self.tpavi_stages)
        return {k: (str(d[k]) if isinstance(d[k], Path) else d[k]) for k in DEFINING}


@dataclass
class TrainResult:
    out: Path
    epochs: int
    epochs_done: int
    best_epoch: int | None
    best_miou: float | None
    history: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    stopped: str | None = None  # why training ended before `epochs` (time budget)
    resumed_from: int = 0


def check_options(setting: str, o: TrainOptions) -> None:
    """One-line errors for options that cannot work, before anything is read or written."""
    from avsbench_tools.baselines.data import setting_format

    setting_format(setting)
    if o.epochs is not None and o.epochs < 1:
        raise UsageError(f"--epochs {o.epochs}: must be at least 1")
    if o.batch < 1 or o.lr <= 0:
        raise UsageError(f"--batch {o.batch} / --lr {o.lr}: must be positive")
    if o.input_size % 32 or not 32 <= o.input_size <= 224:
        raise UsageError(f"--input-size {o.input_size}: must be a multiple of 32 between 32 and 224")
    for opt, p in (("--visual-weights", o.visual_weights), ("--vggish-weights", o.vggish_weights)):
        if p is not None and not Path(p).is_file():
            raise UsageError(f"{opt} {p}: no such file")


def model_config(setting: str, num_classes: int, o: TrainOptions):
    """The ModelConfig of a run (frames 5: AVSS's 10 frames are two TPAVI groups)."""
    from avsbench_tools.baselines.model import ModelConfig

    kw = {"backbone": o.backbone, "num_classes": num_classes, "tpavi_stages": tuple(o.tpavi_stages),
          "setting": setting, "frames": 5}
    return ModelConfig(**kw, channels=o.channels)


def param_groups(model, lr: float, tpavi_mult: float) -> list[dict]:
    """Adam's parameter groups: everything at `lr` (official), the TPAVI blocks at lr x tpavi_mult when asked."""
    params = model.trainable_parameters()
    if tpavi_mult == 1.0:
        return [{"params": params, "lr": lr}]
    tp = {id(p) for n, p in model.named_parameters() if n.startswith("tpavi_b") and p.requires_grad}
    return [{"params": [p for p in params if id(p) not in tp], "lr": lr},
            {"params": [p for p in params if id(p) in tp], "lr": lr * tpavi_mult}]


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
    from avsbench_tools.baselines.data import check_files, content_fingerprint, open_release

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


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def stop_for_budget(o: TrainOptions, started: float, epoch_seconds: list[float]) -> bool:
    """Whether the next epoch would end after the time budget (never before the first epoch)."""
    if o.max_seconds is None or not epoch_seconds:
        return False
    return time.monotonic() - started + max(epoch_seconds[-3:]) > o.max_seconds


def interrupted(done: int, left: int, out: Path) -> Interrupted:
    return Interrupted(done, left, what=f"epochs; the unfinished epoch is dropped, {out / 'last.pt'} holds epoch "
                                        f"{done}")
