"""16-bit PCM WAV read/write with the standard library (no soundfile needed)."""

from __future__ import annotations

import io
import wave
from pathlib import Path

import numpy as np

from avsbench_tools.fsutil import atomic_write_bytes

WAV_HEADER = 44  # bytes before the samples in what wav_bytes writes (RIFF, fmt and data chunk headers)


def wav_bytes(pcm: np.ndarray, sample_rate: int) -> bytes:
    """pcm: int16 [N] or [N, C]: a 16-bit PCM WAV of WAV_HEADER + 2 * N * C bytes."""
    pcm = np.asarray(pcm)
    if pcm.dtype != np.int16:
        raise ValueError("wav_bytes expects int16 samples")
    if pcm.ndim == 1:
        pcm = pcm[:, None]
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(pcm.shape[1])
        w.setsampwidth(2)
        w.setframerate(int(sample_rate))
        w.writeframes(np.ascontiguousarray(pcm).astype("<i2").tobytes())
    return buf.getvalue()


def write_wav(path: Path, pcm: np.ndarray, sample_rate: int) -> None:
    atomic_write_bytes(path, wav_bytes(pcm, sample_rate))


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """-> (int16 [N, C], sample_rate)."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"{path}: not 16-bit PCM")
        n, c, sr = w.getnframes(), w.getnchannels(), w.getframerate()
        data = np.frombuffer(w.readframes(n), dtype="<i2").reshape(-1, c)
    return data.astype(np.int16), sr


def float_to_int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(np.asarray(x) * 32767.0), -32768, 32767).astype(np.int16)
