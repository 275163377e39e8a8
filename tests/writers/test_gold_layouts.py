"""The gold releases written by `synth --gold` follow formats.md, path by path."""

import csv
import json
import pickle

import numpy as np
from PIL import Image

from avsbench_tools.synth import SynthParams, synthesize
from avsbench_tools.writers.avss import voc_palette


def test_ms3_layout(world_ms3):
    root = world_ms3 / "gold" / "Multi-sources"
    rows = list(csv.reader(open(root / "ms3_meta_data.csv")))[1:]
    assert len(rows) == 4 and {r[1] for r in rows} <= {"train", "val", "test"}
    for name, split in rows:
        assert name.endswith("_0")
        d = root / "ms3_data"
        for k in range(1, 6):
            img = Image.open(d / "visual_frames" / name / f"{name}.mp4_{k}.png")
            assert img.size == (224, 224) and img.mode == "RGB"
            m = np.array(Image.open(d / "gt_masks" / split / name / f"{name}_{k}.png"))
            assert m.shape == (224, 224) and set(np.unique(m)) <= {0, 255}
        with open(d / "audio_log_mel" / split / f"{name}.pkl", "rb") as fh:
            lm = pickle.load(fh)
        assert tuple(lm.shape) == (5, 1, 96, 64) and str(lm.dtype) == "torch.float32"
        assert (d / "audio_wav" / split / f"{name}.wav").is_file()


def test_s4_train_masks_on_first_frame_only(tmp_path):
    out = tmp_path / "w"
    synthesize(out, SynthParams(clips=7, seconds=5, width=160, height=120, seed=4, gold="avsbench-s4"))
    root = out / "gold" / "Single-source"
    rows = list(csv.DictReader(open(root / "s4_meta_data.csv")))
    assert list(rows[0]) == ["name", "start", "category", "split"]
    splits = {r["split"] for r in rows}
    assert {"train", "val", "test"} <= splits
    for r in rows:
        masks = sorted((root / "s4_data" / "gt_masks" / r["split"] / r["category"] / r["name"]).glob("*.png"))
        frames = sorted((root / "s4_data" / "visual_frames" / r["split"] / r["category"] / r["name"]).glob("*.png"))
        assert len(frames) == 5
        expected = 1 if r["split"] == "train" else 5
        assert [m.name for m in masks] == [f"{r['name']}_{k}.png" for k in range(1, expected + 1)]


def test_avss_layout_palette_and_labels(tmp_path):
    out = tmp_path / "w"
    synthesize(out, SynthParams(clips=6, seconds=5, width=160, height=120, seed=5, gold="avss"))
    root = out / "gold"
    label2idx = json.loads((root / "label2idx.json").read_text())
    assert next(iter(label2idx)) == "background" and label2idx["background"] == 1
    rows = list(csv.DictReader(open(root / "metadata.csv")))
    assert list(rows[0]) == ["vid", "uid", "s_min", "s_sec", "a_obj", "split", "label"]
    pal = voc_palette()
    assert tuple(pal[1]) == (128, 0, 0) and tuple(pal[2]) == (0, 128, 0) and tuple(pal[3]) == (128, 128, 0)
    for r in rows:
        d = root / r["label"] / r["uid"]
        assert sorted(p.name for p in (d / "frames").glob("*.jpg")) == [f"{i}.jpg" for i in range(5)]
        labelled = sorted(p.name for p in (d / "labels_semantic").glob("*.png"))
        if r["label"] == "v1s" and r["split"] == "train":
            assert labelled == ["0.png"]
        else:
            assert labelled == [f"{i}.png" for i in range(5)]
        sem = np.array(Image.open(d / "labels_semantic" / labelled[0]))
        rgb = np.array(Image.open(d / "labels_rgb" / labelled[0]))
        assert sem.ndim == 2 and rgb.shape == sem.shape + (3,)
        assert np.array_equal(pal[sem], rgb)
        if r["label"] == "v1m":
            assert r["uid"] == r["vid"]
        else:
            assert r["uid"] == f"{r['vid']}_0_5000"
        assert set(np.unique(sem)) <= set(range(len(label2idx)))


def test_refavs_layout_with_null_folders(world_10s):
    root = world_10s / "gold"
    rows = list(csv.DictReader(open(root / "metadata.csv")))
    assert list(rows[0]) == ["vid", "uid", "split", "fid", "exp"]
    nulls = [r for r in rows if r["uid"].startswith("null_c-")]
    assert nulls and all(r["fid"] == "0" for r in nulls)
    for r in rows:
        media = r["uid"].rsplit("_", 2)[0] if r["uid"].startswith("null") else r["vid"]
        assert sorted(p.name for p in (root / "media" / media / "frames").glob("*.jpg")) == \
            sorted(f"{i}.jpg" for i in range(10))
        assert (root / "media" / media / "audio.wav").is_file()
        masks = [root / "gt_mask" / media / f"fid_{r['fid']}" / f"0000{i}.png" for i in range(10)]
        assert all(m.is_file() for m in masks)
        if r["uid"].startswith("null"):
            assert all(np.array(Image.open(m)).max() == 0 for m in masks)
        else:
            assert r["uid"].startswith(r["vid"] + "_")
