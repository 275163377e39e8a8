"""sample: frame-exact sampling, 16 kHz audio, log-mel parity, sound activity, robustness, preview."""

from __future__ import annotations

import json
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from avsbench_tools.audio.wav import read_wav
from avsbench_tools.collect import CollectOptions, collect
from avsbench_tools.media import ffmpeg_exe
from avsbench_tools.sample import SampleOptions, decode_clip, sample, sound_activity
from avsbench_tools.synth import load_truth
from avsbench_tools.timing import sampled_frame_indices
from avsbench_tools.workspace import init_workspace, open_workspace
from tests.helpers import cli_here
from tests.helpers.media_factory import make_video, read_counter

NTSC = Fraction(30000, 1001)


@pytest.mark.parametrize("fps", [25, NTSC, 30], ids=["25", "29.97", "30"])
@pytest.mark.parametrize("rule,seconds", [("end-of-second", 5), ("first-of-second", 10)])
def test_sampled_frames_are_the_rule_indices(tmp_path, fps, rule, seconds):
    path = make_video(tmp_path / "c.mp4", seconds=seconds, w=200, h=120, fps=fps)
    dec = decode_clip(path, rule, seconds)
    n = int(round(seconds * fps))
    assert dec.n_frames == n and not dec.vfr
    expected = sampled_frame_indices(rule, float(fps), n, seconds)
    assert [f.index for f in dec.frames] == expected
    # the pixels say which frame was decoded: the stored index is the true one
    assert [read_counter(f.image) for f in dec.frames] == expected
    for f in dec.frames:
        assert f.pts == pytest.approx(f.index / float(fps), abs=1e-3)
    if rule == "end-of-second":  # the official example: 25 fps -> 23, 48, 73, 98, 123
        if fps == 25:
            assert expected == [23, 48, 73, 98, 123]
    else:
        assert expected[0] == 0 and all(f.pts >= f.second - 1e-6 for f in dec.frames)


def _vfr_times(seconds: float) -> list[float]:
    """The presentation times make_video(vfr=True) gives: 1/15 s after every third frame, else 1/30 s."""
    t, i, out = 0.0, 0, []
    while t < seconds - 1e-9:
        out.append(round(t * 1000) / 1000)
        t += (1 / 30) if (i % 3) else (1 / 15)
        i += 1
    return out


@pytest.mark.parametrize("rule", ["end-of-second", "first-of-second"])
def test_vfr_clip_samples_by_presentation_time(tmp_path, rule):
    path = make_video(tmp_path / "vfr.mp4", seconds=5, w=200, h=120, vfr=True)
    dec = decode_clip(path, rule, 5)
    assert dec.vfr
    times = _vfr_times(5)
    assert dec.n_frames == len(times)
    if rule == "end-of-second":  # the frame on screen at l + 15/16 s
        expected = [max(i for i, t in enumerate(times) if t <= s + 15 / 16 + 1e-6) for s in range(5)]
    else:  # the first frame at or after l s
        expected = [min(i for i, t in enumerate(times) if t >= s - 1e-6) for s in range(5)]
    assert [f.index for f in dec.frames] == expected
    assert [read_counter(f.image) for f in dec.frames] == expected
    assert [f.pts for f in dec.frames] == pytest.approx([times[i] for i in expected], abs=1e-3)


@pytest.mark.parametrize("rule", ["end-of-second", "first-of-second"])
@pytest.mark.parametrize("kind", ["cfr", "vfr", "rotated"])
def test_skipping_decoder_gives_the_frames_of_a_full_decode(tmp_path, rule, kind):
    """Frames chosen from packet timestamps and decoded with skip_frame=NONREF are bit-identical to
    decoding every frame in order, and the decoder really skips (x264 B-frames nothing refers to)."""
    kw = {"cfr": {}, "vfr": {"vfr": True}, "rotated": {"rotate": 90}}[kind]
    path = make_video(tmp_path / "c.mp4", seconds=5, w=200, h=120, **kw)
    fast = decode_clip(path, rule, 5)
    full = decode_clip(path, rule, 5, skip=False)
    assert [f.index for f in fast.frames] == [f.index for f in full.frames]
    assert [f.pts for f in fast.frames] == pytest.approx([f.pts for f in full.frames], abs=1e-9)
    for a, b in zip(fast.frames, full.frames, strict=True):
        assert np.array_equal(a.image, b.image)
    assert (fast.n_frames, fast.vfr, fast.rotation) == (full.n_frames, full.vfr, full.rotation)
    assert np.array_equal(fast.pcm, full.pcm)
    assert fast.decoded < 0.8 * fast.n_frames  # skipped non-reference frames and the tail
    assert full.decoded == 2 * full.n_frames  # the fallback decodes everything (twice)


def test_truncated_clip_falls_back_and_clamps_to_the_last_decodable_frame(tmp_path):
    whole = make_video(tmp_path / "whole.mp4", seconds=5, w=200, h=120)
    cut = tmp_path / "cut.mp4"
    data = whole.read_bytes()
    cut.write_bytes(data[: int(len(data) * 0.6)])  # a download that stopped part-way
    dec = decode_clip(cut, "end-of-second", 5)
    assert 25 < dec.n_frames < 125
    expected = sampled_frame_indices("end-of-second", 25.0, dec.n_frames, 5)
    assert expected[-1] == dec.n_frames - 1  # the later seconds clamp to the last frame
    assert [f.index for f in dec.frames] == expected
    assert [read_counter(f.image) for f in dec.frames] == expected


def test_rotated_clip_is_sampled_upright_like_ffmpeg(tmp_path):
    path = make_video(tmp_path / "phone.mp4", seconds=2, w=200, h=120, rotate=90)
    dec = decode_clip(path, "end-of-second", 2)
    assert dec.rotation in (90, 270)
    img = dec.frames[0].image
    assert img.shape[:2] == (200, 120)  # portrait, as players show it
    ref = tmp_path / "ref.png"
    k = dec.frames[0].index
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-i", str(path), "-vf", f"select=eq(n\\,{k})",
                    "-frames:v", "1", str(ref)], check=True)
    want = np.asarray(Image.open(ref).convert("RGB")).astype(int)
    assert want.shape == img.shape
    assert np.abs(want - img.astype(int)).mean() < 3


@pytest.mark.parametrize("sr,channels,want_channels", [(8000, 1, 1), (22050, 2, 2), (48000, 6, 2), (44100, 2, 2)])
def test_audio_becomes_16k_int16(tmp_path, sr, channels, want_channels):
    path = make_video(tmp_path / "a.mp4", seconds=5, w=96, h=64, sr=sr, channels=channels)
    dec = decode_clip(path, "end-of-second", 5)
    assert dec.pcm.dtype == np.int16 and dec.pcm.shape[1] == want_channels
    assert abs(dec.pcm.shape[0] - 5 * 16000) <= 1600  # AAC priming/padding is a few ms
    assert dec.source_rate == sr and dec.source_channels == channels
    # the 440 Hz tone survives resampling
    x = dec.pcm[8000:24000, 0].astype(float)
    spec = np.abs(np.fft.rfft(x))
    assert abs(np.argmax(spec) * 16000 / x.size - 440) < 5


def _workspace_with(tmp_path, videos: dict[str, dict], recipe: str = "avsbench-s4"):
    src = tmp_path / "videos"
    for name, kw in videos.items():
        make_video(src / name, **kw)
    ws, _ = init_workspace(tmp_path / "ws", recipe)
    collect(ws, CollectOptions(local=src, any_license=True))
    return ws


def test_short_audio_is_padded_by_repeating_the_last_example(tmp_path):
    ws = _workspace_with(tmp_path, {"short.mp4": dict(seconds=5, audio_seconds=2.5)})
    res = sample(ws, SampleOptions(jobs=1))
    assert res.sampled == 1 and res.failed == 0
    row = ws.catalog.query("SELECT * FROM audio")[0]
    pcm, sr = read_wav(ws.path(row["wav_path"]))
    assert sr == 16000 and pcm.shape[0] <= 2.6 * 16000
    ex = np.load(ws.path(row["logmel_path"]))
    assert ex.shape == (5, 1, 96, 64) and ex.dtype == np.float32
    assert np.array_equal(ex[2], ex[3]) and np.array_equal(ex[2], ex[4])
    act = json.loads(row["activity_json"])
    assert act["active"][:2] == [True, True] and act["active"][3:] == [False, False]


def test_stored_logmel_matches_torchvggish_on_the_stored_wav(tmp_path, world_ms3):
    from torchvggish.vggish_input import wavfile_to_examples

    ws, _ = init_workspace(tmp_path / "ws", str(world_ms3 / "recipe.toml"))
    collect(ws, CollectOptions(local=world_ms3 / "videos", any_license=True))
    sample(ws, SampleOptions(jobs=2))
    rows = ws.catalog.query("SELECT * FROM audio ORDER BY clip_id")
    assert len(rows) == 4
    for row in rows:
        ours = np.load(ws.path(row["logmel_path"]))
        ref = wavfile_to_examples(str(ws.path(row["wav_path"])), return_tensor=False)
        assert ref.ndim == 3
        ref = ref[:, None]
        n = min(len(ref), len(ours))
        assert n >= 4
        assert np.abs(ours[:n] - ref[:n]).max() < 1e-4


def test_silent_seconds_of_the_synthetic_schedule_are_silent(tmp_path, world_ms3):
    ws, _ = init_workspace(tmp_path / "ws", str(world_ms3 / "recipe.toml"))
    collect(ws, CollectOptions(local=world_ms3 / "videos", any_license=True))
    sample(ws, SampleOptions(jobs=2))
    n_silent = n_sound = 0
    for c in ws.catalog.clips():
        truth = load_truth(world_ms3, c.clip_id.split("-")[0])
        act = json.loads(ws.catalog.query("SELECT activity_json FROM audio WHERE clip_id=?", (c.clip_id,))[0][0])
        want = [bool(s) for s in truth["sounding_per_second"]]
        assert act["active"] == want, (c.clip_id, act, want)
        n_silent += want.count(False)
        n_sound += want.count(True)
    assert n_silent >= 4 and n_sound >= 8  # every synthetic clip has a silent second


def test_sound_activity_on_plain_signals():
    sr = 16000
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 30, 5 * sr)  # a quiet room, about -60 dBFS
    tone = 6000 * np.sin(2 * np.pi * 300 * np.arange(sr) / sr)
    x = noise.copy()
    x[sr:2 * sr] += tone
    x[3 * sr:3 * sr + 200] += 20000  # a 12 ms click does not make a second sound
    act = sound_activity(x.astype(np.int16)[:, None], sr, 5)
    assert act.active == [False, True, False, False, False]
    drone = (8000 * np.sin(2 * np.pi * 120 * np.arange(5 * sr) / sr)).astype(np.int16)[:, None]
    assert sound_activity(drone, sr, 5).active == [True] * 5  # loud and constant: no quiet floor, still sound
    assert sound_activity(np.zeros((5 * sr, 1), np.int16), sr, 5).active == [False] * 5


def test_sample_cli_is_resumable_and_records_bad_clips(tmp_path):
    ws = _workspace_with(tmp_path, {"a.mp4": dict(seconds=5), "b.mp4": dict(seconds=5, w=162, h=98),
                                    "c.mp4": dict(seconds=5)})
    clips = ws.catalog.clips()
    bad = next(c for c in clips if c.clip_id.startswith("c"))
    ws.path(bad.path).write_bytes(b"\x00" * 1000)  # the clip file got corrupted after collect
    ws.close()
    r = cli_here("sample", tmp_path / "ws", "-q", check=True)
    assert "2 sampled" in r.stdout and "1 failed" in r.stdout
    assert f"failed: {bad.clip_id}: cannot" in r.stderr  # the failure is printed, not only in the ledger
    assert "next:" not in r.stdout  # --quiet
    ws = open_workspace(tmp_path / "ws")
    fails = ws.catalog.failures("sample")
    assert [f.item for f in fails] == [bad.clip_id] and "cannot" in fails[0].reason
    odd = next(c for c in clips if c.clip_id.startswith("b"))
    frames = ws.catalog.query("SELECT * FROM frames WHERE clip_id=? ORDER BY second", (odd.clip_id,))
    assert [r["second"] for r in frames] == [0, 1, 2, 3, 4]
    img = Image.open(ws.path(frames[0]["path"]))
    assert img.format == "PNG" and img.size == (frames[0]["width"], frames[0]["height"])
    assert (img.size[0], img.size[1]) == (odd.width, odd.height)
    mtimes = {p: p.stat().st_mtime_ns for p in ws.path("frames").rglob("*.png")}
    ws.close()
    r = cli_here("sample", tmp_path / "ws", check=True)
    assert "nothing to do: 2 of 3 clips already sampled; 1 failed earlier" in r.stdout
    assert "--retry-failed" in r.stdout and f"next: avs-tools preannotate {tmp_path / 'ws'}" in r.stdout
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "ws" / "frames").rglob("*.png")} == mtimes
    # the clip is repaired: --retry-failed samples it and resolves the ledger row
    make_video(tmp_path / "ws" / bad.path, seconds=5, fps=25)
    r = cli_here("sample", tmp_path / "ws", "-q", "--retry-failed", check=True)
    assert "1 sampled" in r.stdout
    ws = open_workspace(tmp_path / "ws")
    assert ws.catalog.failures("sample") == []
    assert ws.catalog.stage_counts()["sample"] == {"done": 3, "failed": 0, "pending": 0}
    assert not list((tmp_path / "ws").rglob(".tmp-*"))


def test_refavs_recipe_samples_first_frames_as_jpeg(tmp_path):
    ws = _workspace_with(tmp_path, {"r.mp4": dict(seconds=10, w=200, h=120)}, recipe="ref-avs")
    sample(ws, SampleOptions(jobs=1))
    frames = ws.catalog.query("SELECT * FROM frames ORDER BY second")
    assert [r["frame_index"] for r in frames] == [s * 25 for s in range(10)]
    assert all(Path(r["path"]).suffix == ".jpg" for r in frames)
    img = np.asarray(Image.open(ws.path(frames[3]["path"])).convert("RGB"))
    assert read_counter(img) == 75


def test_vggish_embeddings_with_given_weights(tmp_path):
    torch = pytest.importorskip("torch")  # the models extra; installed by make install
    from torchvggish.torchvggish import _vgg

    ref = _vgg(postprocess=False).eval()
    weights = tmp_path / "vggish.pth"
    torch.save(ref.state_dict(), weights)
    ws = _workspace_with(tmp_path, {"a.mp4": dict(seconds=5)})
    res = sample(ws, SampleOptions(jobs=1, vggish_weights=weights))
    assert res.embedded == 1
    row = ws.catalog.query("SELECT * FROM audio")[0]
    emb = np.load(ws.path(row["embedding_path"].split("#")[0]))
    ex = np.load(ws.path(row["logmel_path"]))
    assert emb.shape == (5, 128) and emb.dtype == np.float32
    with torch.inference_mode():
        want = ref(torch.from_numpy(ex)).numpy()
    assert np.abs(emb - want).max() < 1e-4
    assert sample(ws, SampleOptions(vggish_weights=weights)).embedded == 0  # done: skipped
    ws.close()
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    r = cli_here("sample", tmp_path / "ws", "-q", "--vggish-weights", bad)
    assert r.returncode == 1 and "bad.pth" in r.stderr and "Traceback" not in r.stderr
    torch.save({"conv.weight": torch.zeros(3)}, tmp_path / "other.pth")
    r = cli_here("sample", tmp_path / "ws", "-q", "--vggish-weights", tmp_path / "other.pth")
    assert r.returncode == 1 and "not VGGish weights" in r.stderr
    r = cli_here("sample", tmp_path / "ws", "-q", "--vggish-weights", tmp_path / "missing.pth")
    assert r.returncode == 2 and "missing.pth" in r.stderr
    r = cli_here("sample", tmp_path / "ws", "-q", "--device", "cuda")  # nothing on a GPU without --vggish-weights
    assert r.returncode == 0 and "--device cuda has no effect without --vggish-weights" in r.stderr
    if not torch.cuda.is_available():
        r = cli_here("sample", tmp_path / "ws", "-q", "--vggish-weights", weights, "--device", "cuda")
        assert r.returncode == 2 and "CUDA" in r.stderr


def test_preview_contact_sheet(tmp_path, world_ms3):
    ws, _ = init_workspace(tmp_path / "ws", str(world_ms3 / "recipe.toml"))
    collect(ws, CollectOptions(local=world_ms3 / "videos", any_license=True))
    clip = ws.catalog.clips()[0].clip_id
    ws.close()
    r = cli_here("preview", tmp_path / "ws", "--clip", clip)
    assert r.returncode == 2 and "not sampled" in r.stderr
    cli_here("sample", tmp_path / "ws", "-q", check=True)
    out = tmp_path / "sheet.png"
    r = cli_here("preview", tmp_path / "ws", "--clip", clip, "--out", out, check=True)
    img = Image.open(out)
    assert img.format == "PNG" and img.size[0] > 600 and img.size[1] > 400
    assert len(np.unique(np.asarray(img.convert("L")))) > 50  # frames and plots, not a blank page
    r = cli_here("preview", tmp_path / "ws", "--clip", "nope")
    assert r.returncode == 2 and "nope" in r.stderr


def test_sample_before_collect_says_what_to_run_first(tmp_path):
    init_workspace(tmp_path / "ws", "avsbench-s4")[0].close()
    r = cli_here("sample", tmp_path / "ws")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "has no clips yet" in lines[0] and f"avs-tools collect {tmp_path / 'ws'}" in lines[0]


def test_sample_exits_1_when_every_clip_fails_and_lists_them(tmp_path):
    ws = _workspace_with(tmp_path, {f"{n}.mp4": dict(seconds=5, w=96, h=64) for n in "abcdefg"})
    ids = sorted(c.clip_id for c in ws.catalog.clips())
    for c in ws.catalog.clips():
        ws.path(c.path).write_bytes(b"\x00" * 500)
    ws.close()
    r = cli_here("sample", tmp_path / "ws", "-q")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "0 sampled, 0 already done, 7 failed" in r.stdout
    failed = [ln.strip() for ln in r.stderr.splitlines() if ln.strip().startswith("failed: ")]
    assert len(failed) == 5 and all(ln.split(": ")[1] in ids for ln in failed)
    assert f"and 2 more: avs-tools status {tmp_path / 'ws'} --failures" in r.stderr
    assert "every clip sampled in this run failed" in r.stderr
    assert not list((tmp_path / "ws" / "frames").rglob("*.png"))  # nothing half-written is left


def test_sample_clip_option_suggests_the_nearest_ids(tmp_path):
    ws = _workspace_with(tmp_path, {"violin.mp4": dict(seconds=5, w=96, h=64)})
    cid = ws.catalog.clips()[0].clip_id
    ws.close()
    r = cli_here("sample", tmp_path / "ws", "--clip", cid[:-1] + "9")
    assert r.returncode == 2 and f"did you mean {cid}" in r.stderr and "Traceback" not in r.stderr
    r = cli_here("sample", tmp_path / "ws", "--clip", cid, check=True)
    assert "1 sampled" in r.stdout


def test_missing_vggish_weights_fail_before_any_clip_is_sampled(tmp_path):
    pytest.importorskip("torch")
    ws = _workspace_with(tmp_path, {"a.mp4": dict(seconds=5, w=96, h=64)})
    ws.close()
    r = cli_here("sample", tmp_path / "ws", "--vggish-weights", tmp_path / "nope.pth")
    assert r.returncode == 2 and "nope.pth" in r.stderr
    assert open_workspace(tmp_path / "ws").catalog.stage_counts()["sample"]["done"] == 0
