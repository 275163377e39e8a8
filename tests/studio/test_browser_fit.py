"""The whole frame is visible when a task opens (issue 22 item 2): headless Chromium at 1366x768 and 1920x1080,
320x240 and 1280x720 frames, in the task view (data manager) and in the label stream.

A scratch project per frame size with our labelling config (`studio.labelling.label_config`) and one task whose
frame is a PNG with a 4-pixel red border, served from the run's real Label Studio (tests/studio/conftest.py).
The frame's <img> rectangle on the page is intersected with every clipping ancestor and the window: all of it
must be inside (a 1 px rounding margin), and the red border must show on all four sides of the screenshot.
Screenshots are kept in the test's tmp dir (and copied to $AVS_TEST_SCREENSHOT_DIR when set). The tests share the
worker's logged-in Chromium (`studio_page`), resized to each window (the same viewport as a Chromium started in it).
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from avsbench_tools.recipe import load_recipe
from avsbench_tools.studio import labelling as cfg
from tests.helpers.browser import WAIT_S, set_window

SIZES = ((320, 240), (1280, 720))
WINDOWS = ("1366,768", "1920,1080")

#: the <img>'s rectangle, and the part of the page that shows it: the window cut by every clipping ancestor
VISIBLE_JS = """
const img = document.querySelector('img[alt="image"]');
if (!img || !img.complete || img.naturalWidth === 0) return null;  // the editor re-renders the frame: poll again
const r = img.getBoundingClientRect();
let clip = [0, 0, innerWidth, innerHeight];
for (let c = img.parentElement; c; c = c.parentElement) {
  const s = getComputedStyle(c);
  if (s.overflowX !== 'visible' || s.overflowY !== 'visible') {
    const b = c.getBoundingClientRect();
    clip = [Math.max(clip[0], b.left), Math.max(clip[1], b.top), Math.min(clip[2], b.right), Math.min(clip[3], b.bottom)];
  }
}
return {img: [r.left, r.top, r.right, r.bottom, img.naturalWidth, img.naturalHeight], clip: clip,
        dpr: devicePixelRatio};
"""
IMG_READY = ("const i = document.querySelector('img[alt=\"image\"]'); "
             "return !!i && i.complete && i.naturalWidth > 0 && i.getBoundingClientRect().width > 0")


@pytest.fixture(scope="module")
def fit_projects(studio_server):
    """{(w, h): (project id, task id)}: one scratch project per frame size (deleted afterwards)."""
    import requests
    from PIL import Image

    folder = studio_server.ws / "fit-frames"  # inside the server's document root
    folder.mkdir(exist_ok=True)
    client = studio_server.client()
    xml = cfg.label_config(load_recipe("avsbench-s4"))
    made = {}
    try:
        for w, h in SIZES:
            a = np.full((h, w, 3), (40, 90, 160), np.uint8)
            a[:4], a[-4:], a[:, :4], a[:, -4:] = (255, 0, 0), (255, 0, 0), (255, 0, 0), (255, 0, 0)
            Image.fromarray(a).save(folder / f"frame-{w}x{h}.png")
            p = client.projects.create(title=f"fit {w}x{h}", label_config=xml)
            made[(w, h)] = p.id
            requests.post(f"{studio_server.url}/api/storages/localfiles/", timeout=60,
                          headers={"Authorization": f"Token {studio_server.api_key}"},
                          json={"project": p.id, "path": str(folder), "title": "fit frames", "use_blob_urls": False,
                                "regex_filter": "^$"}).raise_for_status()
            client.projects.import_tasks(id=p.id, request=[{"data": {
                "image": f"/data/local-files/?d=fit-frames/frame-{w}x{h}.png", "audio": "", "video": "",
                "note": f"a {w}x{h} frame", "fps": 25}}])
        yield {size: (pid, next(iter(client.tasks.list(project=pid))).id) for size, pid in made.items()}
    finally:
        for pid in made.values():
            client.projects.delete(id=pid)


def _red_box(png: bytes, dpr: float, near: list[float]) -> tuple[list[float], bool]:
    """The bounding box (CSS px) of the frame's red border in the screenshot, looked for within 8 px of the
    box `near` (not the page's red logo), and whether the border is whole: each of its four sides red along
    >= 90% of its length."""
    from PIL import Image

    shot = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    red = (shot[..., 0] > 180) & (shot[..., 1] < 90) & (shot[..., 2] < 90)
    x0, y0 = (max(0, int((v - 8) * dpr)) for v in near[:2])
    x1, y1 = (int((v + 8) * dpr) for v in near[2:])
    keep = np.zeros_like(red)
    keep[y0:y1, x0:x1] = True
    red &= keep
    ys, xs = np.nonzero(red)
    if not len(xs):
        return [0, 0, 0, 0], False
    x0, x1, y0, y1 = xs.min(), xs.max(), ys.min(), ys.max()
    box = red[y0:y1 + 1, x0:x1 + 1]
    whole = all(line.mean() >= 0.9 for line in (box[0], box[-1], box[:, 0], box[:, -1]))
    return [x0 / dpr, y0 / dpr, (x1 + 1) / dpr, (y1 + 1) / dpr], whole


def _settled(driver, timeout: float = 30.0) -> dict:
    """VISIBLE_JS once the frame's box stopped changing (the editor sizes the frame after it loads, and may
    replace the <img> while it does: a missing frame is polled again, never read)."""
    import time

    last, end = None, time.monotonic() + timeout
    while True:
        geo = driver.execute_script(VISIBLE_JS)
        if geo is not None and geo == last:
            return geo
        if time.monotonic() > end:
            assert geo is not None, f"the frame's <img> did not stay on the page for {timeout:.0f} s"
            return geo
        last = geo
        time.sleep(1.0)


@pytest.mark.parametrize("window", WINDOWS)
def test_the_whole_frame_is_visible_when_a_task_opens(studio_server, studio_page, fit_projects, window, tmp_path):
    from selenium.webdriver.support.ui import WebDriverWait

    seen = []
    driver = studio_page  # the worker's logged-in Chromium, in this window
    set_window(driver, window)
    for view in ("task", "stream"):
        for (w, h), (pid, tid) in fit_projects.items():
            url = (f"{studio_server.url}/projects/{pid}/data?task={tid}" if view == "task"
                   else f"{studio_server.url}/projects/{pid}/data?labeling=1")
            driver.get(url)
            shot = tmp_path / f"{window.replace(',', 'x')}-{view}-{w}x{h}.png"
            try:
                WebDriverWait(driver, WAIT_S).until(lambda d: d.execute_script(IMG_READY))
                geo = _settled(driver)
            finally:
                driver.save_screenshot(str(shot))
                if os.environ.get("AVS_TEST_SCREENSHOT_DIR"):
                    shutil.copy(shot, Path(os.environ["AVS_TEST_SCREENSHOT_DIR"]) / shot.name)
            left, top, right, bottom, nat_w, nat_h = geo["img"]
            c = geo["clip"]
            scale = (right - left) / nat_w
            seen.append(f"{view} {w}x{h}: zoom {scale:.2f}, img {[round(v) for v in geo['img'][:4]]}, "
                        f"visible box {[round(v) for v in c]}")
            assert (nat_w, nat_h) == (w, h)
            assert (bottom - top) / nat_h == pytest.approx(scale, rel=0.02), "the frame is drawn out of shape"
            assert left >= c[0] - 1 and top >= c[1] - 1 and right <= c[2] + 1 and bottom <= c[3] + 1, (
                f"{window} {view} {w}x{h}: part of the frame is cut off ({seen[-1]})")
            # what is on screen: the frame's red border, whole, where the page says the frame is
            drawn, whole = _red_box(driver.get_screenshot_as_png(), geo["dpr"], c)
            assert whole, f"{window} {view} {w}x{h}: the frame's border is not whole on screen ({shot})"
            assert drawn == pytest.approx([left, top, right, bottom], abs=3), (
                f"{window} {view} {w}x{h}: the frame is drawn at {drawn}, not at its box ({seen[-1]})")
    print("\n".join(seen))


def test_the_video_counts_the_clips_frames_and_the_header_names_the_frame(studio_server, studio_page, tmp_path):
    """A pushed task: its data carry the clip's frame rate, the header names the frame's number in the clip,
    and the editor's video counter counts the clip's frames (Label Studio assumes 24 fps without frameRate)."""
    import re

    from selenium.webdriver.support.ui import WebDriverWait

    from avsbench_tools.workspace import open_workspace
    from tests.helpers.studio_media import pushed_media

    media = pushed_media(studio_server)
    task = min(media.tasks, key=lambda t: t["data"]["second"])
    w = open_workspace(media.ws)
    try:
        clip = w.catalog.clip(task["data"]["clip_id"])
    finally:
        w.close()
    assert clip.fps and clip.n_frames and task["data"]["fps"] == pytest.approx(clip.fps, abs=1e-3)
    assert f"the clip's frame {task['data']['frame_index'] + 1} of {clip.n_frames}," in task["data"]["note"]
    driver = studio_page
    set_window(driver, "1366,768")
    driver.get(f"{studio_server.url}/projects/{media.project_id}/data?task={task['id']}")
    shot = tmp_path / "video-counter.png"
    try:
        WebDriverWait(driver, WAIT_S).until(lambda d: d.execute_script(
            "const v = document.querySelector('video'); return !!v && v.readyState >= 1 && v.duration > 0"))
        counter = WebDriverWait(driver, 30).until(lambda d: re.findall(
            r"(\d+)\s*of\s*(\d+)", d.execute_script("return document.body.innerText")))
        body = driver.execute_script("return document.body.innerText")
    finally:
        driver.save_screenshot(str(shot))
    assert str(clip.n_frames) in {total for _, total in counter}, (
        f"the video counter shows {counter}, the clip has {clip.n_frames} frames")
    assert f"frame {task['data']['frame_index'] + 1} of {clip.n_frames}" in body  # the header, on the page
    assert "Shift+1 zooms to fit" in body and "Regions list" in body  # the tools line
