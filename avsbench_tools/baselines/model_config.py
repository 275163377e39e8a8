"""The TPAVI baseline's network configuration (`ModelConfig`), a leaf without torch: the model (model.py) is built
from it and a checkpoint's reader (weights.py) reads one back, neither importing the other for it."""

from __future__ import annotations

from dataclasses import dataclass

from avsbench_tools.errors import UsageError

BACKBONES = ("resnet50", "pvt_v2_b5", "resnet18", "resnet18-w16")
SETTINGS = ("s4", "ms3", "avss")
CHANNELS = 256


@dataclass(frozen=True)
class ModelConfig:
    """What defines the network. `frames` is the TPAVI group size (5 in every official setting);
    `tpavi_impl` "dense" runs the official N x N form (benchmarks only); `drop_path` is PVT's."""

    backbone: str = "resnet50"
    num_classes: int = 1
    tpavi_stages: tuple[int, ...] = (0, 1, 2, 3)
    setting: str = "s4"
    frames: int = 5
    tpavi_impl: str = "factorised"
    drop_path: float = 0.1
    channels: int = CHANNELS  # ASPP / TPAVI / decoder width (official 256; small for CPU sanity runs)

    def __post_init__(self):
        object.__setattr__(self, "tpavi_stages", tuple(sorted(set(int(s) for s in self.tpavi_stages))))
        if self.backbone not in BACKBONES:
            raise UsageError(f"--backbone {self.backbone}: expected one of {', '.join(BACKBONES)}")
        if self.setting not in SETTINGS:
            raise UsageError(f"--setting {self.setting}: expected one of {', '.join(SETTINGS)}")
        if any(s not in range(4) for s in self.tpavi_stages):
            raise UsageError(f"TPAVI stages {self.tpavi_stages}: each must be 0, 1, 2 or 3")
        if self.num_classes < 1 or self.frames < 1:
            raise UsageError(f"num_classes {self.num_classes} and frames {self.frames} must be >= 1")
        if self.channels < 8 or self.channels % 2:
            raise UsageError(f"--channels {self.channels}: must be an even number of at least 8")
        if self.tpavi_impl not in ("factorised", "dense"):
            raise UsageError(f"tpavi_impl {self.tpavi_impl}: expected factorised or dense")

    @property
    def align_bias(self) -> bool:
        """The audio align Linear has a bias in S4/MS3 and none in AVSS (official code)."""
        return self.setting != "avss"

    def to_dict(self) -> dict:
        return {"backbone": self.backbone, "num_classes": self.num_classes, "tpavi_stages": list(self.tpavi_stages),
                "setting": self.setting, "frames": self.frames, "tpavi_impl": self.tpavi_impl,
                "drop_path": self.drop_path, "channels": self.channels}

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        keys = ("backbone", "num_classes", "tpavi_stages", "setting", "frames", "tpavi_impl", "drop_path", "channels")
        return cls(**{k: (tuple(d[k]) if k == "tpavi_stages" else d[k]) for k in keys if k in d})
