"""Shared by every stage that loads model weights: the device to run on, a checkpoint's hash, where a
checkpoint spec (a local path or a Hugging Face id in the local cache) lives, and `load_hf`, which
loads a transformers checkpoint into a `ModelHandle`."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from avsbench_tools.errors import AvsError, UsageError, require


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


def cache_root() -> Path:
    """Where avs-tools caches derived files (converted checkpoints): $AVS_TOOLS_CACHE, else
    $XDG_CACHE_HOME/avs-tools, else ~/.cache/avs-tools."""
    if os.environ.get("AVS_TOOLS_CACHE"):
        return Path(os.path.expanduser(os.environ["AVS_TOOLS_CACHE"]))
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "avs-tools"


def resolve_spec(spec: str, allow_download: bool, what: str) -> Path:
    """A local path, or a model id looked up in the local Hugging Face cache."""
    p = Path(os.path.expanduser(spec))
    if p.exists():
        return p
    if "/" in spec and not spec.startswith((".", "/")):
        hub = require("huggingface_hub", "models")
        try:
            return Path(hub.snapshot_download(spec, local_files_only=not allow_download))
        except Exception as exc:  # noqa: BLE001 - any lookup failure is reported in one line
            hint = "" if allow_download else " (not in the local Hugging Face cache; --allow-download fetches it)"
            raise UsageError(f"{what} {spec}: not found{hint}") from exc
    raise UsageError(f"{what} {spec}: no such file or folder")


def _model_type(folder: Path) -> str | None:
    cfg = folder / "config.json"
    if not cfg.is_file():
        return None
    try:
        return json.loads(cfg.read_text()).get("model_type")
    except (OSError, json.JSONDecodeError):
        return "unreadable"


@dataclass(eq=False)
class ModelHandle:
    """A loaded transformers checkpoint: the model (eval mode, on its device), its processor, and the
    identity recorded in a mask version's settings (the spec the user gave and the checkpoint hash)."""

    model: object
    processor: object
    device: str
    name: str
    sha: str


H = TypeVar("H", bound=ModelHandle)


def load_hf(spec: str, flag: str, what: str, model_types: tuple[str, ...], model_cls: str, processor_cls: str,
            device: str, allow_download: bool, handle: type[H] = ModelHandle, name: str | None = None,
            sha: str | None = None) -> H:
    """A transformers checkpoint folder or cached id -> `handle(model, processor, device, spec, sha)`.

    device is resolved first (auto -> cuda or cpu; a CUDA request without CUDA is a usage error).
    name/sha: the identity to record when the folder was derived from another file (a converted
    checkpoint records the original's name and hash)."""
    device = resolve_device(device)
    transformers = require("transformers", "models")
    path = resolve_spec(spec, allow_download, flag)
    mt = _model_type(path) if path.is_dir() else None
    if mt not in model_types:
        raise AvsError(f"{flag} {name or spec}: not a {what} checkpoint (model_type {mt!r})")
    try:
        proc = getattr(transformers, processor_cls).from_pretrained(path)
        model = getattr(transformers, model_cls).from_pretrained(path).eval().to(device)
    except Exception as exc:  # noqa: BLE001 - any load failure is reported in one line
        raise AvsError(f"{flag} {name or spec}: cannot load ({type(exc).__name__}: "
                       f"{(str(exc).splitlines() or [''])[0][:200]})") from exc
    return handle(model, proc, device, name or spec, sha or checkpoint_hash(path))
