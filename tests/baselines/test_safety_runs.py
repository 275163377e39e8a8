"""Issue #21, items 1, 2 and 4: `--force` of baseline train / predict / release-check replaces only a folder the
command wrote (one line naming what is in the way) and swaps the new output in atomically (Ctrl-C keeps the
earlier one whole); a run belongs to its data (a changed release is refused, never resumed); training reads
only what validate accepts; a bad log-mel pickle is one line. Subprocess runs of the CLI; tiny training (TINY: a
quarter-width ResNet-18 with 32 channels at 64x64, whose checkpoints are a thirtieth of the full ResNet-18's: what is
refused, kept or replaced does not depend on the network's size)."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import run_cli
from tests.helpers.worlds import he_vggish, make_world

pytestmark = pytest.mark.usefixtures("torch_one_thread")

TINY = ["--backbone", "resnet18-w16", "--channels", "32", "--input-size", "64", "--batch", "2", "--device", "cpu",
        "--seed", "5"]
ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # the CLI's torch: one thread, like the tests' own


@pytest.fixture(scope="module")
def ms3(tmp_path_factory):
    return make_world(tmp_path_factory, clips=5, seconds=5, width=96, height=64, seed=7, gold="avsbench-ms3") / "gold"


@pytest.fixture(scope="module")
def vggish(tmp_path_factory):
    return he_vggish(tmp_path_factory.getbasetemp() / "baseline-worlds" / "vggish_he.pth")


@pytest.fixture(scope="module")
def made(ms3, vggish, tmp_path_factory):
    """A copy of the release, a 1-epoch run on it, and that run's test predictions (what the tests replace)."""
    root = tmp_path_factory.mktemp("safety")
    rel = root / "rel"
    shutil.copytree(ms3, rel)
    run = root / "run"
    r = run_cli("baseline", "train", rel, "--setting", "ms3", "--out", run, "--epochs", "1", *TINY,
                "--vggish-weights", vggish, "-q", env=ENV)
    assert r.returncode == 0, r.stderr
    pred = root / "pred"
    r = run_cli("baseline", "predict", rel, "--checkpoint", run / "best.pt", "--setting", "ms3", "--out", pred,
                "--vggish-weights", vggish, "--device", "cpu", "-q", env=ENV)
    assert r.returncode == 0, r.stderr
    return rel, run, pred


def _tree(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _one_line(r: subprocess.CompletedProcess, rc: int = 2) -> str:
    lines = r.stderr.strip().splitlines()
    assert r.returncode == rc and len(lines) == 1 and "Traceback" not in r.stderr, (r.returncode, r.stderr)
    return lines[0]


def _broken(ms3: Path, dest: Path) -> Path:
    """The release with one frame missing: release-check reports the problem and trains nothing (fast)."""
    shutil.copytree(ms3, dest)
    next((dest / "Multi-sources" / "ms3_data" / "visual_frames").rglob("*_3.png")).unlink()
    return dest


def test_force_never_deletes_what_the_command_did_not_write(made, ms3, vggish, tmp_path):
    """Row 1: train --out RUN --force, predict --force and release-check --force on a folder that also holds
    the user's NOTES.txt and my-data/: refused in one line naming it; nothing deleted."""
    rel, run0, pred0 = made
    run, pred = tmp_path / "run", tmp_path / "pred"
    shutil.copytree(run0, run)
    shutil.copytree(pred0, pred)
    broken = _broken(ms3, tmp_path / "broken")
    check = tmp_path / "check"
    r = run_cli("release-check", broken, "--format", "avsbench-ms3", "--out", check, "--device", "cpu", "-q")
    assert r.returncode == 1 and (check / "index.html").is_file(), r.stderr
    commands = {
        run: ["baseline", "train", rel, "--setting", "ms3", "--out", run, "--epochs", "1", *TINY,
              "--vggish-weights", vggish, "--force"],
        pred: ["baseline", "predict", rel, "--checkpoint", run0 / "best.pt", "--setting", "ms3", "--out", pred,
               "--vggish-weights", vggish, "--device", "cpu", "--force"],
        check: ["release-check", broken, "--format", "avsbench-ms3", "--out", check, "--device", "cpu", "--force"],
    }
    for folder, cmd in commands.items():
        (folder / "NOTES.txt").write_text("my notes")
        (folder / "my-data").mkdir()
        (folder / "my-data" / "labels.png").write_bytes(b"not avs-tools'")
        before = _tree(folder)
        line = _one_line(run_cli(*cmd, env=ENV))
        assert "holds NOTES.txt, which avs-tools did not write" in line and "--force replaces only" in line, line
        assert _tree(folder) == before, "a refused --force changed the folder"
    # a user's file in a folder of the command's own (not only at the top) is found too
    (check / "NOTES.txt").unlink()
    (check / "stats_plots").mkdir(exist_ok=True)
    shutil.move(check / "my-data" / "labels.png", check / "stats_plots" / "labels.png")
    line = _one_line(run_cli(*commands[check], env=ENV))
    assert "holds my-data/, which avs-tools did not write" in line, line
    (check / "my-data").rmdir()
    line = _one_line(run_cli(*commands[check], env=ENV))
    assert "holds stats_plots/labels.png, which avs-tools did not write" in line, line
    # without the user's files, --force replaces the command's own folder (the release-check, no training)
    (check / "stats_plots" / "labels.png").unlink()
    r = run_cli(*commands[check], env=ENV)
    assert r.returncode == 1 and (check / "index.html").is_file(), r.stderr
    assert not list(tmp_path.glob(".tmp-*")), "a staging folder was left beside the output"


def _held(cmd: list, hold: Path, match: str = "") -> subprocess.Popen:
    """The command, held at its first progress report with 1 done (whose "<stage> <info>" matches `match`)."""
    hold.touch()
    env = dict(os.environ, PYTHONUNBUFFERED="1", AVS_TOOLS_TEST_HOLD=str(hold), AVS_TOOLS_TEST_HOLD_AT="1",
               AVS_TOOLS_TEST_HOLD_MATCH=match, **ENV)
    return subprocess.Popen([sys.executable, "-m", "avsbench_tools", *map(str, cmd)], start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _ctrl_c_when(proc: subprocess.Popen, ready, timeout: float = 300) -> tuple[int, str]:
    end = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < end, "never got there"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return proc.returncode, err


def test_ctrl_c_during_force_keeps_the_earlier_output_whole(made, ms3, vggish, tmp_path):
    """Row 1: a Ctrl-C'd --force (train during its epochs, release-check, predict) leaves the earlier output as
    it was and no staging folder behind."""
    rel, run0, pred0 = made
    run = tmp_path / "run"
    shutil.copytree(run0, run)
    before = _tree(run)
    cmd = ["baseline", "train", rel, "--setting", "ms3", "--out", run, "--epochs", "3", *TINY,
           "--vggish-weights", vggish, "--force", "-q"]
    hold = tmp_path / "hold"
    proc = _held(cmd, hold, "^training epoch 2/")  # held during its epochs, the first one's checkpoint staged
    staged = lambda: any((p / "run.json").is_file() for p in tmp_path.glob(".tmp-new-*-run"))  # noqa: E731
    rc, err = _ctrl_c_when(proc, lambda: (tmp_path / "hold.held").exists() and staged())
    assert rc == 130 and "the earlier run" in err and "is as it was" in err, err
    assert _tree(run) == before and not list(tmp_path.glob(".tmp-*"))

    broken = _broken(ms3, tmp_path / "broken")
    check = tmp_path / "check"
    assert run_cli("release-check", broken, "--format", "avsbench-ms3", "--out", check, "--device", "cpu",
                   "-q").returncode == 1
    before = _tree(check)
    (tmp_path / "hold.held").unlink()
    proc = _held(["release-check", broken, "--format", "avsbench-ms3", "--out", check, "--device", "cpu", "--force"],
                 hold)
    rc, err = _ctrl_c_when(proc, lambda: (tmp_path / "hold.held").exists())
    assert rc == 130 and _tree(check) == before and not list(tmp_path.glob(".tmp-*")), err

    pred = tmp_path / "pred"
    shutil.copytree(pred0, pred)
    before = _tree(pred)
    (tmp_path / "hold.held").unlink()
    proc = _held(["baseline", "predict", rel, "--checkpoint", run0 / "best.pt", "--setting", "ms3", "--out", pred,
                  "--vggish-weights", vggish, "--device", "cpu", "--force"], hold)
    rc, err = _ctrl_c_when(proc, lambda: (tmp_path / "hold.held").exists())
    assert rc == 130 and _tree(pred) == before and not list(tmp_path.glob(".tmp-*")), err


def test_a_run_is_never_resumed_on_a_changed_release(made, vggish, tmp_path):
    """Row 2: masks changed since epoch 1 -> refused ("pass --force to start over"), the run untouched."""
    from PIL import Image

    rel0, run0, _ = made
    rel, run = tmp_path / "rel", tmp_path / "run"
    shutil.copytree(rel0, rel)
    shutil.copytree(run0, run)
    info = (run / "run.json").read_text()
    (run / "run.json").write_text(info.replace(str(rel0.resolve()), str(rel.resolve())))  # the run of this copy
    base = ["baseline", "train", rel, "--setting", "ms3", "--out", run, *TINY, "--vggish-weights", vggish, "-q"]
    mask = next((rel / "Multi-sources" / "ms3_data" / "gt_masks" / "val").rglob("*.png"))
    with Image.open(mask) as im:
        flipped = im.convert("L").point(lambda v: 255 - v)
    flipped.save(mask)  # a valid mask, other content
    before = _tree(run)
    line = _one_line(run_cli(*base, "--epochs", "2", env=ENV))
    assert "the release's val split changed since the run started" in line and "pass --force to start over" in line
    line = _one_line(run_cli(*base, "--epochs", "2", "--resume", env=ENV))
    assert "changed since the run started" in line
    assert _tree(run) == before


def test_training_refuses_what_validate_rejects(made, vggish, tmp_path):
    """Row 6: a val mask saved as RGB -> baseline train refuses it in one line, as validate does."""
    from PIL import Image

    rel = tmp_path / "rel"
    shutil.copytree(made[0], rel)
    mask = next((rel / "Multi-sources" / "ms3_data" / "gt_masks" / "val").rglob("*.png"))
    with Image.open(mask) as im:
        rgb = im.convert("RGB")
    rgb.save(mask)
    out = tmp_path / "run"
    line = _one_line(run_cli("baseline", "train", rel, "--setting", "ms3", "--out", out, "--epochs", "1", *TINY,
                             "--vggish-weights", vggish, "-q", env=ENV))
    assert line.startswith(f"avs-tools: error: {mask}: mask mode RGB (want single-channel)") and "validate" in line
    assert not out.exists()
    r = run_cli("validate", rel, "--format", "avsbench-ms3")
    assert r.returncode != 0 and str(mask) in r.stdout + r.stderr and "mask mode RGB" in r.stdout + r.stderr


def test_a_garbage_log_mel_pickle_is_one_line(made, vggish, tmp_path):
    """Row 4 (a release .pkl replaced by garbage): one line naming the file and the cause, exit 2."""
    rel = tmp_path / "rel"
    shutil.copytree(made[0], rel)
    pkl = next((rel / "Multi-sources" / "ms3_data" / "audio_log_mel" / "train").glob("*.pkl"))
    pkl.write_bytes(b"\x80\x04garbage, not a pickle" * 10)
    for cmd in (["baseline", "train", rel, "--setting", "ms3", "--out", tmp_path / "run", "--epochs", "1", *TINY],
                ["baseline", "predict", rel, "--checkpoint", made[1] / "best.pt", "--setting", "ms3", "--split",
                 "train", "--out", tmp_path / "pred", "--device", "cpu"]):
        line = _one_line(run_cli(*cmd, "--vggish-weights", vggish, "-q", env=ENV))
        assert str(pkl) in line and ("does not unpickle" in line or "not a log-mel pickle" in line), line
        assert "internal error" not in line
