"""Weights for the TPAVI baseline: torchvision / official PVT / timm layouts, VGGish, our checkpoints,
the official AVSBench checkpoint layout, and one-line errors on wrong files."""

from __future__ import annotations

import os
import stat

import pytest

torch = pytest.importorskip("torch")

from avsbench_tools.audio.vggish import build_vggish  # noqa: E402
from avsbench_tools.baselines.model import ModelConfig, TPAVIModel, build_model  # noqa: E402
from avsbench_tools.baselines.pvt import PVTv2, from_timm_keys  # noqa: E402
from avsbench_tools.baselines.weights import (  # noqa: E402
    Checkpoint,
    checkpoint_config,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
    visual_state,
)
from avsbench_tools.errors import AvsError, UsageError  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_one_thread")


TINY_PVT = dict(embed_dims=(16, 32, 40, 64), depths=(1, 2, 2, 1), num_heads=(1, 2, 5, 8), sr_ratios=(8, 4, 2, 1))


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _body(model) -> dict:
    return {k: v for k, v in model.state_dict().items() if not k.startswith("vggish.")}


@pytest.fixture(scope="module")
def r18():
    torch.manual_seed(0)
    return build_model(ModelConfig(backbone="resnet18", setting="ms3", tpavi_stages=(0, 1, 2, 3)))


# -- visual weights -------------------------------------------------------------------------------------

def test_torchvision_resnet_layout_loads(tmp_path):
    from torchvision.models import resnet18

    torch.manual_seed(5)
    tv = resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(tv.state_dict(), path)  # with fc.*, as torchvision ships it
    model = build_model(ModelConfig(backbone="resnet18"), visual_weights=path)
    assert not any("ImageNet" in w for w in model.warnings)
    expected = {k: v for k, v in tv.state_dict().items() if not k.startswith("fc.")}
    assert _same(model.resnet.state_dict(), expected)
    # a file without BatchNorm's num_batches_tracked counters (older torch) loads too: counters at 0
    torch.save({k: v for k, v in tv.state_dict().items() if "num_batches" not in k}, tmp_path / "old.pth")
    old = build_model(ModelConfig(backbone="resnet18"), visual_weights=tmp_path / "old.pth")
    assert old.resnet.bn1.num_batches_tracked.item() == 0
    assert torch.equal(old.resnet.layer4[1].bn2.running_var, tv.layer4[1].bn2.running_var)


def test_resnet50_keys_are_torchvision_keys():
    from torchvision.models import resnet50

    with torch.device("meta"):
        ours = TPAVIModel(ModelConfig(backbone="resnet50")).resnet.state_dict()
        tv = {k: v for k, v in resnet50(weights=None).state_dict().items() if not k.startswith("fc.")}
    assert {k: tuple(v.shape) for k, v in ours.items()} == {k: tuple(v.shape) for k, v in tv.items()}


def test_pvt_matches_timm_and_both_key_layouts_load(tmp_path):
    """timm's PVT-v2 (whose checkpoint filter maps the official pvt_v2 files) computes the same maps as
    ours once its weights are renamed; the official layout (ours + head.*) and timm's both load."""
    from timm.models.pvt_v2 import PyramidVisionTransformerV2

    torch.manual_seed(1)
    timm_net = PyramidVisionTransformerV2(mlp_ratios=(4, 4, 4, 4), drop_path_rate=0.1, **TINY_PVT).eval()
    timm_state = timm_net.state_dict()
    assert any(k.startswith("stages.") for k in timm_state) and "head.weight" in timm_state
    ours = PVTv2(mlp_ratio=4, **TINY_PVT).eval()
    torch.save(timm_state, tmp_path / "timm.pth")
    ours.load_state_dict(visual_state(tmp_path / "timm.pth", "pvt_v2_b5"), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        want = timm_net.forward_intermediates(x, intermediates_only=True)
        got = ours(x)
    assert len(got) == 4
    for a, b in zip(got, want, strict=True):
        assert a.shape == b.shape and torch.allclose(a, b, atol=1e-4, rtol=1e-4)
    official = dict(ours.state_dict(), **{"head.weight": torch.zeros(1000, 64), "head.bias": torch.zeros(1000)})
    torch.save({"model": official}, tmp_path / "official.pth")
    fresh = PVTv2(mlp_ratio=4, **TINY_PVT)
    fresh.load_state_dict(visual_state(tmp_path / "official.pth", "pvt_v2_b5"), strict=True)
    assert _same(fresh.state_dict(), ours.state_dict())


def test_pvt_v2_b5_key_layout_is_timms_mapped():
    import timm

    with torch.device("meta"):
        timm_keys = {k: tuple(v.shape) for k, v in timm.create_model("pvt_v2_b5").state_dict().items()}
        ours = {k: tuple(v.shape) for k, v in TPAVIModel(ModelConfig(backbone="pvt_v2_b5")).encoder_backbone
                .state_dict().items()}
    mapped = {k: v for k, v in from_timm_keys(timm_keys).items() if not k.startswith("head.")}
    assert mapped == ours
    assert "block3.39.mlp.dwconv.dwconv.weight" in ours and "patch_embed4.proj.weight" in ours


def test_wrong_visual_weights_are_one_line_errors(tmp_path):
    with pytest.raises(UsageError, match=r"--visual-weights .*nope\.pth: no such file"):
        build_model(ModelConfig(backbone="resnet18"), visual_weights=tmp_path / "nope.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(AvsError, match=r"junk\.pth: not a readable torch weights file"):
        build_model(ModelConfig(backbone="resnet18"), visual_weights=tmp_path / "junk.pth")
    torch.save(build_vggish().state_dict(), tmp_path / "vggish.pth")
    with pytest.raises(AvsError, match=r"vggish\.pth: not resnet18 ImageNet weights \(.*keys missing"):
        build_model(ModelConfig(backbone="resnet18"), visual_weights=tmp_path / "vggish.pth")
    from torchvision.models import resnet34

    torch.save(resnet34(weights=None).state_dict(), tmp_path / "r34.pth")
    with pytest.raises(AvsError, match=r"r34\.pth: not resnet18 ImageNet weights \(.*unexpected keys"):
        build_model(ModelConfig(backbone="resnet18"), visual_weights=tmp_path / "r34.pth")
    with pytest.raises(AvsError) as info:
        build_model(ModelConfig(backbone="resnet18"), visual_weights=tmp_path / "r34.pth")
    assert "\n" not in str(info.value)


# -- VGGish --------------------------------------------------------------------------------------------

def test_vggish_weights_load_frozen(tmp_path):
    torch.manual_seed(7)
    state = build_vggish().state_dict()
    torch.save(state, tmp_path / "vggish-10086976.pth")
    model = build_model(ModelConfig(backbone="resnet18"), vggish_weights=tmp_path / "vggish-10086976.pth")
    assert _same(model.vggish.state_dict(), state)
    assert not any("VGGish" in w for w in model.warnings)
    assert not any(p.requires_grad for p in model.vggish.parameters())
    with pytest.raises(UsageError, match="--vggish-weights .*missing.pth: no such file"):
        build_model(ModelConfig(backbone="resnet18"), vggish_weights=tmp_path / "missing.pth")


# -- our checkpoints -----------------------------------------------------------------------------------

def test_checkpoint_round_trip(tmp_path, r18):
    path = tmp_path / "run" / "epoch1.pt"
    with torch.no_grad():
        r18.conv1.conv2d_list[0].bias.add_(1.0)
    save_checkpoint(r18, path, extra={"epoch": 1, "best_miou": 0.5})
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~_umask()
    assert [p.name for p in path.parent.iterdir()] == ["epoch1.pt"]  # no temp file left
    raw = torch.load(path, weights_only=True)
    assert not any(k.startswith("vggish.") for k in raw["state_dict"])
    fresh = build_model(ModelConfig(backbone="resnet18", setting="ms3"))
    ck = load_checkpoint(fresh, path)
    assert ck.kind == "ours" and ck.extra == {"epoch": 1, "best_miou": 0.5}
    assert _same(_body(fresh), _body(r18))
    assert checkpoint_config(path) == r18.cfg
    with pytest.raises(AvsError, match=r"epoch1\.pt: checkpoint does not fit the model \(num_classes 1 vs 3"):
        load_checkpoint(build_model(ModelConfig(backbone="resnet18", num_classes=3)), path)
    with pytest.raises(UsageError, match="a ms3 checkpoint, --setting is avss"):
        checkpoint_config(path, setting="avss")


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


# -- official checkpoints ------------------------------------------------------------------------------

def _official_layout(model, module_prefix=True):
    """This model's weights under the official Pred_endecoder names: resnet.layer3_1/layer4_1, the
    unused layer3_2/layer4_2 copies and path4.resConfUnit1, and DataParallel's `module.` prefix."""
    out = {}
    for k, v in _body(model).items():
        k = k.replace("resnet.layer3.", "resnet.layer3_1.").replace("resnet.layer4.", "resnet.layer4_1.")
        out[k] = v.clone()
        if k.startswith(("resnet.layer3_1.", "resnet.layer4_1.")):
            out[k.replace("_1.", "_2.", 1)] = torch.randn_like(v.float()).to(v.dtype)
    for k, v in _body(model).items():
        if k.startswith("path4.resConfUnit2."):
            out[k.replace("resConfUnit2", "resConfUnit1")] = torch.randn_like(v)
    return {("module." + k if module_prefix else k): v for k, v in out.items()}


def test_official_checkpoint_loads(tmp_path, r18):
    torch.manual_seed(9)
    with torch.no_grad():
        for p in r18.trainable_parameters():
            p.add_(torch.randn_like(p) * 0.01)
    official = _official_layout(r18)
    assert "module.resnet.layer3_2.0.conv1.weight" in official and "module.path4.resConfUnit1.conv1.weight" in official
    path = tmp_path / "MS3_resnet_best.pth"
    torch.save(official, path)
    cfg = checkpoint_config(path, setting="ms3")
    assert cfg == ModelConfig(backbone="resnet18", num_classes=1, tpavi_stages=(0, 1, 2, 3), setting="ms3")
    fresh = build_model(cfg)
    ck = load_checkpoint(fresh, path)
    assert ck.kind == "official" and ck.dropped == sum(1 for k in official if "_2." in k or "resConfUnit1" in
                                                       k and "path4" in k)
    assert _same(_body(fresh), _body(r18))
    x, a = torch.randn(5, 3, 32, 32), torch.randn(5, 128)
    with torch.no_grad():
        assert torch.equal(fresh.eval()(x, audio=a).logits, r18.eval()(x, audio=a).logits)
    torch.save(_official_layout(r18, module_prefix=False), tmp_path / "bare.pth")  # test.py saves without it
    load_checkpoint(build_model(cfg), tmp_path / "bare.pth")


def test_official_config_is_read_off_the_weights():
    with torch.device("meta"):
        r50 = TPAVIModel(ModelConfig(backbone="resnet50", setting="avss", num_classes=71))
        pvt = TPAVIModel(ModelConfig(backbone="pvt_v2_b5", tpavi_stages=(2, 3)))
    ck = Checkpoint(path="x.pth", kind="official", config=None,
                    state={k: v for k, v in _body(r50).items()})
    assert checkpoint_config(ck) == ModelConfig(backbone="resnet50", num_classes=71, setting="avss")
    with pytest.raises(UsageError, match="an AVSS checkpoint .*--setting is s4"):
        checkpoint_config(ck, setting="s4")
    ck2 = Checkpoint(path="y.pth", kind="official", config=None, state=_body(pvt))
    assert checkpoint_config(ck2, setting="ms3") == ModelConfig(backbone="pvt_v2_b5", tpavi_stages=(2, 3),
                                                                 setting="ms3")
    with pytest.raises(UsageError, match="an S4/MS3 checkpoint"):
        checkpoint_config(ck2, setting="avss")


def test_wrong_checkpoints_are_one_line_errors(tmp_path, r18):
    with pytest.raises(UsageError, match=r"--checkpoint .*none\.pth: no such file"):
        load_checkpoint(r18, tmp_path / "none.pth")
    torch.save(build_vggish().state_dict(), tmp_path / "vggish.pth")
    with pytest.raises(AvsError, match=r"vggish\.pth: not a TPAVI checkpoint"):
        load_checkpoint(r18, tmp_path / "vggish.pth")
    broken = _official_layout(r18)
    del broken["module.tpavi_b2.theta.weight"]
    torch.save(broken, tmp_path / "broken.pth")
    with pytest.raises(AvsError, match=r"broken\.pth: not a resnet18 ms3 TPAVI checkpoint .*tpavi_b2\.theta\.weight"):
        load_checkpoint(r18, tmp_path / "broken.pth")
    avss = build_model(ModelConfig(backbone="resnet18", setting="avss", num_classes=3))
    torch.save(_official_layout(avss), tmp_path / "avss.pth")
    with pytest.raises(AvsError, match=r"avss\.pth: .*keys missing, e\.g\. tpavi_b1\.align_channel\.bias"):
        load_checkpoint(r18, tmp_path / "avss.pth")
    three = build_model(ModelConfig(backbone="resnet18", setting="ms3", num_classes=3))
    torch.save(_official_layout(three), tmp_path / "three.pth")
    with pytest.raises(AvsError, match=r"three\.pth: .*output_conv\.4\.weight has shape \(3, 32, 1, 1\)"):
        load_checkpoint(r18, tmp_path / "three.pth")
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(AvsError, match=r"list\.pth: expected a state dict"):
        read_checkpoint(tmp_path / "list.pth")
