"""VGGish input examples, computed exactly as torchvggish's `wavfile_to_examples` does.

int16 -> [-1, 1]; channels averaged to mono; resampled to 16 kHz (resampy, as the reference);
|STFT| with a periodic Hann window of 400 samples, hop 160, FFT 512; 64 HTK-mel bands from 125 to
7500 Hz; log(mel + 0.01); non-overlapping examples of 96 frames -> [n, 1, 96, 64] float32.
Pure numpy: no torch needed. `tests/audio/test_logmel.py` checks parity against the PyPI package.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

SAMPLE_RATE = 16000
WINDOW = 400  # 25 ms
HOP = 160  # 10 ms
FFT = 512  # next power of two above the window
N_MELS = 64
MEL_LO, MEL_HI = 125.0, 7500.0
LOG_OFFSET = 0.01
EXAMPLE_FRAMES = 96  # 0.96 s


def _frames(x: np.ndarray, window: int, hop: int) -> np.ndarray:
    n = 1 + (x.shape[0] - window) // hop
    if n <= 0:
        return np.zeros((0, window) + x.shape[1:], dtype=x.dtype)
    shape = (n, window) + x.shape[1:]
    strides = (x.strides[0] * hop,) + x.strides
    return np.lib.stride_tricks.as_strided(x, shape=shape, strides=strides, writeable=False)


def _hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    return 1127.0 * np.log(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


@lru_cache(maxsize=4)
def mel_matrix(n_bins: int = FFT // 2 + 1, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """[n_bins, N_MELS] triangular HTK-mel weights; the DC bin gets no weight."""
    bins_mel = _hz_to_mel(np.linspace(0.0, sample_rate / 2.0, n_bins))
    edges = np.linspace(_hz_to_mel(MEL_LO), _hz_to_mel(MEL_HI), N_MELS + 2)
    lo, center, hi = edges[:-2], edges[1:-1], edges[2:]
    up = (bins_mel[:, None] - lo) / (center - lo)
    down = (hi - bins_mel[:, None]) / (hi - center)
    w = np.maximum(0.0, np.minimum(up, down))
    w[0, :] = 0.0
    return w


@lru_cache(maxsize=1)
def _hann() -> np.ndarray:
    return 0.5 - 0.5 * np.cos(2 * np.pi / WINDOW * np.arange(WINDOW))


def to_mono_16k(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """[N] or [N, C] float waveform -> mono float64 at 16 kHz."""
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim > 1:
        x = x.mean(axis=1)
    if sample_rate != SAMPLE_RATE:
        import resampy  # the reference implementation's resampler (kaiser_best)

        x = resampy.resample(x, sample_rate, SAMPLE_RATE)
    return x


def log_mel(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """[frames, 64] log-mel spectrogram (float64) of a waveform in [-1, 1]."""
    x = to_mono_16k(samples, sample_rate)
    spec = np.abs(np.fft.rfft(_frames(x, WINDOW, HOP) * _hann(), FFT))
    return np.log(spec @ mel_matrix(spec.shape[1] if spec.size else FFT // 2 + 1) + LOG_OFFSET)


def waveform_to_examples(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """[n, 1, 96, 64] float32 VGGish examples of a float waveform ([N] or [N, C])."""
    mel = log_mel(samples, sample_rate)
    ex = _frames(mel, EXAMPLE_FRAMES, EXAMPLE_FRAMES)
    return np.ascontiguousarray(ex, dtype=np.float32)[:, None, :, :]


def int16_to_examples(pcm: np.ndarray, sample_rate: int) -> np.ndarray:
    """What `wavfile_to_examples` does after reading: int16 / 32768, then examples."""
    return waveform_to_examples(np.asarray(pcm) / 32768.0, sample_rate)


def pad_examples(examples: np.ndarray, t: int) -> np.ndarray:
    """Exactly T examples: fewer are padded by repeating the last one (the official AVSBench rule)."""
    if examples.shape[0] >= t:
        return examples[:t]
    if examples.shape[0] == 0:
        silent = np.full((1, 1, EXAMPLE_FRAMES, N_MELS), np.log(LOG_OFFSET), dtype=np.float32)
        return np.repeat(silent, t, axis=0)
    extra = np.repeat(examples[-1:], t - examples.shape[0], axis=0)
    return np.concatenate([examples, extra], axis=0)
