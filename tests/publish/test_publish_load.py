"""The published folder loads with `datasets` offline (images decoded), its README has the Hub's header,
and its croissant.json validates with mlcroissant (0 errors) and reads its records."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import yaml

pytestmark = pytest.mark.usefixtures("hf_offline")


@pytest.fixture
def hf_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))


def _files(folder, table, split):
    return sorted(str(p) for p in (folder / "data" / table).glob(f"{split}-*.parquet"))


@pytest.mark.parametrize("fmt", ["avss", "avsbench-s4"])
def test_load_dataset_decodes_images_and_audio(fmt, gold_releases, published, tmp_path):
    import soundfile
    from datasets import Audio, load_dataset
    from PIL import Image

    from avsbench_tools.release_reader import read_release

    folder = published[fmt]
    rel = read_release(gold_releases[fmt], fmt)
    items = {it.name: it for it in rel.items}
    splits = sorted({it.split for it in rel.items})
    frames = load_dataset("parquet", data_files={s: _files(folder, "frames", s) for s in splits},
                          cache_dir=str(tmp_path / "cache"))
    n = 0
    for s in splits:
        for row in frames[s]:
            it = items[row["clip"]]
            assert isinstance(row["frame"], Image.Image)  # decoded by the Image feature
            want = np.asarray(Image.open(it.frames[row["second"]]))
            assert np.array_equal(np.asarray(row["frame"]), want)
            if row["annotated"]:
                assert np.array_equal(np.asarray(row["mask"]), np.asarray(Image.open(it.masks[row["second"]])))
                assert row["sounding"] == bool(np.asarray(row["mask"]).any())
            else:
                assert row["mask"] is None
            n += 1
    assert n == sum(len(it.frames) for it in rel.items)
    clips = load_dataset("parquet", data_files={s: _files(folder, "clips", s) for s in splits},
                         cache_dir=str(tmp_path / "cache"))
    assert clips[splits[0]].features["audio"].sampling_rate == 16000
    for s in splits:
        # decoded by the Audio feature (torchcodec; on a CPU torch relinked by tools/ensure_torchcodec.py)
        for row, raw in zip(clips[s], clips[s].cast_column("audio", Audio(decode=False)), strict=True):
            it = items[row["clip"]]
            decoded = row["audio"].get_all_samples()
            ref, rate = soundfile.read(it.wav, dtype="float32", always_2d=True)
            assert decoded.sample_rate == rate == 16000
            got = decoded.data.numpy().T  # [samples, channels], as soundfile gives
            assert got.shape == ref.shape and np.abs(got - ref).max() <= 1 / 32768, it.name
            # and the stored bytes are the release's WAV, byte for byte
            assert raw["audio"]["bytes"] == Path(it.wav).read_bytes()
            if it.pkl is not None:
                import torch  # noqa: F401 - the pickles hold torch tensors

                with open(it.pkl, "rb") as fh:
                    want = pickle.load(fh).numpy()[:, 0]
                assert np.array_equal(np.asarray(row["logmel"], dtype=np.float32), want)


def test_readme_has_the_hub_header(published):
    text = (published["ref-avs"] / "README.md").read_text()
    assert text.startswith("---\n")
    head = yaml.safe_load(text.split("---\n")[1])
    assert head["license"] == "cc-by-nc-4.0" and "image-segmentation" in head["task_categories"]
    configs = {c["config_name"]: c for c in head["configs"]}
    assert set(configs) == {"frames", "clips"} and configs["frames"]["default"] is True
    splits = {d["split"] for d in configs["frames"]["data_files"]}
    assert splits == {p.name.split("-")[0] for p in (published["ref-avs"] / "data" / "frames").glob("*.parquet")}
    for c in configs.values():
        for d in c["data_files"]:
            assert list(published["ref-avs"].glob(d["path"]))


@pytest.mark.parametrize("fmt", ["avsbench-ms3", "ref-avs"])
def test_croissant_validates_and_reads_records(fmt, published, gold_releases):
    import mlcroissant as mlc

    doc = json.loads((published[fmt] / "croissant.json").read_text())
    assert "http://mlcommons.org/croissant/1.1" in doc["conformsTo"]
    for key in ("rai:dataCollection", "rai:dataAnnotationProtocol", "rai:machineAnnotationTools",
                "rai:dataLimitations", "rai:personalSensitiveInformation", "rai:dataBiases"):
        assert doc[key]
    ds = mlc.Dataset(jsonld=str(published[fmt] / "croissant.json"))
    assert not ds.metadata.ctx.issues.errors
    frames = list(ds.records(record_set="frames"))
    clips = list(ds.records(record_set="clips"))
    import pyarrow.parquet as pq

    n_frames = sum(pq.ParquetFile(p).metadata.num_rows for p in (published[fmt] / "data" / "frames").glob("*"))
    assert len(frames) == n_frames and len(clips) == len(list(
        r for p in (published[fmt] / "data" / "clips").glob("*") for r in pq.read_table(p).to_pylist()))
    assert {r["frames/split"].decode() for r in frames} == {r["clips/split"].decode() for r in clips}
