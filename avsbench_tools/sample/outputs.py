"""Where a sampled clip's files live in the workspace, and reading them back from the catalog."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from avsbench_tools.audio.activity import Activity
from avsbench_tools.workspace import Workspace


def frame_path(ws: Workspace, clip_id: str, second: int) -> Path:
    """The image of a clip's second: frames/<clip>/<second>.<png|jpg> (the recipe's frame format)."""
    return ws.path("frames", clip_id, f"{second}.{ws.recipe.frame_format}")


def audio_paths(ws: Workspace, clip_id: str) -> dict[str, Path]:
    """The clip's audio files: {"wav", "logmel", "vggish"} under audio/."""
    base = ws.path("audio")
    return {"wav": base / f"{clip_id}.wav", "logmel": base / f"{clip_id}.logmel.npy",
            "vggish": base / f"{clip_id}.vggish.npy"}


def npy_bytes(arr: np.ndarray) -> bytes:
    """An array as the bytes of a .npy file (written atomically by the caller)."""
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def activity_of(ws: Workspace, clip_id: str) -> Activity | None:
    """The per-second sound activity sample stored for a clip, or None (not sampled)."""
    return activity_from(ws.catalog.audio(clip_id))


def activity_from(rec) -> Activity | None:
    """The per-second sound activity a clip's audio record (`Catalog.audio`, None: none) holds, or None."""
    if rec is None or not rec.activity:
        return None
    return Activity.from_dict(rec.activity)
