"""The task's audio excerpt (avsbench_tools/studio/excerpt.py): written once, then known by its WAV's time."""

from __future__ import annotations

import os
import time

import numpy as np

from avsbench_tools.audio.wav import wav_bytes, write_wav
from avsbench_tools.studio.excerpt import task_audio
from avsbench_tools.workspace import init_workspace


def test_an_excerpt_carries_its_wavs_time_and_is_compared_again_when_either_changes(tmp_path):
    ws, _ = init_workspace(tmp_path / "ws", "avsbench-ms3")
    try:
        rng = np.random.default_rng(0)
        pcm = (rng.standard_normal(5 * 16000) * 3000).astype(np.int16)
        wav = ws.path("audio", "c1.wav")
        write_wav(wav, pcm, 16000)
        ex = task_audio(ws, "c1", "audio/c1.wav", 2)
        dest = ws.abs(ex.rel)
        assert ex.duration == 3.0 and dest.read_bytes() == wav_bytes(pcm[2 * 16000:], 16000)
        assert dest.stat().st_mtime_ns == wav.stat().st_mtime_ns  # the WAV's time, given to the excerpt

        # same size, the WAV's time: taken as written from this WAV (not read: this stand-in is left as it is)
        stand_in = bytes(dest.stat().st_size)
        dest.write_bytes(stand_in)
        os.utime(dest, ns=(wav.stat().st_mtime_ns,) * 2)
        task_audio(ws, "c1", "audio/c1.wav", 2)
        assert dest.read_bytes() == stand_in

        # another time on the excerpt (a copy of the workspace, an edit): compared byte for byte, written again
        os.utime(dest, ns=(wav.stat().st_mtime_ns - 10**9,) * 2)
        task_audio(ws, "c1", "audio/c1.wav", 2)
        assert dest.read_bytes() == wav_bytes(pcm[2 * 16000:], 16000)
        assert dest.stat().st_mtime_ns == wav.stat().st_mtime_ns

        # a new WAV put in place with the old one's time (a copy that keeps times): its inode changed after the
        # excerpt was stamped, so the excerpt is compared again
        time.sleep(0.05)  # (past the kernel's coarse inode clock)
        pcm1 = (rng.standard_normal(5 * 16000) * 3000).astype(np.int16)
        old_time = wav.stat().st_mtime_ns
        write_wav(wav, pcm1, 16000)
        os.utime(wav, ns=(old_time, old_time))
        task_audio(ws, "c1", "audio/c1.wav", 2)
        assert dest.read_bytes() == wav_bytes(pcm1[2 * 16000:], 16000)

        # the clip sampled again: a new WAV (a new time), so a new excerpt
        pcm2 = (rng.standard_normal(5 * 16000) * 3000).astype(np.int16)
        write_wav(wav, pcm2, 16000)
        os.utime(wav, ns=(wav.stat().st_mtime_ns + 10**9,) * 2)  # (whatever the clock's resolution)
        task_audio(ws, "c1", "audio/c1.wav", 2)
        assert dest.read_bytes() == wav_bytes(pcm2[2 * 16000:], 16000)
        assert dest.stat().st_mtime_ns == wav.stat().st_mtime_ns
    finally:
        ws.close()
