"""The workspace's server: its bookkeeping (server.json pids, a moved or copied workspace), its secrets at rest
whatever the umask, and push refusing a server that cannot serve the workspace before it makes a project.

The starts (one under umask 0) and the stops of pid 0/-1 run as processes; the other commands run in the test's
process (`cli_here`: the same exit code and output, without a Python start per command)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from avsbench_tools.studio.process import alive, group_alive, kill_group
from tests.helpers import cli_here, run_cli
from tests.helpers.studio_server import START_TIMEOUT, copy_template, group_processes

STATE = {"url": "http://127.0.0.1:9", "host": "127.0.0.1", "port": 9, "username": "x", "document_root": "/"}


def _umask0():
    os.umask(0)


# -- pids ------------------------------------------------------------------------------------------------
def test_a_pid_of_one_or_less_or_without_a_proc_entry_is_never_alive(tmp_path):
    for pid in (0, -1, 1, -os.getpgid(0)):
        assert not alive(pid, "x") and not alive(pid, "x", tmp_path)
        with pytest.raises(ValueError):
            kill_group(pid, "x", 0.1)
    assert not group_alive(0) and not group_alive(-1)
    dead = subprocess.Popen(["true"])
    dead.wait()
    assert not Path(f"/proc/{dead.pid}").exists() and not alive(dead.pid, "x")
    me = os.getpid()
    assert not alive(me, "no-such-marker") and alive(me, "no-such-marker", os.getcwd())  # found by its folder


@pytest.mark.parametrize("pid", [0, -1])
def test_server_json_with_pid_0_or_minus_1_is_stale(tmp_path, pid):
    ws = tmp_path / "ws"
    run_cli("init", ws, "--recipe", "avsbench-ms3", check=True)
    (ws / "studio").mkdir()
    (ws / "studio" / "server.json").write_text(json.dumps({"pid": pid, **STATE}))
    st = run_cli("studio", "status", ws, check=True)
    assert st.stdout.splitlines()[0] == "Label Studio is not running" and "starting" not in st.stdout
    assert not (ws / "studio" / "server.json").exists()  # stale: removed
    (ws / "studio" / "server.json").write_text(json.dumps({"pid": pid, **STATE}))
    # a stop that signalled group 0 would have hit its own process group (this test's too)
    stop = run_cli("studio", "stop", ws, check=True)
    assert stop.stdout.strip() == "Label Studio is not running" and stop.returncode == 0


# -- one server of its own: started under umask 0, then the workspace moved and copied ------------------------
def _readable_by_others(root: Path) -> list[Path]:
    """Every file under `root` that another local user can read: o+r, and o+x on every folder from `root` to
    it (pytest's own temp folder above `root` is private; a user's workspace folder need not be)."""
    out = []
    for dirpath, dirs, files in os.walk(root):
        d = Path(dirpath)
        chain = [d, *(root / q for q in d.relative_to(root).parents)]
        if not all(stat.S_IMODE(p.stat().st_mode) & 0o001 for p in chain):
            dirs[:] = []
            continue
        out += [d / f for f in files if not (d / f).is_symlink() and stat.S_IMODE((d / f).stat().st_mode) & 0o004]
    return out


@pytest.mark.xdist_group("studio")
def test_secrets_stay_private_under_umask_0_and_a_moved_workspace_keeps_its_server(studio_template, tmp_path):
    tmp_path.chmod(0o755)
    ws = tmp_path / "ws"
    run_cli("init", ws, "--recipe", "avsbench-ms3", check=True, preexec_fn=_umask0)
    copy_template(studio_template, ws)
    (ws / "studio" / "data" / "label_studio.sqlite3").chmod(0o666)  # as a copy under umask 0 would leave it
    start = run_cli("studio", "start", ws, "--timeout", str(START_TIMEOUT), timeout=START_TIMEOUT + 60,
                    preexec_fn=_umask0)
    assert start.returncode == 0, start.stderr
    pid = json.loads((ws / "studio" / "server.json").read_text())["pid"]
    try:
        token = (ws / "studio" / "token").read_text().strip()
        password = json.loads((ws / "studio" / "credentials").read_text())["password"]
        data = ws / "studio" / "data"
        assert stat.S_IMODE(data.stat().st_mode) == 0o700 and stat.S_IMODE(data.parent.stat().st_mode) == 0o700
        dbs = list(data.glob("label_studio.sqlite3*"))
        assert dbs and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in dbs)
        assert token.encode() in (data / "label_studio.sqlite3").read_bytes()  # it is there, privately
        # the server writes while it runs (a project, a task, the API log): still nothing readable holds a secret
        from tests.helpers.studio_server import sdk_client

        client = sdk_client(json.loads((ws / "studio" / "server.json").read_text())["url"], token)
        # a server without any project: the serving check borrows a scratch project and leaves none
        from avsbench_tools.errors import UsageError
        from avsbench_tools.studio.connect import connect

        assert list(client.projects.list()) == []
        (ws / "frames").mkdir(exist_ok=True)
        conn = connect(ws)
        conn.check_serving(ws)  # under the document root: fine
        outside = tmp_path / "elsewhere"
        (outside / "frames").mkdir(parents=True)
        with pytest.raises(UsageError, match="cannot serve the workspace's files from .*elsewhere/frames"):
            conn.check_serving(outside)
        assert list(client.projects.list()) == []
        p = client.projects.create(title="leak", label_config='<View><Image name="image" value="$image"/></View>')
        client.projects.import_tasks(id=p.id, request=[{"image": "/data/local-files/?d=x.jpg"}])
        readable = _readable_by_others(tmp_path)
        assert readable and (ws / "catalog.sqlite") in readable  # the umask 0 shows: the rest of WS is readable
        leaks = [f for f in readable if token.encode() in f.read_bytes() or password.encode() in f.read_bytes()]
        assert leaks == []
        assert all(stat.S_IMODE(p.stat().st_mode) & 0o077 == 0 for p in data.rglob("*"))

        moved = tmp_path / "moved"
        os.rename(ws, moved)
        st = cli_here("studio", "status", moved, "--json", check=True)
        got = json.loads(st.stdout)
        assert got["running"] is False and got["moved_from"] == str(ws) and got["pid"] == pid, got
        text = cli_here("studio", "status", moved, check=True).stdout
        assert f"Label Studio (pid {pid}) was started when the workspace was at {ws}" in text
        pull = cli_here("pull", moved)  # its own server, found, but working on the old paths: one line
        assert pull.returncode == 2 and pull.stderr.strip().splitlines() == [
            f"avs-tools: error: the workspace moved since its Label Studio (pid {pid}) started at {ws}: run "
            f"`avs-tools studio start {moved}` (it restarts it)"], pull.stderr
        copy = tmp_path / "copy"
        shutil.copytree(moved, copy, ignore=shutil.ignore_patterns(".lock", "*.sqlite3-*"))
        st = json.loads(cli_here("studio", "status", copy, "--json", check=True).stdout)
        assert st["running"] is False and st["orphan_pid"] == pid  # another data folder's server, named
        assert f"names pid {pid}" in cli_here("studio", "status", copy, check=True).stdout
        assert cli_here("studio", "stop", copy, check=True).stdout.strip() == "Label Studio is not running"
        assert group_processes(pid)  # the copy's stop left the original's server alone

        again = run_cli("studio", "start", moved, "--timeout", str(START_TIMEOUT), timeout=START_TIMEOUT + 60)
        assert again.returncode == 0, again.stderr
        assert f"the workspace moved since its server (pid {pid}) started" in again.stderr
        assert not group_processes(pid)  # the old one was stopped: never two servers on one database
        new = json.loads((moved / "studio" / "server.json").read_text())
        assert new["pid"] != pid and new["document_root"] == str(moved)
        assert json.loads(cli_here("studio", "status", moved, "--json", check=True).stdout)["running"] is True
        pids = [pid, new["pid"]]
        moved2 = tmp_path / "moved-again"
        os.rename(moved, moved2)  # stop finds it too (pid + the inode of its data folder)
        stop = cli_here("studio", "stop", moved2, check=True)
        assert stop.stdout.strip() == "stopped Label Studio" and not group_processes(new["pid"])
        assert not (moved2 / "studio" / "server.json").exists()
    finally:
        for p in [pid, *locals().get("pids", [])]:
            if group_processes(p):
                kill_group(p, "label-studio", 5.0)


# -- push checks serving before it makes a project -------------------------------------------------------------
def test_push_url_to_a_server_that_cannot_serve_the_workspace_leaves_no_project(studio_server, tmp_path):
    from avsbench_tools.synth import SynthParams, synthesize

    world = tmp_path / "world"
    synthesize(world, SynthParams(clips=1, seconds=5, width=64, height=64, seed=5, gold="avsbench-ms3"))
    ws = tmp_path / "outside"  # not under the server's document root (studio_server.ws)
    cli_here("init", ws, "--recipe", world / "recipe.toml", check=True)
    cli_here("collect", ws, "--world", world, "-q", check=True)
    cli_here("sample", ws, "-q", check=True)
    client = studio_server.client()
    before = sorted(p.id for p in client.projects.list())
    proc = cli_here("push", ws, "--url", studio_server.url, env={"LABEL_STUDIO_API_KEY": studio_server.api_key})
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(err) == 1, proc.stderr
    assert "cannot serve the workspace's files" in err[0] and str(ws / "frames") in err[0]
    assert "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT" in err[0] and studio_server.api_key not in proc.stderr
    assert sorted(p.id for p in client.projects.list()) == before  # nothing made, nothing left
    import sqlite3

    with sqlite3.connect(ws / "catalog.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM studio_tasks").fetchone()[0] == 0


def test_another_path_to_the_same_folder_is_not_a_move(tmp_path):
    from avsbench_tools.studio.server import StudioPaths, moved

    real = tmp_path / "ws"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    state = {"document_root": str(real)}
    assert not moved(state, StudioPaths.of(tmp_path / "link")) and not moved(state, StudioPaths.of(real))
    real.rename(tmp_path / "elsewhere")
    assert moved(state, StudioPaths.of(tmp_path / "elsewhere"))
