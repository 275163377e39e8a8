"""Headless Chromium for the tests that look at pages (Label Studio tasks, QA and release-check reports).

`chromium(*args, window=...)` is a context manager giving a selenium driver (Debian's chromium and
chromium-driver; missing ones FAIL the test, never skip it). The Label Studio tests share one logged-in driver per
worker (`studio_browser`/`studio_page` in tests/studio/conftest.py): `set_window(driver, "W,H")` gives it the window a
new one would get from --window-size=W,H (the same innerWidth/innerHeight), `leave(driver)` leaves the page. `look_at_report(page, shot, n_img, needle)`
opens a self-contained HTML report: every <img> decoded, `needle` in the text, a screenshot saved that
is not blank.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = Path("/usr/bin/chromium")
WAIT_S = 240  # the Label Studio editor on a machine loaded by other jobs


def chromedriver() -> Path | None:
    found = shutil.which("chromedriver")
    return Path(found) if found else None


@contextlib.contextmanager
def chromium(*args: str, window: str = "1300,2400"):
    if not CHROMIUM.exists() or chromedriver() is None:
        pytest.fail("headless Chromium is needed: apt-get install chromium chromium-driver", pytrace=False)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", f"--window-size={window}", *args):
        opts.add_argument(a)
    # its profile and the folder of its singleton socket go in a folder of its own, removed after (Chromium leaves
    # /tmp/org.chromium.Chromium.* behind at every start otherwise)
    scratch = tempfile.mkdtemp(prefix="avs-chromium-")
    try:
        service = Service(str(chromedriver()), env={**os.environ, "TMPDIR": scratch})
        driver = webdriver.Chrome(service=service, options=opts)
        try:
            yield driver
        finally:
            driver.quit()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def set_window(driver, window: str) -> None:
    """Resize the window to "W,H": what `--window-size=W,H` gives a new Chromium (headless: the same viewport)."""
    w, h = (int(v) for v in window.split(","))
    driver.set_window_size(w, h)


def leave(driver) -> None:
    """Go to a blank page, accepting a "leave the page?" prompt if the editor raises one."""
    from selenium.common.exceptions import NoAlertPresentException, UnexpectedAlertPresentException

    for _ in range(3):
        try:
            driver.get("about:blank")
            return
        except UnexpectedAlertPresentException:
            with contextlib.suppress(NoAlertPresentException):
                driver.switch_to.alert.accept()


def look_at_report(page: Path, shot: Path, n_img: int, needles: tuple[str, ...], window: str = "1300,2400") -> str:
    """Open `page`: n_img images, each decoded; every needle in the body text; a non-blank screenshot at
    `shot`. -> the body text."""
    from PIL import Image
    from selenium.webdriver.common.by import By

    with chromium(window=window) as d:
        d.get(page.resolve().as_uri())
        imgs = d.find_elements(By.TAG_NAME, "img")
        assert len(imgs) == n_img
        assert all(d.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", i) for i in imgs)
        text = d.find_element(By.TAG_NAME, "body").text
        for needle in needles:
            assert needle in text, needle
        d.save_screenshot(str(shot))
    assert np.asarray(Image.open(shot).convert("L")).std() > 10  # not a blank page
    return text


def login(driver, server) -> None:
    """Log in to the run's Label Studio server through its login form."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(server.url + "/user/login/")
    driver.find_element(By.NAME, "email").send_keys(server.username)
    driver.find_element(By.NAME, "password").send_keys(server.password)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    WebDriverWait(driver, WAIT_S).until(lambda d: "/user/login" not in d.current_url)
