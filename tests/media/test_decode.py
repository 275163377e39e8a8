"""media.decode: the one decoder. Sampling and the trackers see the same frame sequence, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from avsbench_tools.media import decode_clip as decode_clip_from_media
from avsbench_tools.media.decode import (
    DecodeError,
    DecodeStopped,
    choose_frames,
    decode_clip,
    iter_frames,
    open_video,
    read_frames,
)
from avsbench_tools.preannotate.flow import decode_frames
from tests.helpers.media_factory import make_video, read_counter


def _counter(img: np.ndarray, rotation: int) -> int:
    """The index a test frame shows, read in the source orientation (bands are vertical there)."""
    return read_counter(np.rot90(img, -(rotation // 90)))


@pytest.mark.parametrize("kind", ["cfr", "vfr", "rotated"])
def test_iter_frames_index_k_is_the_frame_sample_stores_as_index_k(tmp_path, kind):
    kw = {"cfr": {}, "vfr": {"vfr": True}, "rotated": {"rotate": 90}}[kind]
    path = make_video(tmp_path / "c.mp4", seconds=3, w=200, h=120, **kw)
    dec = decode_clip(path, "end-of-second", 3)
    every = list(iter_frames(path))
    assert [f.index for f in every] == list(range(dec.n_frames))
    assert [_counter(f.image, dec.rotation) for f in every] == list(range(dec.n_frames))
    for s in dec.frames:
        assert np.array_equal(every[s.index].image, s.image)  # same pixels, same orientation
        assert every[s.index].time == pytest.approx(s.pts, abs=1e-9)
    # the times iter_frames gives choose the same frames the skipping decoder chose from packet times
    idx, vfr = choose_frames([f.time for f in every], dec.fps, "end-of-second", 3)
    assert idx == [s.index for s in dec.frames] and vfr == dec.vfr


def test_iter_frames_range_yields_exactly_start_to_end(tmp_path):
    path = make_video(tmp_path / "c.mp4", seconds=2, w=160, h=96)
    every = list(iter_frames(path))
    part = list(iter_frames(path, 10, 17))
    assert [f.index for f in part] == list(range(10, 17))
    for f in part:
        assert np.array_equal(f.image, every[f.index].image) and f.time == every[f.index].time
    assert [f.index for f in iter_frames(path, 45)] == list(range(45, 50))
    assert list(iter_frames(path, 5, 5)) == []


def test_reader_keeps_images_only_where_asked_and_knows_rotation(tmp_path):
    path = make_video(tmp_path / "p.mp4", seconds=1, w=200, h=120, rotate=90)
    with open_video(path) as v:
        assert v.fps == pytest.approx(25.0)
        got = list(v.frames(keep={3, 7}))
        assert v.rotation in (90, 270) and v.t0 is not None
    assert len(got) == 25
    assert [f.index for f in got if f.image is not None] == [3, 7]
    assert got[3].image.shape == (200, 120, 3)  # upright: portrait, as players show it


def test_read_frames_downscales_upright_and_matches_the_tracker_entry(tmp_path):
    path = make_video(tmp_path / "p.mp4", seconds=1, w=320, h=192, rotate=90)
    frames, fps = read_frames(path, max_side=160)
    assert fps == pytest.approx(25.0) and len(frames) == 25
    assert frames[0].shape == (160, 96, 3)  # longer side 160, aspect kept, rotated upright
    with open_video(path) as v:
        list(v.frames(end_index=1))  # the rotation is known once a frame is decoded
        rotation = v.rotation
    assert [_counter(f, rotation) for f in frames] == list(range(25))
    again, fps2 = decode_frames(path, 160)  # preannotate's entry is the same decoder
    assert fps2 == fps and all(np.array_equal(a, b) for a, b in zip(frames, again, strict=True))
    full, _ = read_frames(path)  # no max_side: source resolution
    assert full[0].shape == (320, 192, 3)
    small, _ = read_frames(path, max_side=1000)  # never upscaled
    assert np.array_equal(small[4], full[4])


def test_cancel_stops_both_entry_points(tmp_path):
    path = make_video(tmp_path / "c.mp4", seconds=2, w=96, h=64)
    with pytest.raises(DecodeStopped):
        decode_clip(path, "end-of-second", 2, cancel=lambda: True)
    seen = []

    def after_five() -> bool:
        return len(seen) >= 5

    with pytest.raises(DecodeStopped):
        for f in iter_frames(path, cancel=after_five):
            seen.append(f.index)
    assert seen == [0, 1, 2, 3, 4]


def test_undecodable_files_raise_one_decode_error_with_the_reason(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00" * 500)
    with pytest.raises(DecodeError, match="cannot open"):
        decode_clip(junk, "end-of-second", 5)
    import av

    wav = tmp_path / "tone.m4a"  # audio only
    with av.open(str(wav), "w", format="mp4") as c:
        s = c.add_stream("aac", rate=16000, layout="mono")
        fr = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        fr.sample_rate, fr.pts = 16000, 0
        for p in [*s.encode(fr), *s.encode()]:
            c.mux(p)
    with pytest.raises(DecodeError, match="no video stream"):
        decode_clip(wav, "end-of-second", 1)
    with pytest.raises(DecodeError, match="no video stream"):
        open_video(wav)


def test_media_package_reexports_the_decoder():
    from avsbench_tools.sample import SampleError
    from avsbench_tools.sample import decode_clip as decode_clip_from_sample

    assert decode_clip_from_media is decode_clip is decode_clip_from_sample
    assert issubclass(SampleError, DecodeError)  # the stage records both kinds in the ledger
