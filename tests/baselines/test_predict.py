"""baseline predict / eval: logits equal a direct forward of the model on officially loaded inputs; the
predictions sit at the release's mask paths, so `evaluate` scores them; --json is evaluate's.

Only the test against the official forward and key layout needs the official network (ResNet-18, 256 channels, 224x224
inputs); the others (resume and refusal, the AVSS layout and class maps, eval --json) use TINY models: a quarter-width
ResNet-18 with 32 channels, run at 64x64 with the logits upsampled to the official 224x224 as every CPU sanity run's
are. What they check (files, layouts, counts, the same numbers as evaluate) does not depend on the network's size, and
each of their predict runs took 4-8 s of a full ResNet-18 at 224 (the 256-channel decoder most of it)."""

from __future__ import annotations

import json
import pickle
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from avsbench_tools.release_reader import read_release
from tests.helpers import run_cli
from tests.helpers.worlds import he_vggish, make_world

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@pytest.fixture(scope="module")
def ms3(tmp_path_factory):
    return make_world(tmp_path_factory, clips=5, seconds=5, width=96, height=64, seed=7, gold="avsbench-ms3") / "gold"


@pytest.fixture(scope="module")
def vggish(tmp_path_factory):
    return he_vggish(tmp_path_factory.getbasetemp() / "baseline-worlds" / "vggish_he.pth")


TINY = {"backbone": "resnet18-w16", "channels": 32}  # run at 64x64 (TINY_EXTRA in its checkpoint)
TINY_EXTRA = {"input_size": 64}
TINY_TRAIN = ["--backbone", "resnet18-w16", "--channels", "32", "--input-size", "64"]


def _model(setting, classes, vggish, seed=0, **cfg):
    from avsbench_tools.baselines.model import ModelConfig, build_model

    torch.manual_seed(seed)
    model = build_model(ModelConfig(**{"backbone": "resnet18", "num_classes": classes, "setting": setting, **cfg}), None,
                        vggish)
    for m in model.modules():  # non-trivial BatchNorm statistics, so eval mode matters
        if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
    return model.eval()


def _official_ms3_inputs(root, name, split):
    """The official MS3Dataset's __getitem__, transcribed: frames, log-mel."""
    from torchvision import transforms

    t = transforms.Compose([transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
    d = root / "ms3_data"
    imgs = [t(Image.open(d / "visual_frames" / name / f"{name}.mp4_{k}.png").convert("RGB")) for k in range(1, 6)]
    with open(d / "audio_log_mel" / split / f"{name}.pkl", "rb") as fh:
        logmel = pickle.load(fh).detach()
    return torch.stack(imgs), logmel


def _official_keys(state: dict) -> dict:
    """Our state dict in the official AVSBench layout: module. prefix, layer3_1/layer4_1, with the unused
    duplicate stages and path4.resConfUnit1 the official class also saves."""
    out = {}
    for k, v in state.items():
        k = k.replace("resnet.layer3.", "resnet.layer3_1.").replace("resnet.layer4.", "resnet.layer4_1.")
        out["module." + k] = v
    out["module.resnet.layer3_2.0.conv1.weight"] = torch.randn(256, 128, 3, 3)
    out["module.resnet.layer4_2.0.conv1.weight"] = torch.randn(512, 256, 3, 3)
    out["module.path4.resConfUnit1.conv1.weight"] = torch.randn(256, 256, 3, 3)
    return out


def test_predict_logits_equal_the_official_forward(ms3, vggish, tmp_path):
    from avsbench_tools.baselines.weights import save_checkpoint

    model = _model("ms3", 1, vggish)
    ck = tmp_path / "ours.pt"
    save_checkpoint(model, ck)
    body = {k: v for k, v in model.state_dict().items() if not k.startswith("vggish.")}
    official = tmp_path / "MS3_resnet18_best.pth"
    torch.save(_official_keys(body), official)
    rel = read_release(ms3, "avsbench-ms3")
    test = [it for it in rel.items if it.split == "test"]
    assert test
    outs = {}
    for which, path in (("ours", ck), ("official", official)):
        out = tmp_path / f"pred-{which}"
        r = run_cli("baseline", "predict", ms3, "--checkpoint", path, "--setting", "ms3", "--split", "test",
                    "--out", out, "--vggish-weights", vggish, "--device", "cpu", "-q")
        assert r.returncode == 0, r.stderr
        assert "visual-weights" not in r.stderr  # the checkpoint holds the encoder: no scratch warning
        outs[which] = out
    with np.load(outs["ours"] / "logits.npz") as z, np.load(outs["official"] / "logits.npz") as zo:
        assert sorted(z.files) == sorted(it.name for it in test)
        for it in test:
            frames, logmel = _official_ms3_inputs(rel.root, it.name, "test")
            with torch.no_grad():
                want = model(frames, logmel).logits[:, 0].numpy()
            got = z[it.name]
            assert got.dtype == np.float32 and got.shape == (5, 224, 224)
            assert np.abs(got - want).max() < 1e-4, np.abs(got - want).max()
            np.testing.assert_array_equal(zo[it.name], got)  # the official key layout gives the same model
            for k in range(1, 6):  # masks at the release's own paths: 8-bit sigmoid probabilities
                png = outs["ours"] / "Multi-sources" / "ms3_data" / "gt_masks" / "test" / it.name / f"{it.name}_{k}.png"
                prob = np.asarray(Image.open(png))
                np.testing.assert_array_equal(prob, np.round(1 / (1 + np.exp(-got[k - 1].astype(np.float64))) * 255))
    r = run_cli("evaluate", "--format", "avsbench-ms3", "--gt", ms3, "--pred", outs["ours"], "--split", "test",
                "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["missing"] == 0, r.stderr


def test_predict_resumes_and_refuses_other_checkpoints(ms3, vggish, tmp_path):
    from avsbench_tools.baselines.weights import save_checkpoint

    ck = tmp_path / "a.pt"
    save_checkpoint(_model("ms3", 1, vggish, **TINY), ck, extra=TINY_EXTRA)
    other = tmp_path / "b.pt"
    save_checkpoint(_model("ms3", 1, vggish, seed=1, **TINY), other, extra=TINY_EXTRA)
    out = tmp_path / "pred"
    args = ["--setting", "ms3", "--split", "train", "--out", out, "--vggish-weights", vggish, "--device", "cpu",
            "--binary"]
    r = run_cli("baseline", "predict", ms3, "--checkpoint", ck, *args)
    assert r.returncode == 0, r.stderr
    n = len([it for it in read_release(ms3, "avsbench-ms3").items if it.split == "train"])
    assert f"{n} clips of train ({n} predicted, 0 already there)" in r.stdout
    pngs = sorted(out.rglob("*.png"))
    assert len(pngs) == 5 * n and all(set(np.unique(np.asarray(Image.open(p)))) <= {0, 255} for p in pngs)
    r = run_cli("baseline", "predict", ms3, "--checkpoint", ck, *args)
    assert r.returncode == 0 and f"(0 predicted, {n} already there)" in r.stdout, r.stdout
    r = run_cli("baseline", "predict", ms3, "--checkpoint", other, *args)
    assert r.returncode == 2 and "holds predictions of another checkpoint" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = run_cli("baseline", "predict", ms3, "--checkpoint", other, *args, "--force")
    assert r.returncode == 0 and f"({n} predicted, 0 already there)" in r.stdout


def test_predict_avss_layout_and_class_maps(tmp_path_factory, vggish, tmp_path):
    from avsbench_tools.baselines.weights import save_checkpoint

    avss = make_world(tmp_path_factory, clips=6, seconds=5, width=96, height=64, seed=5, gold="avss") / "gold"
    k = len(json.loads((avss / "label2idx.json").read_text()))
    model = _model("avss", k, vggish, **TINY)
    ck = tmp_path / "avss.pt"
    save_checkpoint(model, ck, extra=TINY_EXTRA)
    out = tmp_path / "pred"
    r = run_cli("baseline", "predict", avss, "--checkpoint", ck, "--setting", "avss", "--split", "test", "--out", out,
                "--vggish-weights", vggish, "--device", "cpu", "-q")
    assert r.returncode == 0, r.stderr
    rel = read_release(avss, "avss")
    test = [it for it in rel.items if it.split == "test"]
    with zipfile.ZipFile(out / "logits.npz") as z:
        names = set(z.namelist())
    assert names == {f"{it.name}.npy" for it in test} | {f"{it.name}__class.npy" for it in test}
    with np.load(out / "logits.npz") as z:
        for it in test:
            top, cls = z[it.name], z[f"{it.name}__class"]
            assert top.shape == (5, 224, 224) and top.dtype == np.float32 and cls.dtype == np.uint8
            for i in range(5):
                sem = np.asarray(Image.open(out / it.category / it.name / "labels_semantic" / f"{i}.png"))
                frame = Image.open(it.frames[i])
                assert sem.shape == (frame.size[1], frame.size[0])  # the frame's own size, as evaluate needs
                want = np.asarray(Image.fromarray(cls[i]).resize(frame.size, Image.NEAREST))
                np.testing.assert_array_equal(sem, want)
    r = run_cli("evaluate", "--format", "avss", "--gt", avss, "--pred", out, "--split", "test", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["classes"] == k, r.stderr


def test_eval_json_is_evaluates_json(ms3, vggish, tmp_path):
    run = tmp_path / "run"
    r = run_cli("baseline", "train", ms3, "--setting", "ms3", "--out", run, *TINY_TRAIN, "--epochs", "1",
                "--vggish-weights", vggish, "--device", "cpu", "-q")
    assert r.returncode == 0, r.stderr
    r = run_cli("baseline", "eval", run, "--split", "test", "--json", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    mine = json.loads(r.stdout)
    r = run_cli("evaluate", "--format", "avsbench-ms3", "--gt", ms3, "--pred", run / "predictions" / "test",
                "--split", "test", "--json")
    theirs = json.loads(r.stdout)
    assert mine == theirs
    saved = json.loads((run / "eval_test.json").read_text())
    assert saved["evaluate"] == mine and abs(saved["official_float"]["miou"] - mine["miou"]) < 1e-3
    r = run_cli("baseline", "eval", run, "--split", "test", "--device", "cpu")
    assert r.returncode == 0 and "mIoU" in r.stdout and r.stdout.strip().splitlines()[-1].startswith("next: ")


def test_predict_bad_input_is_one_line(ms3, vggish, tmp_path):
    cases = [
        (["--checkpoint", tmp_path / "none.pt"], "--checkpoint", "no such file"),
        (["--checkpoint", vggish], str(vggish), "not a TPAVI checkpoint"),
        (["--checkpoint", vggish, "--vggish-weights", tmp_path / "no.pth"], "--vggish-weights", "no such file"),
    ]
    for extra, *needles in cases:
        r = run_cli("baseline", "predict", ms3, "--setting", "ms3", "--out", tmp_path / "p", "--device", "cpu", *extra)
        lines = r.stderr.strip().splitlines()
        assert r.returncode in (1, 2) and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
        for n in needles:
            assert n in lines[0], (n, lines[0])
    r = run_cli("baseline", "eval", tmp_path, "--split", "test")
    assert r.returncode == 2 and "not a baseline run" in r.stderr
