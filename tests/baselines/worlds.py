"""Synthetic releases and a stand-in VGGish for the baseline tests (shared by tests/baselines and
tests/test_release_check.py; each world is built once per test session under pytest's base temp folder).

`make_world(tmp_path_factory, **params)` renders a world with its gold release (synth resumes a world
with the same parameters, so a second caller just gets the folder back). `he_vggish(path)` writes a
VGGish state dict in the torchvggish layout with He-normal weights and zero biases: no pretrained
VGGish is available offline, and a PyTorch-default random VGGish outputs nearly a constant (its
biases dominate), while a He-initialised one keeps the log-mel's differences, as a trained one does.
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
    gen = torch.Generator().manual_seed(0)
    m = build_vggish()
    for mod in m.modules():
        if isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear)):
            fan_in = mod.weight[0].numel()
            mod.weight.data = torch.randn(mod.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5
            mod.bias.data.zero_()
    m.embeddings[4].weight.data /= 30  # outputs of order 1, like the released VGGish's
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(m.state_dict(), path)
    return path


def world_json(world: Path) -> dict:
    return json.loads((world / "world.json").read_text())
