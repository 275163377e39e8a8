"""preannotate: real model code paths on tiny random models, the CPU tracker, the motion backend."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from avsbench_tools.collect import CollectOptions, collect
from avsbench_tools.mask_store import latest_masks, load_mask
from avsbench_tools.masks import ObjectMask, iou
from avsbench_tools.preannotate import PreannotateOptions, preannotate
from avsbench_tools.preannotate.flow import decode_frames
from avsbench_tools.preannotate.track import track_flow
from avsbench_tools.sample import SampleOptions, sample
from avsbench_tools.synth import SynthParams, load_instances, load_truth, synthesize
from avsbench_tools.timing import sampled_frame_indices
from avsbench_tools.workspace import init_workspace, open_workspace
from tests.helpers import cli_here
from tests.helpers.tiny_models import tiny_clap, tiny_dino, tiny_hf_sam, tiny_orig_sam, tiny_sam2

torch = pytest.importorskip("torch")  # the models extra, installed by make install


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("models")
    return {"dino": tiny_dino(d / "dino"), "sam": tiny_hf_sam(d / "sam"), "clap": tiny_clap(d / "clap"),
            "sam2": tiny_sam2(d / "sam2")}


def _sampled_ws(tmp_path: Path, world: Path) -> Path:
    ws, _ = init_workspace(tmp_path / "ws", str(world / "recipe.toml"))
    collect(ws, CollectOptions(local=world / "videos", any_license=True))
    sample(ws, SampleOptions(jobs=2))
    ws.close()
    return tmp_path / "ws"


@pytest.fixture(scope="module")
def sampled(tmp_path_factory, world_ms3) -> Path:
    return _sampled_ws(tmp_path_factory.mktemp("pre"), world_ms3)


@pytest.mark.parametrize("tracker", ["flow", "none"])
def test_grounded_sam_end_to_end_on_tiny_models(tmp_path, sampled, models, tracker):
    wsdir = tmp_path / "ws"
    shutil.copytree(sampled, wsdir)
    ws = open_workspace(wsdir)
    # random weights score low: thresholds 0 keep every box, which exercises the whole path
    opts = PreannotateOptions(dino=str(models["dino"]), sam=str(models["sam"]), box_threshold=0.0, text_threshold=0.0,
                              tracker=tracker, device="cpu")
    res = preannotate(ws, opts)
    assert res.backend == "grounded-sam" and res.done == 4 and res.failed == 0 and res.masks > 0
    rows = ws.catalog.query("SELECT * FROM mask_versions")
    frames = {(r["clip_id"], r["second"]): r for r in ws.catalog.query("SELECT * FROM frames")}
    for r in rows:
        m = load_mask(ws, r["path"])
        f = frames[(r["clip_id"], r["second"])]
        assert m.shape == (f["height"], f["width"]) and m.dtype == bool
        s = json.loads(r["settings_json"])
        assert r["backend"] == "grounded-sam" and r["kind"] == "proposal"
        assert s["dino"]["id"] == str(models["dino"]) and len(s["dino"]["sha256"]) == 16
        assert s["sam"]["sha256"] and s["box_threshold"] == 0.0 and s["text_threshold"] == 0.0
        assert s["tracker"] == tracker
        assert r["sounding"] in (0, 1) and "activity_active" in json.loads(r["evidence"])
    if tracker == "flow":  # every key object appears in every sampled second under one id
        for cid in {r["clip_id"] for r in rows}:
            per_sec = {}
            for r in rows:
                if r["clip_id"] == cid:
                    per_sec.setdefault(r["second"], set()).add(r["fid"])
            assert len(per_sec) == 5 and len({frozenset(v) for v in per_sec.values()}) == 1
            ev = [json.loads(r["evidence"]) for r in rows if r["clip_id"] == cid]
            assert sum(1 for e in ev if e.get("key_frame")) == len(per_sec[0])
    # re-run: skipped; other thresholds: a new version beside the old one
    assert preannotate(ws, opts).skipped == 4
    opts.box_threshold = 0.01
    preannotate(ws, opts)
    hashes = {r[0] for r in ws.catalog.query("SELECT DISTINCT settings_hash FROM mask_versions")}
    assert len(hashes) == 2 and len(ws.catalog.query("SELECT * FROM mask_versions")) > len(rows)


def test_sam_embedding_is_computed_once_per_frame(tmp_path, sampled, models):
    from avsbench_tools.preannotate import Models, propose_grounded_sam

    ws = open_workspace(sampled)
    opts = PreannotateOptions(dino=str(models["dino"]), sam=str(models["sam"]), box_threshold=0.0,
                              text_threshold=0.0, tracker="none", device="cpu")
    m = Models(opts)
    clip = ws.catalog.clips()[0]
    objs = propose_grounded_sam(ws, clip, m, opts, ws.catalog.frames(clip.clip_id))
    per_frame = {}
    for o in objs:
        per_frame[o.second] = per_frame.get(o.second, 0) + 1
    assert max(per_frame.values()) >= 2  # several boxes on a frame ...
    assert m.sam.n_embeddings == 5  # ... and still one embedding per sampled frame
    ws.close()


def test_segment_anything_predictor_path():
    from avsbench_tools.masks import from_sam
    from avsbench_tools.preannotate.models import OrigSam

    sam = OrigSam(tiny_orig_sam(), "cpu", "tiny", "0" * 16)
    img = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    sam.set_image(img)
    masks, scores = sam.predict([(10, 10, 60, 60), (50, 20, 150, 100)])
    assert masks.shape == (2, 3, 120, 160) and masks.dtype == bool and scores.shape == (2, 3)
    o = from_sam(ObjectMask(0, 0, "dog", None, (10, 10, 60, 60), 0.5), masks[0], scores[0])
    assert o.mask.shape == (120, 160) and "sam_iou" in o.evidence
    assert sam.n_embeddings == 1


def test_model_errors_are_one_line(tmp_path, sampled, models):
    ws = tmp_path / "ws"
    shutil.copytree(sampled, ws)
    r = cli_here("preannotate", ws, "-q", "--dino", tmp_path / "nope", "--sam", models["sam"])
    assert r.returncode == 2 and "nope" in r.stderr and "Traceback" not in r.stderr
    r = cli_here("preannotate", ws, "-q", "--dino", models["sam"], "--sam", models["sam"], "--device", "cpu")
    assert r.returncode == 1 and "not a Grounding DINO checkpoint" in r.stderr
    broken = tmp_path / "broken-sam"
    shutil.copytree(models["sam"], broken)
    (broken / "model.safetensors").write_bytes(b"garbage")
    r = cli_here("preannotate", ws, "-q", "--dino", models["dino"], "--sam", broken, "--device", "cpu")
    assert r.returncode == 1 and "cannot load" in r.stderr and "Traceback" not in r.stderr
    bad_pth = tmp_path / "sam_vit_b_bad.pth"
    torch.save({"x": torch.zeros(1)}, bad_pth)
    r = cli_here("preannotate", ws, "-q", "--dino", models["dino"], "--sam", bad_pth, "--device", "cpu")
    assert r.returncode == 1 and "not a segment-anything vit_b checkpoint" in r.stderr
    if not torch.cuda.is_available():
        r = cli_here("preannotate", ws, "-q", "--dino", models["dino"], "--sam", models["sam"], "--device", "cuda")
        assert r.returncode == 2 and "CUDA is not available" in r.stderr
    r = cli_here("models", "check", "--dino", models["dino"], "--sam", broken, "--device", "cpu")
    assert r.returncode == 1
    lines = r.stdout.splitlines()
    assert lines[0].startswith("dino") and " ok " in lines[0] and "cpu" in lines[0]
    assert lines[1].startswith("sam") and "FAILED" in lines[1]


def test_cpu_tracker_follows_ground_truth(tmp_path):
    world = tmp_path / "w"
    synthesize(world, SynthParams(clips=6, seconds=5, width=160, height=120, seed=11))
    ious = []
    for vid in sorted(p.stem for p in (world / "videos").glob("*.mp4")):
        truth, inst = load_truth(world, vid), load_instances(world, vid)
        frames, fps = decode_frames(world / "videos" / f"{vid}.mp4")
        idx = sampled_frame_indices("end-of-second", fps, len(frames), 5)
        key = 2  # track both ways from the middle
        keym = [ObjectMask(key, o["fid"], o["category"], inst[idx[key]] == o["id"]) for o in truth["objects"]]
        for r in track_flow(frames, dict(enumerate(idx)), key, keym):
            if r.second != key:
                ious.append(iou(r.mask, inst[idx[r.second]] == r.fid + 1))
    assert len(ious) >= 24
    assert float(np.mean(ious)) >= 0.8, np.mean(ious)


def _frame_iou(p: np.ndarray, g: np.ndarray) -> float:
    return float((~p).mean()) if not g.any() else iou(p, g)  # the official empty-GT rule (metrics.md)


def test_motion_backend_beats_trivial_predictors(tmp_path):
    world = tmp_path / "w"
    synthesize(world, SynthParams(clips=12, seconds=5, width=160, height=120, seed=21))
    wsdir = _sampled_ws(tmp_path, world)
    r = cli_here("preannotate", wsdir, "-q", check=True)  # no checkpoints: the motion backend
    assert "(motion)" in r.stdout
    ws = open_workspace(wsdir)
    scores = {"motion": [], "empty": [], "full": []}
    n_clips = 0
    for c in ws.catalog.clips():
        vid = c.clip_id.split("-")[0]
        truth, inst = load_truth(world, vid), load_instances(world, vid)
        if sum(not o["distractor"] for o in truth["objects"]) != 1:
            continue  # single-source clips
        n_clips += 1
        frames = {r["second"]: r["frame_index"] for r in ws.catalog.query(
            "SELECT second, frame_index FROM frames WHERE clip_id=?", (c.clip_id,))}
        props = latest_masks(ws, c.clip_id)
        for sec, k in frames.items():
            gt = np.isin(inst[k], truth["sounding_per_second"][sec])
            pred = np.zeros_like(gt)
            for p in props:
                if p.second == sec and p.sounding:
                    pred |= load_mask(ws, p.path)
            scores["motion"].append(_frame_iou(pred, gt))
            scores["empty"].append(_frame_iou(np.zeros_like(gt), gt))
            scores["full"].append(_frame_iou(np.ones_like(gt), gt))
    mean = {k: float(np.mean(v)) for k, v in scores.items()}
    assert n_clips >= 3
    assert mean["motion"] >= max(mean["empty"], mean["full"]) + 0.2, mean


def test_clap_tagger_gates_prompts_and_sounding(tmp_path, sampled, models):
    wsdir = tmp_path / "ws"
    shutil.copytree(sampled, wsdir)
    ws = open_workspace(wsdir)
    base = dict(dino=str(models["dino"]), sam=str(models["sam"]), box_threshold=0.0, text_threshold=0.0,
                tracker="none", device="cpu", audio_tagger="clap", clap=str(models["clap"]))
    # threshold 0: every category counts as heard in every sounding second
    res = preannotate(ws, PreannotateOptions(**base, tagger_threshold=0.0))
    assert res.done == 4 and res.masks > 0
    rows = ws.catalog.query("SELECT * FROM mask_versions")
    act = {r[0]: json.loads(r[1])["active"] for r in ws.catalog.query("SELECT clip_id, activity_json FROM audio")}
    for r in rows:
        ev = json.loads(r["evidence"])
        assert set(ev["tagger"]["clap"]) and all(0 <= v <= 1 for v in ev["tagger"]["clap"].values())
        assert bool(r["sounding"]) == act[r["clip_id"]][r["second"]]  # heard iff not silent
        s = json.loads(r["settings_json"])["audio_tagger"]
        assert s["kind"] == "clap" and len(s["sha256"]) == 16 and s["threshold"] == 0.0
    # silent seconds prompt nothing: no detection there at all
    silent = [(c, s) for c, a in act.items() for s, on in enumerate(a) if not on]
    assert silent and not any((r["clip_id"], r["second"]) in silent for r in rows)
    # a threshold no probability reaches: nothing is heard, so nothing is prompted or proposed
    res = preannotate(ws, PreannotateOptions(**base, tagger_threshold=1.01))
    assert res.done == 4 and res.masks == 0
    # the motion backend with the tagger records the evidence too
    res = preannotate(ws, PreannotateOptions(audio_tagger="clap", clap=str(models["clap"]), device="cpu"))
    assert res.backend == "motion" and res.done == 4
    ws.close()
    r = cli_here("models", "check", "--clap", models["clap"], "--device", "cpu")
    assert r.returncode == 0 and any(line.startswith("clap") and " ok " in line for line in r.stdout.splitlines())
    r = cli_here("preannotate", wsdir, "-q", "--audio-tagger", "clap", "--clap", models["sam"], "--device", "cpu")
    assert r.returncode == 1 and "not a CLAP checkpoint" in r.stderr


def _sam2_run(tmp_path, sampled, models, sam2_path, device):
    wsdir = tmp_path / "ws"
    shutil.copytree(sampled, wsdir)
    ws = open_workspace(wsdir)
    opts = PreannotateOptions(dino=str(models["dino"]), sam=str(models["sam"]), box_threshold=0.0,
                              text_threshold=0.0, tracker="sam2", sam2=str(sam2_path), device=device,
                              clips=[ws.catalog.clips()[0].clip_id])
    res = preannotate(ws, opts)
    assert res.done == 1 and res.masks > 0
    rows = ws.catalog.query("SELECT * FROM mask_versions")
    frames = {r["second"]: r for r in ws.catalog.query("SELECT * FROM frames WHERE clip_id=?", (rows[0]["clip_id"],))}
    per_sec: dict[int, set] = {}
    for r in rows:
        ev = json.loads(r["evidence"])
        assert ev["tracker"] == "sam2"
        assert load_mask(ws, r["path"]).shape == (frames[r["second"]]["height"], frames[r["second"]]["width"])
        per_sec.setdefault(r["second"], set()).add(r["fid"])
        assert json.loads(r["settings_json"])["sam2"]["sha256"]
    assert len(per_sec) == 5 and len({frozenset(v) for v in per_sec.values()}) == 1  # stable ids in every second
    ws.close()


def test_sam2_tracker_on_a_tiny_model(tmp_path, sampled, models):
    _sam2_run(tmp_path, sampled, models, models["sam2"], "cpu")
    r = cli_here("preannotate", tmp_path / "ws", "-q", "--dino", models["dino"], "--sam", models["sam"],
                "--tracker", "sam2", "--device", "cpu")
    assert r.returncode == 2 and "--sam2" in r.stderr
    r = cli_here("preannotate", tmp_path / "ws", "-q", "--dino", models["dino"], "--sam", models["sam"],
                "--tracker", "sam2", "--sam2", models["sam"], "--device", "cpu")
    assert r.returncode == 1 and "not a SAM 2 video checkpoint" in r.stderr


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (a GPU machine)")
def test_sam2_tracker_real_size_on_gpu(tmp_path, sampled, models):
    _sam2_run(tmp_path, sampled, models, tiny_sam2(tmp_path / "sam2-real", tiny=False), "cuda")


def test_dino_batches_equal_single_frames(models):
    from avsbench_tools.preannotate.models import load_dino

    dino = load_dino(str(models["dino"]), "cpu")
    imgs = [np.random.default_rng(i).integers(0, 255, (120, 160, 3), dtype=np.uint8) for i in range(3)]
    prompts = {"guitar": "red circle", "dog": "orange triangle"}
    single = [dino.detect(im, prompts, i, 0.0, 0.0) for i, im in enumerate(imgs)]
    batch = dino.detect_batch(imgs, [prompts] * 3, [0, 1, 2], 0.0, 0.0)
    assert [len(x) for x in batch] == [len(x) for x in single] and sum(map(len, batch)) > 0
    for a_list, b_list in zip(single, batch, strict=True):
        for a, b in zip(a_list, b_list, strict=True):
            assert a.second == b.second and a.box == pytest.approx(b.box, abs=1e-3)
            assert a.score == pytest.approx(b.score, abs=1e-5)
