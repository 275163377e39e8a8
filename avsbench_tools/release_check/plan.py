"""How big a release-check run is: scaled to the hardware (and said in the report).

CPU: a quarter-width ResNet-18 (`resnet18-w16`, 0.7M parameters: ResNet-18's 11M cost most of each step) from
scratch, 64x64 inputs (logits upsampled to the official 224), a 32-channel ASPP / TPAVI / decoder, batch 2,
Adam lr 1e-3 (a from-scratch sanity run, not the official 1e-4 fine-tuning rate) and 10x that for the TPAVI
blocks (their output gate starts at zero and would stay nearly shut in a short run), no AVM loss (MS3/AVSS: with it a short run from scratch needs about twice the steps to start
using the audio), at most 48 training clips spread over the train split, 240 s of training in all.
CUDA: ResNet-50 at the official 224x224, 256 channels, batch 4, lr 1e-4, every training clip, 1200 s.
Both runs (audio, no audio) get half the budget each and the same seed, options and data order; only
the audio differs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CPU_BUDGET = 240.0
CUDA_BUDGET = 1200.0
MAX_EPOCHS = 500  # the budget, not the epochs, ends a release-check run


@dataclass
class ReleaseCheckOptions:
    budget: float | None = None  # seconds of training for both runs together
    device: str = "auto"
    backbone: str | None = None
    visual_weights: Path | None = None
    vggish_weights: Path | None = None
    seed: int = 123
    force: bool = False
    max_train_clips: int | None = None  # None: the plan's
    input_size: int | None = None
    channels: int | None = None
    lr: float | None = None
    tpavi_lr_mult: float | None = None


@dataclass
class Plan:
    device: str
    backbone: str
    input_size: int
    channels: int
    batch: int
    lr: float
    tpavi_lr_mult: float
    max_train_clips: int | None
    budget: float
    avm: bool | None = None  # the AVM loss: None = the setting's official choice; off on CPU

    def describe(self) -> str:
        clips = f"at most {self.max_train_clips} training clips" if self.max_train_clips else "every training clip"
        mult = f" (TPAVI x{self.tpavi_lr_mult:g})" if self.tpavi_lr_mult != 1 else ""
        avm = ", no AVM loss" if self.avm is False else ""
        return (f"{self.backbone} on {self.device}, {self.input_size}x{self.input_size} inputs, {self.channels} "
                f"channels, batch {self.batch}, lr {self.lr:g}{mult}{avm}, {clips}, {self.budget:.0f} s of training "
                "per run")


def make_plan(o: ReleaseCheckOptions, device: str) -> Plan:
    """The run size for `device` (resolved), with the user's overrides."""
    cuda = device.startswith("cuda")
    total = o.budget if o.budget is not None else (CUDA_BUDGET if cuda else CPU_BUDGET)
    return Plan(device=device, backbone=o.backbone or ("resnet50" if cuda else "resnet18-w16"),
                input_size=o.input_size or (224 if cuda else 64), channels=o.channels or (256 if cuda else 32),
                batch=4 if cuda else 2, lr=o.lr or (1e-4 if cuda else 1e-3),
                tpavi_lr_mult=o.tpavi_lr_mult or (1.0 if cuda else 10.0),
                max_train_clips=o.max_train_clips if o.max_train_clips is not None else (None if cuda else 48),
                budget=total / 2, avm=None if cuda else False)


def train_options(plan: Plan, o: ReleaseCheckOptions, no_audio: bool):
    from avsbench_tools.baselines import TrainOptions

    return TrainOptions(backbone=plan.backbone, epochs=MAX_EPOCHS, batch=plan.batch, lr=plan.lr, seed=o.seed,
                        device=plan.device, no_audio=no_audio, visual_weights=o.visual_weights,
                        vggish_weights=o.vggish_weights, input_size=plan.input_size, channels=plan.channels,
                        tpavi_lr_mult=plan.tpavi_lr_mult,
                        max_train_clips=plan.max_train_clips, max_seconds=plan.budget, save_every=1, avm=plan.avm,
                        force=False)  # last.pt every epoch: a Ctrl-C'd check continues from it (runs.py)
