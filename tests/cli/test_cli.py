import subprocess
import sys

from tests.helpers import run_cli


def test_help_lists_every_stage_with_an_example():
    proc = run_cli("--help", check=True)
    for cmd in ("init", "status", "synth"):
        assert f"\n  {cmd} " in proc.stdout
    flat = " ".join(proc.stdout.split())
    assert flat.count("e.g. avs-tools") >= 3


def test_version():
    from avsbench_tools import __version__

    assert run_cli("--version", check=True).stdout.strip() == f"avs-tools {__version__}"


def test_import_and_help_do_not_import_torch():
    code = ("import sys, avsbench_tools, avsbench_tools.cli; "
            "from avsbench_tools.cli import run; run(['--help']); "
            "heavy = [m for m in ('torch', 'transformers', 'cv2', 'av') if m in sys.modules]; "
            "print('HEAVY', heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out


def _one_line_error(proc, code=2):
    assert proc.returncode == code, proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("avs-tools: error:"), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def test_broken_recipe_missing_workspace_and_other_recipe(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\nformat = "avsbench-s4"\nclip_seconds = [5]\nsampling = "later"\n'
                   '[splits]\ntrain = 1.0\n[annotate]\ntrain = "all"\n[categories]\ndog = "dog"\n')
    assert "'sampling'" in _one_line_error(run_cli("init", tmp_path / "ws", "--recipe", bad))
    assert "not found" in _one_line_error(run_cli("status", tmp_path / "nowhere"))
    run_cli("init", tmp_path / "ws2", "--recipe", "avsbench-s4", check=True)
    msg = _one_line_error(run_cli("init", tmp_path / "ws2", "--recipe", "ref-avs"))
    assert "avsbench-s4" in msg and "ref-avs" in msg
    assert "--size" in _one_line_error(run_cli("synth", tmp_path / "w", "--size", "big"))


def test_unknown_option_is_a_usage_error():
    proc = run_cli("status", "--bogus")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def _drop_root(cmd: list[str]) -> list[str]:
    """Run as root without the capabilities that ignore file modes, so an unreadable folder is unreadable."""
    import os
    import shutil

    if os.geteuid() != 0:
        return cmd
    setpriv = shutil.which("setpriv")
    assert setpriv, "running as root without setpriv: cannot make a folder unreadable to the test"
    caps = "-dac_override,-dac_read_search"
    return [setpriv, "--bounding-set", caps, "--inh-caps", caps, *cmd]


def _cli_as_user(*args, cwd=None):
    import os

    env = dict(os.environ, COLUMNS="200")
    return subprocess.run(_drop_root([sys.executable, "-m", "avsbench_tools", *map(str, args)]), capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=120)


def test_every_workspace_path_problem_is_one_line(tmp_path):
    a_file = tmp_path / "video.mp4"
    a_file.write_bytes(b"not a workspace")
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "catalog.sqlite").write_bytes(b"")
    locked.chmod(0)
    here = tmp_path / "here"  # '.' that is not a workspace
    here.mkdir()
    (here / "notes.txt").write_text("mine")
    try:
        for cmd in ("sample", "preannotate", "status", "clips"):
            for ws, needle in ((".", "is not a workspace"), (a_file, "is a file"), (tmp_path / "missing", "not found"),
                               (locked, "permission denied")):
                msg = _one_line_error(_cli_as_user(cmd, ws, cwd=here))
                assert needle in msg and str(ws) in msg, (cmd, ws, msg)
        # init: '.' holding a user's files, a file, a folder under a file, an unreadable folder
        msg = _one_line_error(_cli_as_user("init", ".", "--recipe", "avss", cwd=here))
        assert "not empty" in msg and "notes.txt" in msg
        assert sorted(p.name for p in here.iterdir()) == ["notes.txt"]  # nothing written into it
        assert "is a file" in _one_line_error(_cli_as_user("init", a_file, "--recipe", "avss"))
        assert "is a file" in _one_line_error(_cli_as_user("init", a_file / "ws", "--recipe", "avss"))
        assert "permission denied" in _one_line_error(_cli_as_user("init", locked, "--recipe", "avss"))
        msg = _one_line_error(_cli_as_user("init", locked / "ws", "--recipe", "avss"))
        assert "permission denied" in msg and "locked/ws" in msg
        readonly = tmp_path / "readonly"
        readonly.mkdir(mode=0o555)
        msg = _one_line_error(_cli_as_user("init", readonly / "ws", "--recipe", "avss"))
        assert "cannot create workspace" in msg and "Permission denied" in msg
        assert not (readonly / "ws").exists()
    finally:
        locked.chmod(0o755)
    # '.' that is empty is a fine place for a workspace; a workspace '.' works for every reader
    empty = tmp_path / "empty"
    empty.mkdir()
    r = _cli_as_user("init", ".", "--recipe", "avss", cwd=empty)
    assert r.returncode == 0 and "created" in r.stdout and "next: avs-tools collect ." in r.stdout, r.stderr
    assert _cli_as_user("status", ".", cwd=empty).returncode == 0
    assert "no clips" in _cli_as_user("clips", ".", cwd=empty).stderr
    assert "avs-tools collect" in _one_line_error(_cli_as_user("sample", ".", cwd=empty))
