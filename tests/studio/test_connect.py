"""connect(): which server and key a command uses, and one-line errors for down / wrong URL / wrong key."""

from __future__ import annotations

import socket
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from avsbench_tools.errors import UsageError
from avsbench_tools.studio.connect import NO_SERVER, Connection, StudioUnreachable, connect
from tests.helpers import run_cli
from tests.helpers.studio_server import make_user, sdk_client

WRONG = "0123456789abcdef" * 2 + "01234567"  # 40 hex digits, as a real token


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv("LABEL_STUDIO_URL", raising=False)
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    return monkeypatch


@pytest.fixture
def plain_http(tmp_path):
    """A loopback web server that is not Label Studio (python's http.server)."""
    (tmp_path / "index.html").write_text("<html>hello</html>")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(tmp_path)))
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *a):
        pass


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _message(conn: Connection) -> str:
    with pytest.raises(StudioUnreachable) as exc:
        conn.check()
    text = str(exc.value)
    assert "\n" not in text and conn.api_key not in text
    return text


def test_the_workspace_server_is_found_and_accepts_its_token(studio_server, no_env):
    conn = connect(studio_server.ws)
    assert (conn.url, conn.api_key, conn.source) == (studio_server.url, studio_server.api_key, "workspace")
    assert conn.document_root == str(studio_server.ws)
    assert studio_server.api_key not in repr(conn) and studio_server.api_key not in str(conn)
    assert conn.check() == studio_server.username
    assert conn.client().users.whoami().email == studio_server.username  # the SDK sends `Token <key>`


def test_server_down_wrong_url_and_wrong_key_are_one_line(studio_server, plain_http, no_env):
    down = f"http://127.0.0.1:{_closed_port()}"
    assert _message(Connection(down, studio_server.api_key, "option")) == \
        f"cannot reach Label Studio at {down}: connection refused"
    assert _message(Connection(plain_http, studio_server.api_key, "option")) == \
        f"{plain_http} is not a Label Studio server (GET /health answered HTTP 404)"
    assert _message(Connection(studio_server.url, WRONG, "option")) == \
        f"Label Studio at {studio_server.url} refused the API key (401)"
    log = (studio_server.ws / "studio" / "server.log").read_text()
    assert WRONG not in log and studio_server.api_key not in log


def test_a_second_user_gets_its_own_working_key(studio_server, no_env):
    key = make_user(studio_server, "second.annotator@example.org")
    assert key != studio_server.api_key
    assert Connection(studio_server.url, key, "option").check() == "second.annotator@example.org"
    admin = studio_server.client()
    project = admin.projects.create(title="seen by both", label_config='<View><Image name="image" value="$image"/></View>')
    try:
        assert project.id in [p.id for p in sdk_client(studio_server.url, key).projects.list()]
    finally:
        admin.projects.delete(id=project.id)


def test_resolution_order(studio_server, tmp_path, no_env):
    ws = studio_server.ws
    other = "http://127.0.0.1:9"
    no_env.setenv("LABEL_STUDIO_URL", other + "/")
    no_env.setenv("LABEL_STUDIO_API_KEY", "envkey")
    c = connect(ws)
    assert (c.url, c.api_key, c.source, c.document_root) == (other, "envkey", "env", None)
    c = connect(ws, url="http://127.0.0.1:8/", api_key="optkey")
    assert (c.url, c.api_key, c.source) == ("http://127.0.0.1:8", "optkey", "option")
    c = connect(ws, url="http://127.0.0.1:8")  # the option's URL with the environment's key
    assert (c.api_key, c.source) == ("envkey", "option")
    no_env.delenv("LABEL_STUDIO_API_KEY")
    with pytest.raises(UsageError, match=r"^no API key for http://127.0.0.1:9: pass --api-key or set "):
        connect(ws)  # the workspace's token is never sent to another server
    no_env.setenv("LABEL_STUDIO_URL", studio_server.url)
    c = connect(ws)  # the workspace's own URL given explicitly: its token goes with it
    assert (c.api_key, c.source, c.document_root) == (studio_server.api_key, "env", str(ws))
    no_env.delenv("LABEL_STUDIO_URL")
    with pytest.raises(UsageError, match="--api-key needs --url"):
        connect(ws, api_key="k")
    with pytest.raises(UsageError, match="is not an http"):
        connect(ws, url="localhost:8080", api_key="k")
    run_cli("init", tmp_path / "empty", "--recipe", "avsbench-ms3", check=True)
    with pytest.raises(UsageError) as exc:
        connect(tmp_path / "empty")
    assert str(exc.value) == NO_SERVER
    no_env.setenv("LABEL_STUDIO_API_KEY", "envkey")  # a key alone does not pick a server
    with pytest.raises(UsageError, match="no Label Studio server"):
        connect(tmp_path / "empty")


def test_a_stopped_workspace_server_is_not_used(studio_template, tmp_path, no_env):
    from tests.helpers.studio_server import copy_template

    ws = tmp_path / "ws"
    run_cli("init", ws, "--recipe", "avsbench-ms3", check=True)
    copy_template(studio_template, ws)
    (ws / "studio" / "server.json").write_text('{"pid": 999999999, "url": "http://127.0.0.1:9", "host": "127.0.0.1", '
                                               '"port": 9, "username": "u", "document_root": "/"}')
    with pytest.raises(UsageError) as exc:
        connect(ws)
    assert str(exc.value) == NO_SERVER and not (ws / "studio" / "server.json").exists()


def test_connection_repr_hides_the_key():
    c = Connection("http://x", "s3cret-key", "option")
    assert "s3cret-key" not in repr(c) and "s3cret-key" not in f"{c}"
