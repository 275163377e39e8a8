"""The baseline reads releases only through the official layouts, exactly as the official loaders do."""

from __future__ import annotations

import json
import pickle
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from avsbench_tools.baselines.dataset import (
    ClipDataset,
    batches,
    collate,
    epoch_order,
    open_release,
    palette_lookup,
)
from avsbench_tools.errors import UsageError
from tests.helpers.worlds import make_world

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _official_rgb(path, size=None, crop=False):
    """The official loaders' image transform (torchvision ToTensor + Normalize; AVSS resize / crop-resize)."""
    from torchvision import transforms

    img = Image.open(path).convert("RGB")
    if size and crop:  # the AVSS train crop_resize_img
        w, h = img.size
        ow, oh = (int(1.0 * w * size / h), size) if w > h else (size, int(1.0 * h * size / w))
        img = img.resize((ow, oh), Image.BILINEAR)
        x1, y1 = int(round((ow - size) / 2.0)), int(round((oh - size) / 2.0))
        img = img.crop((x1, y1, x1 + size, y1 + size))
    elif size:
        img = img.resize((size, size), Image.BILINEAR)
    return transforms.Compose([transforms.ToTensor(), transforms.Normalize(MEAN, STD)])(img).numpy()


@pytest.fixture(scope="module")
def s4(tmp_path_factory):
    return make_world(tmp_path_factory, clips=6, seconds=5, width=96, height=64, seed=4, gold="avsbench-s4") / "gold"


@pytest.fixture(scope="module")
def ms3(tmp_path_factory):
    return make_world(tmp_path_factory, clips=5, seconds=5, width=96, height=64, seed=7, gold="avsbench-ms3") / "gold"


@pytest.fixture(scope="module")
def avss(tmp_path_factory):
    return make_world(tmp_path_factory, clips=6, seconds=5, width=96, height=64, seed=5, gold="avss") / "gold"


def test_s4_clips_as_the_official_loader_reads_them(s4):
    from torchvision import transforms

    data = open_release(s4, "s4", ("train", "val"))
    for split in ("train", "val"):
        ds = ClipDataset(data, split)
        for i, it in enumerate(ds.items):
            s = ds[i]
            want = np.stack([_official_rgb(p) for p in it.frames])
            assert s["frames"].shape == (5, 3, 224, 224)
            np.testing.assert_allclose(s["frames"], want, atol=1e-6)
            n = 1 if split == "train" else 5  # S4 train: frame 1's mask only
            assert s["supervised"].tolist() == [1.0] * n + [0.0] * (5 - n)
            for k in range(n):
                m = transforms.ToTensor()(Image.open(it.masks[k]).convert("1")).numpy()[0]
                np.testing.assert_array_equal(s["masks"][k], m)
            with open(it.pkl, "rb") as fh:
                np.testing.assert_array_equal(s["logmel"], pickle.load(fh).numpy())
            assert s["exists"].tolist() == [1.0] * 5


def test_ms3_masks_read_as_palette_over_255(ms3):
    from torchvision import transforms

    data = open_release(ms3, "ms3", ("train",))
    ds = ClipDataset(data, "train")
    s = ds[0]
    it = ds.items[0]
    assert s["supervised"].tolist() == [1.0] * 5
    for k in range(5):
        m = transforms.ToTensor()(Image.open(it.masks[k]).convert("P")).numpy()[0]
        np.testing.assert_array_equal(s["masks"][k], m)
        assert set(np.unique(m)) <= {0.0, 1.0}
    assert it.frames[0].name.endswith(".mp4_1.png")  # the MS3 frame-name quirk


def _official_avss_label(path, n_classes, split):
    """color_mask_to_label of the official AVSS loader: RGB label -> index of the matching palette colour."""
    from avsbench_tools.writers.avss import voc_palette

    img = Image.open(path).convert("RGB")
    img = img.resize((224, 224), Image.NEAREST) if split != "train" else _crop(img)
    arr = np.asarray(img).astype("int32")
    pal = voc_palette()[:n_classes]
    maps = np.stack([np.all(arr == c, axis=-1) for c in pal], -1).astype(np.float32)
    return np.argmax(maps, axis=-1)


def _crop(img):
    w, h = img.size
    ow, oh = (int(1.0 * w * 224 / h), 224) if w > h else (224, int(1.0 * h * 224 / w))
    img = img.resize((ow, oh), Image.NEAREST)
    x1, y1 = int(round((ow - 224) / 2.0)), int(round((oh - 224) / 2.0))
    return img.crop((x1, y1, x1 + 224, y1 + 224))


def test_avss_padding_flags_labels_and_audio(avss):
    from avsbench_tools.audio.logmel import int16_to_examples
    from avsbench_tools.audio.wav import read_wav

    data = open_release(avss, "avss", ("train",))
    k = data.num_classes
    assert k == len(json.loads((avss / "label2idx.json").read_text()))
    labels = set()
    for split in ("train", "val", "test"):
        ds = ClipDataset(data, split)
        for i, it in enumerate(ds.items):
            s = ds[i]
            label = it.category
            labels.add(label)
            assert s["frames"].shape == (10, 3, 224, 224) and s["masks"].shape == (10, 224, 224)
            assert s["exists"].tolist() == [1.0] * 5 + [0.0] * 5  # v1: 5 frames, padded to 10
            sup = [0] if (label == "v1s" and split == "train") else list(range(5))
            assert np.nonzero(s["supervised"])[0].tolist() == sup
            for j in range(5):
                np.testing.assert_allclose(s["frames"][j], _official_rgb(it.frames[j], 224, crop=split == "train"),
                                           atol=1e-6)
            assert not s["frames"][5:].any() and not s["masks"][5:].any()
            for j in sup:
                np.testing.assert_array_equal(s["masks"][j], _official_avss_label(it.rgb_masks[j], k, split))
            pcm, sr = read_wav(it.wav)
            ex = int16_to_examples(pcm, sr)
            np.testing.assert_allclose(s["logmel"][: len(ex)], ex, atol=1e-6)
            assert not s["logmel"][len(ex):].any()  # zero-padded to 10, the official AVSS rule
    assert labels <= {"v1s", "v1m"}


def test_palette_lookup_maps_unknown_colours_to_background():
    from avsbench_tools.writers.avss import voc_palette

    lookup = palette_lookup(5)
    pal = voc_palette()
    img = np.stack([pal[[0, 1, 2, 3, 4, 9]]] * 2)  # index 9 is beyond the 5 classes
    assert lookup(img).tolist() == [[0, 1, 2, 3, 4, 0]] * 2


def test_epoch_order_depends_on_seed_and_epoch_only():
    a = epoch_order(10, 123, 3)
    assert a == epoch_order(10, 123, 3) and sorted(a) == list(range(10))
    assert a != epoch_order(10, 123, 4) and a != epoch_order(10, 124, 3)
    assert batches(list(range(5)), 2) == [[0, 1], [2, 3], [4]]


def test_collate_is_video_major(ms3):
    data = open_release(ms3, "ms3", ("train",))
    ds = ClipDataset(data, "train", input_size=64)
    b = collate([ds[0], ds[1]])
    assert b["frames"].shape == (10, 3, 64, 64) and b["masks"].shape == (10, 224, 224)
    assert torch.equal(b["frames"][5:], torch.from_numpy(ds[1]["frames"]))


def test_missing_files_and_wrong_layout_are_one_line_errors(ms3, s4, tmp_path):
    broken = tmp_path / "rel"
    shutil.copytree(ms3, broken)
    data = open_release(broken, "ms3", ("train",))
    victim = data.items("train")[0].frames[2]
    victim.unlink()
    with pytest.raises(UsageError) as e:
        open_release(broken, "ms3", ("train", "val"))
    msg = str(e.value)
    assert "\n" not in msg and "1 files" in msg and str(victim) in msg and "avs-tools validate" in msg
    with pytest.raises(UsageError, match="not a release root in the avsbench-s4 layout"):
        open_release(ms3, "s4")
    with pytest.raises(UsageError, match="no such folder"):
        open_release(tmp_path / "nowhere", "ms3")
    with pytest.raises(UsageError, match="--setting ref: expected one of s4, ms3, avss"):
        open_release(ms3, "ref")
    with pytest.raises(UsageError, match="no test_s rows"):
        open_release(s4, "s4", ("test_s",))
