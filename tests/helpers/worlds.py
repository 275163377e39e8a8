"""Synthetic releases and a stand-in VGGish for the baseline tests (shared by tests/baselines and
tests/test_release_check.py; each world is built once per test session under pytest's base temp folder).

`make_world(tmp_path_factory, **params)` renders a world with its gold release (synth resumes a world
with the same parameters, so a second caller just gets the folder back). `he_vggish(path)` writes, in the
torchvggish layout, the VGGish the CLI uses when no weights are given (baselines/weights.py fixed_vggish:
He-normal weights, zero biases): no pretrained VGGish is available offline, and a PyTorch-default random
VGGish outputs nearly a constant (its biases dominate), while a He-initialised one keeps the log-mel's
differences, as a trained one does.
"""

from __future__ import annotations

import json
from pathlib import Path

from avsbench_tools.synth import SynthParams, synthesize

RELEASE_DIRS = {"avsbench-s4": "Single-source", "avsbench-ms3": "Multi-sources"}


def make_world(tmp_path_factory, **params) -> Path:
    """The world's folder (its gold release in world/gold)."""
    p = SynthParams(**params)
    key = "-".join(f"{k}{v}" for k, v in sorted(p.to_json().items()) if k not in ("version", "format"))
    out = Path(tmp_path_factory.getbasetemp()) / "baseline-worlds" / key.replace("[", "").replace("]", "").replace(
        ", ", "x").replace("/", "_")
    if not (out / "gold" / ".avs-gold.json").is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        synthesize(out, p)
    return out


def he_vggish(path: Path) -> Path:
    """A deterministic He-initialised VGGish state dict (torchvggish layout) at `path`."""
    import torch

    from avsbench_tools.audio.vggish import build_vggish

    if path.is_file():
        return path
    from avsbench_tools.baselines.weights import fixed_vggish

    m = build_vggish()
    fixed_vggish(m)  # the CLI's own VGGish without weights: the same features with or without this file
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(m.state_dict(), path)
    return path


def world_json(world: Path) -> dict:
    return json.loads((world / "world.json").read_text())
