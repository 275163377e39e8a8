"""Parity with the PyPI package torchvggish (the reference the official code calls)."""

import numpy as np
from torchvggish import vggish_input  # the reference; a test dependency (pyproject [test])

from avsbench_tools.audio.logmel import int16_to_examples, pad_examples, waveform_to_examples
from avsbench_tools.audio.wav import float_to_int16, read_wav, write_wav
from avsbench_tools.synth import SynthParams, render_clip


def _ref(x, sr):
    return vggish_input.waveform_to_examples(x, sr, return_tensor=False)


def _check(x, sr):
    ours, ref = waveform_to_examples(x, sr), _ref(x, sr)
    assert ours.shape == (ref.shape[0], 1, 96, 64) and ours.dtype == np.float32
    assert np.abs(ours[:, 0] - ref).max() < 1e-4


def test_white_noise_16k():
    _check(np.random.default_rng(0).uniform(-1, 1, 16000 * 5), 16000)


def test_sine_sweep():
    t = np.arange(16000 * 3) / 16000
    _check(0.5 * np.sin(2 * np.pi * (100 * t + 1200 * t**2)), 16000)


def test_synthetic_world_audio_resampled_from_44k():
    c = render_clip(SynthParams(clips=1, seconds=5, seed=2), 0)
    _check(c.audio.astype(np.float64), 44100)


def test_stereo_44k_wav_file_matches_wavfile_to_examples(tmp_path):
    rng = np.random.default_rng(1)
    t = np.arange(44100 * 2) / 44100
    x = np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.2 * rng.standard_normal(t.size)], axis=1)
    path = tmp_path / "s.wav"
    write_wav(path, float_to_int16(x), 44100)
    ref = vggish_input.wavfile_to_examples(str(path), return_tensor=False)
    pcm, sr = read_wav(path)
    assert sr == 44100 and pcm.shape[1] == 2
    assert np.abs(int16_to_examples(pcm, sr)[:, 0] - ref).max() < 1e-4


def test_padding_repeats_the_last_example():
    ex = waveform_to_examples(np.random.default_rng(0).uniform(-1, 1, 16000 * 3), 16000)
    padded = pad_examples(ex, 5)
    assert padded.shape == (5, 1, 96, 64)
    assert np.array_equal(padded[3], ex[-1]) and np.array_equal(padded[4], ex[-1])
    assert pad_examples(ex[:0], 5).shape == (5, 1, 96, 64)
    assert pad_examples(waveform_to_examples(np.zeros(16000 * 11), 16000), 10).shape[0] == 10
