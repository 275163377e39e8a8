"""Frames, audio and video of pushed tasks are served by the run's real Label Studio server
(tests/studio/conftest.py `studio_server`) to an authenticated client only, with Range requests.

The workspace is made and pushed through the real CLI (synth, init, collect --world, sample,
preannotate --backend motion, push) inside the server's local-files document root, once per test
run (`pushed_media`, shared with test_browser.py).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
import requests

from tests.helpers.studio_media import WS_NAME, Media, pushed_media, served_file  # noqa: F401

MEDIA_KEYS = ("image", "audio", "video")


def login(server) -> requests.Session:
    """A requests session logged in through Label Studio's login form, like a browser."""
    s = requests.Session()
    page = s.get(server.url + "/user/login/", timeout=60)
    m = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert page.status_code == 200 and m, f"login page: HTTP {page.status_code}"
    r = s.post(server.url + "/user/login/", timeout=60, allow_redirects=False,
               data={"csrfmiddlewaretoken": m.group(1), "email": server.username, "password": server.password},
               headers={"Referer": server.url + "/user/login/"})
    assert r.status_code == 302 and "sessionid" in s.cookies, f"login refused: HTTP {r.status_code}"
    return s


@pytest.fixture(scope="module")
def media(studio_server) -> Media:
    return pushed_media(studio_server)


@pytest.fixture(scope="module")
def session(studio_server) -> requests.Session:
    s = login(studio_server)
    yield s
    s.close()


def _media_urls(media: Media) -> list[str]:
    t = media.tasks[0]
    urls = [t["data"][k] for k in MEDIA_KEYS]
    assert all(u.startswith("/data/local-files/?d=") for u in urls), urls
    return urls


def _refused(r: requests.Response, body: bytes) -> bool:
    """Not served: 401/403, or a redirect to the login page; and the file's bytes are not in the answer."""
    to_login = r.status_code in (301, 302) and "/user/login" in r.headers.get("Location", "")
    return (r.status_code in (401, 403) or to_login) and body[:64] not in r.content


def test_task_media_are_workspace_files(studio_server, media):
    for url in _media_urls(media):
        path = served_file(studio_server, url)
        assert path.is_file() and media.ws in path.parents, url
    kinds = {served_file(studio_server, u).suffix for u in _media_urls(media)}
    assert kinds == {".png", ".wav", ".mp4"}


def test_served_whole_to_a_logged_in_session(studio_server, media, session):
    types = {".png": "image/png", ".wav": "audio", ".mp4": "video/mp4"}
    for url in _media_urls(media):
        body = served_file(studio_server, url).read_bytes()
        r = session.get(studio_server.url + url, timeout=60)
        assert r.status_code == 200, (url, r.status_code)
        assert r.content == body, url
        assert r.headers["Content-Type"].startswith(types[served_file(studio_server, url).suffix])


@pytest.mark.parametrize("spec", ["bytes=100-199", "bytes=0-0", "bytes=1000-", "bytes=-50"])
def test_range_requests(studio_server, media, session, spec):
    """The slice asked for, 206 and its Content-Range: audio and video can seek."""
    for url in _media_urls(media):
        body = served_file(studio_server, url).read_bytes()
        first, last = spec[len("bytes="):].split("-")
        if not first:
            lo, hi = len(body) - int(last), len(body) - 1
        else:
            lo, hi = int(first), int(last) if last else len(body) - 1
        r = session.get(studio_server.url + url, headers={"Range": spec}, timeout=60)
        assert r.status_code == 206, (url, spec, r.status_code)
        assert r.content == body[lo: hi + 1], (url, spec)
        assert r.headers["Content-Range"] == f"bytes {lo}-{hi}/{len(body)}"


def test_served_to_the_api_token(studio_server, media):
    auth = {"Authorization": f"Token {studio_server.api_key}"}
    for url in _media_urls(media):
        body = served_file(studio_server, url).read_bytes()
        r = requests.get(studio_server.url + url, headers=auth, timeout=60)
        assert r.status_code == 200 and r.content == body, url
        r = requests.get(studio_server.url + url, headers={**auth, "Range": "bytes=10-19"}, timeout=60)
        assert r.status_code == 206 and r.content == body[10:20], url


def test_refused_without_a_session(studio_server, media):
    for url in _media_urls(media):
        body = served_file(studio_server, url).read_bytes()
        for headers in ({}, {"Range": "bytes=0-99"}, {"Authorization": "Token not-the-token"}):
            r = requests.get(studio_server.url + url, headers=headers, timeout=60, allow_redirects=False)
            assert _refused(r, body), (url, headers, r.status_code)
    s = requests.Session()  # a session cookie that is not a login
    s.cookies.set("sessionid", "forged", domain=urlsplit(studio_server.url).hostname)
    r = s.get(studio_server.url + _media_urls(media)[0], timeout=60, allow_redirects=False)
    assert _refused(r, served_file(studio_server, _media_urls(media)[0]).read_bytes()), r.status_code


def test_secrets_and_unlisted_files_are_not_served(studio_server, media, session):
    """Only the folders push registered as storages are served, even to a logged-in user: never the
    server's token, credentials or data dir, nor the workspace's catalog, nor paths climbing out."""
    token = studio_server.api_key.encode()
    names = ["studio/token", "studio/credentials", "studio/server.json", "studio/data/label_studio.sqlite3",
             f"{WS_NAME}/catalog.sqlite", f"{WS_NAME}/recipe.toml", f"{WS_NAME}/frames/../catalog.sqlite",
             f"{WS_NAME}/frames/../../studio/token", "../" * 8 + "etc/passwd"]
    for rel in names:
        r = session.get(studio_server.url + "/data/local-files/", params={"d": rel}, timeout=60)
        assert r.status_code in (400, 403, 404, 500), (rel, r.status_code)
        assert token not in r.content and b"root:" not in r.content, rel
