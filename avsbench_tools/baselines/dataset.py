"""Training data for the TPAVI baseline, read ONLY from an exported release through the official layouts.

A baseline run that trains proves the export is self-sufficient: nothing here reads the workspace.
Paths come from `avsbench_tools.release_reader` (the official loaders' path logic, quirks included), and each
clip is loaded as the official AVSBench loaders load it:

- S4 / MS3: 5 frames of 224x224 PNG, ImageNet-normalised, no resize and no augmentation; masks read
  with PIL `convert('1')` (S4, dithers grey values) or `convert('P')` / 255 (MS3); the log-mel pickle
  [5, 1, 96, 64]. S4 train clips have frame 1's mask only (`supervised` = [1, 0, 0, 0, 0]).
- AVSS: up to 10 JPEG frames at any size, resized to 224x224 (bilinear; train: short side to 224 and a
  centre crop), zero-padded to 10; labels from `labels_rgb` through the VOC palette (nearest, same
  crop), zero-padded; audio = the WAV's VGGish examples zero-padded to 10 (the official AVSS rule);
  `exists` = the frame-exists flag (v1: first 5), `supervised` = which frames have labels (v1s train:
  frame 0 only).

`input_size` other than 224 (CPU sanity runs only) resizes the frames after loading; masks stay at
224, the trainer upsamples the logits to them.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avsbench_tools import formats
from avsbench_tools.errors import UsageError
from avsbench_tools.release_reader import Item, Release, read_release

SETTING_FORMATS = {"s4": "avsbench-s4", "ms3": "avsbench-ms3", "avss": "avss"}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SIZE = 224  # the official frame size
AVSS_FRAMES = 10  # every AVSS sample is padded to 10 frames


def setting_format(setting: str) -> str:
    """The release format a setting reads (s4 -> avsbench-s4, ms3 -> avsbench-ms3, avss -> avss)."""
    if setting not in SETTING_FORMATS:
        raise UsageError(f"--setting {setting}: expected one of {', '.join(SETTING_FORMATS)}")
    return SETTING_FORMATS[setting]


def frames_per_clip(setting: str) -> int:
    """Frames per training sample: 5 (S4, MS3) or 10 (AVSS, two TPAVI groups of 5)."""
    return AVSS_FRAMES if setting == "avss" else 5


@dataclass
class ReleaseData:
    """A release opened for a setting: its rows, classes (AVSS) and the number of output channels."""

    release: Release
    setting: str
    fmt: str

    @property
    def num_classes(self) -> int:
        return (len(self.release.classes) or 71) if self.setting == "avss" else 1

    def items(self, split: str) -> list[Item]:
        return [it for it in self.release.items if it.split == split]

    def splits(self) -> list[str]:
        return sorted({it.split for it in self.release.items})


def needed_files(it: Item, setting: str) -> list[Path]:
    """Every file the official loader opens for this row."""
    files = list(it.frames)
    if setting == "avss":
        files += list(it.rgb_masks.values()) + [it.wav]
    else:
        files += list(it.masks.values()) + [it.pkl]
    return [f for f in files if f is not None]


def open_release(root: Path, setting: str, splits: tuple[str, ...] = ()) -> ReleaseData:
    """The release at `root` for `setting`; the rows of `splits` must have every file their loader opens.
    One-line UsageError on a missing release, a wrong layout, an absent split or missing files."""
    fmt = setting_format(setting)
    rel = read_release(Path(root), fmt)
    data = ReleaseData(rel, setting, fmt)
    have = data.splits()
    for s in splits:
        if not data.items(s):
            raise UsageError(f"{root}: no {s} rows in {rel.meta.name} (the release has {', '.join(have) or 'none'})")
    missing = [f for s in splits for it in data.items(s) for f in needed_files(it, setting) if not f.is_file()]
    if missing:
        raise UsageError(f"{root}: {len(missing)} files the {fmt} loader opens are missing (first: {missing[0]}); "
                         f"run avs-tools validate {root} --format {fmt}")
    return data


def check_files(data: ReleaseData, splits: tuple[str, ...], progress=None) -> None:
    """validate's per-file checks on every file the loader opens for these splits: the first problem is a
    one-line UsageError (training never reads a file validate rejects, e.g. an RGB mask)."""
    from avsbench_tools.validate import check_item_files

    items = [it for s in splits for it in data.items(s)]
    rep = check_item_files(data.release, items, progress)
    if rep.problems:
        path, problem = rep.problems[0]
        more = f" (and {len(rep.problems) - 1} more problems)" if len(rep.problems) > 1 else ""
        raise UsageError(f"{path}: {problem}{more}; validate rejects it, so training does not read it: run "
                         f"avs-tools validate {data.release.root} --format {data.fmt}")


def content_fingerprint(data: ReleaseData, splits: tuple[str, ...]) -> dict[str, str]:
    """{split: fingerprint} of what training reads: the metadata rows, the masks by content, and the other
    files (frames, audio) by path, size and modification time. A run records it; a changed release is
    then refused, never resumed."""
    import hashlib

    out = {}
    for s in splits:
        h = hashlib.sha256()
        for it in sorted(data.items(s), key=lambda i: i.name):
            h.update(f"row\0{it.name}\0{sorted(it.row.items())}\0{it.category}\n".encode())
            labels = set(it.masks.values()) | set(it.rgb_masks.values())
            for f in needed_files(it, data.setting) + sorted(labels - set(needed_files(it, data.setting))):
                rel = f.relative_to(data.release.root) if f.is_relative_to(data.release.root) else f
                if f in labels:
                    h.update(f"{rel}\0{hashlib.sha256(f.read_bytes()).hexdigest()}\n".encode())
                else:
                    st = f.stat()
                    h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        out[s] = h.hexdigest()[:16]
    return out


def read_rgb(path: Path):
    """An image file as PIL RGB."""
    from PIL import Image

    with Image.open(path) as im:
        return im.convert("RGB")


def _crop_resize(img, size: int, nearest: bool):
    """The official AVSS train transform: short side to `size`, then a centre crop."""
    from PIL import Image

    w, h = img.size
    if w > h:
        oh, ow = size, int(1.0 * w * size / h)
    else:
        ow, oh = size, int(1.0 * h * size / w)
    img = img.resize((ow, oh), Image.NEAREST if nearest else Image.BILINEAR)
    x1, y1 = int(round((ow - size) / 2.0)), int(round((oh - size) / 2.0))
    return img.crop((x1, y1, x1 + size, y1 + size))


def avss_image(img, split: str, nearest: bool):
    """An AVSS frame or label image at SIZE, as the official code makes it (train: short side + centre crop;
    else a resize); `nearest` for labels."""
    from PIL import Image

    if split == "train":
        return _crop_resize(img, SIZE, nearest)
    return img.resize((SIZE, SIZE), Image.NEAREST if nearest else Image.BILINEAR)


def normalise(rgb: np.ndarray) -> np.ndarray:
    """uint8 [H, W, 3] -> float32 [3, H, W], ToTensor + ImageNet Normalize."""
    x = rgb.astype(np.float32).transpose(2, 0, 1) / 255.0
    return (x - np.asarray(IMAGENET_MEAN, np.float32)[:, None, None]) / np.asarray(IMAGENET_STD, np.float32)[:, None, None]


def palette_lookup(n_classes: int):
    """A function mapping an RGB label image [H, W, 3] to class indices: the first n VOC palette colours,
    any other colour -> 0 (the official color_mask_to_label's argmax over no match)."""
    from avsbench_tools.writers.avss import voc_palette

    pal = voc_palette()[:n_classes].astype(np.int64)
    keys = (pal[:, 0] << 16) | (pal[:, 1] << 8) | pal[:, 2]
    order = np.argsort(keys)
    skeys = keys[order]

    def lookup(rgb: np.ndarray) -> np.ndarray:
        k = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
        pos = np.clip(np.searchsorted(skeys, k), 0, len(skeys) - 1)
        return np.where(skeys[pos] == k, order[pos], 0).astype(np.int64)

    return lookup


def read_binary_mask(path: Path, setting: str) -> np.ndarray:
    """float32 [H, W] in {0, 1} as the official loader reads it (S4: convert('1'); MS3: convert('P') / 255)."""
    from PIL import Image

    with Image.open(path) as im:
        if setting == "s4":
            return np.asarray(im.convert("1"), dtype=np.float32)
        return np.asarray(im.convert("P"), dtype=np.float32) / 255.0


def read_logmel(path: Path) -> np.ndarray:
    """The release's log-mel pickle (a float32 torch tensor [T, 1, 96, 64]) as numpy."""
    import torch  # noqa: F401 - the pickle holds a torch tensor

    try:
        with open(path, "rb") as fh:
            x = pickle.load(fh)
        return np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x, dtype=np.float32)
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError, IndexError) as exc:
        raise UsageError(f"{path}: not a log-mel pickle ({type(exc).__name__}: {str(exc)[:80]})") from None


def avss_logmel(wav: Path) -> np.ndarray:
    """The official AVSS audio input: wavfile_to_examples of audio.wav, zero-padded to 10 examples."""
    from avsbench_tools.audio.logmel import int16_to_examples
    from avsbench_tools.audio.wav import read_wav

    pcm, sr = read_wav(wav)
    ex = int16_to_examples(pcm, sr)[:AVSS_FRAMES]
    out = np.zeros((AVSS_FRAMES, 1, 96, 64), np.float32)
    out[: len(ex)] = ex
    return out


class ClipDataset:
    """A torch-style dataset of one split: sample i -> dict(frames [T,3,S,S], logmel [T,1,96,64],
    masks [T,224,224] (float 0/1, or int64 class indices for AVSS), exists [T], supervised [T], index)."""

    def __init__(self, data: ReleaseData, split: str, input_size: int = SIZE, cache_bytes: int = 0):
        """`cache_bytes` > 0: samples are kept in memory once read, up to that many bytes (a small sanity run
        decodes each PNG once instead of once per epoch; the samples are the same either way)."""
        self.data, self.split, self.input_size = data, split, int(input_size)
        self.items = data.items(split)
        self.setting = data.setting
        self.t = frames_per_clip(data.setting)
        self._lookup = palette_lookup(data.num_classes) if data.setting == "avss" else None
        self.cache_bytes = cache_bytes
        self._cache: dict[int, dict] = {}
        self._cached = 0

    def __len__(self) -> int:
        return len(self.items)

    def logmel(self, i: int) -> np.ndarray:
        """Only the audio input of sample i: [T, 1, 96, 64] (the log-mel pickle; AVSS: from the WAV)."""
        it = self.items[i]
        if self.setting == "avss":
            return avss_logmel(it.wav)
        logmel = read_logmel(it.pkl)
        if logmel.shape != (self.t, 1, 96, 64):
            raise UsageError(f"{it.pkl}: log-mel shape {tuple(logmel.shape)}, the loader needs ({self.t}, 1, 96, 64)")
        return logmel

    def _frames(self, imgs: list) -> np.ndarray:
        from PIL import Image

        if self.input_size != SIZE:
            imgs = [im.resize((self.input_size, self.input_size), Image.BILINEAR) for im in imgs]
        return np.stack([normalise(np.asarray(im)) for im in imgs])

    def __getitem__(self, i: int) -> dict:
        if i in self._cache:
            return self._cache[i]
        sample = self._read(i)
        size = sum(v.nbytes for v in sample.values() if isinstance(v, np.ndarray))
        if self._cached + size <= self.cache_bytes:
            self._cache[i] = sample
            self._cached += size
        return sample

    def _read(self, i: int) -> dict:
        it = self.items[i]
        t, s = self.t, self.setting
        exists = np.zeros(t, np.float32)
        supervised = np.zeros(t, np.float32)
        if s == "avss":
            n = len(it.frames)
            imgs = [avss_image(read_rgb(p), self.split, nearest=False) for p in it.frames]
            frames = np.zeros((t, 3, self.input_size, self.input_size), np.float32)
            frames[:n] = self._frames(imgs)
            masks = np.zeros((t, SIZE, SIZE), np.int64)
            for k, p in sorted(it.rgb_masks.items()):
                masks[k] = self._lookup(np.asarray(avss_image(read_rgb(p), self.split, nearest=True)))
                supervised[k] = 1
            exists[:n] = 1
            logmel = avss_logmel(it.wav)
        else:
            imgs = [read_rgb(p) for p in it.frames]
            bad = next((p for p, im in zip(it.frames, imgs, strict=True) if im.size != (SIZE, SIZE)), None)
            if bad is not None:
                raise UsageError(f"{bad}: frame is not {SIZE}x{SIZE} (the {s.upper()} loader does not resize)")
            frames = self._frames(imgs)
            masks = np.zeros((t, SIZE, SIZE), np.float32)
            for k, p in sorted(it.masks.items()):
                m = read_binary_mask(p, s)
                if m.shape != (SIZE, SIZE):
                    raise UsageError(f"{p}: mask is {m.shape[1]}x{m.shape[0]}, the {s.upper()} loader needs "
                                     f"{SIZE}x{SIZE}")
                masks[k] = m
                supervised[k] = 1
            exists[:] = 1
            logmel = self.logmel(i)
        return {"frames": frames, "logmel": logmel, "masks": masks, "exists": exists, "supervised": supervised,
                "index": i}


def collate(samples: list[dict]) -> dict:
    """Stack samples into a batch with the frames flattened video-major: [B*T, ...]."""
    import torch

    out = {}
    for k in ("frames", "logmel", "masks", "exists", "supervised"):
        arr = np.stack([s[k] for s in samples])
        out[k] = torch.from_numpy(arr.reshape(-1, *arr.shape[2:]))
    out["index"] = [s["index"] for s in samples]
    return out


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """The training order of epoch `epoch`: a permutation fixed by (seed, epoch) alone, so a resumed run
    sees the same batches as an uninterrupted one."""
    return np.random.default_rng([seed, epoch]).permutation(n).tolist()


def batches(order: list[int], batch: int) -> list[list[int]]:
    """Consecutive batches of `order` (the last one may be smaller)."""
    return [order[i:i + batch] for i in range(0, len(order), batch)]


def check_frame_sizes(data: ReleaseData, split: str) -> None:
    """S4/MS3 loaders do not resize: a first frame that is not 224x224 is a one-line error before training."""
    if data.setting == "avss":
        return
    from PIL import Image

    for it in data.items(split)[:1]:
        with Image.open(it.frames[0]) as im:
            if im.size != (SIZE, SIZE):
                raise UsageError(f"{it.frames[0]}: frame is {im.size[0]}x{im.size[1]}, the "
                                 f"{formats.get(data.fmt).title} loader needs {SIZE}x{SIZE} (it does not resize)")
