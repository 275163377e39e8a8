"""What every command shares: the option aliases, `stage_run`, --debug, the help's order and usage
lines, and a CLI that imports nothing heavy."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from avsbench_tools.cli import app, run
from avsbench_tools.cli.common import stage_run
from avsbench_tools.errors import UsageError, WorkspaceBusy
from avsbench_tools.workspace import init_workspace, open_workspace
from tests.helpers import cli_here, run_cli

PIPELINE = ["init", "status", "clips", "backup", "synth", "collect", "set-category", "sample", "preview",
            "preannotate", "models", "studio", "push", "pull", "qa", "export", "validate", "stats", "evaluate",
            "baseline", "release-check", "publish", "unpublish"]
USAGE = {"init": "WORKSPACE", "status": "WORKSPACE", "clips": "WORKSPACE", "synth": "OUT",
         "collect": "WORKSPACE", "set-category": "WORKSPACE", "sample": "WORKSPACE", "preview": "WORKSPACE",
         "preannotate": "WORKSPACE", "models check": "", "export": "WORKSPACE OUT", "validate": "RELEASE",
         "stats": "RELEASE", "evaluate": "", "studio start": "WORKSPACE", "studio stop": "WORKSPACE",
         "studio status": "WORKSPACE", "push": "WORKSPACE", "pull": "WORKSPACE", "qa": "WORKSPACE",
         "baseline train": "RELEASE", "baseline eval": "RUN", "baseline predict": "RELEASE",
         "baseline describe": "", "release-check": "RELEASE"}
CLI_DIR = Path(__file__).resolve().parents[2] / "avsbench_tools" / "cli"


@pytest.fixture()
def ws(tmp_path) -> Path:
    w, _ = init_workspace(tmp_path / "ws", "avsbench-s4")
    w.close()
    return tmp_path / "ws"


# -- --debug ---------------------------------------------------------------------------------------------
def test_an_error_is_one_line_and_debug_shows_its_traceback(tmp_path):  # --debug: the process prints the traceback
    missing = tmp_path / "nowhere"
    plain = run_cli("status", missing)
    lines = plain.stderr.strip().splitlines()
    assert plain.returncode == 2 and len(lines) == 1, plain.stderr
    assert lines[0].startswith(f"avs-tools: error: workspace {missing} not found") and "Traceback" not in plain.stderr
    for args, env in ((("--debug", "status", missing), {}), (("status", missing), {"AVS_TOOLS_DEBUG": "1"})):
        r = run_cli(*args, env=env)
        assert r.returncode == 1, r.stderr
        assert "Traceback (most recent call last)" in r.stderr, r.stderr
        assert f"avsbench_tools.errors.UsageError: workspace {missing} not found" in r.stderr
        assert "open_workspace" in r.stderr  # the frames of the library call are shown
    off = run_cli("status", missing, env={"AVS_TOOLS_DEBUG": "0"})
    assert off.returncode == 2 and "Traceback" not in off.stderr


def test_an_internal_error_says_to_rerun_with_debug_which_shows_where(tmp_path):
    script = tmp_path / "boom.py"
    script.write_text("import sys\n"
                      "from avsbench_tools.cli import app, run\n"
                      "@app.command()\n"
                      "def boom():\n"
                      "    {}['no such key']\n"
                      "sys.exit(run(sys.argv[1:]))\n")
    plain = subprocess.run([sys.executable, str(script), "boom"], capture_output=True, text=True, timeout=120)
    assert plain.returncode == 1 and "Traceback" not in plain.stderr
    assert plain.stderr.strip() == ("avs-tools: internal error: KeyError: 'no such key' (run again with --debug "
                                    "for the traceback, and report it)")
    debug = subprocess.run([sys.executable, str(script), "--debug", "boom"], capture_output=True, text=True,
                           timeout=120)
    assert debug.returncode == 1
    assert "Traceback (most recent call last)" in debug.stderr and "in boom" in debug.stderr
    assert debug.stderr.strip().endswith("KeyError: 'no such key'")


def test_debug_does_not_outlive_its_command(tmp_path, capsys):
    missing = tmp_path / "nowhere"
    with pytest.raises(UsageError):
        run(["--debug", "status", str(missing)])
    assert run(["status", str(missing)]) == 2  # the next run in the same process is back to one line
    assert capsys.readouterr().err.strip().startswith("avs-tools: error: workspace")


# -- help ------------------------------------------------------------------------------------------------
def test_help_lists_the_commands_in_pipeline_order():
    out = cli_here("--help", check=True).stdout
    section = out.split("\nCommands:\n", 1)[1]
    names = [ln.split()[0] for ln in section.splitlines() if ln.startswith("  ") and not ln.startswith("   ")]
    assert names == PIPELINE


@pytest.mark.parametrize("command", list(USAGE))
def test_usage_line_names_arguments_the_usual_way(command, capsys):
    assert run([*command.split(), "--help"]) == 0
    out = capsys.readouterr().out
    first = out.splitlines()[0]
    assert first == f"Usage: avs-tools {command} [OPTIONS] {USAGE[command]}".rstrip()
    for name in USAGE[command].split():  # the Arguments section uses the same names
        assert f"\n  {name} " in out


def test_a_missing_argument_is_named_in_capitals():
    r = cli_here("sample")
    assert r.returncode == 2 and "Missing argument 'WORKSPACE'" in r.stderr and "Traceback" not in r.stderr


# -- the option aliases ------------------------------------------------------------------------------------
def _commands() -> dict[str, typer.core.TyperCommand]:
    root = typer.main.get_command(app)
    out = {}
    for name, cmd in root.commands.items():
        if isinstance(cmd, typer.core.TyperGroup):
            out.update({f"{name} {sub}": c for sub, c in cmd.commands.items()})
        else:
            out[name] = cmd
    return out


def test_every_command_declares_the_shared_options_the_same_way():
    seen: dict[str, set] = {}
    for name, cmd in _commands().items():
        for p in cmd.params:
            key = p.name if p.param_type_name == "argument" else p.opts[0]
            if key in ("workspace", "--quiet", "--device", "--format", "--dino", "--sam", "--clap", "--sam2",
                       "--clip"):
                if key == "--clip" and name in ("preview", "set-category"):
                    continue  # one clip to draw; clips paired with --category: their own options
                seen.setdefault(key, set()).add((tuple(p.opts), p.metavar, p.envvar, p.help.split(" Default")[0]))
    assert set(seen) >= {"workspace", "--quiet", "--device", "--format", "--dino", "--sam", "--clap", "--sam2"}
    for key, variants in seen.items():
        if key == "workspace":  # init's says the folder is created
            variants = {v for v in variants if "to create" not in v[3]}
        assert len(variants) == 1, (key, variants)
    (quiet,) = seen["--quiet"]
    assert quiet[0] == ("--quiet", "-q")
    (ws_arg,) = {v for v in seen["workspace"] if "to create" not in v[3]}
    assert ws_arg[1] == "WORKSPACE"
    assert [v[2] for v in seen["--dino"]] == ["AVS_TOOLS_DINO"]
    assert [v[2] for v in seen["--sam"]] == ["AVS_TOOLS_SAM"]
    assert {n for n, c in _commands().items() if any(p.name == "quiet" for p in c.params)} == {
        "init", "collect", "set-category", "sample", "preannotate", "export", "synth", "validate", "stats", "evaluate",
        "push", "pull", "qa", "baseline train", "baseline eval", "baseline predict", "release-check", "publish",
        "unpublish"}


def test_init_quiet_says_what_it_made_without_the_next_step(tmp_path):
    """Found trying commands as a script would: `init -q` was 'No such option' (every stage command takes -q)."""
    r = cli_here("init", tmp_path / "ws", "--recipe", "avsbench-s4", "-q")
    assert r.returncode == 0 and r.stdout.strip().splitlines() == [
        f"created: workspace {tmp_path / 'ws'} (recipe avsbench-s4)"], (r.stdout, r.stderr)
    r = cli_here("init", tmp_path / "ws", "--recipe", "avsbench-s4")
    assert r.stdout.strip().splitlines()[-1].startswith("next: avs-tools collect"), r.stdout


def test_checkpoints_fall_back_to_their_environment_variables():
    r = cli_here("models", "check", "--json", "--dino", "/cli/dino",
                env={"AVS_TOOLS_DINO": "/env/dino", "AVS_TOOLS_SAM": "/env/sam.pth", "AVS_TOOLS_CLAP": ""})
    rows = {row["role"]: row for row in json.loads(r.stdout)}
    assert rows["dino"]["spec"] == "/cli/dino"  # the option wins over the variable
    assert rows["sam"]["spec"] == "/env/sam.pth"  # the variable where no option is given
    assert r.returncode == 1  # neither loads


def test_notes_about_ignored_options_speak_only_of_what_was_typed(ws):
    env = {"AVS_TOOLS_DINO": "/env/dino"}
    r = cli_here("preannotate", ws, "--backend", "motion", "-q", env=env)
    assert "--dino" not in r.stderr, r.stderr  # a standing configuration is not something the user asked for
    r = cli_here("preannotate", ws, "--backend", "motion", "--dino", "/cli/dino", "-q", env=env)
    assert "avs-tools: note: --dino has no effect with the motion backend" in r.stderr, r.stderr


# -- stage_run ---------------------------------------------------------------------------------------------
def test_stage_run_holds_the_writer_lock_and_closes_the_workspace(ws):
    with stage_run(ws, lock="sample", quiet=True) as (w, progress):
        with pytest.raises(WorkspaceBusy, match="sample"):
            open_workspace(ws, lock="export")
        open_workspace(ws).close()  # a reader never waits for the lock
        progress("sample", 1, 2, "c1")  # the one callback signature; quiet draws nothing
        assert not progress.started
        assert w.catalog.count_clips() == 0
    with pytest.raises(sqlite3.ProgrammingError):
        w.catalog.count_clips()  # closed
    open_workspace(ws, lock="export").close()  # released


def test_stage_run_releases_everything_when_the_stage_fails(ws):
    with pytest.raises(RuntimeError):
        with stage_run(ws, lock="sample") as (w, progress):
            progress("sample", 1, 3, "c1")
            assert progress.started  # bars are drawn from the first report on
            raise RuntimeError("stage failed")
    assert not progress.progress.live.is_started  # the bars were stopped
    with pytest.raises(sqlite3.ProgrammingError):
        w.catalog.count_clips()
    open_workspace(ws, lock="export").close()


def test_a_reader_opens_without_the_lock(ws):
    with stage_run(ws, lock="sample", quiet=True):
        with stage_run(ws, quiet=True) as (reader, _):
            assert reader.catalog.count_clips() == 0


def test_no_command_opens_a_workspace_itself():
    openers = sorted(p.name for p in CLI_DIR.glob("*.py") if "open_workspace(" in p.read_text())
    assert openers == ["common.py"]  # every command goes through stage_run


# -- imports -----------------------------------------------------------------------------------------------
def test_the_cli_and_every_help_import_nothing_heavy():
    helps = [[*c.split(), "--help"] for c in USAGE] + [["--help"], ["models", "--help"]]
    code = ("import sys\n"
            "import avsbench_tools.cli\n"
            "from avsbench_tools.cli import run\n"
            f"for argv in {helps!r}:\n"
            "    assert run(argv) == 0, argv\n"
            "print(sorted(m for m in ('torch', 'transformers', 'cv2', 'matplotlib', 'av', 'scipy') "
            "if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
