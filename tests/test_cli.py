import subprocess
import sys

from conftest import run_cli


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
