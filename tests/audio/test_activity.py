"""audio.activity: the stored form reads back, and seconds the audio does not reach are silent."""

from __future__ import annotations

import json

import numpy as np

from avsbench_tools.audio.activity import ABS_SILENCE_DB, Activity, sound_activity


def _tone(seconds: float, sr: int = 16000, amp: float = 8000) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * 440 * t)).astype(np.int16)[:, None]


def test_stored_form_reads_back_and_ignores_what_sample_adds():
    act = sound_activity(_tone(3), 16000, 3)
    stored = json.loads(json.dumps({**act.to_dict(), "info": {"fps": 25.0}}))  # what the catalog row holds
    back = Activity.from_dict(stored)
    assert back == act
    assert back.params["abs_silence_db"] == ABS_SILENCE_DB
    old = {k: v for k, v in stored.items() if k not in ("params", "info")}  # a row without params
    assert Activity.from_dict(old).params == {} and Activity.from_dict(old).active == act.active


def test_seconds_past_the_audio_are_silent():
    act = sound_activity(_tone(2.3), 16000, 5)  # a 0.3 s tail is less than half a second: silent
    assert act.active == [True, True, False, False, False]
    assert act.level_db[3:] == [-120.0, -120.0]
    assert sound_activity(np.zeros((0, 2), np.int16), 16000, 2).active == [False, False]
    stereo = np.concatenate([_tone(2), _tone(2)], axis=1)  # channels are averaged
    assert sound_activity(stereo, 16000, 2).active == [True, True]
