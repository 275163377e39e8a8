"""What the pull/QA/export-review tests share: a real sampled, pre-annotated workspace, and Label Studio
results written the way the editor writes them (brush RLE of an RGBA image whose alpha is anti-aliased
at the edges, encoded with label-studio-sdk's own encoder)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

H, W = 120, 160  # the synthetic frames' size


def cli(*args, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    """Run the real `avs-tools` in a subprocess (the session's own helper, not tests/conftest's)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", COLUMNS="200")
    env.update(kw.pop("env", {}))
    return subprocess.run([sys.executable, "-m", "avsbench_tools", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env, **kw)


def build_workspace(root: Path, clips: int = 2, seconds: int = 5, seed: int = 5, recipe: str | None = None,
                    category: str = "guitar") -> Path:
    """synth world -> workspace: collect --local (one category), sample, motion pre-annotation."""
    from avsbench_tools.collect import CollectOptions, collect
    from avsbench_tools.preannotate import PreannotateOptions, preannotate
    from avsbench_tools.sample import SampleOptions, sample
    from avsbench_tools.synth import SynthParams, synthesize
    from avsbench_tools.workspace import init_workspace

    synthesize(root / "world", SynthParams(clips=clips, seconds=seconds, width=W, height=H, seed=seed))
    ws, _ = init_workspace(root / "ws", recipe or str(root / "world" / "recipe.toml"))
    try:
        collect(ws, CollectOptions(local=root / "world" / "videos", any_license=True, category=category))
        sample(ws, SampleOptions(jobs=1))
        preannotate(ws, PreannotateOptions())
    finally:
        ws.close()
    return root / "ws"


def rect(x0: int, y0: int, x1: int, y1: int, shape=(H, W)) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[y0:y1, x0:x1] = True
    return m


def soft_alpha(mask: np.ndarray, seed: int = 0) -> np.ndarray:
    """An editor-like alpha channel for a mask: 255 inside, anti-aliased values 1..254 on a 1-pixel ring
    on each side of the edge, chosen so that exactly the mask's pixels reach >= 128 (inner ring 128..254,
    outer ring 1..127)."""
    rng = np.random.default_rng(seed)
    m = np.asarray(mask, bool)
    p = np.pad(m, 1)
    inner = m & ~(p[1:-1, 1:-1] & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:])
    grown = p[1:-1, 1:-1] | p[:-2, 1:-1] | p[2:, 1:-1] | p[1:-1, :-2] | p[1:-1, 2:]
    outer = grown & ~m
    a = np.where(m, 255, 0).astype(np.uint8)
    a[inner] = rng.integers(128, 255, int(inner.sum()), dtype=np.uint8)  # 128..254: in
    a[outer] = rng.integers(1, 128, int(outer.sum()), dtype=np.uint8)  # 1..127: out
    return a


def rle_of_alpha(alpha: np.ndarray, colour=(255, 0, 0)) -> list[int]:
    """Brush RLE of an RGBA image with this alpha (colour where alpha > 0), by the SDK's encoder."""
    from label_studio_sdk.converter.brush import encode_rle

    h, w = alpha.shape
    rgba = np.zeros((h, w, 4), np.uint8)
    rgba[alpha > 0, :3] = colour
    rgba[..., 3] = alpha
    return [int(x) for x in encode_rle(rgba.ravel())]


def brush(rid: str, alpha_or_mask: np.ndarray, label: str = "guitar", origin: str | None = "manual") -> dict:
    """A brushlabels result (an alpha array, or a bool mask encoded the way push encodes it)."""
    a = np.asarray(alpha_or_mask)
    alpha = a.astype(np.uint8) * 255 if a.dtype == bool else a.astype(np.uint8)
    h, w = alpha.shape
    r = {"id": rid, "type": "brushlabels", "from_name": "mask", "to_name": "image", "original_width": w,
         "original_height": h, "image_rotation": 0,
         "value": {"format": "rle", "rle": rle_of_alpha(alpha), "brushlabels": [label]}}
    if origin is not None:
        r["origin"] = origin
    return r


def text(rid: str, *texts: str) -> dict:
    return {"id": rid, "type": "textarea", "from_name": "expression", "to_name": "image", "origin": "manual",
            "value": {"text": list(texts)}}


def frame_choice(*choices: str) -> dict:
    return {"id": "frm", "type": "choices", "from_name": "frame", "to_name": "image", "origin": "manual",
            "value": {"choices": list(choices)}}
