"""avs-tools studio start / stop / status against a real Label Studio on loopback.

A start that brings a server up runs as a process (the server outlives it; Ctrl-C reaches it); the other commands
(status, stop, a start that finds the server running or refuses) run in the test's process (`cli_here`: the same
exit code and output, without a Python start per command)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import psutil

from tests.helpers import cli_here, run_cli
from tests.helpers.studio_server import START_TIMEOUT, copy_template, group_processes, start_from_template


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def _files_holding(root: Path, secret: str, skip: set[Path]) -> list[Path]:
    hits = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            p = Path(dirpath) / name
            if p not in skip and secret.encode() in p.read_bytes():
                hits.append(p)
    return hits


def test_status_json_files_modes_and_loopback_only(studio_server):
    ws, studio = studio_server.ws, studio_server.ws / "studio"
    st = cli_here("studio", "status", ws, "--json", check=True)
    assert json.loads(st.stdout) == {"running": True, "url": studio_server.url, "token_file": str(studio / "token")}
    assert _mode(studio / "token") == 0o600 and _mode(studio / "credentials") == 0o600
    state = json.loads((studio / "server.json").read_text())
    assert state["host"] == "127.0.0.1" and state["document_root"] == os.path.abspath(ws)
    assert "token" not in state and studio_server.api_key not in json.dumps(state)
    listening = [c.laddr for p in [psutil.Process(studio_server.pid), *psutil.Process(studio_server.pid).children(True)]
                 for c in p.net_connections("inet") if c.status == psutil.CONN_LISTEN]
    assert listening and all(a.ip == "127.0.0.1" for a in listening), listening
    assert [a.port for a in listening] == [state["port"]]
    from avsbench_tools.studio.process import announced_port

    assert announced_port(studio / "server.log", 0) == state["port"]  # the port is read from what the server says
    out = studio_server.start.stdout
    assert f"running at {studio_server.url}" in out and f"login: {studio_server.username}" in out
    assert str(studio / "credentials") in out and out.rstrip().endswith(f"next: avs-tools push {ws}")
    text = cli_here("studio", "status", ws, check=True).stdout
    assert f"running at {studio_server.url}" in text


def test_the_token_is_only_in_its_file_and_the_database(studio_server):
    token, ws = studio_server.api_key, studio_server.ws
    client = studio_server.client()
    assert client.users.whoami().email == studio_server.username
    project = client.projects.create(title="leak check", label_config='<View><Image name="image" value="$image"/></View>')
    client.projects.import_tasks(id=project.id, request=[{"image": "/data/local-files/?d=x.jpg"}])
    list(client.tasks.list(project=project.id))
    client.projects.delete(id=project.id)
    status = cli_here("studio", "status", ws, "--json", check=True)
    again = cli_here("studio", "start", ws, check=True)
    for text in (studio_server.start.stdout, studio_server.start.stderr, status.stdout, again.stdout, again.stderr):
        assert token not in text
    data = ws / "studio" / "data"
    own = {ws / "studio" / "token", *data.glob("label_studio.sqlite3*")}
    assert _files_holding(ws, token, own) == []  # server.log, server.json, credentials, catalog, LS's .env, media
    assert "GET /api/" in (ws / "studio" / "server.log").read_text()  # the log does record the API calls
    cmdline = " ".join(psutil.Process(studio_server.pid).cmdline())
    assert token not in cmdline and studio_server.password not in cmdline  # secrets go by environment only
    assert "--internal-host 127.0.0.1" in cmdline


def test_start_again_is_idempotent(studio_server):
    again = cli_here("studio", "start", studio_server.ws, check=True)
    assert f"already running at {studio_server.url} (pid {studio_server.pid})" in again.stdout
    assert json.loads((studio_server.ws / "studio" / "server.json").read_text())["pid"] == studio_server.pid


def test_restart_keeps_the_token_stop_leaves_nothing_and_is_idempotent(studio_template, tmp_path):
    ws = tmp_path / "ws"
    cli_here("init", ws, "--recipe", "avsbench-ms3", check=True)
    copy_template(studio_template, ws)
    token = (ws / "studio" / "token").read_text()
    dead = subprocess.Popen(["true"])
    dead.wait()
    (ws / "studio" / "server.json").write_text(json.dumps({"pid": dead.pid, "url": "http://127.0.0.1:9", "host":
                                                           "127.0.0.1", "port": 9, "username": "x", "document_root": "/"}))
    assert json.loads(cli_here("studio", "status", ws, "--json").stdout)["running"] is False  # stale: dead pid
    start = run_cli("studio", "start", ws, "--timeout", str(START_TIMEOUT), timeout=START_TIMEOUT + 60)
    assert start.returncode == 0, start.stderr
    state = json.loads((ws / "studio" / "server.json").read_text())
    assert state["pid"] != dead.pid and "running at" in start.stdout
    assert (ws / "studio" / "token").read_text() == token  # a reused data dir keeps its first token
    from avsbench_tools.studio.connect import connect

    assert connect(ws).check() == json.loads((ws / "studio" / "credentials").read_text())["username"]
    assert group_processes(state["pid"])
    stop = cli_here("studio", "stop", ws, check=True)
    assert stop.stdout.strip() == "stopped Label Studio"
    assert not group_processes(state["pid"]) and not (ws / "studio" / "server.json").exists()
    assert cli_here("studio", "stop", ws, check=True).stdout.strip() == "Label Studio is not running"
    st = cli_here("studio", "status", ws, "--json", check=True)
    assert json.loads(st.stdout) == {"running": False, "url": None, "token_file": str(ws / "studio" / "token")}
    assert (ws / "studio" / "data" / "label_studio.sqlite3").is_file() and (ws / "studio" / "token").read_text() == token


def _wait_for(path: Path, seconds: float) -> None:
    end = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < end, f"{path} did not appear"
        time.sleep(0.05)


def test_ctrl_c_during_start_stops_the_half_started_server(studio_template, tmp_path):
    ws = tmp_path / "ws"
    cli_here("init", ws, "--recipe", "avsbench-ms3", check=True)
    copy_template(studio_template, ws)
    proc = subprocess.Popen([sys.executable, "-m", "avsbench_tools", "studio", "start", str(ws)], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    state_file = ws / "studio" / "server.json"
    _wait_for(state_file, 60)
    pid = json.loads(state_file.read_text())["pid"]
    assert group_processes(pid)  # the server is being started, in its own process group
    os.killpg(proc.pid, signal.SIGINT)
    t0 = time.monotonic()
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert time.monotonic() - t0 < 8  # SIGTERM, then SIGKILL after 5 s at the latest
    assert "interrupted:" in err and "half-started Label Studio server was stopped" in err
    assert not group_processes(pid) and not group_processes(proc.pid) and not state_file.exists()


def test_a_server_that_does_not_answer_in_time_is_stopped(studio_template, tmp_path):
    proc = start_from_template(studio_template, tmp_path / "ws", "--timeout", "1")
    assert proc.returncode == 1
    log = tmp_path / "ws" / "studio" / "server.log"
    assert re.fullmatch(rf"avs-tools: error: Label Studio did not answer at http://127\.0\.0\.1:\d+ within 1 s: "
                        rf"see {re.escape(str(log))}", proc.stderr.strip().splitlines()[-1]), proc.stderr
    assert not (tmp_path / "ws" / "studio" / "server.json").exists()
    assert not [p for p in psutil.process_iter(["cmdline"]) if str(tmp_path / "ws") in " ".join(p.info["cmdline"] or [])]


def test_a_data_dir_with_another_token_is_refused_and_stopped(studio_template, tmp_path):
    ws = tmp_path / "ws"
    cli_here("init", ws, "--recipe", "avsbench-ms3", check=True)
    copy_template(studio_template, ws)
    wrong = "f" * 40
    (ws / "studio" / "token").write_text(wrong + "\n")
    proc = run_cli("studio", "start", ws, "--timeout", str(START_TIMEOUT), timeout=START_TIMEOUT + 60)
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("avs-tools:")]
    assert len(errors) == 1 and "refused the token in" in errors[0] and "(401)" in errors[0], proc.stderr
    assert wrong not in proc.stderr + proc.stdout
    assert not (ws / "studio" / "server.json").exists()
    assert not [p for p in psutil.process_iter(["cmdline"]) if str(ws) in " ".join(p.info["cmdline"] or [])]


def test_not_installed_is_one_line_exit_2(tmp_path):
    ws = tmp_path / "ws"
    cli_here("init", ws, "--recipe", "avsbench-ms3", check=True)
    missing = tmp_path / "no" / "label-studio"
    proc = cli_here("studio", "start", ws, env={"AVS_TOOLS_LABEL_STUDIO": str(missing)})
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip() == ("avs-tools: error: Label Studio is not installed: run `make studio-install` (or set "
                                   f"AVS_TOOLS_LABEL_STUDIO); AVS_TOOLS_LABEL_STUDIO={missing} is not an executable file")
    assert not (ws / "studio" / "server.json").exists()


def test_usage_errors(tmp_path):
    ws = tmp_path / "ws"
    cli_here("init", ws, "--recipe", "avsbench-ms3", check=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        busy = cli_here("studio", "start", ws, "--port", str(port))
    assert busy.returncode == 2
    assert busy.stderr.strip() == (f"avs-tools: error: --port {port}: the port is in use on 127.0.0.1; "
                                   "choose another or leave --port out")
    (ws / "studio" / "token").unlink()
    (ws / "studio" / "data").mkdir()
    (ws / "studio" / "data" / "label_studio.sqlite3").write_bytes(b"")  # a data dir from an earlier start
    lost = cli_here("studio", "start", ws)
    assert lost.returncode == 2 and f"{ws / 'studio' / 'token'} is gone" in lost.stderr
    assert len(lost.stderr.strip().splitlines()) == 1
    for args in (("start", tmp_path / "nope"), ("status", tmp_path / "nope"), ("stop", tmp_path / "nope")):
        proc = cli_here("studio", *args)
        assert proc.returncode == 2 and "not found" in proc.stderr and "Traceback" not in proc.stderr
    v6 = cli_here("studio", "start", ws, "--host", "::1")
    assert v6.returncode == 2 and "IPv4" in v6.stderr


def test_a_server_that_exits_during_start_is_reported_with_its_last_log_line(tmp_path):
    ws = tmp_path / "ws"
    cli_here("init", ws, "--recipe", "avsbench-ms3", check=True)
    broken = tmp_path / "label-studio"
    broken.write_text("#!/bin/sh\necho 'ImportError: no module named django' >&2\nexit 3\n")
    broken.chmod(0o755)
    proc = cli_here("studio", "start", ws, env={"AVS_TOOLS_LABEL_STUDIO": str(broken)})
    log = ws / "studio" / "server.log"
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (f"avs-tools: error: Label Studio exited during its start: see {log} "
                                                    "(ImportError: no module named django)")
    assert not (ws / "studio" / "server.json").exists()


def test_the_server_sends_each_write_at_once_tcp_nodelay(studio_server, tmp_path):
    """Django's development server (label-studio start) answers in several socket writes; with Nagle's algorithm on,
    each request waited up to 40 ms for the client's delayed ACK (GET /health: 48 ms against 5 ms). The running
    server was started with studio/lsboot first on its PYTHONPATH, whose sitecustomize turns TCP_NODELAY on for its
    request handler, and a distribution's own sitecustomize further on the path still runs."""
    from avsbench_tools.studio import server as srv

    env = dict(line.split("=", 1) for line in
               Path(f"/proc/{studio_server.pid}/environ").read_bytes().decode().split("\0") if "=" in line)
    boot = Path(srv.__file__).resolve().parent / "lsboot"
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(boot)
    other = tmp_path / "site"
    other.mkdir()
    (other / "sitecustomize.py").write_text("import os\nos.environ['AVS_TEST_CHAINED'] = 'yes'\n")
    python = srv.find_binary().parent / "python"
    probe = ("import os; from django.core.servers.basehttp import WSGIRequestHandler as H; "
             "print(H.disable_nagle_algorithm, os.environ.get('AVS_TEST_CHAINED'))")
    out = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join([str(boot), str(other)])})
    assert out.stdout.split() == ["True", "yes"], out.stderr
    plain = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, check=True,
                           env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert plain.stdout.split() == ["False", "None"]  # what the server answered with before


def test_the_server_serves_with_its_loaded_code_out_of_the_collectors_sight():
    """Python's full garbage collections scanned the whole loaded server (~300,000 objects): ~200 ms one every few
    seconds of work, in whichever request ran then. studio/lsboot's sitecustomize imports the views and the SDK's
    label interface and freezes what is alive (gc.freeze) before a socketserver serves: a server started with it
    answers from a process whose collector skips that code; one started without it does not."""
    from avsbench_tools.studio import server as srv

    boot = Path(srv.__file__).resolve().parent / "lsboot"
    python = srv.find_binary().parent / "python"
    probe = ("import gc, socket, socketserver, sys, threading\n"
             "class H(socketserver.BaseRequestHandler):\n"
             "    def handle(self):\n"
             "        loaded = 'label_studio_sdk.label_interface' in sys.modules\n"
             "        self.request.sendall(f'{gc.get_freeze_count()} {loaded}'.encode())\n"
             "s = socketserver.TCPServer(('127.0.0.1', 0), H)\n"
             "threading.Thread(target=s.serve_forever, daemon=True).start()\n"
             "c = socket.create_connection(s.server_address)\n"
             "print(c.recv(100).decode())\n")
    out = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, check=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(boot)})
    frozen, loaded = out.stdout.split()
    assert int(frozen) > 10_000 and loaded == "True", out.stderr
    plain = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, check=True, timeout=120,
                           env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert plain.stdout.split() == ["0", "False"]
