"""The TPAVI baseline model: parameter counts, shapes and gradients through the full-size models, and
the forward pass against a literal transcription of the official forward (float64)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from avsbench_tools.baselines.decoder import ResidualConvUnit  # noqa: E402
from avsbench_tools.baselines.describe import count_parameters, describe  # noqa: E402
from avsbench_tools.baselines.model import ModelConfig, ModelOutput, build_model  # noqa: E402
from avsbench_tools.baselines.tpavi import dense_tpavi  # noqa: E402
from avsbench_tools.errors import UsageError  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _randomise_tpavi(model):
    """W_z's BatchNorm starts at zero, which makes TPAVI ignore the audio: give it weights."""
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for s in model.cfg.tpavi_stages:
            bn = getattr(model, f"tpavi_b{s + 1}").W_z[1]
            bn.weight.copy_(torch.randn(bn.weight.shape, generator=g))
            bn.bias.copy_(torch.randn(bn.bias.shape, generator=g))


# -- counts -----------------------------------------------------------------------------------------

def test_parameter_counts_match_the_official_model():
    r50 = count_parameters(ModelConfig(backbone="resnet50", setting="ms3"))
    assert r50 == {"registered": 68_157_697, "used": 68_157_697, "official_registered": 91_400_961,
                   "vggish": 72_141_184}
    pvt = count_parameters(ModelConfig(backbone="pvt_v2_b5", setting="s4"))
    assert (pvt["used"], pvt["official_registered"]) == (100_140_417, 101_320_577)
    avss = count_parameters(ModelConfig(backbone="resnet50", setting="avss", num_classes=71))
    assert avss["official_registered"] == 91_402_247
    assert count_parameters(ModelConfig(backbone="resnet18"))["official_registered"] is None


def test_describe_rows_add_up():
    rows = describe("resnet50", "s4")
    *parts, total, vggish = rows
    assert sum(r[1] for r in parts) == total[1] == 68_157_697
    assert sum(r[2] for r in parts) == total[2] == 91_400_961
    assert vggish[1] == 72_141_184
    assert [r[0] for r in parts].count("TPAVI stage 1") == 1 and len(parts) == 8
    avss = describe("pvt_v2_b5", "avss")
    assert avss[-2][1] == 100_140_417 - 33 + (32 * 71 + 71) - 4 * 256  # 71-class head, no align bias
    assert describe("resnet18", "s4", tpavi_stages=(3,))[-2][2] is None


def test_config_checks_and_round_trip():
    with pytest.raises(UsageError, match="--backbone vgg: expected one of resnet50, pvt_v2_b5, resnet18"):
        ModelConfig(backbone="vgg")
    with pytest.raises(UsageError, match="--setting"):
        ModelConfig(setting="refavs")
    with pytest.raises(UsageError, match="TPAVI stages"):
        ModelConfig(tpavi_stages=(4,))
    cfg = ModelConfig(backbone="resnet18", num_classes=5, tpavi_stages=(3, 1), setting="avss")
    assert cfg.tpavi_stages == (1, 3) and not cfg.align_bias
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg


# -- full-size models: construction, shapes, every parameter used -------------------------------------

@pytest.mark.parametrize("backbone,expected", [("resnet50", 68_157_697), ("pvt_v2_b5", 100_140_417)])
def test_full_size_model_shapes_and_gradients(backbone, expected):
    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone=backbone, setting="ms3"))
    assert any("no " in w and "trains from scratch" in w for w in model.warnings)
    assert any("no VGGish weights" in w and "fixed He-normal" in w for w in model.warnings)
    assert sum(p.numel() for p in model.trainable_parameters()) == expected
    model.train()
    assert not model.vggish.training and model.visual.training
    # 32x32 instead of 224: the same code at a fiftieth of the CPU time (maps at 1/4 .. 1/32)
    frames = torch.randn(5, 3, 32, 32)
    logmel = torch.randn(5, 1, 96, 64)
    out = model(frames, logmel)
    assert isinstance(out, ModelOutput)
    assert out.logits.shape == (5, 1, 32, 32)
    assert [tuple(m.shape) for m in out.stage_maps] == [(5, 256, 8, 8), (5, 256, 4, 4), (5, 256, 2, 2),
                                                         (5, 256, 1, 1)]
    assert [tuple(a.shape) for a in out.audio_feats] == [(5, 256)] * 4
    out.logits.float().mean().backward()
    got = [(n, p) for n, p in model.named_parameters() if p.grad is not None]
    assert sum(p.numel() for _, p in got) == expected  # "used in forward": every trained parameter
    assert all(p.grad is None and not p.requires_grad for p in model.vggish.parameters())
    assert all(torch.isfinite(p.grad).all() for _, p in got)


# -- the forward pass against the official one ---------------------------------------------------------

def _official_forward(model, frames, audio, flags=None):
    """The official Pred_endecoder.forward transcribed step by step (dense TPAVI over [B, C, T, H, W],
    zeros + TPAVI output, decoder units with IN-PLACE ReLU on their input, flags where it puts them)."""
    fl = None if flags is None else flags.view(-1, 1, 1, 1)
    feats = model.visual(frames)
    maps = [getattr(model, f"conv{i + 1}")(f) for i, f in enumerate(feats)]
    if fl is not None:
        maps = [m * fl for m in maps]
        audio = audio * flags.unsqueeze(-1)
    a_list = [None] * 4
    for i in model.cfg.tpavi_stages:
        _, c, h, w = maps[i].shape
        x5 = maps[i].reshape(-1, 5, c, h, w).permute(0, 2, 1, 3, 4).contiguous()
        z, a = dense_tpavi(getattr(model, f"tpavi_b{i + 1}"), x5, audio.view(-1, 5, audio.shape[-1]))
        z = z.permute(0, 2, 1, 3, 4).reshape(-1, c, h, w)
        if fl is not None:
            z = z * fl
        conv_feat = torch.zeros_like(maps[i])
        conv_feat += z
        maps[i], a_list[i] = conv_feat, a

    def unit(u, x):
        out = F.relu(x, inplace=True)
        out = u.conv2(F.relu(u.conv1(out), inplace=True))
        return out + x

    def fuse(block, *xs):
        output = xs[0]
        if len(xs) == 2:
            output += unit(block.resConfUnit1, xs[1])
        output = unit(block.resConfUnit2, output)
        return F.interpolate(output, scale_factor=2, mode="bilinear", align_corners=True)

    x = fuse(model.path4, maps[3])
    for i in (3, 2, 1):
        x = x * fl if fl is not None else x
        x = fuse(getattr(model, f"path{i}"), x, maps[i - 1])
    x = x * fl if fl is not None else x
    pred = model.output_conv(x)
    return (pred * fl if fl is not None else pred), maps, a_list


def _close(a, b, tol=1e-10):
    return (a - b).abs().max().item() <= tol * max(1.0, b.abs().max().item())


@pytest.mark.parametrize("setting,classes,t,stages,training", [
    ("ms3", 1, 5, (0, 1, 2, 3), False), ("s4", 1, 10, (1, 3), True), ("avss", 4, 10, (0, 1, 2, 3), False)])
def test_forward_equals_the_official_forward(setting, classes, t, stages, training):
    torch.manual_seed(1)
    model = build_model(ModelConfig(backbone="resnet18", num_classes=classes, setting=setting,
                                    tpavi_stages=stages))
    for name, child in model.named_children():
        if name != "vggish":  # the oracle uses precomputed audio: leave the big frozen VGGish in float32
            child.double()
    _randomise_tpavi(model)
    model.train(training)
    frames = torch.randn(t, 3, 32, 32, dtype=torch.float64)
    audio = torch.randn(t, 128, dtype=torch.float64).relu()
    flags = torch.tensor([1.0] * 7 + [0.0] * 3, dtype=torch.float64) if setting == "avss" else None
    with torch.no_grad():
        out = model(frames, frame_flags=flags, audio=audio)
        ref, ref_maps, ref_a = _official_forward(model, frames, audio, flags)
    assert out.logits.shape == (t, classes, 32, 32)
    assert _close(out.logits, ref)
    for s in range(4):
        assert _close(out.stage_maps[s], ref_maps[s])
        if s in stages:
            assert _close(out.audio_feats[s], ref_a[s].reshape(t, -1))
        else:
            assert out.audio_feats[s] is None
    if flags is not None:
        assert out.logits[7:].abs().max().item() == 0.0
        assert out.audio_feats[0][7:].abs().max().item() == 0.0  # AVSS align has no bias
        assert out.logits[:7].abs().max().item() > 0


def test_residual_unit_adds_the_rectified_input():
    """The official unit's in-place ReLU makes the skip add relu(x): check against that arithmetic."""
    torch.manual_seed(0)
    u = ResidualConvUnit(4)
    x = torch.randn(1, 4, 5, 5)
    expected = F.relu(x) + u.conv2(F.relu(u.conv1(F.relu(x))))
    assert torch.allclose(u(x), expected, atol=1e-6)
    assert not torch.allclose(u(x), x + u.conv2(F.relu(u.conv1(F.relu(x)))), atol=1e-3)


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(2)
    model = build_model(ModelConfig(backbone="resnet18", setting="ms3")).eval()
    _randomise_tpavi(model)
    return model


def test_no_audio_zeroes_the_vggish_features(small):
    frames, logmel = torch.randn(5, 3, 32, 32), torch.randn(5, 1, 96, 64)
    with torch.no_grad():
        emb = small.audio_embeddings(logmel)
        with_audio = small(frames, logmel).logits
        via_emb = small(frames, audio=emb).logits
        silent = small(frames, logmel, no_audio=True).logits
        zeros = small(frames, audio=torch.zeros_like(emb)).logits
    assert emb.shape == (5, 128)
    assert torch.equal(with_audio, via_emb)
    assert torch.equal(silent, zeros)
    assert (with_audio - silent).abs().max().item() > 1e-4


def test_batch_must_be_whole_groups(small):
    with pytest.raises(ValueError, match="multiple of the TPAVI group size 5"):
        small(torch.randn(3, 3, 32, 32), audio=torch.randn(3, 128))


def test_channels_last_gives_the_same_logits(small):
    frames, audio = torch.randn(5, 3, 32, 32), torch.randn(5, 128)
    with torch.no_grad():
        a = small(frames, audio=audio).logits
        small.channels_last()
        b = small(frames.contiguous(memory_format=torch.channels_last), audio=audio).logits
    assert small.conv1.conv2d_list[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(a, b, atol=1e-4, rtol=1e-4)
