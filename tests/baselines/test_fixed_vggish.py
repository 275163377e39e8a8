"""The VGGish used without --vggish-weights (baselines/weights.py fixed_vggish) tells the tones world's tones apart,
the quarter-width ResNet-18 of CPU sanity runs, and a checkpoint scored on other audio features than it was
trained on says so."""

from __future__ import annotations

import numpy as np
import pytest
import torch


def _tone_examples(freq: float) -> np.ndarray:
    """1 s of the tones world's steady note (two overtones, as synth.render makes a "tone") as VGGish log-mel."""
    from avsbench_tools.audio.logmel import int16_to_examples
    from avsbench_tools.audio.wav import float_to_int16

    t = np.arange(16000) / 16000
    x = sum(np.sin(2 * np.pi * k * freq * t) / 2 ** (k - 1) for k in range(1, 4))
    x = 0.1 * x / np.sqrt(np.mean(x**2)) + 0.0005 * np.random.default_rng(0).standard_normal(t.size)
    return int16_to_examples(float_to_int16(x), 16000)


def test_fixed_vggish_keeps_the_tones_apart():
    """Root cause of the audio check that never listened: plain He-normal filters gave the three tones embeddings
    95-97% alike (cosine), the tone a few percent on top of what the log-mel's floor gives every unit. Zero-mean
    filters answer to the spectrum's structure: well under 80% alike, and of order 1 (as the released VGGish)."""
    from avsbench_tools.audio.vggish import build_vggish
    from avsbench_tools.baselines.weights import fixed_vggish
    from avsbench_tools.synth.render import TONE_CATEGORIES

    vggish = build_vggish().eval()
    fixed_vggish(vggish)
    with torch.no_grad():
        emb = [vggish(torch.from_numpy(_tone_examples(c.freq)).float())[0] for c in TONE_CATEGORIES]
    cos = [float(torch.cosine_similarity(emb[i], emb[j], 0)) for i in range(3) for j in range(i + 1, 3)]
    norms = [float(e.norm()) for e in emb]
    print(f"cosine between the tones' embeddings {[round(c, 3) for c in cos]}, norms {[round(n, 2) for n in norms]}")
    assert max(cos) < 0.8, cos
    assert all(0.3 < n < 10 for n in norms), norms


@pytest.mark.parametrize("backbone,params", [("resnet18-w16", 702_096)])
def test_quarter_width_resnet18_stages(backbone, params):
    from avsbench_tools.baselines.model import ModelConfig, build_model

    model = build_model(ModelConfig(backbone=backbone, setting="ms3", channels=32))
    assert sum(p.numel() for p in model.visual.parameters()) == params
    maps = model.visual(torch.zeros(5, 3, 32, 32))
    assert [tuple(m.shape[1:]) for m in maps] == [(16, 8, 8), (32, 4, 4), (64, 2, 2), (128, 1, 1)]
    out = model(torch.zeros(5, 3, 32, 32), audio=torch.zeros(5, 128))
    assert out.logits.shape == (5, 1, 32, 32)


def test_a_checkpoint_scored_on_other_audio_features_says_so(tmp_path):
    """A checkpoint records the VGGish it was trained with; one from before this fixed initialisation (nothing
    recorded) or from other weights is loaded with a warning naming both, not silently scored on other features."""
    from avsbench_tools.baselines.model import ModelConfig, build_model
    from avsbench_tools.baselines.predict import load_for_predict
    from avsbench_tools.baselines.weights import FIXED_VGGISH_ID, save_checkpoint

    model = build_model(ModelConfig(backbone="resnet18-w16", setting="ms3", channels=16))
    save_checkpoint(model, tmp_path / "now.pt", extra={"input_size": 32})
    _, ck, size, warnings = load_for_predict(tmp_path / "now.pt", "ms3", 1, None, "cpu")
    assert ck.vggish == FIXED_VGGISH_ID and size == 32
    assert not [w for w in warnings if "trained with the audio features" in w]
    payload = torch.load(tmp_path / "now.pt", map_location="cpu", weights_only=False)
    payload["vggish_sha"] = None  # what a checkpoint of the earlier fixed initialisation holds
    torch.save(payload, tmp_path / "before.pt")
    _, _, _, warnings = load_for_predict(tmp_path / "before.pt", "ms3", 1, None, "cpu")
    said = [w for w in warnings if "trained with the audio features" in w]
    assert len(said) == 1 and "unrecorded" in said[0] and FIXED_VGGISH_ID in said[0], warnings
