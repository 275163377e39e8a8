"""A real browser on a pushed task: the prediction's brush region is drawn where its mask is, and the
audio player holds the clip's audio.

Headless Chromium (Debian's `chromium` + `chromium-driver`, through selenium), logged in to the run's
real Label Studio server with its username and password (tests/studio/conftest.py `studio_browser`),
opens the pushed task whose prediction has the largest mask, and reads the editor's canvases back:
the layer painted in the label's colour must cover the predicted mask (IoU >= 0.8 after mapping
image pixels to canvas pixels through the page geometry). This is the check that predictions
actually show (a prediction with a wrong name or an undecodable RLE is accepted by the server and
silently never drawn). A screenshot is saved in the test's tmp dir (and copied to
$AVS_TEST_SCREENSHOT_DIR when set).
"""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.browser import WAIT_S, set_window
from tests.helpers.studio_media import pushed_media


def predicted_mask(task: dict) -> tuple[str, np.ndarray]:
    """(label, bool mask) of the task's first brush region, decoded with the SDK's own decoder."""
    from label_studio_sdk.converter.brush import decode_rle

    from avsbench_tools.studio.push_build import SILENT_SUFFIX

    brush = [r for p in task["predictions"] if not p["model_version"].endswith(SILENT_SUFFIX)  # the accepted one
             for r in p["result"] if r["type"] == "brushlabels"]
    if not brush:  # a silent second: the accepted prediction holds no region
        return "", np.zeros((int(task["data"]["height"]), int(task["data"]["width"])), bool)
    r = brush[0]
    alpha = decode_rle(r["value"]["rle"]).reshape(r["original_height"], r["original_width"], 4)[..., 3]
    return r["value"]["brushlabels"][0], alpha >= 128


def label_colour(config: str, label: str) -> np.ndarray:
    m = re.search(rf'<Label value="{re.escape(label)}" background="#([0-9a-fA-F]{{6}})"', config)
    assert m, f"no colour for {label} in the labelling config"
    return np.array([int(m.group(1)[i: i + 2], 16) for i in (0, 2, 4)])


@pytest.fixture
def browser(studio_page):
    """The worker's logged-in Chromium (tests/studio/conftest.py) in a 1600x1000 window."""
    set_window(studio_page, "1600,1000")
    return studio_page


GEOMETRY_JS = """
const img = document.querySelector('img[alt="image"]');
const box = document.querySelector('.konvajs-content');
const r = img.getBoundingClientRect(), k = box.getBoundingClientRect();
const audio = document.querySelector('audio');
return {img: [r.left, r.top, r.width, r.height, img.naturalWidth, img.naturalHeight],
        stage: [k.left, k.top, k.width, k.height],
        layers: [...box.querySelectorAll('canvas')].map(c => c.toDataURL('image/png')),
        audio: audio ? [audio.src, audio.duration, audio.readyState] : null};
"""


def _decode_png(data_url: str) -> np.ndarray:
    from PIL import Image

    return np.array(Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))).convert("RGBA"))


def expected_on_canvas(mask: np.ndarray, geo: dict, shape: tuple[int, int]) -> np.ndarray:
    """The mask as it should appear on a canvas of `shape`: each canvas pixel's centre mapped through
    the page (stage box, then the displayed image box) to an image pixel."""
    left, top, width, height, nat_w, nat_h = geo["img"]
    s_left, s_top, s_width, s_height = geo["stage"]
    ch, cw = shape
    u = np.floor((s_left + (np.arange(cw) + 0.5) * s_width / cw - left) * nat_w / width).astype(int)
    v = np.floor((s_top + (np.arange(ch) + 0.5) * s_height / ch - top) * nat_h / height).astype(int)
    out = np.zeros(shape, bool)
    ok_u, ok_v = (u >= 0) & (u < nat_w), (v >= 0) & (v < nat_h)
    out[np.ix_(ok_v, ok_u)] = mask[np.ix_(v[ok_v], u[ok_u])]
    return out


def test_prediction_drawn_and_audio_player_present(studio_server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from avsbench_tools.studio.labelling import SECOND_LABEL

    media = pushed_media(studio_server)
    task = max(media.tasks, key=lambda t: predicted_mask(t)[1].sum())
    label, mask = predicted_mask(task)
    assert mask.sum() > 100, "the pushed prediction has no mask to look for"
    colour = label_colour(studio_server.client().projects.get(media.project_id).label_config, label)

    browser.get(f"{studio_server.url}/projects/{media.project_id}/data?task={task['id']}")
    wait = WebDriverWait(browser, WAIT_S)
    try:  # the region list names the predicted region; the frame and the audio have loaded
        wait.until(lambda d: [e.text.strip() for e in d.find_elements(By.CSS_SELECTOR, ".lsf-outliner-item")])
        items = [e.text.split() for e in browser.find_elements(By.CSS_SELECTOR, ".lsf-outliner-item")]
        # the predicted region, after the task's second on the audio (studio.labelling.SECOND, the first region)
        assert items == [["1", *SECOND_LABEL.split()], ["2", label]], (
            f"the region list shows {items}, not the audio's second and the one predicted {label} region")
        wait.until(lambda d: d.execute_script(
            "const i = document.querySelector('img[alt=\"image\"]'); return !!i && i.complete && i.naturalWidth > 0"))
        wait.until(lambda d: d.execute_script(
            "const a = document.querySelector('audio'); return !!a && a.readyState >= 1 && a.duration > 0"))
        wait.until(lambda d: any(
            (lambda im: (im[..., 3] > 0).sum() > 0.5 * mask.sum())(_decode_png(u))
            for u in d.execute_script(GEOMETRY_JS)["layers"][1:]))
    finally:
        shot = tmp_path / "editor.png"
        browser.save_screenshot(str(shot))
        if os.environ.get("AVS_TEST_SCREENSHOT_DIR"):
            shutil.copy(shot, Path(os.environ["AVS_TEST_SCREENSHOT_DIR"]) / "browser.png")
    geo = browser.execute_script(GEOMETRY_JS)

    assert geo["img"][4:] == [task["data"]["width"], task["data"]["height"]]  # the frame, at its pixel size
    src, duration, _ = geo["audio"]
    assert src == studio_server.url + task["data"]["audio"]
    # the clip's audio from the task's second on (studio/excerpt.py), fetched and decoded
    assert duration == pytest.approx(5.0 - task["data"]["second"], abs=0.1)
    assert browser.find_elements(By.CSS_SELECTOR, "[data-testid=waveform-audio]")

    # The brush layer: painted in the label's colour, where the mask is.
    painted = []
    for url in geo["layers"]:
        im = _decode_png(url)
        on = im[..., 3] > 0
        if on.any() and np.abs(im[on][:, :3].mean(axis=0) - colour).max() < 24:
            painted.append(on)
    assert len(painted) == 1, f"{len(painted)} canvas layers painted in {label}'s colour {colour.tolist()}"
    drawn = painted[0]
    want = expected_on_canvas(mask, geo, drawn.shape)
    iou = (drawn & want).sum() / (drawn | want).sum()
    print(f"{label} region drawn: {drawn.sum()} canvas pixels, expected {want.sum()}, IoU {iou:.3f}")
    assert iou >= 0.8, f"the drawn region misses the predicted mask: IoU {iou:.2f}"
