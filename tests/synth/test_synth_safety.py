"""synth writes only into a new folder, an empty one, or a world it wrote before (issue #12)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from avsbench_tools.fsutil import MARKER, read_marker
from tests.helpers import cli_here
from tests.helpers.interrupt import start_cli, wait_for

TINY = ["--clips", "2", "--seconds", "5", "--size", "64x64", "--seed", "3"]


def _one_line(r: subprocess.CompletedProcess, *needles: str) -> str:
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def test_synth_path_problems_are_one_line(tmp_path):
    afile = tmp_path / "clip.mp4"
    afile.write_bytes(b"mine")
    cases = [(".", "'.'"), (afile, "not a folder"), (tmp_path / "missing" / "w", "does not exist"),
             ("/proc/avs-tools-world", "cannot write"), ("/proc", "")]
    for out, needle in cases:
        _one_line(cli_here("synth", out, *TINY, "-q", cwd=tmp_path), needle)
    assert afile.read_bytes() == b"mine"
    assert not (tmp_path / "missing").exists()
    if os.geteuid() != 0:  # root writes anywhere: a read-only folder only stops other users
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        try:
            _one_line(cli_here("synth", ro / "w", *TINY, "-q"), "cannot write")
        finally:
            ro.chmod(0o755)


def test_synth_refuses_a_folder_it_did_not_write_and_resumes_its_own(tmp_path):
    user = tmp_path / "videos"
    user.mkdir()
    (user / "holiday.mp4").write_bytes(b"mine")
    _one_line(cli_here("synth", user, *TINY, "-q"), MARKER)
    assert [p.name for p in user.iterdir()] == ["holiday.mp4"]
    # a release avs-tools wrote is not a world either
    rel = tmp_path / "rel"
    rel.mkdir()
    (rel / MARKER).write_text('{"tool": "avs-tools", "kind": "release"}')
    (rel / "metadata.csv").write_text("vid\n")
    _one_line(cli_here("synth", rel, *TINY, "-q"), "release")
    # an empty folder is fine; the world it gets is marked, and a re-run resumes it
    world = tmp_path / "world"
    world.mkdir()
    r = cli_here("synth", world, *TINY, check=True)
    assert read_marker(world)["kind"] == "synth-world"
    assert "2 rendered" in r.stdout
    assert r.stdout.splitlines()[-1] == f"next: avs-tools init WS --recipe {world / 'recipe.toml'}"
    r = cli_here("synth", world, *TINY, "--gold", "avsbench-ms3", "-q", check=True)
    assert "0 rendered, 2 already there" in r.stdout and "next:" not in r.stdout
    assert (world / "gold" / "Multi-sources" / "ms3_meta_data.csv").is_file()
    # other parameters: refused, naming the ones it was made with
    _one_line(cli_here("synth", world, "--clips", "3", "--size", "64x64", "-q"), "--clips 2", "--seed 3")
    # a world written before worlds had a marker is recognised by its world.json and files
    (world / MARKER).unlink()
    cli_here("synth", world, *TINY, "-q", check=True)
    assert read_marker(world)["kind"] == "synth-world"
    # ... but not once the user put something of theirs in it
    (world / MARKER).unlink()
    (world / "notes.txt").write_text("mine")
    _one_line(cli_here("synth", world, *TINY, "-q"), MARKER)
    assert (world / "notes.txt").read_text() == "mine"


def test_synth_options_say_what_is_allowed(tmp_path):
    line = _one_line(cli_here("synth", tmp_path / "w", "--seconds", "7"), "--seconds 7: must be 5 or 10 s")
    assert "(" not in line
    _one_line(cli_here("synth", tmp_path / "w", "--clips", "0"), "--clips 0")
    assert not (tmp_path / "w").exists()


def test_synth_files_follow_the_umask(tmp_path):
    out = tmp_path / "w"
    r = subprocess.run([sys.executable, "-m", "avsbench_tools", "synth", str(out), *TINY, "--gold", "avss", "-q"],
                       capture_output=True, text=True, preexec_fn=lambda: os.umask(0o027), timeout=600)
    assert r.returncode == 0, r.stderr
    files = [p for p in out.rglob("*") if p.is_file()]
    assert {".mp4", ".npz", ".json", ".toml", ".txt", ".jpg", ".png", ".wav", ""} <= {p.suffix for p in files}
    wrong = {str(p.relative_to(out)): oct(p.stat().st_mode & 0o777) for p in files if p.stat().st_mode & 0o777 != 0o640}
    assert not wrong, wrong
    dirs = [out, *(p for p in out.rglob("*") if p.is_dir())]
    wrong = {str(p): oct(p.stat().st_mode & 0o777) for p in dirs if p.stat().st_mode & 0o777 != 0o750}
    assert not wrong, wrong


def test_ctrl_c_during_synth_records_finished_clips(tmp_path):
    out = tmp_path / "w"
    args = ["--clips", "12", "--seconds", "5", "--size", "160x120", "--seed", "6", "-q"]
    # held in its progress report after the second clip (start_cli, test-only): never finished before the Ctrl-C
    proc = start_cli("synth", out, *args, hold=tmp_path / "hold", hold_at=2)
    wait_for(lambda: (tmp_path / "hold.held").exists(), proc)
    assert len(list((out / "truth").glob("*.json"))) >= 2
    os.killpg(proc.pid, signal.SIGINT)
    t0 = time.monotonic()
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and time.monotonic() - t0 < 5, (proc.returncode, err)
    assert "interrupted: " in err and "left; run the same command to resume" in err and "Traceback" not in err
    done = int(err.split("interrupted: ")[1].split(" done")[0])
    finished = sorted(p.stem for p in (out / "truth").glob("*.json"))
    assert done == len(finished) >= 2
    assert not [p for p in out.rglob(".tmp-*")]
    r = cli_here("synth", out, *args, check=True)
    assert f"{12 - done} rendered, {done} already there" in r.stdout
    assert len(list((out / "videos").glob("*.mp4"))) == 12


def test_gold_release_inside_the_world_is_its_own(tmp_path):
    out = tmp_path / "w"
    cli_here("synth", out, *TINY, "--gold", "avsbench-ms3", "-q", check=True)
    stamp = (out / "gold" / ".avs-gold.json").read_text()
    csv_before = (out / "gold" / "Multi-sources" / "ms3_meta_data.csv").read_bytes()
    # a gold release left unfinished-looking (no stamp): the world rewrites it, it is its own output
    (out / "gold" / ".avs-gold.json").unlink()
    (out / "gold" / "Multi-sources" / "ms3_meta_data.csv").write_text("broken")
    cli_here("synth", out, *TINY, "--gold", "avsbench-ms3", "-q", check=True)
    assert (out / "gold" / ".avs-gold.json").read_text() == stamp
    assert (out / "gold" / "Multi-sources" / "ms3_meta_data.csv").read_bytes() == csv_before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
    # another layout changes the world's recipe: refused, naming the layout it was made with
    _one_line(cli_here("synth", out, *TINY, "--gold", "avss", "-q"), "--gold avsbench-ms3")
