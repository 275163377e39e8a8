"""The factorised TPAVI equals the official dense formula (values and gradients, float64)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from avsbench_tools.baselines.tpavi import TPAVI, dense_tpavi, factorised_tpavi  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _block(align_bias=True, channels=16, frames=5, seed=0):
    torch.manual_seed(seed)
    block = TPAVI(channels, frames, align_bias).double()
    with torch.no_grad():  # W_z's BN starts at zero (the block is then the identity + LN): randomise it
        block.W_z[1].weight.normal_()
        block.W_z[1].bias.normal_()
        block.W_z[1].running_mean.normal_()
        block.W_z[1].running_var.uniform_(0.5, 2.0)
        block.norm_layer.weight.normal_()
        block.norm_layer.bias.normal_()
    return block


def _dense(block, x, audio):
    """The official layout around dense_tpavi: [B*T, C, H, W] -> [B, C, T, H, W] groups of T frames."""
    bt, c, h, w = x.shape
    t = block.frames
    z, a = dense_tpavi(block, x.reshape(-1, t, c, h, w).permute(0, 2, 1, 3, 4), audio.reshape(-1, t, 128))
    return z.permute(0, 2, 1, 3, 4).reshape(bt, c, h, w), a.reshape(bt, -1)


@pytest.mark.parametrize("align_bias", [True, False])
@pytest.mark.parametrize("training", [True, False])
def test_factorised_equals_dense_values_and_gradients(align_bias, training):
    block = _block(align_bias)
    block.train(training)
    x = torch.randn(10, 16, 6, 7, dtype=torch.float64, requires_grad=True)  # two groups of 5 frames
    audio = torch.randn(10, 128, dtype=torch.float64, requires_grad=True)
    outs, grads = [], []
    for fn in (factorised_tpavi, _dense):
        block.zero_grad()
        x.grad = audio.grad = None
        if training:  # BN running stats move on each train forward: start both from the same state
            state = {k: v.clone() for k, v in block.state_dict().items()}
        z, a = fn(block, x, audio)
        w = torch.randn_like(z, generator=torch.Generator().manual_seed(1))
        wa = torch.randn_like(a, generator=torch.Generator().manual_seed(2))
        ((z * w).sum() + (a * wa).sum()).backward()
        outs.append((z.detach(), a.detach()))
        grads.append([x.grad.clone(), audio.grad.clone()] + [p.grad.clone() for p in block.parameters()])
        if training:
            block.load_state_dict(state)
    (z1, a1), (z2, a2) = outs
    assert z1.shape == z2.shape == (10, 16, 6, 7) and a1.shape == (10, 16)
    assert (z1 - z2).abs().max().item() < 1e-10
    assert (a1 - a2).abs().max().item() < 1e-10
    assert (z1 - x.detach()).abs().max().item() > 1e-3  # the interaction really changes the features
    for g1, g2 in zip(grads[0], grads[1], strict=True):
        assert g1.abs().max().item() > 0
        assert (g1 - g2).abs().max().item() < 1e-10 * max(1.0, g2.abs().max().item())


def test_dense_flag_runs_the_dense_form_in_the_module():
    block = _block().eval()
    x = torch.randn(5, 16, 4, 4, dtype=torch.float64)
    audio = torch.randn(5, 128, dtype=torch.float64)
    z1, _ = block(x, audio)
    block.dense = True
    z2, _ = block(x, audio)
    assert (z1 - z2).abs().max().item() < 1e-12


def test_groups_are_independent_and_audio_matters():
    """Frames 5..9 are a second group (AVSS's 10 frames): changing them leaves frames 0..4 alone
    (eval mode), while changing the audio of a frame changes every frame of its group."""
    block = _block().eval()
    x = torch.randn(10, 16, 4, 5, dtype=torch.float64)
    audio = torch.randn(10, 128, dtype=torch.float64)
    z, _ = block(x, audio)
    x2, audio2 = x.clone(), audio.clone()
    x2[5:] += 1.0
    audio2[7] += 1.0
    z2, _ = block(x2, audio2)
    assert torch.equal(z[:5], z2[:5])
    assert (z[5:] - z2[5:]).abs().amax(dim=(1, 2, 3)).min().item() > 1e-6
    audio3 = audio.clone()
    audio3[1] += 1.0
    z3, _ = block(x, audio3)
    assert (z[:5] - z3[:5]).abs().amax(dim=(1, 2, 3)).min().item() > 1e-6  # all of group 1 moves
    assert torch.equal(z[5:], z3[5:])


def test_group_size_must_divide_the_batch():
    with pytest.raises(ValueError, match="multiple of the group size 5"):
        _block()(torch.randn(7, 16, 2, 2, dtype=torch.float64), torch.randn(7, 128, dtype=torch.float64))


def test_parameter_count_of_one_block():
    assert sum(p.numel() for p in TPAVI(256).parameters()) == 165_760
    assert sum(p.numel() for p in TPAVI(256, align_bias=False).parameters()) == 165_760 - 256
    # the official names, so official checkpoints load without renaming
    assert set(TPAVI(8).state_dict()) == {
        "align_channel.weight", "align_channel.bias", "norm_layer.weight", "norm_layer.bias",
        "g.weight", "g.bias", "theta.weight", "theta.bias", "phi.weight", "phi.bias",
        "W_z.0.weight", "W_z.0.bias", "W_z.1.weight", "W_z.1.bias", "W_z.1.running_mean",
        "W_z.1.running_var", "W_z.1.num_batches_tracked"}


def test_half_precision_autocast_stays_finite_on_large_maps():
    """Under fp16 autocast the per-frame sums over 56x56 positions of features ~30 (94,080) would
    overflow fp16 (max 65,504); the block forms M from means in float32 and stays close to fp32."""
    torch.manual_seed(4)
    block = TPAVI(16, 5).eval()
    with torch.no_grad():
        block.W_z[1].weight.fill_(1.0)
    x = 30.0 + torch.randn(5, 16, 56, 56)
    audio = torch.randn(5, 128)
    with torch.no_grad():
        ref, _ = block(x, audio)
        with torch.autocast("cpu", dtype=torch.float16):
            half, _ = block(x.half(), audio)  # as the ASPP output is under autocast
    assert torch.isfinite(half).all()
    err = (half.float() - ref).abs()
    assert err.median().item() < 0.02 and err.max().item() < 0.5  # fp16 rounding of features ~30, no more
