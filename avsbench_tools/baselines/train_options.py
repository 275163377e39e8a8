"""`baseline train`'s options and the helpers its training loop shares with the entry point (train.py holds
the entry point, loop.py the loop; both read these, neither imports the other for them)."""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from avsbench_tools.errors import Interrupted, UsageError

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
    from avsbench_tools.baselines.dataset import setting_format

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
