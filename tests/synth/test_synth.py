import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from avsbench_tools.fsutil import MARKER
from avsbench_tools.media import probe
from avsbench_tools.synth import CATEGORIES, SynthParams, load_instances, load_truth, render_clip
from tests.helpers import cli_here


def _digest_tree(root: Path, skip_suffix=(".mp4",)) -> dict[str, str]:
    """Digests of every file but the videos and the ownership marker (it holds the time it was written)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.suffix not in skip_suffix and p.name != MARKER}


def test_same_seed_gives_byte_identical_ground_truth(tmp_path):
    args = ["--clips", "4", "--seconds", "5", "--seed", "7", "--gold", "avsbench-ms3", "--size", "160x120", "-q"]
    cli_here("synth", tmp_path / "a", *args, check=True)
    cli_here("synth", tmp_path / "b", *args, check=True)
    da, db = _digest_tree(tmp_path / "a"), _digest_tree(tmp_path / "b")
    assert da == db and any(k.startswith("gold/") for k in da) and any(k.endswith(".npz") for k in da)
    for mp4 in sorted((tmp_path / "a" / "videos").glob("*.mp4")):
        pr = probe(mp4)
        assert pr.has_video and pr.has_audio and pr.video_codec == "h264"
        assert abs(pr.duration - 5.0) <= 1 / 25 + 0.03, pr
        assert pr.n_frames == 125 and pr.audio_channels == 2


def test_other_seed_differs():
    a, b = render_clip(SynthParams(seed=1), 0), render_clip(SynthParams(seed=2), 0)
    assert a.truth != b.truth


def test_world_has_silences_multi_sources_distractors_and_exact_masks(world_ms3):
    p = SynthParams(clips=30, seconds=5, width=160, height=120, seed=11)
    truths = [render_clip(p, i) for i in range(30)]
    silent = multi = distract = 0
    for c in truths:
        t = c.truth
        assert 1 <= len(t["objects"]) <= 3
        cats = [o["category"] for o in t["objects"]]
        assert len(set(cats)) == len(cats)
        silent += sum(1 for s in t["sounding_per_second"] if not s)
        multi += sum(1 for s in t["sounding_per_second"] if len(s) >= 2)
        distract += sum(o["distractor"] for o in t["objects"])
        for o in t["objects"]:
            if o["distractor"]:
                assert not any(o["sounding"])
        # masks match the pixels: every object pixel has its category colour (texture = scaled colour)
        obj = t["objects"][0]
        rgb = np.array(next(cc.rgb for cc in CATEGORIES if cc.name == obj["category"]), dtype=float)
        px = c.frames[0][c.instances[0] == obj["id"]].astype(float)
        if len(px):
            ratio = px / rgb.clip(1)
            assert np.all((ratio > 0.6) & (ratio < 1.05)), "instance mask covers pixels of another colour"
        # expressions: each object has some, null expressions name a category absent from the clip
        for o in t["objects"]:
            assert o["expressions"]
        for n in t["null_expressions"]:
            assert not any(f"{o['colour']} {o['shape']}" in n for o in t["objects"])
    assert silent and multi and distract


def test_sound_follows_the_schedule(world_ms3):
    c = render_clip(SynthParams(clips=4, seconds=5, width=160, height=120, seed=7), 0)
    rms = [float(np.sqrt(np.mean(c.audio[s * 44100 + 2000:(s + 1) * 44100 - 2000] ** 2))) for s in range(5)]
    for s, ids in enumerate(c.truth["sounding_per_second"]):
        assert (rms[s] > 0.02) == bool(ids), (s, rms, c.truth["sounding_per_second"])


def test_truth_files_load(world_ms3):
    vid = Path((world_ms3 / "urls.txt").read_text().splitlines()[0]).stem
    inst = load_instances(world_ms3, vid)
    t = load_truth(world_ms3, vid)
    assert inst.shape == (125, 120, 160) and inst.dtype == np.uint8
    assert set(np.unique(inst)) <= {0} | {o["id"] for o in t["objects"]}


def test_kill_9_during_synth_then_rerun_matches_uninterrupted(tmp_path):
    args = ["--clips", "6", "--seconds", "5", "--seed", "5", "--size", "160x120", "--gold", "avss", "-q"]
    ref = tmp_path / "ref"
    cli_here("synth", ref, *args, check=True)
    out = tmp_path / "killed"
    for delay in (0.8, 1.6, 2.4):
        p = subprocess.Popen([sys.executable, "-m", "avsbench_tools", "synth", str(out), *args],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        if p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
        p.wait()
    cli_here("synth", out, *args, check=True)
    assert _digest_tree(out) == _digest_tree(ref)
    assert not [p for p in out.rglob("*") if p.name.startswith(".tmp-")]
    assert sorted(p.name for p in (out / "videos").iterdir()) == sorted(p.name for p in (ref / "videos").iterdir())


def test_bad_synth_options(tmp_path):
    for args, needle in ((["--gold", "ref-avs"], "10 s"), (["--seconds", "7"], "--seconds 7: must be 5 or 10 s"), (["--gold", "coco"], "--gold"),
                         (["--size", "161x120"], "even")):
        proc = cli_here("synth", tmp_path / "x", *args)
        assert proc.returncode == 2 and needle in proc.stderr and "Traceback" not in proc.stderr


def test_tones_scene_one_of_three_same_shape_circles_sounds_and_its_tone_plays():
    """The tones world: 3 circles, one of each tone colour; exactly one sounds through the clip; the
    audio's strongest frequency is its tone; every colour is the sounder in some clip."""
    from avsbench_tools.synth.render import AUDIO_RATE, TONE_CATEGORIES

    freq = {t.name: t.freq for t in TONE_CATEGORIES}
    p = SynthParams(clips=9, seconds=2, width=96, height=96, fps=5, seed=2, scene="tones")
    leads = set()
    for i in range(9):
        c = render_clip(p, i)
        objs = c.truth["objects"]
        assert len(objs) == 3 and {o["shape"] for o in objs} == {"circle"}
        assert sorted(o["category"] for o in objs) == sorted(t.name for t in TONE_CATEGORIES)
        sounding = [o for o in objs if any(o["sounding"])]
        assert len(sounding) == 1 and all(sounding[0]["sounding"])
        assert c.truth["sounding_per_second"] == [[sounding[0]["id"]]] * 2
        leads.add(sounding[0]["category"])
        spec = np.abs(np.fft.rfft(c.audio[:AUDIO_RATE].mean(axis=1)))
        peak = np.fft.rfftfreq(AUDIO_RATE, 1 / AUDIO_RATE)[int(spec.argmax())]
        want = freq[sounding[0]["category"]]
        assert abs(peak - want) < 0.02 * want, (peak, sounding)
        for o in objs:  # each circle is drawn
            assert (c.instances == o["id"]).any()
    assert leads == {t.name for t in TONE_CATEGORIES}
