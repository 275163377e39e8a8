"""Trained runs on the tones world, shared by the tests that only read them (each run is trained once per session).

`tones_run(seed, no_audio=False)` trains, as a user does (the CLI, no --vggish-weights, so the frozen VGGish is the
fixed initialisation), `baselines/audio-check.toml` on the gold release of a tones world of TONES_WORLD with that
seed, and returns a TonesRun (world folder, gold release, run folder, the training's CompletedProcess). The audio
check (test_train.py) reads seed 41 with and without audio; the sanity check on new seeds (test_sanity_seeds.py)
reads seeds 41, 42 and 43 with audio.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from tests.helpers import REPO, run_cli
from tests.helpers.worlds import make_world

AUDIO_CHECK = REPO / "baselines" / "audio-check.toml"
# 48 clips of 3 circles (34 train, 7 val, 7 test), 64x64 at 10 fps: the gold frames are 224x224 whatever the
# world's size, and the model sees them at 32x32. Fewer clips learn worse for the same steps (32 clips, 16 epochs:
# seed 41 reached 0.38 where 48 clips and 10 epochs reach 0.68)
TONES_WORLD = {"clips": 48, "seconds": 5, "width": 64, "height": 64, "fps": 10, "gold": "avsbench-ms3",
               "scene": "tones"}


@dataclass
class TonesRun:
    world: Path
    gold: Path
    run: Path
    trained: CompletedProcess


@pytest.fixture(scope="session")
def tones_run(tmp_path_factory):
    runs: dict[tuple[int, bool], TonesRun] = {}

    def train(seed: int, no_audio: bool = False) -> TonesRun:
        if (seed, no_audio) not in runs:
            world = make_world(tmp_path_factory, seed=seed, **TONES_WORLD)
            out = tmp_path_factory.getbasetemp() / "tones-runs" / f"seed{seed}{'-no-audio' if no_audio else ''}"
            out.parent.mkdir(exist_ok=True)
            r = run_cli("baseline", "train", world / "gold", "--setting", "ms3", "--out", out, "--config", AUDIO_CHECK,
                        "--device", "cpu", "-q", *(["--no-audio"] if no_audio else []), timeout=1800,
                        env={"OMP_NUM_THREADS": "1"})
            assert r.returncode == 0, r.stderr
            runs[(seed, no_audio)] = TonesRun(world, world / "gold", out, r)
        return runs[(seed, no_audio)]

    return train
