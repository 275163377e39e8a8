"""Sound on the task's second (issue 22 item 5), in headless Chromium against the run's real Label Studio.

Label Studio 1.23's Audio tag has no attribute that sets where its player starts (it opens at 0 s), so push gives
each task the clip's WAV from the task's second to the clip's end (studio/excerpt.py: WS/audio/seconds/<clip>/<s>.wav,
the whole clip stays in the task's video): the player opens at the task's second. Every prediction holds a read-only
region [0, 1) of the hidden `<Labels name="second">` (studio.labelling.SECOND), first in its result: the annotator
presses Alt+. (Label Studio's "cycle regions") or clicks it in the Regions list, then the Audio tag's hotkey
(Ctrl+P) plays just that second (Label Studio plays a selected region from its start to its end). The test does
exactly that and reads the player's position from the editor's store. Pull ignores the region (an accepted
prediction's copy of it is no mask: test_pull's round trip accepts predictions holding it).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from avsbench_tools.studio import labelling as cfg
from avsbench_tools.studio.push_build import second_region
from tests.helpers.browser import WAIT_S, set_window

#: the audio regions of the editor's annotation, and its player: position, playing, duration
AUDIO_JS = """
const s = window.Htx; const ann = s && s.annotationStore && s.annotationStore.selected;
const audio = ann && ann.names.get('audio');
if (!ann || !audio || !audio._ws || !audio._ws.loaded) return null;
const regs = ann.regionStore.regions.filter(r => r.type === 'audioregion')
  .map(r => ({start: r.start, end: r.end, labels: r.labels || [], readonly: r.isReadOnly()}));
const sel = audio._ws.regions.selected.map(r => [r.start, r.end]);
return {regions: regs, time: audio._ws.currentTime, playing: audio._ws.playing, duration: audio._ws.duration,
        selected: sel};
"""


def test_the_second_region_rule():
    r = second_region(2, 3.0)
    assert (r["from_name"], r["to_name"], r["type"], r["readonly"]) == (cfg.SECOND, cfg.AUDIO, "labels", True)
    assert r["value"]["start"] == 0.0 and r["value"]["end"] == 1.0 and r["value"]["labels"] == [cfg.SECOND_LABEL]
    assert r["meta"]["text"] == ["second 2 of the clip"]
    assert second_region(9, 0.5)["value"]["end"] == 0.5  # never past the audio's end


def test_the_tasks_audio_is_the_clip_from_its_second_written_once(studio_server):
    """The task's audio is WS/audio/seconds/<clip>/<s>.wav: the clip's samples from s*16000 on, served by the
    server, following the umask; a second push rewrites none of them, but one that differs from the clip's WAV
    (cut short by a crash, or the clip sampled again) is written again. An unreadable clip WAV: one line naming it."""
    from avsbench_tools.audio.wav import read_wav
    from avsbench_tools.errors import AvsError
    from avsbench_tools.fsutil import file_mode
    from avsbench_tools.studio.excerpt import excerpt_rel, task_audio
    from avsbench_tools.workspace import open_workspace
    from tests.helpers import run_cli
    from tests.helpers.studio_media import pushed_media, served_file

    media = pushed_media(studio_server)
    w = open_workspace(media.ws)
    try:
        wavs = {t["data"]["clip_id"]: w.catalog.audio(t["data"]["clip_id"]).wav_path for t in media.tasks}
        damaged = media.ws / "audio" / "damaged.wav"
        damaged.write_bytes(b"RIFF....WAVEfmt not a wav")
        with pytest.raises(AvsError, match=r"^clip c9: its audio .*damaged\.wav cannot be read \(.*\); run avs-tools "
                                           r"sample .* --clips c9 again$"):
            task_audio(w, "c9", "audio/damaged.wav", 0)
        damaged.unlink()
    finally:
        w.close()
    paths = {}
    for t in media.tasks:
        cid, s = t["data"]["clip_id"], t["data"]["second"]
        path = paths[(cid, s)] = served_file(studio_server, t["data"]["audio"])
        assert path == media.ws / excerpt_rel(cid, s) and t["data"]["audio_start"] == s
        clip, sr = read_wav(media.ws / wavs[cid])
        got, sr2 = read_wav(path)
        assert sr2 == sr == 16000 and len(clip) == 5 * sr and (got == clip[s * sr:]).all()
        assert path.stat().st_mode & 0o777 == file_mode()
    before = {k: p.stat() for k, p in paths.items()}
    short = paths[min(paths)]
    whole = short.read_bytes()
    short.write_bytes(whole[:100])  # as a crash could leave it
    env = {"LABEL_STUDIO_API_KEY": studio_server.api_key}
    out = run_cli("push", media.ws, "--url", studio_server.url, env=env, check=True)
    out = out.stdout + out.stderr
    assert "nothing to do: 5 tasks" in out, out
    assert short.read_bytes() == whole  # written again
    for k, p in paths.items():
        if p != short:  # the others: not written
            assert (p.stat().st_ino, p.stat().st_mtime_ns) == (before[k].st_ino, before[k].st_mtime_ns), k


def test_the_audio_opens_at_the_tasks_second_and_ctrl_p_plays_just_it(studio_server, studio_page, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.helpers.studio_media import pushed_media

    media = pushed_media(studio_server)
    task = next(t for t in media.tasks if t["data"]["second"] == 2)
    s = task["data"]["second"]
    # every prediction carries the region; the header names the second and the frame in the clip
    for p in task["predictions"]:
        (reg,) = [r for r in p["result"] if r["from_name"] == cfg.SECOND]
        assert p["result"][0] == reg  # the first region: Alt+. (cycle regions) selects it first
        assert (reg["value"]["start"], reg["value"]["end"]) == (0, 1) and reg["readonly"]  # [0, 1) of the excerpt
        assert reg["meta"]["text"] == [f"second {s} of the clip"]
    note = task["data"]["note"]
    assert f"second {s} (of 5)" in note and f"frame {task['data']['frame_index'] + 1} of " in note
    assert f"the audio player starts at it (0 s there is second {s} of the clip)" in note
    shots = []
    driver = studio_page  # the worker's logged-in Chromium (media may play without a gesture)
    set_window(driver, "1366,768")
    driver.get(f"{studio_server.url}/projects/{media.project_id}/data?task={task['id']}")
    try:
        opened = WebDriverWait(driver, WAIT_S).until(lambda d: (st := d.execute_script(AUDIO_JS)) and
                                                     st["regions"] and st)
        shots.append(tmp_path / "audio-opened.png")
        driver.save_screenshot(str(shots[-1]))
        # the annotator: Alt+. selects the region (or a click on it in the Regions list), then Ctrl+P
        assert WebDriverWait(driver, 30).until(lambda d: [e for e in d.find_elements(
            By.XPATH, f"//*[contains(text(), \"{cfg.SECOND_LABEL}\")]") if e.is_displayed()])  # listed
        ActionChains(driver).key_down(Keys.ALT).send_keys(".").key_up(Keys.ALT).perform()
        selected = WebDriverWait(driver, 30).until(lambda d: d.execute_script(AUDIO_JS)["selected"])
        ActionChains(driver).key_down(Keys.CONTROL).send_keys("p").key_up(Keys.CONTROL).perform()
        during = WebDriverWait(driver, 30, poll_frequency=0.05).until(
            lambda d: (st := d.execute_script(AUDIO_JS))["playing"] and st)
        time.sleep(2.0)  # longer than the second: playback stops at its end
        after = driver.execute_script(AUDIO_JS)
        shots.append(tmp_path / "audio-played.png")
        driver.save_screenshot(str(shots[-1]))
    finally:
        for shot in shots:
            if os.environ.get("AVS_TEST_SCREENSHOT_DIR"):
                shutil.copy(shot, Path(os.environ["AVS_TEST_SCREENSHOT_DIR"]) / shot.name)
    regions = [(r["start"], r["end"]) for r in opened["regions"]]
    assert regions == [(0, 1)], regions
    assert opened["regions"][0]["labels"] == [cfg.SECOND_LABEL] and opened["regions"][0]["readonly"]
    # the player opens at the task's second: position 0 of an audio that is the clip (5 s) from second s on
    assert opened["time"] == 0 and opened["duration"] == pytest.approx(5.0 - s, abs=0.05), opened
    assert selected == [[0, 1]]
    print(f"audio of {opened['duration']:.3f} s (clip from second {s}), opened at {opened['time']:.2f} s; "
          f"playing at {during['time']:.3f} s; stopped at {after['time']:.3f} s")
    assert 0 <= during["time"] < 1, during  # playing inside the task's second
    assert not after["playing"] and after["time"] == pytest.approx(1, abs=0.15), after  # ... and only it
