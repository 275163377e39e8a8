"""preannotate on the command line: the next step, nothing to do, loud failures, options that cannot take effect."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from avsbench_tools.collect import CollectOptions, collect
from avsbench_tools.sample import SampleOptions, sample
from avsbench_tools.workspace import init_workspace, open_workspace
from tests.helpers import cli_here


@pytest.fixture(scope="module")
def collected(tmp_path_factory, world_ms3) -> Path:
    d = tmp_path_factory.mktemp("pcli")
    ws, _ = init_workspace(d / "ws", str(world_ms3 / "recipe.toml"))
    collect(ws, CollectOptions(local=world_ms3 / "videos", any_license=True))
    ws.close()
    return d / "ws"


@pytest.fixture(scope="module")
def sampled(tmp_path_factory, collected) -> Path:
    d = tmp_path_factory.mktemp("pcli-s") / "ws"
    shutil.copytree(collected, d)
    ws = open_workspace(d)
    sample(ws, SampleOptions(jobs=2))
    ws.close()
    return d


def test_preannotate_names_the_next_step_and_says_when_nothing_is_left(tmp_path, sampled):
    ws = tmp_path / "ws"
    shutil.copytree(sampled, ws)
    r = cli_here("preannotate", ws, "--backend", "motion", check=True)
    assert "4 clips proposed" in r.stdout
    # Label Studio is installed in this build: review first, or export the proposals as they are
    assert (f"next: avs-tools studio start {ws} && avs-tools push {ws}  (review the proposals), or: avs-tools export "
            f"{ws} OUT --include-unreviewed") in r.stdout
    r = cli_here("preannotate", ws, "--backend", "motion", check=True)
    assert "nothing to do: all 4 sampled clips already have proposals" in r.stdout
    assert "next: avs-tools studio start" in r.stdout
    r = cli_here("preannotate", ws, "--backend", "motion", env={"AVS_TOOLS_LABEL_STUDIO": str(tmp_path / "none")},
                check=True)  # no Label Studio: the export, and how to get the studio
    assert f"next: avs-tools export {ws} OUT --include-unreviewed" in r.stdout and "make studio-install" in r.stdout
    assert "next:" not in cli_here("preannotate", ws, "-q", "--backend", "motion", check=True).stdout


def test_preannotate_before_sample_and_before_collect(tmp_path, collected):
    r = cli_here("preannotate", collected)
    assert r.returncode == 2 and f"run avs-tools sample {collected} first" in r.stderr and "Traceback" not in r.stderr
    init_workspace(tmp_path / "empty", "avss")[0].close()
    r = cli_here("preannotate", tmp_path / "empty")
    assert r.returncode == 2 and "has no clips yet" in r.stderr and "avs-tools collect" in r.stderr


def test_preannotate_exits_1_when_every_clip_fails(tmp_path, sampled):
    ws = tmp_path / "ws"
    shutil.copytree(sampled, ws)
    for p in (ws / "clips").glob("*.mp4"):
        p.unlink()  # the videos went missing after sampling
    r = cli_here("preannotate", ws, "-q", "--backend", "motion")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "0 clips proposed" in r.stdout and "4 failed" in r.stdout
    failed = [ln for ln in r.stderr.splitlines() if ln.strip().startswith("failed: ")]
    assert len(failed) == 4
    assert "every clip pre-annotated in this run failed" in r.stderr


def test_options_that_cannot_take_effect_say_so(tmp_path, sampled):
    ws = tmp_path / "ws"
    shutil.copytree(sampled, ws)
    clip = sorted(p.stem for p in (ws / "clips").glob("*.mp4"))[0]
    r = cli_here("preannotate", ws, "--dino", "IDEA-Research/grounding-dino-tiny")  # no --sam: not silently motion
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "--sam" in lines[0], r.stderr
    r = cli_here("preannotate", ws, "-q", "--backend", "motion", "--device", "cuda", "--prompt", "dog",
                "--clip", clip, check=True)
    assert "--device cuda has no effect with the motion backend" in r.stderr
    assert "--prompt has no effect with the motion backend" in r.stderr
    r = cli_here("preannotate", ws, "--clip", clip[:-1] + "x")
    assert r.returncode == 2 and f"did you mean {clip}" in r.stderr
