"""Issue #12, point 8: every command, driven with each kind of bad path, answers in one line.

One table drives every command that takes a workspace, a release or an output path with: '.',
an existing file, a folder under a missing parent, a path under /proc (unwritable for root too),
and a missing folder. Each must exit non-zero (2 for usage errors) with exactly one line on stderr
that names the path, and never print a traceback.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import REAL_METADATA, cli_here


@pytest.fixture(scope="module")
def place(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("paths")
    (d / "a-file.mp4").write_bytes(b"not a video")
    (d / "empty").mkdir()
    (d / "meta-only").mkdir()  # a Ref-AVS release with its metadata and no media: stats reads it
    (d / "meta-only" / "metadata.csv").write_bytes((REAL_METADATA / "ref-avs_metadata.csv").read_bytes())
    return d


# (name, argv builder taking the bad path); the bad path is the command's workspace/release/output
COMMANDS = {
    "status": lambda p: ["status", p],
    "clips": lambda p: ["clips", p],
    "collect": lambda p: ["collect", p, "--local", "nowhere", "--any-license"],
    "sample": lambda p: ["sample", p],
    "preview": lambda p: ["preview", p],
    "preannotate": lambda p: ["preannotate", p],
    "set-category": lambda p: ["set-category", p, "--clip", "x", "--category", "y"],
    "export": lambda p: ["export", p, "out-never-made"],
    "validate": lambda p: ["validate", p, "--format", "avsbench-s4"],
    "stats-release": lambda p: ["stats", p, "--format", "avsbench-s4", "--out", "r.html"],
    "evaluate-gt": lambda p: ["evaluate", "--format", "avsbench-s4", "--gt", p, "--pred", "empty"],
}
OUTPUTS = {
    "synth": lambda p: ["synth", p, "--clips", "1"],
    "init": lambda p: ["init", p, "--recipe", "avsbench-s4"],
    "stats-out": lambda p: ["stats", "meta-only", "--format", "ref-avs", "--out", p],
    "preview-out": lambda p: ["preview", "nows", "--out", p],
}
BAD_INPUTS = {
    "dot": ".",
    "file": "a-file.mp4",
    "missing": "no-such-folder",
    "missing-parent": "no-such-parent/child",
    "proc": "/proc/avs-tools-test",
}
BAD_OUTPUTS = {
    "dot": ".",
    "file": "a-file.mp4",
    "missing-parent": "no-such-parent/child",
    "proc": "/proc/avs-tools-test/out",
}


def _check(r, bad: str) -> None:
    err = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode != 0, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout, r.stderr
    assert "internal error" not in r.stderr, r.stderr
    assert len(err) == 1, r.stderr
    name = Path(bad).name if bad != "." else "."
    assert name in err[0] or bad in err[0], err[0]


@pytest.mark.parametrize("bad", list(BAD_INPUTS), ids=list(BAD_INPUTS))
@pytest.mark.parametrize("cmd", list(COMMANDS), ids=list(COMMANDS))
def test_bad_input_path_is_one_line(place, cmd, bad):
    path = BAD_INPUTS[bad]
    r = cli_here(*COMMANDS[cmd](path), cwd=place)
    _check(r, path)
    assert r.returncode in (1, 2)
    assert (place / "a-file.mp4").read_bytes() == b"not a video"


@pytest.mark.parametrize("bad", list(BAD_OUTPUTS), ids=list(BAD_OUTPUTS))
@pytest.mark.parametrize("cmd", list(OUTPUTS), ids=list(OUTPUTS))
def test_bad_output_path_is_one_line(place, cmd, bad):
    path = BAD_OUTPUTS[bad]
    r = cli_here(*OUTPUTS[cmd](path), cwd=place)
    if cmd == "preview-out":
        # the workspace 'nows' does not exist: the one line names whichever is checked first
        err = [line for line in r.stderr.splitlines() if line.strip()]
        assert r.returncode == 2 and len(err) == 1 and "Traceback" not in r.stderr, r.stderr
        return
    _check(r, path)
    assert r.returncode == 2
    assert (place / "a-file.mp4").read_bytes() == b"not a video"
    assert not (place / "no-such-parent").exists()
