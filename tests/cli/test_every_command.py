"""Every command of `avs-tools` runs once, through the CLI's `run` (the entry point's argument parsing,
commands, exit codes and one-line errors) in the test's process, on one tiny synthetic MS3 world (6 clips of
5 s at 64x64): what `make test-fast` relies on to touch each command (the other tests that exercise a command
in depth are marked slow where they take long). The list of commands is read from the CLI itself: a new
command fails this test until it is added below. In-process because 29 Python starts (torch imported by a
third of them) were half of this test's minute; the entry point itself runs as a process in
tests/cli/test_cli.py and in every Ctrl-C, kill and umask test.

Without a Label Studio server (test-fast does not start one): `studio status`/`stop` answer that it is not
running, `studio start` stops at the server program (a path that is not one: a one-line error), `push` and
`pull` stop at the connection (a loopback port where nothing listens: a one-line error naming the URL).
The full exchange with a real server is in tests/studio (make test)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from tests.helpers import cli_here


def _cli(ran: set[str], *args, rc: int = 0, **kw):
    r = cli_here(*args, **kw)
    assert r.returncode == rc, (args, r.returncode, r.stdout[-2000:], r.stderr[-2000:])
    assert "Traceback" not in r.stderr, r.stderr
    words = [str(a) for a in args]
    ran.add(" ".join(words[:2]) if words[0] in _groups() else words[0])
    return r


def _one_line_error(r, *needles: str) -> str:
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("avs-tools: error:"), r.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def _command_tree() -> set[str]:
    """'cmd' for each command, 'group sub' for each command of a group (baseline, models, studio)."""
    from typer.main import get_command

    from avsbench_tools.cli import app

    root = get_command(app)
    out = set()
    for name, cmd in root.commands.items():
        subs = getattr(cmd, "commands", None)
        out.update(f"{name} {s}" for s in subs) if subs else out.add(name)
    return out


def _groups() -> set[str]:
    return {c.split()[0] for c in _command_tree() if " " in c}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_every_command_runs_once(tmp_path):
    ran: set[str] = set()
    _workspace_commands(ran, tmp_path)
    _release_commands(ran, tmp_path)
    _baseline_commands(ran, tmp_path)
    assert _command_tree() - ran == set(), "commands this test does not run: add them"


def _workspace_commands(ran: set[str], d: Path) -> None:
    ws = d / "ws"
    _cli(ran, "synth", d / "world", "--gold", "avsbench-ms3", "--clips", "6", "--size", "64x64", "--seed", "3", "-q")
    _cli(ran, "init", ws, "--recipe", d / "world" / "recipe.toml")
    r = _cli(ran, "collect", ws, "--world", d / "world", "-q")
    assert "6 new clips" in r.stdout
    clips = json.loads(_cli(ran, "clips", ws, "--json").stdout)
    assert len(clips) == 6
    first = clips[0]
    other = next((c["category"] for c in clips if c["category"] != first["category"]), first["category"])
    _cli(ran, "set-category", ws, "--clip", first["clip"], "--category", other, "-q")
    assert json.loads(_cli(ran, "clips", ws, "--json").stdout)[0]["category"] == other
    assert "collect" in _cli(ran, "status", ws).stdout
    assert "6 sampled" in _cli(ran, "sample", ws, "-j", "1", "-q").stdout
    _cli(ran, "preview", ws, "-o", d / "preview.png")
    assert (d / "preview.png").stat().st_size > 0
    assert "6 clips proposed" in _cli(ran, "preannotate", ws, "--backend", "motion", "-q").stdout
    models = json.loads(_cli(ran, "models", "check", "--json", "--device", "cpu").stdout)
    assert {m["role"] for m in models} >= {"sam"}
    _cli(ran, "backup", ws, d / "backup")
    assert (d / "backup" / "catalog-backup.sqlite").is_file()
    assert "not running" in _cli(ran, "studio", "status", ws).stdout
    assert "not running" in _cli(ran, "studio", "stop", ws).stdout
    not_a_program = d / "no-label-studio"
    _one_line_error(_cli(ran, "studio", "start", ws, rc=2, env={"AVS_TOOLS_LABEL_STUDIO": str(not_a_program)}),
                    str(not_a_program))
    url = f"http://127.0.0.1:{_free_port()}"
    for cmd in ("push", "pull"):
        r = _cli(ran, cmd, ws, "--url", url, rc=1, env={"LABEL_STUDIO_API_KEY": "not-a-key"})
        _one_line_error(r, url.split("//")[1])
    qa = json.loads(_cli(ran, "qa", ws, "--json").stdout)
    assert qa["most_changed"] == []
    r = _cli(ran, "export", ws, d / "rel", "--format", "avsbench-ms3", "--include-unreviewed", "-q")
    assert "6 clips" in r.stdout
    assert "0 problems" in _cli(ran, "validate", d / "rel").stdout
    _cli(ran, "stats", d / "rel", "--out", d / "stats.html", "-q")
    assert (d / "stats.html").is_file()


def _release_commands(ran: set[str], d: Path) -> None:
    gold = d / "world" / "gold"
    r = _cli(ran, "evaluate", "--format", "avsbench-ms3", "--gt", gold, "--pred", gold, "--json")
    assert abs(json.loads(r.stdout)["miou"] - 1) < 1e-6  # a release scored against itself
    _cli(ran, "publish", gold, "-f", "avsbench-ms3", "--out", d / "hf", "-q")
    _cli(ran, "unpublish", d / "hf", "--out", d / "back", "-q")
    assert sorted(p.relative_to(d / "back") for p in (d / "back").rglob("*.png")) == sorted(
        p.relative_to(gold) for p in gold.rglob("*.png"))


def _baseline_commands(ran: set[str], d: Path) -> None:
    gold = d / "world" / "gold"
    tiny = ("--backbone", "resnet18", "--device", "cpu")
    assert "total" in _cli(ran, "baseline", "describe", "--backbone", "resnet18").stdout
    _cli(ran, "baseline", "train", gold, "--setting", "ms3", "--out", d / "run", "--epochs", "1", "--input-size", "32",
         "--channels", "8", *tiny, "-q")
    ev = json.loads(_cli(ran, "baseline", "eval", d / "run", "--split", "test", "--json", "--device", "cpu").stdout)
    assert 0 <= ev["miou"] <= 1
    _cli(ran, "baseline", "predict", gold, "--checkpoint", d / "run" / "best.pt", "--setting", "ms3", "--out",
         d / "preds", "--device", "cpu", "-q")
    assert list((d / "preds").rglob("*.png"))
    _cli(ran, "release-check", gold, "--format", "avsbench-ms3", "--out", d / "check", "--budget", "2", *tiny, "-q")
    assert json.loads((d / "check" / "report.json").read_text())["format"] == "avsbench-ms3"
