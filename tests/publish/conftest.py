"""Gold releases of every format (tiny synthetic worlds) and their published folders, made once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

SECONDS = {"avsbench-s4": 5, "avsbench-ms3": 5, "avss": 5, "ref-avs": 10}


def gold_release(tmp_path_factory, fmt: str, clips: int = 3, seed: int = 5) -> Path:
    from avsbench_tools.synth import SynthParams, synthesize

    out = tmp_path_factory.mktemp("gold") / fmt
    synthesize(out, SynthParams(clips=clips, seconds=SECONDS[fmt], width=96, height=72, seed=seed, gold=fmt))
    return out / "gold"


@pytest.fixture(scope="session")
def gold_releases(tmp_path_factory) -> dict[str, Path]:
    """{format: gold release root} of 3-clip worlds at 96x72 (S4/MS3 frames are written at 224x224)."""
    return {fmt: gold_release(tmp_path_factory, fmt) for fmt in SECONDS}


@pytest.fixture(scope="session")
def published(gold_releases, tmp_path_factory) -> dict[str, Path]:
    """{format: folder avs-tools publish wrote from that format's gold release}."""
    from avsbench_tools.publish import publish

    out = {}
    for fmt, rel in gold_releases.items():
        out[fmt] = tmp_path_factory.mktemp("published") / fmt
        publish(rel, fmt, out[fmt])
    return out


@pytest.fixture(scope="session")
def s4_workspace(tmp_path_factory) -> Path:
    """A 6-clip S4 workspace: synth -> init -> collect --world -> sample -> preannotate (motion)."""
    from tests.helpers import run_cli

    d = tmp_path_factory.mktemp("s4ws")
    run_cli("synth", d / "world", "--gold", "avsbench-s4", "--clips", "6", "--size", "96x72", "-q", check=True)
    run_cli("init", d / "ws", "-r", d / "world" / "recipe.toml", check=True)
    for cmd in (("collect", d / "ws", "--world", d / "world"), ("sample", d / "ws"), ("preannotate", d / "ws")):
        run_cli(*cmd, "-q", check=True)
    return d / "ws"
