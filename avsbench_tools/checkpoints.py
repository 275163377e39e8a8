"""Shared by every stage that loads model weights: the device to run on and a checkpoint's hash."""

from __future__ import annotations

import hashlib
from pathlib import Path

from avsbench_tools.errors import UsageError, require


def resolve_device(device: str) -> str:
    """auto -> cuda if available else cpu; a CUDA request on a machine without CUDA is a usage error."""
    torch = require("torch", "models")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError(f"--device {device}: CUDA is not available on this machine (use --device cpu or auto)")
        return device
    if device != "cpu":
        raise UsageError(f"--device {device}: expected auto, cpu or cuda[:N]")
    return device


def checkpoint_hash(path: Path) -> str:
    """sha256 prefix of a checkpoint file, or of a folder's weight files (sorted by name)."""
    path = Path(path)
    files = [path] if path.is_file() else sorted(
        p for p in path.rglob("*") if p.suffix in (".safetensors", ".bin", ".pth", ".pt") and p.is_file())
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode())
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                h.update(chunk)
    return h.hexdigest()[:16]
