"""The sam3 backend: a tiny random-config SAM 3 video model through the real code path on the CPU (text prompts
-> masks with object ids -> catalog rows), its one-line errors, `models check`; the real size on a GPU."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from avsbench_tools.collect import CollectOptions, collect
from avsbench_tools.mask_store import load_mask
from avsbench_tools.preannotate import PreannotateOptions, preannotate
from avsbench_tools.preannotate import sam3 as sam3_backend
from avsbench_tools.sample import SampleOptions, sample
from avsbench_tools.workspace import init_workspace, open_workspace
from tests.helpers import cli_here
from tests.helpers.tiny_models import tiny_hf_sam, tiny_sam3

torch = pytest.importorskip("torch")
ONE_THREAD = {"OMP_NUM_THREADS": "1"}  # the CLI children too: a shared 2-core box is far faster single-threaded


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def sam3_model(tmp_path_factory) -> Path:
    return tiny_sam3(tmp_path_factory.mktemp("sam3") / "sam3")


@pytest.fixture(scope="module")
def sampled(tmp_path_factory, world_ms3) -> tuple[Path, list[str]]:
    """A workspace of the MS3 world with two of its clips sampled."""
    ws, _ = init_workspace(tmp_path_factory.mktemp("s3") / "ws", str(world_ms3 / "recipe.toml"))
    collect(ws, CollectOptions(local=world_ms3 / "videos", any_license=True))
    clips = [c.clip_id for c in ws.catalog.clips()][:2]
    sample(ws, SampleOptions(jobs=1, clips=clips))
    ws.close()
    return ws.root, clips


def test_frame_plan_keeps_the_sampled_frames_and_the_rate():
    sampled = {0: 23, 1: 48, 2: 73, 3: 98, 4: 123}
    plan = sam3_backend.frame_plan(sampled, 25.0, 5.0)
    assert plan[0] == 23 and plan[-1] == 123 and set(sampled.values()) <= set(plan)
    assert len(plan) == 21 and all(b - a == 5 for a, b in zip(plan, plan[1:], strict=False))
    plan30 = sam3_backend.frame_plan({0: 28, 1: 58, 2: 88}, 30.0, 4.0)  # 7.5 frames: every 8th, sampled added
    assert {28, 58, 88} <= set(plan30) and max(b - a for a, b in zip(plan30, plan30[1:], strict=False)) <= 8
    assert sam3_backend.frame_plan(sampled, 25.0, 1.0) == sorted(sampled.values())


def test_sam3_end_to_end_into_catalog_rows(tmp_path, sampled, sam3_model, monkeypatch):
    monkeypatch.setattr(sam3_backend, "SAM3_FPS", 1.0)  # the sampled frames only: 5 frames a clip on the CPU
    wsdir = tmp_path / "ws"
    shutil.copytree(sampled[0], wsdir)
    ws = open_workspace(wsdir)
    opts = PreannotateOptions(backend="sam3", sam3=str(sam3_model), device="cpu", clips=sampled[1])
    res = preannotate(ws, opts)
    assert res.backend == "sam3" and res.done == 2 and res.failed == 0 and res.masks > 0
    frames = {(f["clip_id"], f["second"]): f for f in ws.catalog.query("SELECT * FROM frames")}
    act = {r[0]: json.loads(r[1])["active"] for r in ws.catalog.query("SELECT clip_id, activity_json FROM audio")}
    tracked_over_seconds = 0
    for cid in sampled[1]:
        versions = ws.catalog.mask_versions(cid, ("proposal",))
        assert versions
        fid_of: dict[int, int] = {}
        seconds_of: dict[int, set] = {}
        for v in versions:
            f = frames[(cid, v.second)]
            m = load_mask(ws, v.path)
            assert m.shape == (f["height"], f["width"]) and m.any()
            assert v.backend == "sam3" and v.kind == "proposal"
            assert v.settings["sam3"] == {"id": str(sam3_model), "sha256": v.settings["sam3"]["sha256"]}
            assert len(v.settings["sam3"]["sha256"]) == 16 and v.settings["sam3_fps"] == 1.0
            ev = v.evidence
            assert ev["backend"] == "sam3" and ev["frames_given"] == 5 and ev["phrase"]
            assert v.category in ws.recipe.categories and ws.recipe.prompt_for(v.category) == ev["phrase"]
            assert v.sounding == bool(act[cid][v.second]) and "activity_active" in ev
            # one model object, one fid, in every second it appears (and one object per fid)
            assert fid_of.setdefault(ev["sam3_object_id"], v.fid) == v.fid
            seconds_of.setdefault(v.fid, set()).add(v.second)
        assert len(set(fid_of.values())) == len(fid_of)
        assert sorted(seconds_of) == list(range(len(seconds_of)))  # fids 0..n-1 in order of appearance
        assert res.ids[cid] == len(seconds_of)
        tracked_over_seconds += sum(len(s) > 1 for s in seconds_of.values())
    assert tracked_over_seconds > 0  # the model's tracks carry ids across seconds, and so do the rows
    assert preannotate(ws, opts).skipped == 2  # same settings: done
    ws.close()


def test_sam3_on_the_command_line(tmp_path, sampled, sam3_model):
    wsdir = tmp_path / "ws"
    shutil.copytree(sampled[0], wsdir)
    clip = sampled[1][0]
    sam1 = tiny_hf_sam(tmp_path / "sam1")
    r = cli_here("preannotate", wsdir, "-q", "--backend", "sam3", "--clip", clip, env=ONE_THREAD)
    assert r.returncode == 2 and r.stderr.strip().endswith("--backend sam3 needs --sam3 (a transformers "
                                                           "Sam3VideoModel checkpoint, e.g. facebook/sam3)")
    r = cli_here("preannotate", wsdir, "-q", "--sam3", sam1, "--device", "cpu", "--clip", clip, env=ONE_THREAD)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1 and f"--sam3 {sam1}: not a SAM 3 video checkpoint (model_type 'sam')" \
        in lines[0], r.stderr
    r = cli_here("models", "check", "--sam3", sam3_model, "--device", "cpu", env=ONE_THREAD)
    row = next(ln for ln in r.stdout.splitlines() if ln.startswith("sam3"))
    assert r.returncode == 0 and " ok " in row and "Sam3VideoModel" in row, r.stdout + r.stderr
    # --sam3 alone picks the backend (as --dino with --sam picks grounded-sam); options of other backends are named
    unsampled = next(c.name.removesuffix(".mp4") for c in sorted((wsdir / "clips").glob("*.mp4"))
                     if c.stem not in sampled[1])
    r = cli_here("preannotate", wsdir, "--sam3", sam3_model, "--tracker", "none", "--clip", unsampled, env=ONE_THREAD)
    assert r.returncode == 2 and "--tracker has no effect with the sam3 backend" in r.stderr
    assert f"clip {unsampled} is not sampled yet" in r.stderr


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (a GPU machine)")
def test_sam3_real_size_on_gpu(tmp_path, sampled):
    model = tiny_sam3(tmp_path / "sam3-real", tiny=False)  # the real architecture, random weights
    wsdir = tmp_path / "ws"
    shutil.copytree(sampled[0], wsdir)
    ws = open_workspace(wsdir)
    res = preannotate(ws, PreannotateOptions(backend="sam3", sam3=str(model), device="cuda", precision="bf16",
                                             clips=sampled[1][:1]))
    assert res.done == 1 and res.failed == 0
    ws.close()
