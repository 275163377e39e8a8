"""Trained runs on the tones world, shared by the tests that only read them (each run is trained once per session).

`tones_run(seed, no_audio=False)` trains, as a user does (the CLI, no --vggish-weights, so the frozen VGGish is the
fixed initialisation), `baselines/audio-check.toml` on the gold release of a tones world of TONES_WORLD with that
seed, and returns a TonesRun (world folder, gold release, run folder, the training's CompletedProcess). The audio
check (test_train.py) reads seed 41 with and without audio; the sanity check on new seeds (test_sanity_seeds.py)
reads seeds 41, 42 and 43 with audio. Both tests are in the xdist group TONES_GROUP, so they run on one worker and
seed 41's world and run are made once in a `make test` (a session fixture is per worker).

The world's gold release is what `avs-tools synth OUT --scene tones --gold avsbench-ms3 ...` writes, byte for byte
(synth.gold.write_gold renders every clip from (seed, index) alone), without the world's H.264/AAC videos, which
no test here reads and whose encoding was about half of a world's time (18 s of 28 on this box); a clip's truth
(which circle sounds) is rendered again from (seed, index) when a test asks for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from tests.helpers import REPO, run_cli

AUDIO_CHECK = REPO / "baselines" / "audio-check.toml"
# 48 clips of 3 circles (34 train, 7 val, 7 test), 64x64 at 10 fps: the gold frames are 224x224 whatever the
# world's size, and the model sees them at 32x32. Fewer clips learn worse for the same steps (32 clips, 16 epochs:
# seed 41 reached 0.38 where 48 clips and 10 epochs reach 0.68)
TONES_WORLD = {"clips": 48, "seconds": 5, "width": 64, "height": 64, "fps": 10, "gold": "avsbench-ms3",
               "scene": "tones"}
TONES_GROUP = "baselines/tones"  # the xdist group of every test that reads tones_run


@dataclass
class TonesRun:
    world: Path
    gold: Path
    run: Path
    trained: CompletedProcess
    seed: int

    def truth(self, vid: str) -> dict:
        """The truth of the world's video `vid` (synth's truth/<vid>.json), rendered again from (seed, index)."""
        from avsbench_tools.synth import SynthParams
        from avsbench_tools.synth.render import video_id
        from avsbench_tools.synth.scene import render_clip

        p = SynthParams(seed=self.seed, **TONES_WORLD)
        index = next(i for i in range(p.clips) if video_id(p.seed, i) == vid)
        return render_clip(p, index).truth


def tones_world(base: Path, seed: int) -> Path:
    """The folder of the tones world of `seed` (its gold release in world/gold; see the module's docstring)."""
    from avsbench_tools.synth import SynthParams
    from avsbench_tools.synth.gold import write_gold

    world = base / "tones-worlds" / f"seed{seed}"
    world.mkdir(parents=True, exist_ok=True)
    write_gold(world, SynthParams(seed=seed, **TONES_WORLD))  # kept when these parameters wrote it already
    return world


@pytest.fixture(scope="session")
def tones_run(tmp_path_factory):
    runs: dict[tuple[int, bool], TonesRun] = {}

    def train(seed: int, no_audio: bool = False) -> TonesRun:
        if (seed, no_audio) not in runs:
            world = tones_world(tmp_path_factory.getbasetemp(), seed)
            out = tmp_path_factory.getbasetemp() / "tones-runs" / f"seed{seed}{'-no-audio' if no_audio else ''}"
            out.parent.mkdir(exist_ok=True)
            r = run_cli("baseline", "train", world / "gold", "--setting", "ms3", "--out", out, "--config", AUDIO_CHECK,
                        "--device", "cpu", "-q", *(["--no-audio"] if no_audio else []), timeout=1800)
            assert r.returncode == 0, r.stderr
            runs[(seed, no_audio)] = TonesRun(world, world / "gold", out, r, seed)
        return runs[(seed, no_audio)]

    return train
