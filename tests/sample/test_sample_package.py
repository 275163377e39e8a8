"""The sample package: its public names, light import, and what it stores matches the shared decoder."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from PIL import Image

from avsbench_tools.audio.wav import read_wav
from avsbench_tools.collect import CollectOptions, collect
from avsbench_tools.media.decode import iter_frames
from avsbench_tools.workspace import init_workspace
from tests.helpers.media_factory import make_video


def test_the_names_other_modules_import_are_there():
    import avsbench_tools.sample as s

    for name in ("SampleOptions", "SampleResult", "sample", "embed_workspace", "sample_clip", "decode_clip",
                 "sound_activity", "Activity", "activity_of", "frame_path", "audio_paths",
                 "SampleError", "SampleStopped", "GRACE_S"):
        assert hasattr(s, name), name
    from avsbench_tools.sample.stage import sample

    assert s.sample is sample and sample.__doc__  # the stage entry is documented


def test_importing_sample_loads_no_heavy_library():
    code = ("import sys, avsbench_tools.sample, avsbench_tools.media, avsbench_tools.audio.activity; "
            "print(sorted(m for m in ('av', 'cv2', 'torch', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_stored_frames_and_activity_are_what_the_shared_decoder_and_analysis_give(tmp_path):
    from avsbench_tools.audio.activity import sound_activity
    from avsbench_tools.sample import SampleOptions, activity_of, sample

    make_video(tmp_path / "videos" / "a.mp4", seconds=5, w=160, h=96, audio_seconds=3)
    make_video(tmp_path / "videos" / "b.mp4", seconds=5, w=160, h=96, rotate=90)
    ws, _ = init_workspace(tmp_path / "ws", "avsbench-s4")
    collect(ws, CollectOptions(local=tmp_path / "videos", any_license=True))
    assert sample(ws, SampleOptions(jobs=1)).sampled == 2
    for clip in ws.catalog.clips():
        rows = ws.catalog.frames(clip.clip_id)
        assert [r.second for r in rows] == [0, 1, 2, 3, 4]
        every = list(iter_frames(ws.path(clip.path)))  # what the trackers decode
        for r in rows:
            png = np.asarray(Image.open(ws.path(r.path)).convert("RGB"))
            assert np.array_equal(png, every[r.frame_index].image)  # PNG is lossless: bit-exact
            assert (r.width, r.height) == (png.shape[1], png.shape[0])
        pcm, sr = read_wav(ws.path("audio", f"{clip.clip_id}.wav"))
        assert activity_of(ws, clip.clip_id) == sound_activity(pcm, sr, 5)
        if clip.clip_id.startswith("a"):
            assert activity_of(ws, clip.clip_id).active == [True, True, True, False, False]
    assert activity_of(ws, "no-such-clip") is None
    ws.close()
