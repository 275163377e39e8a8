"""What every release writer takes, and the file-writing helpers they share."""

from __future__ import annotations

import csv
import io
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from avsbench_tools import formats
from avsbench_tools.audio.wav import write_wav
from avsbench_tools.fsutil import atomic_write_bytes


@dataclass
class RefObject:
    """One referred object of a Ref-AVS clip: its masks in every sampled frame and its expressions."""

    fid: int
    category: str
    masks: np.ndarray  # bool [T, H, W]
    expressions: list[str]


@dataclass
class ReleaseClip:
    """One clip as a release writer takes it (`writer.add`): its frames, audio, log-mel and masks in its format's
    mask kind, with the metadata of its row. Built by `masks_to_clip` (export and synth's gold release)."""

    name: str  # the release's id: S4 name, MS3 name (<ytid>_<n>), AVSS uid, Ref-AVS vid
    video_id: str  # source video id
    start: float  # seconds into the source video
    seconds: int
    split: str
    frames: list[np.ndarray]  # RGB uint8, one per second (already sampled by the recipe's rule)
    pcm: np.ndarray  # int16 [N, C] at 16 kHz
    logmel: np.ndarray | None = None  # float32 [T, 1, 96, 64]
    category: str | None = None  # S4 category
    masks: dict[int, np.ndarray] = field(default_factory=dict)  # second -> bool (binary) / uint8 class map (AVSS)
    sounding: list[str] = field(default_factory=list)  # AVSS a_obj
    objects: list[RefObject] = field(default_factory=list)  # Ref-AVS
    null_expressions: list[str] = field(default_factory=list)  # Ref-AVS
    avss_label: str | None = None  # v1s | v1m | v2


class ReleaseWriter:
    """Writes one release layout; `fmt` is the name of its entry in avsbench_tools.formats."""

    fmt = ""

    def __init__(self, root: Path, recipe):
        self.root = Path(root)
        self.recipe = recipe
        self.format = formats.get(self.fmt)
        self.rows: list[list] = []
        self.files = 0

    @property
    def size(self) -> tuple[int, int] | None:
        """(width, height) frames and masks are written at: the recipe's export_size, else the format's."""
        return self.recipe.export_size or self.format.frame_size

    def add(self, clip: ReleaseClip) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- helpers ---------------------------------------------------------------------------
    def image(self, path: Path, arr: np.ndarray, size: tuple[int, int] | None = None, nearest: bool = False,
              quality: int = 95) -> None:
        from PIL import Image

        img = Image.fromarray(arr)
        if size is not None and img.size != tuple(size):
            img = img.resize(tuple(size), Image.NEAREST if nearest else Image.BILINEAR)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".jpg":
            buf = io.BytesIO()
            img.save(buf, format="JPEG", quality=quality)
            data = buf.getvalue()
        else:
            from avsbench_tools.pngfast import encode_png

            data = encode_png(np.asarray(img))  # lossless, ~2x faster than Pillow's encoder
        path.write_bytes(data)  # the whole release is renamed into place at the end
        self.files += 1

    def wav(self, path: Path, pcm: np.ndarray) -> None:
        write_wav(path, pcm, 16000)
        self.files += 1

    def logmel_pkl(self, path: Path, logmel: np.ndarray) -> None:
        """pickle of a float32 torch tensor [T, 1, 96, 64], as the official loaders unpickle it."""
        from avsbench_tools.errors import require

        torch = require("torch")
        tensor = torch.from_numpy(np.ascontiguousarray(logmel, dtype=np.float32))
        buf = io.BytesIO()
        _TensorPickler(buf, protocol=4).dump(tensor)
        atomic_write_bytes(path, buf.getvalue())
        self.files += 1

    def csv(self, path: Path, header: list[str], rows: list[list]) -> None:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        if header:
            w.writerow(header)
        w.writerows(rows)
        atomic_write_bytes(path, buf.getvalue().encode("utf-8"))


class _TensorPickler(pickle.Pickler):
    """Pickles a torch tensor as torch.from_numpy(array): unpickles to the same float32 tensor, but unlike
    torch's own reduction (which embeds a random serialization id) the bytes are deterministic."""

    def reducer_override(self, obj):
        import torch

        if isinstance(obj, torch.Tensor):
            return torch.from_numpy, (obj.detach().cpu().numpy(),)
        return NotImplemented


def binary_mask(m: np.ndarray) -> np.ndarray:
    return np.where(np.asarray(m) > 0, 255, 0).astype(np.uint8)
