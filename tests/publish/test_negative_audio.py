"""export --negative-audio: test-clip copies with silence / seeded noise / an unrelated clip's audio, log-mel
computed as the release's own, all-empty ground truth, read by the baseline's official-layout loader with only
its root changed; the manifest pairs them; the same seed gives the same bytes."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from avsbench_tools.audio.logmel import int16_to_examples, pad_examples
from avsbench_tools.audio.wav import read_wav
from avsbench_tools.release_reader import read_release
from tests.helpers import cli_here

FMT = "avsbench-s4"


def _export(ws: Path, out: Path, seed: int, kinds: str = "silence,noise,offscreen"):
    p = cli_here("export", ws, out, "--include-unreviewed", "--negative-audio", kinds, "--seed", seed, "-q")
    assert p.returncode == 0, p.stderr
    return p


def _pkl(path: Path) -> np.ndarray:
    import torch  # noqa: F401 - the pickles hold torch tensors

    with open(path, "rb") as fh:
        return pickle.load(fh).numpy()


def _bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_negative_sets(s4_workspace, tmp_path):
    from avsbench_tools.baselines.dataset import ClipDataset, open_release

    out = tmp_path / "rel"
    _export(s4_workspace, out, 3)
    pos = {it.name: it for it in read_release(out, FMT).items}
    test = [n for n, it in pos.items() if it.split == "test"]
    manifest = json.loads((out / "negative-audio" / "manifest.json").read_text())
    assert manifest["seed"] == 3 and manifest["kinds"] == ["silence", "noise", "offscreen"]
    assert {(p["kind"], p["positive"]) for p in manifest["pairs"]} == {(k, n) for k in manifest["kinds"] for n in test}
    for kind in manifest["kinds"]:
        root = out / "negative-audio" / kind
        neg = read_release(root, FMT)
        assert sorted(it.name for it in neg.items) == sorted(test)
        for it in neg.items:
            p = pos[it.name]
            assert [f.read_bytes() for f in it.frames] == [f.read_bytes() for f in p.frames]  # the same frames
            for m in it.masks.values():
                assert not np.asarray(Image.open(m)).any()  # nothing sounds
            pcm, rate = read_wav(it.wav)
            ppcm, _ = read_wav(p.wav)
            assert rate == 16000 and pcm.shape == ppcm.shape
            # log-mel exactly as the release's own: the same function gives the positive clip's pickle from its wav
            assert np.array_equal(_pkl(p.pkl), pad_examples(int16_to_examples(ppcm, 16000), 5))
            assert np.array_equal(_pkl(it.pkl), pad_examples(int16_to_examples(pcm, 16000), 5))
            pair = next(x for x in manifest["pairs"] if x["kind"] == kind and x["clip"] == it.name)
            if kind == "silence":
                assert not pcm.any()
            elif kind == "noise":
                assert 0.03 < pcm.astype(np.float64).std() / 32768 < 0.07
            else:
                src = pos[pair["audio_from"]]
                assert src.category != p.category
                assert np.array_equal(pcm, read_wav(src.wav)[0][: len(pcm)])
        # the baseline's official-layout loader reads it with only the root changed
        data = open_release(root, "s4", ("test",))
        sample = ClipDataset(data, "test")[0]
        assert sample["masks"].sum() == 0 and sample["logmel"].shape == (5, 1, 96, 64)
    # the same seed gives the same bytes; another seed other noise, the same silence
    again = tmp_path / "again"
    _export(s4_workspace, again, 3)
    assert _bytes(out / "negative-audio") == _bytes(again / "negative-audio")
    other = tmp_path / "other"
    _export(s4_workspace, other, 4, "silence,noise")
    a, b = _bytes(out / "negative-audio" / "noise"), _bytes(other / "negative-audio" / "noise")
    assert [k for k in a if k.endswith(".wav") and a[k] != b[k]]
    assert _bytes(out / "negative-audio" / "silence") == _bytes(other / "negative-audio" / "silence")


def test_negative_audio_bad_requests(s4_workspace, tmp_path):
    p = cli_here("export", s4_workspace, tmp_path / "x", "--negative-audio", "silence,music", "-q")
    assert p.returncode == 2 and "--negative-audio silence,music" in p.stderr and not (tmp_path / "x").exists()
    p = cli_here("export", s4_workspace, tmp_path / "y", "--format", "ref-avs", "--negative-audio", "silence", "-q")
    assert p.returncode == 2 and "not for ref-avs" in p.stderr and "Traceback" not in p.stderr


@pytest.mark.parametrize("fmt,setting", [("avsbench-ms3", "ms3"), ("avss", "avss")])
def test_negative_sets_of_ms3_and_avss(fmt, setting, gold_releases, tmp_path):
    """MS3 and AVSS: the same layout with empty ground truth, read by the official-layout loader from its root."""
    import shutil

    from avsbench_tools.baselines.dataset import ClipDataset, open_release
    from avsbench_tools.negative_audio import write_negative_sets
    from avsbench_tools.recipe import load_recipe

    rel = tmp_path / "rel"
    shutil.copytree(gold_releases[fmt], rel)
    recipe = load_recipe(gold_releases[fmt].parent / "recipe.toml")
    res = write_negative_sets(rel, fmt, ["silence", "noise"], 5, recipe)
    pos = {it.name: it for it in read_release(rel, fmt).items if it.split == "test"}
    assert res.clips == len(pos) and len(res.pairs) == 2 * len(pos)
    for kind in ("silence", "noise"):
        root = rel / "negative-audio" / kind
        neg = read_release(root, fmt)
        assert sorted(it.name for it in neg.items) == sorted(pos)
        for it in neg.items:
            assert [f.read_bytes() for f in it.frames] == [f.read_bytes() for f in pos[it.name].frames]
            assert sorted(it.masks) == sorted(pos[it.name].masks)
            assert all(not np.asarray(Image.open(m)).any() for m in it.masks.values())
            if fmt == "avss":
                assert it.row["a_obj"] == "background" and it.category == pos[it.name].category
        sample = ClipDataset(open_release(root, setting, ("test",)), "test")[0]
        assert not np.asarray(sample["masks"]).any()
