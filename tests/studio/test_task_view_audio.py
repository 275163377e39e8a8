"""Sound on the task's second (issue 22 item 5), in headless Chromium against the run's real Label Studio.

Every prediction push sends holds a read-only audio region [s, s+1) of the hidden `<Labels name="second">`
(studio.config.SECOND): the editor draws it on the clip's waveform. Label Studio 1.23's Audio tag has no
attribute that sets where its player starts (it opens at 0 s), but it plays a selected region from its start to
its end: the annotator presses Alt+. (Label Studio's "cycle regions": the region is every prediction's first) or
clicks it in the Regions list, then the Audio tag's hotkey (Ctrl+P) plays just that second. The test does exactly
that and reads the player's position from the editor's store. Pull ignores the region (an accepted prediction's copy
of it is no mask: test_pull's round trip accepts predictions holding it).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from avsbench_tools.studio import config as cfg
from avsbench_tools.studio.push_build import second_region
from studio.test_browser import WAIT_S, login
from tests.helpers.browser import chromium

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
    r = second_region(2, 5)
    assert (r["from_name"], r["to_name"], r["type"], r["readonly"]) == (cfg.SECOND, cfg.AUDIO, "labels", True)
    assert r["value"]["start"] == 2.0 and r["value"]["end"] == 3.0 and r["value"]["labels"] == [cfg.SECOND_LABEL]
    assert second_region(9, 9.5)["value"]["end"] == 9.5  # never past the clip's end


def test_the_audio_marks_the_tasks_second_and_ctrl_p_plays_just_it(studio_server, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    from studio.test_serving import pushed_media

    media = pushed_media(studio_server)
    task = next(t for t in media.tasks if t["data"]["second"] == 2)
    s = task["data"]["second"]
    # every prediction carries the region; the header names the second and the frame in the clip
    for p in task["predictions"]:
        (reg,) = [r for r in p["result"] if r["from_name"] == cfg.SECOND]
        assert p["result"][0] == reg  # the first region: Alt+. (cycle regions) selects it first
        assert (reg["value"]["start"], reg["value"]["end"]) == (s, s + 1) and reg["readonly"]
    assert f"second {s} (of 5)" in task["data"]["note"] and f"frame {task['data']['frame_index'] + 1} of " in \
        task["data"]["note"]
    shots = []
    with chromium("--autoplay-policy=no-user-gesture-required", window="1366,768") as driver:
        login(driver, studio_server)
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
    assert regions == [(s, s + 1)], regions
    assert opened["regions"][0]["labels"] == [cfg.SECOND_LABEL] and opened["regions"][0]["readonly"]
    assert selected == [[s, s + 1]]
    assert opened["duration"] == pytest.approx(5.0, abs=0.1)
    print(f"opened at {opened['time']:.2f} s; playing at {during['time']:.3f} s; stopped at {after['time']:.3f} s")
    assert s <= during["time"] < s + 1, during  # playing inside the task's second
    assert not after["playing"] and after["time"] == pytest.approx(s + 1, abs=0.15), after  # ... and only it
